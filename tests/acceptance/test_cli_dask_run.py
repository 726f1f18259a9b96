"""``planrun run --executor dask`` end to end (issue 17): on a local cluster the CLI
starts for the run, and on a real ``dask scheduler`` with two ``dask worker``
processes (one with ``--resources gpu=1``); ``show`` names the executor and the
scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._cli import DEMO, PLANRUN, PY, clean_env, planrun, sh, wait_until, write_json

distributed = pytest.importorskip("distributed")

#: Worker and scheduler chatter is not the test's business.
_QUIET: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _executor_line(tmp_path: Path, state: Path, run_id: str) -> str:
    shown = planrun("show", run_id, "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return next(line for line in shown.stdout.splitlines() if line.startswith("executor  "))


def test_the_demo_runs_on_a_local_cluster_started_for_the_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ran = planrun(
        "run", DEMO, "--executor", "dask", "--run-id", "demo-1", "--state-dir", state, "--plain",
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "run demo-1 succeeded" in ran.stdout
    assert "flaky-upload succeeded" in ran.stdout  # after two failed attempts
    assert _executor_line(tmp_path, state, "demo-1").startswith("executor  dask tcp://127.0.0.1:")
    doc = json.loads(planrun("show", "demo-1", "--json", "--state-dir", state, cwd=tmp_path).stdout)
    assert doc["run"]["executor"].startswith("dask tcp://127.0.0.1:")


def _address(info: Path) -> str | None:
    """The address in a scheduler file, once it is there and whole."""
    try:
        return str(json.loads(info.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A real ``dask scheduler`` process, and two ``dask worker`` processes: ``plain``
    and ``gpu`` (``--resources gpu=1``), told apart by ``$WORKER_NAME`` in their (and
    so their steps') environment. Yields the scheduler's address."""
    info = tmp_path / "scheduler.json"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    scheduler_argv = [PY, "-m", "distributed.cli.dask_scheduler", "--port", "0", *common]
    scheduler_argv += ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)]
    procs = [subprocess.Popen(scheduler_argv, env=clean_env(), **_QUIET)]
    try:
        assert wait_until(lambda: _address(info) is not None, timeout=30)
        address = str(_address(info))
        for name, extra in (("plain", []), ("gpu", ["--resources", "gpu=1"])):
            argv = [
                PY,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nthreads",
                "2",
                "--no-nanny",
            ]
            env = clean_env(WORKER_NAME=name)
            procs.append(subprocess.Popen([*argv, *common, *extra], env=env, **_QUIET))
        yield address
    finally:
        # The workers first, one by one, while the scheduler still answers their
        # goodbye (without it a closing worker waits for its connect timeout).
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_workers(address: str, count: int) -> None:
    """Until the scheduler at ``address`` has ``count`` workers (asked through a
    client of this process, closed again)."""
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=30)


def test_a_plan_runs_on_a_real_scheduler_and_a_gpu_step_lands_on_the_gpu_worker(
    tmp_path: Path, scheduler: str
) -> None:
    _wait_for_workers(scheduler, 2)
    state = tmp_path / "state"
    steps = [
        sh("prepare", 'echo "prepared on $WORKER_NAME"'),
        sh("train", 'echo "trained on $WORKER_NAME"', depends_on=["prepare"],
           resources={"gpu": 1}),
        sh("again", 'echo "again on $WORKER_NAME"', depends_on=["prepare"],
           resources={"gpu": 1}),
    ]  # fmt: skip
    plan = write_json(tmp_path / "plan.json", {"plan_id": "gpu", "steps": steps})
    ran = planrun(
        "run", plan, "--executor", "dask", "--scheduler", scheduler, "--run-id", "gpu-1",
        "--state-dir", state, "--output", "prefixed", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "trained on gpu" in ran.stdout
    assert "again on gpu" in ran.stdout
    log = state / "runs" / "gpu-1" / "logs" / "train.1.log"
    assert log.read_text() == "trained on gpu\n"
    assert _executor_line(tmp_path, state, "gpu-1") == f"executor  dask {scheduler}"


def _spawned_workers(parent: int) -> list[int]:
    """The child processes of ``parent`` that multiprocessing spawned (the local
    cluster's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"multiprocessing" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_while_the_local_cluster_starts_stops_cleanly(tmp_path: Path) -> None:
    """SIGINT as the local cluster's worker processes are being started: exit 130, no
    traceback (closing a half-started LocalCluster fails in Dask), no run recorded,
    no worker process left."""
    state = tmp_path / "state"
    plan = write_json(tmp_path / "p.json", {"plan_id": "p", "steps": [sh("a", "sleep 30")]})
    argv = [PY, "-m", "planrun", "run", str(plan), "--executor", "dask", "--state-dir", str(state)]
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), text=True, **pipes)
    try:
        assert wait_until(lambda: bool(_spawned_workers(proc.pid)), timeout=30, interval=0.005)
        workers = _spawned_workers(proc.pid)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "failed" not in stderr, stderr  # e.g. "closing LocalCluster(...) failed"
    assert "SIGINT: cancelling the run" in stdout  # planrun's handler, not Python's
    assert wait_until(lambda: not [w for w in workers if _alive(w)], timeout=10)
    runs = state / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_ctrl_c_in_the_terminal_mid_step_cancels_cleanly_on_the_local_cluster(
    tmp_path: Path,
) -> None:
    """A terminal's Ctrl-C goes to the whole foreground process group: the local
    cluster's worker processes too. They must leave it to planrun: the step is stopped
    with its stop signal (its trap runs), the run ends cancelled (130), and no worker
    traceback or Dask error reaches the terminal."""
    state, started, trapped = tmp_path / "state", tmp_path / "started", tmp_path / "trapped"
    script = f"trap 'touch {trapped}; exit 1' TERM; touch {started}; sleep 30 & wait"
    plan = write_json(tmp_path / "p.json", {"plan_id": "p", "steps": [sh("a", script)]})
    argv = [PY, "-m", "planrun", "run", str(plan), "--executor", "dask", "--state-dir", str(state)]
    argv += ["--run-id", "int-1", "--plain"]
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    # Its own process group, as a shell gives a foreground job: killpg is the Ctrl-C.
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=clean_env(), text=True, start_new_session=True, **pipes
    )
    try:
        assert wait_until(started.exists, timeout=60)
        os.killpg(proc.pid, signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr
    assert "ERROR" not in stderr, stderr  # Dask's log lines
    assert trapped.exists()  # stopped by planrun (TERM), not killed with its worker
    shown = planrun("show", "int-1", "--json", "--state-dir", state, cwd=tmp_path)
    assert json.loads(shown.stdout)["run"]["state"] == "cancelled"


def test_a_step_whose_resource_worker_was_killed_is_retried_once_it_is_back(
    tmp_path: Path,
) -> None:
    """``kill -9`` of the only ``gpu`` worker mid-step: the attempt is lost, and the
    retry waits for the worker its nanny restarts (it is not failed at once because,
    for that second, no worker has a GPU)."""
    state, started = tmp_path / "state", tmp_path / "started"
    script = f'if [ "$PLANRUN_ATTEMPT" = 1 ]; then touch {started}; sleep 30; fi; echo trained'
    step = sh("train", script, resources={"gpu": 1}, retries=1)
    plan = write_json(tmp_path / "p.json", {"plan_id": "p", "steps": [step]})
    with distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None,
        resources={"gpu": 1},
        scheduler_kwargs={"allowed_failures": 0, "dashboard_address": "127.0.0.1:0"},
    ) as cluster:  # fmt: skip
        argv = [PY, "-m", "planrun", "run", str(plan), "--executor", "dask", "--plain"]
        argv += ["--scheduler", cluster.scheduler_address, "--state-dir", str(state)]
        argv += ["--run-id", "lost-1"]
        pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), text=True, **pipes)
        try:
            assert wait_until(started.exists, timeout=60)
            (nanny,) = cluster.workers.values()
            os.kill(nanny.process.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stdout + stderr
    assert "lost while the attempt ran" in stdout
    assert "train succeeded" in stdout
    log = state / "runs" / "lost-1" / "logs" / "train.2.log"
    assert log.read_text() == "trained\n"


def test_a_local_cluster_worker_killed_mid_step_is_reported_by_planrun_alone(
    tmp_path: Path,
) -> None:
    """``kill -9`` of a local cluster's worker (the step's parent) mid-step: the
    attempt is lost, the run fails (no retries), and the only words about it on the
    terminal are planrun's (the in-process scheduler's ERROR line is not printed)."""
    state, ppid = tmp_path / "state", tmp_path / "ppid"
    step = sh("a", f"echo $PPID > {ppid}.tmp && mv {ppid}.tmp {ppid}; sleep 30")
    plan = write_json(tmp_path / "p.json", {"plan_id": "p", "steps": [step]})
    argv = [PY, "-m", "planrun", "run", str(plan), "--executor", "dask", "--plain"]
    argv += ["--state-dir", str(state)]
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), text=True, **pipes)
    try:
        assert wait_until(ppid.exists, timeout=60)
        os.kill(int(ppid.read_text()), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stdout + stderr
    assert "lost while the attempt ran" in stdout
    assert "marked as failed" not in stderr, stderr
    assert "ERROR" not in stderr, stderr


def test_a_scheduler_lost_mid_run_fails_the_run_cleanly_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    """``kill -9`` of the scheduler while a step runs: the attempt ends (lost), the run
    fails with the reason (exit 1) without a Dask traceback on planrun's output, and
    the step's process on the worker is stopped (the lease lapses)."""
    info = tmp_path / "scheduler.json"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    sched = subprocess.Popen(
        [PY, "-m", "distributed.cli.dask_scheduler", "--port", "0", *common,
         "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)],
        env=clean_env(), **_QUIET,
    )  # fmt: skip
    worker = None
    started = tmp_path / "started"
    try:
        assert wait_until(lambda: _address(info) is not None, timeout=30)
        address = str(_address(info))
        worker = subprocess.Popen(
            [PY, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
             "--no-nanny", *common],
            env=clean_env(), **_QUIET,
        )  # fmt: skip
        _wait_for_workers(address, 1)
        step = sh("slow", f"echo $$ > {started}; exec sleep 60")
        plan = write_json(tmp_path / "plan.json", {"plan_id": "lost", "steps": [step]})
        run = subprocess.Popen(
            [*PLANRUN, "run", str(plan), "--executor", "dask", "--scheduler", address,
             "--state-dir", str(tmp_path / "state"), "--plain"],
            cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert wait_until(lambda: started.exists() and bool(started.read_text().strip()), 60)
        pid = int(started.read_text())
        sched.kill()
        out, _ = run.communicate(timeout=60)
        text = out.decode()
        assert run.returncode == 1, text
        assert "Traceback" not in text, text
        assert "slow failed" in text, text
        assert wait_until(lambda: not _alive(pid), 30), f"step process {pid} left running"
    finally:
        for proc in (worker, sched):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
