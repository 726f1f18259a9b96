"""The commands of the example CI pipeline (plans/ci.json): each prints what a real
one would do, quickly, so the plan runs anywhere Python does."""

from __future__ import annotations

import json
import os
import sys
import time

PACKAGES = ["core", "cli", "web"]


def output(**values: str) -> None:
    """Write step outputs to $PLANRUN_OUTPUT (KEY=VALUE lines)."""
    with open(os.environ["PLANRUN_OUTPUT"], "a", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key}={value}\n")


def discover() -> None:
    print("packages:", ", ".join(PACKAGES))
    output(PACKAGES=json.dumps(PACKAGES), changed="yes")


def lint() -> None:
    print("lint: 0 problems in", len(PACKAGES), "packages")


def test(suite: str, python: str) -> None:
    print(f"running the {suite} tests on Python {python}")
    time.sleep(0.3)
    if os.environ.get("FAIL_SUITE") == suite:
        print(f"{suite}: 1 failed", file=sys.stderr)
        sys.exit(1)
    print(f"{suite} on {python}: 42 passed")


def build(package: str) -> None:
    print(f"building {package}")
    time.sleep(0.2)
    output(wheel=f"{package}-1.0-py3-none-any.whl")


def verify(package: str, wheel: str) -> None:
    print(f"verifying {wheel} of {package}")


def publish(branch: str) -> None:
    print(f"publishing from {branch}")


def report() -> None:
    with open(os.environ["PLANRUN_SUMMARY"], encoding="utf-8") as f:
        summary = json.load(f)
    steps = summary.get("steps", {})
    failed = [sid for sid, s in steps.items() if s.get("state") in ("failed", "timed_out")]
    print(f"run {summary.get('state')}: {len(steps)} steps, failed: {', '.join(failed) or 'none'}")


COMMANDS = {
    "discover": discover, "lint": lint, "test": test, "build": build,
    "verify": verify, "publish": publish, "report": report,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
