"""PLANRUN_RUN_TREE: the chain of attempts a process descends from (nested runs)."""

from __future__ import annotations

from planrun.proc import MAX_TREE_DEPTH, child_tree, runs_of, tree_of


def test_a_step_appends_its_attempt_to_the_inherited_chain() -> None:
    """A top-level step's chain is its attempt; a nested run's step extends it."""
    assert child_tree(None, "outer/s/1") == "outer/s/1"
    assert child_tree("outer/s/1", "inner/a/2") == "outer/s/1:inner/a/2"


def test_malformed_inherited_entries_are_dropped() -> None:
    """Only run/step/attempt entries survive; the chain stays bounded."""
    assert child_tree("junk::a/b/x:outer/s/1", "inner/a/1") == "outer/s/1:inner/a/1"
    deep = ":".join(f"r{n}/s/1" for n in range(MAX_TREE_DEPTH + 5))
    chain = child_tree(deep, "last/s/1").split(":")
    assert len(chain) == MAX_TREE_DEPTH
    assert chain[0] == "r0/s/1"
    assert chain[-1] == "last/s/1"


def test_a_process_belongs_to_every_run_of_its_chain() -> None:
    """Its runs, outermost first, with its own PLANRUN_RUN_ID last and once."""
    environ = [
        b"HOME=/root",
        b"PLANRUN_RUN_TREE=outer/s/1:inner/a/1",
        b"PLANRUN_RUN_ID=inner",
    ]
    assert tree_of(environ) == ["outer/s/1", "inner/a/1"]
    assert runs_of(environ) == ["outer", "inner"]
    assert runs_of([b"PLANRUN_RUN_ID=solo"]) == ["solo"]
    assert runs_of([b"PATH=/bin"]) == []
