"""The pure parts of ``planrun serve``: glob matching of watched paths and the
environment a triggered run's steps get."""

from __future__ import annotations

import json

import pytest

from planrun.serve.sources import glob_regex
from planrun.trigger_env import trigger_env


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/b.py", True),
        ("src/**/*.py", "srcx/a.py", False),
        ("src/**/*.py", "src/a.pyc", False),
        ("*.toml", "pyproject.toml", True),
        ("*.toml", "sub/pyproject.toml", False),
        ("**", "any/thing", True),
        ("doc?.md", "doc1.md", True),
        ("doc?.md", "doc/.md", False),
        ("[ab].txt", "a.txt", True),
        ("[ab].txt", "c.txt", False),
        ("a+b.txt", "a+b.txt", True),
    ],
)
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


def test_trigger_env_for_each_kind() -> None:
    git = {"kind": "git", "branch": "main", "sha": "b" * 40, "old_sha": "a" * 40}
    env = trigger_env(git)
    assert json.loads(env["PLANRUN_TRIGGER"]) == git
    assert (env["PLANRUN_TRIGGER_SHA"], env["PLANRUN_TRIGGER_OLD_SHA"]) == ("b" * 40, "a" * 40)
    assert "PLANRUN_TRIGGER_PATHS" not in env
    watch = trigger_env({"kind": "watch", "paths": ["a.py", "b/c.py"]})
    assert watch["PLANRUN_TRIGGER_PATHS"] == "a.py\nb/c.py"
    assert watch["PLANRUN_TRIGGER_KIND"] == "watch"
    timed = trigger_env({"kind": "schedule", "slot": "2026-01-01T03:00:00Z"})
    assert timed["PLANRUN_TRIGGER_SLOT"] == "2026-01-01T03:00:00Z"
    assert "PLANRUN_TRIGGER_SHA" not in timed
