"""Start-up (issue 16): a command loads what it acts with, nothing more. Checked on
the real CLI (``python -m planrun ...``, its module list written at exit), not on
timings: ``--version``, ``-h`` of a command and ``validate`` load neither the store,
aiosqlite, the engine, the monitor, the dashboard nor the live view; ``run`` loads no
other command's code and no report writer it was not asked for. Wall times are in
``bench/bench_startup.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import clean_env, write_json

PLAN = {"plan_id": "one", "steps": [{"id": "a", "command": "true"}]}

#: What none of the light commands needs.
HEAVY = (
    "aiosqlite",
    "sqlite3",
    "planrun.store",
    "planrun.engine",
    "planrun.executors.local",
    "planrun.api",
    "planrun.monitor",
    "planrun.ui",
    "rich",  # not a terminal: lines are written by cli/plain_console.py
    "anyio._backends",
    "starlette",
    "uvicorn",
    # OpenSSL: no light command uses TLS or hashlib (planrun.digest, cli/ssl_deferred.py)
    "ssl",
    "_ssl",
    "hashlib",
    "_hashlib",
    "secrets",
)
#: What ``run`` (no --junit, no --ci github) does not need: other commands' code.
NOT_FOR_RUN = (
    "planrun.monitor",
    "planrun.ui",
    "planrun.cli.observe",
    "planrun.cli.report_cmd",
    "planrun.cli.graph_cmd",
    "planrun.cli.ui_cmd",
    "planrun.cli.completion",
    "planrun.cli.junit",
    "planrun.cli.github",
    "planrun.about",
    "starlette",
    # what a plan without conditions, a JSON plan and the plain log do not need
    "planrun.expr",
    "planrun.expr_check",
    "tomllib",
    # the plain log and the summary on a stream that is no terminal (cli/plain_console.py)
    "rich",
    # the store's schema is read through its module's loader
    "importlib.resources",
    "zipfile",
    # OpenSSL: a local run opens no TLS connection (cli/ssl_deferred.py) and takes its
    # few digests with CPython's own SHA-256 (planrun.digest)
    "ssl",
    "_ssl",
    "hashlib",
    "_hashlib",
    "secrets",
    "hmac",
)


#: ``python -m planrun ARGS`` that writes, at exit, every module it imported to the
#: file named in argv[1] (``-X importtime`` would miss those ``importlib`` loads).
RUN_AND_LIST = """
import atexit, runpy, sys
out = sys.argv.pop(1)
sys.argv[0] = "planrun"
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
runpy.run_module("planrun", run_name="__main__", alter_sys=True)
"""


def _script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -c SCRIPT ARGS`` in ``cwd`` (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def _imports(*args: str, cwd: Path) -> set[str]:
    """The modules ``planrun ARGS`` imports (it must succeed)."""
    listing = cwd / "modules.txt"
    result = _script(RUN_AND_LIST, str(listing), *args, cwd=cwd)
    assert "Traceback" not in result.stderr
    modules = set(listing.read_text().split())
    assert "planrun.cli.app" in modules  # the listing was written
    return modules


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize(
    "args",
    [("--version",), ("-V",), ("run", "-h"), ("validate", "--help"), ("validate", "plan.json")],
)
def test_light_commands_load_no_store_engine_or_live_view(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    write_json(tmp_path / "plan.json", PLAN)
    # nor a run's options and the executor port (a dry run prints them: cli/plan_text.py)
    light = (*HEAVY, "planrun.options", "planrun.ports")
    assert _loaded(_imports(*args, cwd=tmp_path), light) == []


def test_validate_json_loads_no_store(tmp_path: Path) -> None:
    """``validate --json`` needs the JSON documents, not the store they can also
    describe."""
    write_json(tmp_path / "plan.json", PLAN)
    assert _loaded(_imports("validate", "plan.json", "--json", cwd=tmp_path), HEAVY) == []


def test_run_loads_only_what_a_run_uses(tmp_path: Path) -> None:
    write_json(tmp_path / "plan.json", PLAN)
    modules = _imports("run", "plan.json", "--plain", "--state-dir", "st", cwd=tmp_path)
    assert _loaded(modules, NOT_FOR_RUN) == []
    assert {"planrun.engine", "planrun.store.sqlite"} <= modules  # it did run


def test_a_junit_report_still_loads_its_writer(tmp_path: Path) -> None:
    """The report writers load when asked for, and still write their report."""
    write_json(tmp_path / "plan.json", PLAN)
    args = ("run", "plan.json", "--plain", "--state-dir", "st", "--junit", "report.xml")
    modules = _imports(*args, cwd=tmp_path)
    assert "planrun.cli.junit" in modules
    assert "<testcase" in (tmp_path / "report.xml").read_text()


def test_a_reading_command_loads_no_engine_nor_other_commands(tmp_path: Path) -> None:
    """``list`` reads the store: it loads neither the engine and executors nor the
    code of ``run``, ``graph`` or the dashboard."""
    modules = _imports("list", "--state-dir", "st", cwd=tmp_path)
    unused = ("planrun.engine", "planrun.executors", "planrun.api", "planrun.ui")
    assert _loaded(modules, (*unused, "planrun.cli.run_cmd", "planrun.cli.graph_cmd")) == []
    assert "planrun.monitor" in modules


#: ``python -m planrun ARGS`` that prints, at exit, how many cyclic garbage collections
#: ran in the process.
COUNT_COLLECTIONS = """
import atexit, gc, runpy, sys
starts = []
gc.callbacks.append(lambda phase, info: phase == "start" and starts.append(1))
sys.argv[0] = "planrun"
atexit.register(lambda: print(f"collections={len(starts)}", file=sys.stderr))
runpy.run_module("planrun", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "args", [("--version",), ("validate", "plan.json"), ("run", "plan.json", "--dry-run")]
)
def test_loading_the_cli_runs_no_garbage_collection(args: tuple[str, ...], tmp_path: Path) -> None:
    """Importing the CLI and a command's modules makes no garbage: the collector is
    paused meanwhile (it ran 28 times for ``--version``, 76 for ``run --dry-run``,
    finding nothing). The few left are the interpreter's own start and the parsing."""
    write_json(tmp_path / "plan.json", PLAN)
    result = _script(COUNT_COLLECTIONS, *args, cwd=tmp_path)
    count = int(result.stderr.rsplit("collections=", 1)[1])
    assert count < 15, result.stderr


#: ``python -m planrun ARGS`` that prints, at exit, how many of planrun's classes were
#: built by ``dataclasses`` in the process.
COUNT_DATACLASSES = """
import atexit, dataclasses, runpy, sys
built = []
process_class = dataclasses._process_class
def counting(cls, *args, **kwargs):
    if cls.__module__.startswith("planrun"):
        built.append(cls.__qualname__)
    return process_class(cls, *args, **kwargs)
dataclasses._process_class = counting
sys.argv[0] = "planrun"
atexit.register(lambda: print(f"dataclasses={len(built)}", file=sys.stderr))
runpy.run_module("planrun", run_name="__main__", alter_sys=True)
"""


def test_a_run_builds_few_dataclasses(tmp_path: Path) -> None:
    """Building a dataclass runs generated source through ``exec`` (~0.35 ms each,
    0.45 frozen): the internal records a run loads are msgspec Structs (~0.01 ms).
    A one-step run built 52 of planrun's dataclasses, then 22, then 14; what is left
    are public types (``RunOptions``, ``OutputLine``) and records that keep secrets
    out of their ``repr`` (``ResolvedStep``, ``PreparedRun``, ``ChildContext``)."""
    write_json(tmp_path / "plan.json", PLAN)
    result = _script(COUNT_DATACLASSES, "run", "plan.json", "--plain", cwd=tmp_path)
    assert int(result.stderr.rsplit("dataclasses=", 1)[1]) <= 5, result.stderr


def test_version_loads_no_json(tmp_path: Path) -> None:
    """``--version`` prints a line: the json module loads for ``version --json``."""
    assert _loaded(_imports("--version", cwd=tmp_path), ("json",)) == []


def test_the_package_loads_before_the_pause_without_typing() -> None:
    """``planrun/__init__`` runs before the entry point pauses the collector: it
    imports nothing (``typing`` alone made a collection over everything loaded)."""
    code = "import sys, planrun; print(sorted({'typing', 'planrun.api'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
