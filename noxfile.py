"""Sessions: ``nox`` runs lint, typecheck and tests (what .ci/run runs)."""

from __future__ import annotations

import os
import shutil

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
        "mypy>=2.4,<2.5", "types-PyYAML>=6.0,<7", "nox>=2026.10,<2027", "-e", ".[test,browser]"
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
    session.install("-e", ".[test,browser]", "mypy>=2.4,<2.5")
    _ensure_debian_tools(session)
    session.run("pytest", *session.posargs, env={"PLANRUN_REQUIRE_BROWSER": "1"})
