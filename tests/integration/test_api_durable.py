"""The embedded API's durable-run features: ``run_plan(secrets=..., resume=...)`` and
step outputs, with real processes and a real store."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from planrun import LockConflict, RunResumed, RunState, StepState, UsageError, monitor, run_plan
from planrun.events import Event

from .helpers import make_plan, sh_step

pytestmark = pytest.mark.anyio

SECRET = 'hunter2-"quoted"-\\back'  # noqa: S105 - a test value


def _counter_step(step_id: str, script: str = "", **fields: object) -> dict[str, object]:
    """A step that appends its id to $COUNTS (proves whether it ran) then runs script."""
    return sh_step(step_id, f'echo "$PLANRUN_STEP_ID" >> "$COUNTS"; {script}', **fields)


async def test_resume_reruns_only_what_failed_and_keeps_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run resumed through the API: the succeeded producer is not rerun, its
    stored output still reaches the rerun consumer, attempts continue at 2."""
    counts = tmp_path / "counts"
    monkeypatch.setenv("COUNTS", str(counts))
    gate = tmp_path / "gate"
    plan = make_plan(
        [
            _counter_step("make", 'echo "v=from make" >> "$PLANRUN_OUTPUT"'),
            _counter_step(
                "use",
                f'test -e {gate} && test "$1" = "from make"',
                depends_on=["make"],
            ),
        ]
    )
    plan["steps"][1]["args"].append("${steps.make.outputs.v}")
    state = tmp_path / "state"
    first = await run_plan(plan, state_dir=state)
    assert first.state is RunState.FAILED
    before = await monitor.get_events(first.run_id, state_dir=state)
    gate.touch()
    seen: list[Event] = []
    resumed = await run_plan(plan, state_dir=state, resume=first.run_id, on_event=seen.append)
    assert resumed.run_id == first.run_id
    assert resumed.state is RunState.SUCCEEDED, resumed
    assert counts.read_text().split() == ["make", "use", "use"]
    assert [a.number for a in resumed.steps["use"].attempts] == [1, 2]
    assert [a.number for a in resumed.steps["make"].attempts] == [1]
    assert isinstance(seen[0], RunResumed)
    assert seen[0].seq == before[-1].seq + 1
    assert seen[0].rerun == ["use"]
    after = await monitor.get_events(first.run_id, state_dir=state)
    assert after[: len(before)] == before
    assert [e.seq for e in after] == list(range(1, len(after) + 1))


async def test_resume_refuses_changed_variables_and_a_running_run(tmp_path: Path) -> None:
    """Different variables are refused (naming them); a run that is running exits 3."""
    plan = make_plan([sh_step("a", 'test "$X" = ok')])
    plan["variables"] = {"X": "bad"}
    state = tmp_path / "state"
    first = await run_plan(plan, state_dir=state)
    assert first.state is RunState.FAILED
    with pytest.raises(UsageError, match=r"variable X: 'bad' -> 'ok'"):
        await run_plan(plan, {"X": "ok"}, state_dir=state, resume=first.run_id)
    again = await run_plan(
        plan, {"X": "ok"}, state_dir=state, resume=first.run_id, allow_changed=True
    )
    assert again.state is RunState.SUCCEEDED

    slow = make_plan([sh_step("s", "sleep 5")])
    async with anyio.create_task_group() as tg:
        started = anyio.Event()
        holder: list[str] = []

        def note(event: Event) -> None:
            holder.append(event.run_id)
            started.set()

        tg.start_soon(lambda: run_plan(slow, state_dir=state, on_event=note))
        await started.wait()
        with pytest.raises(LockConflict, match="is running"):
            await run_plan(slow, state_dir=state, resume=holder[0])
        tg.cancel_scope.cancel()


async def test_secret_given_to_the_api_reaches_steps_and_never_the_store(
    tmp_path: Path,
) -> None:
    """``secrets=`` values are usable (env and ${NAME}) and masked in logs, events and
    outputs; an output holding the secret reaches its consumer in full."""
    plan = make_plan(
        [
            sh_step(
                "p",
                'printf "%s\\n" "$TOKEN" "$1"; printf "t=%s\\n" "$TOKEN" >> "$PLANRUN_OUTPUT"',
                "${TOKEN}",
            ),
            sh_step("c", 'test "$1" = "$TOKEN"', "${steps.p.outputs.t}", depends_on=["p"]),
        ]
    )
    state = tmp_path / "state"
    result = await run_plan(plan, state_dir=state, secrets={"TOKEN": SECRET})
    assert result.state is RunState.SUCCEEDED, result
    assert result.steps["p"].outputs == {"t": "***"}
    assert _files_containing(state, SECRET.encode()) == []
    assert _read(result.steps["p"].attempts[0].log_path) == "***\n***\n"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _read(path: str | None) -> str:
    return Path(str(path)).read_text()


async def test_resume_with_nothing_to_rerun_returns_the_stored_result(tmp_path: Path) -> None:
    """Resuming a succeeded run starts nothing and returns what is stored."""
    plan = make_plan([sh_step("a", "true")])
    state = tmp_path / "state"
    first = await run_plan(plan, state_dir=state)
    again = await run_plan(plan, state_dir=state, resume=first.run_id)
    assert again.state is RunState.SUCCEEDED
    assert again.steps["a"].state is StepState.SUCCEEDED
    assert len(again.steps["a"].attempts) == 1
