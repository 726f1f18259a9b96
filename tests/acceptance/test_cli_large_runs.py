"""Large runs through the real CLI (issue 16): `show` sums a run of over 200 steps up
(steps by state, the steps that did not succeed, the first rows, how to see the rest),
`show --all` and `show --json` have every step, and `watch` of a finished large run
answers from the store instead of replaying every event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from planrun import monitor

from ._cli import planrun, write_json

#: Steps in the run: over show's limit of 200 rows.
STEPS = 230
#: The steps that fail (``on_failure: continue``, so the run goes on).
FAILING = ("s5", "s220")


def _plan(tmp_path: Path) -> Path:
    steps: list[dict[str, Any]] = []
    for i in range(STEPS):
        sid = f"s{i}"
        if sid in FAILING:
            steps.append({"id": sid, "command": "false", "on_failure": "continue"})
        else:
            steps.append({"id": sid, "command": "true"})
    return write_json(tmp_path / "big.json", {"plan_id": "big", "steps": steps})


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One finished run of STEPS steps (two failed): (its directory, its state dir)."""
    tmp_path = tmp_path_factory.mktemp("big")
    state = tmp_path / "state"
    ran = planrun(
        "run", _plan(tmp_path), "--max-concurrency", "8", "--plain", "--run-id", "big-1",
        "--state-dir", state, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr  # two steps failed
    return tmp_path, state


def test_show_of_a_large_run_is_a_summary(big_run: tuple[Path, Path]) -> None:
    """Steps by state, the failed steps, the first 200 rows and a hint naming --all."""
    tmp_path, state = big_run
    shown = planrun("show", "big-1", "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"steps     {STEPS}: {STEPS - 2} succeeded, 2 failed" in lines
    rows = [line.split()[0] for line in lines if line.startswith("s") and line[1:2].isdigit()]
    # The failed steps first, then the first 200 (s5 is among them too).
    assert rows[:2] == list(FAILING)
    assert rows[2:] == [f"s{i}" for i in range(200)]
    assert lines[-1].startswith(f"{STEPS - 201} of {STEPS} steps not shown: ")
    assert "planrun show big-1 --all" in lines[-1]


def test_show_all_has_every_step_as_a_small_run_does(big_run: tuple[Path, Path]) -> None:
    """--all: the heading, then one row per step and per attempt, in plan order."""
    tmp_path, state = big_run
    shown = planrun("show", "big-1", "--all", "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert not any(line.startswith("steps     ") for line in lines)  # no summary
    header = next(i for i, line in enumerate(lines) if line.startswith("step "))
    body = lines[header + 1 :]
    assert [line.split()[0] for line in body[::2]] == [f"s{i}" for i in range(STEPS)]
    assert all(line.split()[0] == "1" for line in body[1::2])  # one attempt each
    assert [line.split()[1] for line in body[::2]].count("failed") == 2


def test_show_json_is_every_step_byte_for_byte(big_run: tuple[Path, Path]) -> None:
    """--json, written a step at a time, is the one encoding of {"run", "steps"}."""
    tmp_path, state = big_run
    shown = planrun("show", "big-1", "--json", "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    monitor_view = monitor.SyncMonitor(state)
    run = monitor_view.get_run("big-1")
    steps = monitor_view.get_steps("big-1")
    expected = msgspec.json.encode({"run": run, "steps": steps}).decode() + "\n"
    assert shown.stdout == expected
    assert len(json.loads(shown.stdout)["steps"]) == STEPS


@pytest.mark.parametrize("plain", [True, False])
def test_watch_of_a_finished_large_run_answers_from_the_store(
    big_run: tuple[Path, Path], plain: bool
) -> None:
    """No replay of every event: the outcome, the failed steps, how to see the rest;
    the run's exit code."""
    tmp_path, state = big_run
    args = ("--plain",) if plain else ()
    watched = planrun("watch", "big-1", *args, "--state-dir", state, cwd=tmp_path)
    assert watched.returncode == 1, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith("run big-1 failed in ")
    assert lines[0].endswith(f"({STEPS - 2} succeeded, 2 failed)")
    assert [line.split()[1].rstrip(":") for line in lines if line.endswith("attempt(s)")] == list(
        FAILING
    )
    assert "not replayed" in lines[-1]
    assert len(lines) < 20  # not a line per event


def test_watch_json_of_a_finished_large_run_streams_every_event(
    big_run: tuple[Path, Path],
) -> None:
    """--json still replays every event, exactly as stored, in order."""
    tmp_path, state = big_run
    watched = planrun("watch", "big-1", "--json", "--state-dir", state, cwd=tmp_path)
    assert watched.returncode == 1, watched.stderr
    stored = (state / "runs" / "big-1" / "events.jsonl").read_text(encoding="utf-8")
    assert watched.stdout == stored
