"""Choosing the Dask executor and the checks made before anything runs (issue 17):
``planrun run --executor dask [--scheduler ADDRESS]`` against real schedulers and
workers (a ``LocalCluster`` in this process, ``dask worker`` subprocesses); every
refusal exits 2 with the reason, runs no step and records no run."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._cli import PY, clean_env, planrun, sh, show_run, write_json

distributed = pytest.importorskip("distributed")


def _local(n_workers: int, allowed_failures: int = 0, **kwargs: Any) -> Any:
    """A ``LocalCluster`` with in-process workers (they run this process's planrun),
    reachable over TCP from the CLI's process, no dashboard, no port 8787."""
    return distributed.LocalCluster(
        n_workers=n_workers,
        processes=False,
        protocol="tcp",
        dashboard_address=None,
        scheduler_kwargs={
            "allowed_failures": allowed_failures,
            "dashboard_address": "127.0.0.1:0",
        },
        **kwargs,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A scheduler (no reruns: allowed-failures 0) with one worker that has
    ``cpu_slots=2``."""
    with _local(1, resources={"cpu_slots": 2}) as local:
        yield local


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plan(tmp_path: Path, marker: Path, **resources: float) -> Path:
    """Two steps: ``first`` leaves ``marker`` when it runs; ``train`` asks for
    ``resources``."""
    steps = [
        sh("first", f"touch {marker}"),
        sh("train", "true", depends_on=["first"], resources=resources),
    ]
    return write_json(tmp_path / "plan.json", {"plan_id": "dask-check", "steps": steps})


def _runs(state: Path) -> list[tuple[Any, ...]]:
    """Every run row of the store (none if the store was never created)."""
    db = state / "runs.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_id, state FROM runs").fetchall()


def test_a_resource_no_worker_has_fails_the_run_before_anything_runs(
    tmp_path: Path, cluster: Any
) -> None:
    marker, state = tmp_path / "ran", tmp_path / "state"
    plan = _plan(tmp_path, marker, gpu=1)
    address = cluster.scheduler_address
    ran = planrun(
        "run", plan, "--executor", "dask", "--scheduler", address, "--state-dir", state,
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert "$.steps[1].resources (step 'train')" in ran.stderr
    assert "resource 'gpu'" in ran.stderr
    assert f"dask worker {address} --resources gpu=1" in ran.stderr
    assert not marker.exists()
    assert _runs(state) == []


def test_a_request_larger_than_any_worker_has_names_the_most_there_is(
    tmp_path: Path, cluster: Any
) -> None:
    marker, state = tmp_path / "ran", tmp_path / "state"
    plan = _plan(tmp_path, marker, cpu_slots=3)
    address = cluster.scheduler_address
    ran = planrun(
        "run", plan, "--executor", "dask", "--scheduler", address, "--state-dir", state,
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert "cpu_slots=3, but the most any worker has is cpu_slots=2" in ran.stderr
    assert not marker.exists()
    assert _runs(state) == []


def test_an_unreachable_scheduler_exits_2_at_once_and_records_nothing(tmp_path: Path) -> None:
    """From $PLANRUN_DASK_SCHEDULER: a closed port is refused without waiting for
    Dask's connect timeout."""
    marker, state = tmp_path / "ran", tmp_path / "state"
    address = f"tcp://127.0.0.1:{_closed_port()}"
    env = clean_env(PLANRUN_DASK_SCHEDULER=address)
    started = time.monotonic()
    ran = planrun(
        "run", _plan(tmp_path, marker), "--executor", "dask", "--state-dir", state,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    took = time.monotonic() - started
    assert ran.returncode == 2, ran.stderr
    assert f"cannot connect to the Dask scheduler at {address}" in ran.stderr
    assert "Connection refused" in ran.stderr
    assert took < 20  # generous: the point is no 30 s default connect timeout
    assert not marker.exists()
    assert _runs(state) == []


def test_a_scheduler_that_reruns_lost_tasks_runs_the_plan_with_reruns_off(
    tmp_path: Path,
) -> None:
    """Dask's default allowed-failures (3) would run a step twice at once when its
    worker dies: planrun turns it off on the scheduler it connects to, and runs."""
    marker, state = tmp_path / "ran", tmp_path / "state"
    with _local(1, allowed_failures=3) as local:
        ran = planrun(
            "run", _plan(tmp_path, marker), "--executor", "dask",
            "--scheduler", local.scheduler_address, "--state-dir", state, cwd=tmp_path,
        )  # fmt: skip
        assert local.scheduler.allowed_failures == 0
    assert ran.returncode == 0, ran.stderr
    assert marker.exists()
    assert [state for _, state in _runs(state)] == ["succeeded"]


def test_a_scheduler_without_workers_is_refused(tmp_path: Path) -> None:
    marker, state = tmp_path / "ran", tmp_path / "state"
    with _local(0) as local:
        address = local.scheduler_address
        args = ("run", _plan(tmp_path, marker), "--executor", "dask", "--scheduler", address)
        ran = planrun(*args, "--state-dir", state, cwd=tmp_path)
        as_json = planrun(*args, "--json", "--state-dir", state, cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert f"the Dask scheduler at {address} has no workers" in ran.stderr
    assert _runs(state) == []
    doc = json.loads(as_json.stdout)
    assert (doc["type"], doc["error"], doc["exit_code"]) == ("error", "cluster_refused", 2)


def _fake_planrun(root: Path, version: str) -> Path:
    """A directory whose distribution metadata says planrun ``version``: first on a
    worker's PYTHONPATH, it is the planrun that worker reports (as pip installs it)."""
    info = root / f"planrun-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: planrun\nVersion: {version}\n")
    return root


def test_a_worker_with_another_planrun_version_is_refused(tmp_path: Path) -> None:
    """A real ``dask worker`` process whose environment has planrun 9.9.9 installed."""
    marker, state = tmp_path / "ran", tmp_path / "state"
    fake = _fake_planrun(tmp_path / "fake", "9.9.9")
    with _local(0) as local, distributed.Client(local) as client:
        address = local.scheduler_address
        worker = subprocess.Popen(
            [PY, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--no-nanny", "--no-dashboard"],
            env=clean_env(PYTHONPATH=str(fake)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client.wait_for_workers(1, timeout=30)
            (worker_address,) = client.scheduler_info()["workers"]
            ran = planrun(
                "run", _plan(tmp_path, marker), "--executor", "dask", "--scheduler", address,
                "--state-dir", state, cwd=tmp_path,
            )  # fmt: skip
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    ours = subprocess.run(
        [PY, "-c", "from importlib.metadata import version; print(version('planrun'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert f"worker {worker_address} runs planrun 9.9.9, this planrun is {ours}" in ran.stderr
    assert not marker.exists()
    assert _runs(state) == []


def test_scheduler_without_the_dask_executor_is_a_usage_error(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ran = planrun("run", _plan(tmp_path, marker), "--scheduler", "tcp://h:8786", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert "--scheduler tcp://h:8786 needs --executor dask" in ran.stderr
    assert not marker.exists()


#: ``python -c`` that runs the CLI with ``distributed`` hidden, as if not installed.
_WITHOUT_DISTRIBUTED = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "distributed" or name.startswith("distributed."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
sys.argv = ["planrun", *sys.argv[1:]]
from planrun.cli.app import main
main()
"""


def test_without_the_extra_the_install_command_is_named(tmp_path: Path) -> None:
    marker, state = tmp_path / "ran", tmp_path / "state"
    plan = _plan(tmp_path, marker)
    ran = subprocess.run(
        [PY, "-c", _WITHOUT_DISTRIBUTED, "run", str(plan), "--executor", "dask",
         "--state-dir", str(state)],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert "pip install 'planrun[dask]'" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not marker.exists()
    assert _runs(state) == []


def test_dry_run_shows_the_executor(tmp_path: Path) -> None:
    plan = _plan(tmp_path, tmp_path / "ran")
    text = planrun(
        "run", plan, "--dry-run", "--executor", "dask", "--scheduler", "tcp://h:8786",
        cwd=tmp_path,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert ", on dask tcp://h:8786 (dry run: nothing is written" in text.stdout
    doc = planrun("run", plan, "--dry-run", "--json", "--executor", "dask", cwd=tmp_path)
    assert json.loads(doc.stdout)["executor"] == "dask (a local cluster started for the run)"
    local = planrun("run", plan, "--dry-run", "--json", cwd=tmp_path)
    assert json.loads(local.stdout)["executor"] == "local"


def test_resume_takes_the_executor_options_too(tmp_path: Path) -> None:
    """``resume --executor dask`` goes through the same checks (here: unreachable)."""
    marker, state = tmp_path / "ran", tmp_path / "state"
    plan = write_json(tmp_path / "p.json", {"plan_id": "r", "steps": [sh("a", "exit 1")]})
    first = planrun("run", plan, "--run-id", "r-1", "--state-dir", state, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    address = f"tcp://127.0.0.1:{_closed_port()}"
    again = planrun(
        "resume", "r-1", "--executor", "dask", "--scheduler", address, "--state-dir", state,
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 2, again.stderr
    assert f"cannot connect to the Dask scheduler at {address}" in again.stderr
    assert _runs(state) == [("r-1", "failed")]
    assert not marker.exists()
    assert sys.executable  # the CLI ran under this interpreter (PY)


def test_a_child_plan_step_no_worker_can_take_fails_instead_of_pending(
    tmp_path: Path, cluster: Any
) -> None:
    """A ``uses`` child's steps are prepared only when it starts: its request for a
    resource no worker has fails that attempt to start (with the reason), the run ends
    failed, nothing waits for ever."""
    state = tmp_path / "state"
    child = [sh("train", "true", resources={"gpu": 1})]
    write_json(tmp_path / "child.json", {"plan_id": "child", "steps": child})
    steps = [{"id": "sub", "uses": "child.json"}]
    plan = write_json(tmp_path / "parent.json", {"plan_id": "parent", "steps": steps})
    ran = planrun(
        "run", plan, "--executor", "dask", "--scheduler", cluster.scheduler_address,
        "--run-id", "par-1", "--state-dir", state, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    (train,) = show_run(tmp_path, "par-1.sub.1")["steps"]
    (attempt,) = train["attempts"]
    assert "can run it: the step asks for resource 'gpu'" in json.dumps(attempt)
    assert ("par-1", "failed") in _runs(state)


def _refusal(tmp_path: Path, address: str) -> subprocess.CompletedProcess[str]:
    marker, state = tmp_path / "ran", tmp_path / "state"
    ran = planrun(
        "run", _plan(tmp_path, marker), "--executor", "dask", "--scheduler", address,
        "--state-dir", state, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert f"cannot connect to the Dask scheduler at {address}" in ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    assert "never awaited" not in ran.stderr, ran.stderr  # the client closed, not dropped
    assert not marker.exists()
    assert _runs(state) == []
    return ran


def test_a_port_that_never_answers_is_refused_after_the_connect_timeout(tmp_path: Path) -> None:
    """E.g. the dashboard's port (8787) given for the scheduler's: a listening socket
    that accepts and says nothing. Dask's own timeout does not end that wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the connections; nobody answers
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        ran = _refusal(tmp_path, address)
    assert "no Dask answer within 5 s: is it the scheduler's port?" in ran.stderr


def test_a_server_speaking_another_protocol_is_refused_without_a_traceback(
    tmp_path: Path,
) -> None:
    """An HTTP server's bytes read as a Dask frame (Dask raises MemoryError on them)."""
    import threading

    def answer(server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        threading.Thread(target=answer, args=(server,), daemon=True).start()
        ran = _refusal(tmp_path, f"tcp://127.0.0.1:{server.getsockname()[1]}")
    assert "not a Dask scheduler" in ran.stderr or "scheduler's port" in ran.stderr


def test_an_unknown_scheme_is_refused_without_warnings(tmp_path: Path) -> None:
    ran = _refusal(tmp_path, "http://127.0.0.1:8786")
    assert "unknown address scheme 'http'" in ran.stderr
