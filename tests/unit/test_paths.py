"""Finding the state dir (``paths.default_state_dir``): the environment, then the
nearest ``.planrun`` here or above, like git's ``.git``; and which hints must name it."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun.paths import STATE_DIR_ENV, default_state_dir, state_dir_to_name
from planrun.plan.read import sniff_suffix


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path/project/.planrun`` and ``project/a/b``; no PLANRUN_STATE_DIR."""
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    assert not [p for p in tmp_path.parents if (p / ".planrun").is_dir()]
    (tmp_path / "project" / ".planrun").mkdir(parents=True)
    (tmp_path / "project" / "a" / "b").mkdir(parents=True)
    return tmp_path / "project"


def test_the_nearest_state_dir_above_is_used(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "a" / "b")
    assert default_state_dir() == tree / ".planrun"
    assert default_state_dir(tree / "a") == tree / ".planrun"
    (tree / "a" / ".planrun").mkdir()
    assert default_state_dir() == tree / "a" / ".planrun"  # the nearest one wins


def test_here_it_stays_relative_and_none_found_means_here(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    assert default_state_dir() == Path(".planrun")
    monkeypatch.chdir(tree.parent)
    assert default_state_dir() == Path(".planrun")  # none here or above: a new one here
    assert default_state_dir(tree.parent) == tree.parent / ".planrun"


def test_a_file_named_planrun_is_not_a_state_dir(tree: Path) -> None:
    (tree / "a" / ".planrun").write_text("not a directory")
    assert default_state_dir(tree / "a" / "b") == tree / ".planrun"


def test_the_environment_wins_unless_skipped(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "a")
    monkeypatch.setenv(STATE_DIR_ENV, "/srv/runs")
    assert default_state_dir() == Path("/srv/runs")
    assert default_state_dir(env=False) == tree / ".planrun"
    monkeypatch.setenv(STATE_DIR_ENV, "")
    assert default_state_dir() == tree / ".planrun"


def test_hints_name_a_state_dir_only_when_discovery_would_miss_it(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree / "a" / "b")
    assert state_dir_to_name(None) is None
    assert state_dir_to_name(tree / ".planrun") is None
    assert state_dir_to_name("../../.planrun") is None
    assert state_dir_to_name(tree / "other") == tree / "other"
    monkeypatch.setenv(STATE_DIR_ENV, str(tree / "env-dir"))
    # Set here, maybe not in the shell the hint is pasted into: named.
    assert state_dir_to_name(None) == tree / "env-dir"


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ('  {"plan_id": "x"}', ".json"),
        ("plan_id: x\nsteps: []\n", ".yaml"),
        ("---\nplan_id: x\n", ".yaml"),
        ('"plan_id": x\n', ".yaml"),
        ('plan_id: "a = b"\n', ".yaml"),
        ('# comment\n\nplan_id = "x"\n', ".toml"),
        ('[[steps]]\nid = "a"\n', ".toml"),
        ('"plan_id" = "x"\n', ".toml"),
    ],
)
def test_the_format_of_a_plan_on_stdin_is_sniffed(text: str, suffix: str) -> None:
    assert sniff_suffix(text) == suffix
