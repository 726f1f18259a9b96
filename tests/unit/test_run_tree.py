"""PLANRUN_RUN_TREE and PLANRUN_RUN_KEY: the runs a process belongs to (nested runs),
named across state dirs (``RUN_ID@SCOPE``)."""

from __future__ import annotations

from pathlib import Path

from planrun.proc import (
    MAX_TREE_DEPTH,
    child_tree,
    run_key,
    runs_of,
    scope_of,
    split_key,
    tree_of,
)

OUTER = "outer@" + "a" * 12
INNER = "inner@" + "b" * 12


def test_a_step_appends_its_attempt_to_the_inherited_chain() -> None:
    """A top-level step's chain is its attempt; a nested run's step extends it."""
    assert child_tree(None, f"{OUTER}/s/1") == f"{OUTER}/s/1"
    assert child_tree(f"{OUTER}/s/1", f"{INNER}/a/2") == f"{OUTER}/s/1:{INNER}/a/2"


def test_malformed_inherited_entries_are_dropped() -> None:
    """Only KEY/step/attempt entries survive (a bare run id has no scope: dropped);
    the chain stays bounded."""
    inherited = f"junk::a/b/x:outer/s/1:{OUTER}/s/1"
    assert child_tree(inherited, f"{INNER}/a/1") == f"{OUTER}/s/1:{INNER}/a/1"
    deep = ":".join(f"r{n}@{'c' * 12}/s/1" for n in range(MAX_TREE_DEPTH + 5))
    chain = child_tree(deep, f"{INNER}/s/1").split(":")
    assert len(chain) == MAX_TREE_DEPTH
    assert chain[0] == f"r0@{'c' * 12}/s/1"
    assert chain[-1] == f"{INNER}/s/1"


def test_a_process_belongs_to_every_run_of_its_chain() -> None:
    """Its run keys, outermost first, with its own PLANRUN_RUN_KEY last and once."""
    environ = [
        b"HOME=/root",
        f"PLANRUN_RUN_TREE={OUTER}/s/1:{INNER}/a/1".encode(),
        b"PLANRUN_RUN_ID=inner",
        f"PLANRUN_RUN_KEY={INNER}".encode(),
    ]
    assert tree_of(environ) == [f"{OUTER}/s/1", f"{INNER}/a/1"]
    assert runs_of(environ) == [OUTER, INNER]
    assert runs_of([f"PLANRUN_RUN_KEY={OUTER}".encode()]) == [OUTER]
    # A bare run id names no state dir: nothing can tell whose it is, so it is no one's.
    assert runs_of([b"PLANRUN_RUN_ID=solo"]) == []
    assert runs_of([b"PATH=/bin"]) == []


def test_a_run_key_names_the_state_dir(tmp_path: Path) -> None:
    """Equal run ids of two state dirs get different keys; every spelling of one
    state dir (a symlink to it) the same key."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (tmp_path / "link").symlink_to(one)
    assert run_key("nightly", one) != run_key("nightly", two)
    assert run_key("nightly", tmp_path / "link") == run_key("nightly", one)
    assert split_key(run_key("nightly", one)) == ("nightly", scope_of(one))
