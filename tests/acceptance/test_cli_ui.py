"""``planrun ui`` through the real CLI: the security defaults, the live server-sent
events of a run another ``planrun`` process is running, cancel and resume from the
dashboard, and a dashboard stopped while it owns a run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    sh,
    wait_until,
    write_json,
)
from ._ui import Server, ui_server

TOKEN = "acceptance-token-0123456789"  # noqa: S105 - a test value
#: Every interface: what needs a token (the token-guarded test binds it briefly).
ALL = "0.0.0.0"  # noqa: S104 - on purpose


def _start_run(tmp_path: Path, plan: dict[str, Any], run_id: str) -> subprocess.Popen[bytes]:
    plan_file = write_json(tmp_path / "plan.json", plan)
    return subprocess.Popen(
        [
            *PLANRUN,
            "run",
            str(plan_file),
            "--run-id",
            run_id,
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _gated_plan(gate: Path) -> dict[str, Any]:
    return {
        "plan_id": "gated",
        "globals": {"kill_grace_sec": 0.5},
        "steps": [
            sh("first", "echo first"),
            sh("gate", f"while [ ! -f '{gate}' ]; do sleep 0.05; done", depends_on=["first"]),
            sh("last", "echo last", depends_on=["gate"]),
        ],
    }


def _run_state(client: httpx.Client, server: Server, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = client.get(f"{server.url}api/runs/{run_id}").json()["run"]
    return run


def _sse_updates(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each server-sent event."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", ALL], "without a token: pass --token (or set PLANRUN_UI_TOKEN)"),
        (["--host", ALL, "--token", "short"], "--token must be at least 16 characters"),
    ],
)
def test_a_non_loopback_host_needs_a_token(tmp_path: Path, args: list[str], words: str) -> None:
    result = planrun("ui", *args, "--port", "0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr


def test_the_token_from_the_environment_guards_every_request(tmp_path: Path) -> None:
    env = clean_env(PLANRUN_UI_TOKEN=TOKEN)
    with ui_server(tmp_path, "--host", ALL, env=env) as server, httpx.Client() as client:
        url = server.url.replace(ALL, "127.0.0.1")
        assert client.get(url).status_code == 401
        ok = client.get(url, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert "No runs yet in" in ok.text


def test_cli_start_up_does_not_import_the_dashboard(tmp_path: Path) -> None:
    """`planrun run` does not pay for Starlette and uvicorn at start-up."""
    code = (
        "import sys; from planrun.cli import app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'httpx') or m.startswith('planrun.ui.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert result.stdout.strip() == "[]"


def test_the_live_feed_delivers_a_running_run_s_changes(tmp_path: Path) -> None:
    """A run another planrun process runs: its page's event stream says ``running``,
    then, once the gate opens, every step ``succeeded`` and the end."""
    gate = tmp_path / "gate"
    run_id = "ui-live-run"
    proc = _start_run(tmp_path, _gated_plan(gate), run_id)
    try:
        with ui_server(tmp_path) as server, httpx.Client(timeout=30) as client:
            assert wait_until(lambda: client.get(f"{server.url}api/runs").json()["runs"], 30)
            seen: list[tuple[str, dict[str, Any]]] = []
            with client.stream("GET", f"{server.url}runs/{run_id}/live") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                for name, data in _sse_updates(stream.iter_lines()):
                    seen.append((name, data))
                    states = {s["step_id"]: s["state"] for _, d in seen for s in d.get("steps", [])}
                    if states.get("gate") == "running" and not gate.exists():
                        assert data["run"]["state"] == "running"
                        assert data["run"]["progress_pct"] == 33
                        gate.touch()  # only now may the run finish
                    if name == "end":
                        break
            assert gate.exists()
            assert seen[-1] == ("end", {"state": "succeeded"})
            last_update = [d for n, d in seen if n == "update"][-1]
            assert last_update["run"]["progress_pct"] == 100
            assert states == {"first": "succeeded", "gate": "succeeded", "last": "succeeded"}
        assert proc.wait(timeout=30) == 0
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_cancel_from_the_dashboard_stops_a_cli_run(tmp_path: Path) -> None:
    run_id = "ui-cancel-cli"
    proc = _start_run(tmp_path, _gated_plan(tmp_path / "never"), run_id)
    try:
        with ui_server(tmp_path) as server, httpx.Client(timeout=60) as client:
            assert wait_until(
                lambda: (
                    live_pids_with_env("PLANRUN_STEP_ID", "gate") != []
                    and _run_state(client, server, run_id)["state"] == "running"
                ),
                30,
            )
            csrf = server.csrf(client)
            page = client.get(f"{server.url}runs/{run_id}").text
            assert 'id="cancel"' in page
            response = client.post(f"{server.url}runs/{run_id}/cancel", data={"csrf": csrf})
            assert response.status_code == 303, response.text
            assert _run_state(client, server, run_id)["state"] == "cancelled"
        assert proc.wait(timeout=30) == 130
        assert wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def _fail_then_hang_plan(flag: Path) -> dict[str, Any]:
    """Fails the first time; run again (resumed), it waits until cancelled."""
    script = f"if [ -f '{flag}' ]; then sleep 60; else touch '{flag}'; exit 4; fi"
    return {
        "plan_id": "flaky",
        "globals": {"kill_grace_sec": 0.5},
        "steps": [sh("ok", "echo ok"), sh("flaky", script, depends_on=["ok"])],
    }


def test_resume_refuses_a_changed_plan_with_the_cli_s_words(tmp_path: Path) -> None:
    run_id = "ui-changed"
    plan = _fail_then_hang_plan(tmp_path / "flag")
    assert _start_run(tmp_path, plan, run_id).wait(timeout=60) == 1
    plan["steps"][0]["args"] = ["-c", "echo changed"]
    write_json(tmp_path / "plan.json", plan)
    cli = planrun("resume", run_id, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert cli.returncode == 2
    cli_message = cli.stderr.removeprefix("planrun: ").strip()
    assert "cannot resume run ui-changed: it would not run the same thing" in cli_message
    with ui_server(tmp_path) as server, httpx.Client(timeout=30) as client:
        csrf = server.csrf(client)
        response = client.post(
            f"{server.url}api/runs/{run_id}/resume", headers={"x-csrf-token": csrf}
        )
        assert response.status_code == 409
        assert response.json()["message"] == cli_message
        assert _run_state(client, server, run_id)["resumes"] == 0


def test_a_run_resumed_from_the_dashboard_is_cancelled_from_it(tmp_path: Path) -> None:
    run_id = "ui-resume-cancel"
    assert _start_run(tmp_path, _fail_then_hang_plan(tmp_path / "flag"), run_id).wait(60) == 1
    try:
        with ui_server(tmp_path) as server, httpx.Client(timeout=60) as client:
            csrf = server.csrf(client)
            resumed = client.post(f"{server.url}runs/{run_id}/resume", data={"csrf": csrf})
            assert resumed.status_code == 303, resumed.text
            assert wait_until(lambda: live_pids_with_env("PLANRUN_STEP_ID", "flaky") != [], 30)
            run = _run_state(client, server, run_id)
            assert (run["state"], run["owner_kind"], run["resumes"]) == ("running", "ui", 1)
            assert "(this dashboard)" in client.get(f"{server.url}runs/{run_id}").text
            cancelled = client.post(f"{server.url}runs/{run_id}/cancel", data={"csrf": csrf})
            assert cancelled.status_code == 303, cancelled.text
            assert _run_state(client, server, run_id)["state"] == "cancelled"
            assert wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 10)
    finally:
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_stopping_the_dashboard_cancels_the_runs_it_owns(tmp_path: Path) -> None:
    run_id = "ui-stop-owner"
    assert _start_run(tmp_path, _fail_then_hang_plan(tmp_path / "flag"), run_id).wait(60) == 1
    try:
        with ui_server(tmp_path) as server, httpx.Client(timeout=60) as client:
            csrf = server.csrf(client)
            client.post(f"{server.url}runs/{run_id}/resume", data={"csrf": csrf})
            assert wait_until(lambda: live_pids_with_env("PLANRUN_STEP_ID", "flaky") != [], 30)
            server.proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 10)
        shown = planrun("show", run_id, "--json", "--state-dir", tmp_path / "state", cwd=tmp_path)
        assert json.loads(shown.stdout)["run"]["state"] == "cancelled"
    finally:
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
