"""Sessions: ``nox`` runs lint, typecheck and tests (what .ci/run runs)."""

from __future__ import annotations

import os
import shutil
import tempfile

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint rules (incl. ASYNC) and formatting."""
    session.install("ruff>=0.17,<0.18")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "bench", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, the tests and the benchmarks."""
    session.install(
        "mypy>=2.4,<2.5", "types-PyYAML>=6.0,<7", "nox>=2026.10,<2027", "-e", ".[test,browser,dask]"
    )
    session.run("mypy", "--strict")


#: Debian packages the tests drive, by the program they provide: the dashboard's browser
#: tests use the system Chromium (Playwright's own download cannot work offline), the
#: `planrun graph --format dot` test compiles its output with Graphviz.
DEBIAN_TOOLS = {"chromium": "chromium", "dot": "graphviz"}


def _ensure_debian_tools(session: nox.Session) -> None:
    """Install the packages of DEBIAN_TOOLS whose program is missing (as root)."""
    missing = [pkg for prog, pkg in DEBIAN_TOOLS.items() if not shutil.which(prog)]
    if not missing:
        return
    if os.geteuid() != 0:
        session.error(f"the tests need: apt-get install -y {' '.join(missing)}")
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", *missing, external=True)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite: unit, integration and acceptance (real processes and files),
    the dashboard's in a real headless Chromium included (a missing browser fails)."""
    # mypy too: a test checks that a user's `mypy --strict` sees planrun as typed.
    session.install("-e", ".[test,browser,dask]", "mypy>=2.4,<2.5")
    _ensure_debian_tools(session)
    # One pytest-xdist worker per core, a test file to a worker (its module fixtures,
    # e.g. a browser, start once): most tests wait on real processes, so one worker
    # left a 2-core machine's CPUs 60% idle (CI: 11:54 of tests serially, 7:09 so).
    # Arguments after `--` come last: `nox -s tests -- -n 0 -k name` runs serially.
    args = ["-n", "auto", "--dist", "loadfile", *session.posargs]
    session.run("pytest", *args, env={"PLANRUN_REQUIRE_BROWSER": "1"})


#: The peers the bench session times besides doit (which it installs): programs from
#: Debian packages, used when they are on PATH.
PEER_TOOLS = {"ninja": "ninja-build", "make": "make", "xargs": "findutils", "parallel": "parallel"}


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """peerbench (bench/peerbench): planrun against ninja, make, xargs, GNU parallel and
    doit on the same workloads, then the ratios to ninja per shape at j=8 and j=2 and
    the start-up phases (bench/bench_startup.py). Not run by default (CI runs tests):
    ``nox -s bench``; arguments after ``--`` go to peerbench (``-- --quick``)."""
    session.install(".", "doit")  # a wheel install: compiled bytecode, as users have it
    missing = [f"{prog} (Debian package {pkg})" for prog, pkg in PEER_TOOLS.items()]
    missing = [m for m in missing if not shutil.which(m.split()[0])]
    if missing:
        session.warn("not on PATH, so not timed: " + ", ".join(missing))
    # minidag: peerbench's ~60-line anyio runner that records nothing, the floor of a
    # Python design (its ratios say how far below Python's spawn cost a goal lies).
    runners = [p for p in PEER_TOOLS if shutil.which(p)] + ["doit", "minidag", "planrun"]
    planrun = os.path.join(session.bin, "planrun")
    # $PLANRUN_BENCH_DIR: where the workloads go (default: the temp dir). A /tmp that a
    # test run has just churned makes every new file slow to create (README, Benchmarks).
    workdir = tempfile.mkdtemp(prefix="planrun-bench-", dir=os.environ.get("PLANRUN_BENCH_DIR"))
    session.run(
        "python",
        "bench/peerbench/bench.py",
        "--venv",
        str(session.virtualenv.location),
        "--workdir",
        workdir,
        "--runners",
        ",".join(runners),
        "--planrun",
        f"{planrun} run",
        "--no-spawn",
        *session.posargs,
    )
    session.run("python", "bench/peer_ratios.py", os.path.join(workdir, "results.json"))
    session.run("python", "bench/bench_startup.py")
