"""``planrun graph`` and ``planrun report`` through the real CLI.

graph: Mermaid checked structurally (every line one of the statements we emit, every
edge between declared nodes, labels decoded back to the plan's text), DOT compiled by
Graphviz's ``dot`` (skipped when it is not installed) and its rendered text read
back, SVG parsed as XML; ids with dots and dashes, names with quotes, ``<``, ``#``
and backslashes. report: a real failed run with retries, written as one
self-contained file (no script, no external reference), secrets masked, everything
escaped; unknown runs and missing directories are exit 2, nothing left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ._cli import clean_env, planrun, sh, write_json

#: A name that breaks every naive quoting: quotes, markup, a Mermaid entity, a backslash.
NASTY = 'Say "hi" <b>#1; \\ end]'


def _plan(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "plan.json",
        {
            "plan_id": 'g"raph',
            "variables": {"TARGET": None},
            "steps": [
                sh("a.b", 'echo "$TARGET"'),
                sh("a-b", "true", name=NASTY, depends_on=["a.b"]),
                sh("end", "true", depends_on=["a-b", "a.b"], when="all_done", critical=False),
                sh("o1", "true", depends_on=["end"], when="one_failed"),
            ],
        },
    )


def _graph(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return planrun("graph", _plan(tmp_path), *args, cwd=tmp_path)


# --- graph: Mermaid -------------------------------------------------------------

NODE = re.compile(r'^  (s\d+_[A-Za-z0-9_]+)\["((?:[A-Za-z0-9 ._,:()/+=-]|#\d+;|<br>)*)"\]$')
EDGE = re.compile(r"^  (\S+) (-->|-\.->) (\S+)$")
CLASSDEF = re.compile(r"^  classDef ([a-z]+) [a-z-]+:[#\w ]+(,[a-z-]+:[#\w ]+)*$")
CLASS = re.compile(r"^  class ([\w,]+) ([a-z]+)$")


def _parse_mermaid(
    text: str,
) -> tuple[dict[str, str], list[tuple[str, str, str]], dict[str, set[str]]]:
    """(node id -> decoded label, edges, class -> node ids); fails on any line that
    is not one of the statements planrun emits, or refers to an undeclared node."""
    lines = text.splitlines()
    assert lines[1] == "flowchart LR", lines[:2]
    assert lines[0].startswith("%% ")
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    defined: set[str] = set()
    classes: dict[str, set[str]] = {}
    for line in lines[2:]:
        if m := NODE.match(line):
            assert m.group(1) not in nodes
            label = m.group(2).replace("<br>", "\n")
            nodes[m.group(1)] = re.sub(r"#(\d+);", lambda g: chr(int(g.group(1))), label)
        elif m := EDGE.match(line):
            assert m.group(1) in nodes, line
            assert m.group(3) in nodes, line
            edges.append((m.group(1), m.group(2), m.group(3)))
        elif m := CLASSDEF.match(line):
            defined.add(m.group(1))
        elif m := CLASS.match(line):
            assert m.group(2) in defined, line
            ids = set(m.group(1).split(","))
            assert ids <= nodes.keys(), line
            classes[m.group(2)] = ids
        else:
            pytest.fail(f"not a Mermaid statement planrun emits: {line!r}")
    return nodes, edges, classes


def test_graph_mermaid_is_well_formed_and_escapes_ids_and_names(tmp_path: Path) -> None:
    """The default format; a required variable without a value is fine (as validate)."""
    result = _graph(tmp_path)
    assert result.returncode == 0, result.stderr
    nodes, edges, classes = _parse_mermaid(result.stdout)
    by_step = {label.split("\n")[0]: node for node, label in nodes.items()}
    assert set(by_step) == {"a.b", "a-b", "end", "o1"}
    assert nodes[by_step["a-b"]] == f"a-b\n{NASTY}"
    assert nodes[by_step["end"]] == "end\nwhen all_done, non-critical"
    assert nodes[by_step["o1"]] == "o1\nwhen one_failed"
    assert len(set(by_step.values())) == 4  # a.b and a-b stay two nodes
    assert (by_step["a.b"], "-->", by_step["a-b"]) in edges
    assert (by_step["a-b"], "-.->", by_step["end"]) in edges  # when: a dashed edge
    assert (by_step["a.b"], "-.->", by_step["end"]) in edges
    assert len(edges) == 4
    assert classes == {"when": {by_step["end"], by_step["o1"]}, "noncritical": {by_step["end"]}}


# --- graph: DOT -----------------------------------------------------------------

DOT = shutil.which("dot")
SVG_NS = "{http://www.w3.org/2000/svg}"


#: The nox tests session installs Graphviz and sets this: there, a missing `dot` fails.
REQUIRED = os.environ.get("PLANRUN_REQUIRE_BROWSER") == "1"


@pytest.mark.skipif(
    DOT is None and not REQUIRED, reason="needs Graphviz (apt-get install -y graphviz)"
)
def test_graph_dot_compiles_and_shows_the_plan_s_text(tmp_path: Path) -> None:
    """Graphviz accepts the DOT, and what it draws is the plan's text, literally."""
    result = _graph(tmp_path, "--format", "dot")
    assert result.returncode == 0, result.stderr
    assert DOT is not None
    drawn = subprocess.run(
        [DOT, "-Tsvg"], input=result.stdout, capture_output=True, text=True, check=False
    )
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stderr == ""  # not even a syntax warning
    svg = ET.fromstring(drawn.stdout)  # noqa: S314 - our own document
    groups = {
        g.findtext(f"{SVG_NS}title"): g
        for g in svg.iter(f"{SVG_NS}g")
        if g.get("class") in ("node", "edge")
    }
    assert {"a.b", "a-b", "end", "o1"} <= groups.keys()
    assert {"a.b->a-b", "a-b->end", "a.b->end", "end->o1"} <= groups.keys()
    texts = [t.text for t in groups["a-b"].iter(f"{SVG_NS}text")]
    assert texts == ["a-b", NASTY]
    assert [t.text for t in groups["end"].iter(f"{SVG_NS}text")] == [
        "end",
        "when all_done, non-critical",
    ]
    dashed = groups["end"].find(f"{SVG_NS}path")
    assert dashed is not None
    assert dashed.get("stroke-dasharray")  # non-critical: dashed
    assert svg.findtext(f"{SVG_NS}g/{SVG_NS}title") == 'g"raph'


def test_graph_svg_is_standalone_xml_with_the_marks(tmp_path: Path) -> None:
    result = _graph(tmp_path, "--format", "svg")
    assert result.returncode == 0, result.stderr
    svg = ET.fromstring(result.stdout)  # noqa: S314 - our own document
    assert svg.find(f"{SVG_NS}style") is not None  # readable on its own
    nodes = {g.get("data-step"): g for g in svg.iter(f"{SVG_NS}g")}
    assert set(nodes) == {"a.b", "a-b", "end", "o1"}
    assert all("state-pending" in (g.get("class") or "") for g in nodes.values())
    assert (nodes["end"].get("class") or "").split()[-2:] == ["when", "noncritical"]
    assert nodes["a-b"].findtext(f"{SVG_NS}title") == f"a-b · {NASTY}"
    assert len(list(svg.iter(f"{SVG_NS}path"))) == 4


def test_graph_writes_a_file_with_dash_o(tmp_path: Path) -> None:
    out = tmp_path / "g.mmd"
    result = _graph(tmp_path, "-o", str(out), "--var", "TARGET=x")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text().startswith("%% plan")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.mmd", "plan.json"]


def test_graph_of_a_bad_plan_is_exit_2_with_located_problems(tmp_path: Path) -> None:
    plan = write_json(
        tmp_path / "bad.json",
        {"plan_id": "b", "steps": [sh("a", "true", depends_on=["zz"]), sh("a", "true")]},
    )
    out = tmp_path / "g.dot"
    result = planrun("graph", plan, "--format", "dot", "-o", out, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "$.steps[0].depends_on[0] (step 'a'): unknown dependency 'zz'" in result.stderr
    assert "duplicate step id 'a'" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--format", "png"), "'png' is not one of"),
        (("--var", "novalue"), "novalue"),
        (("-o", "missing/g.mmd"), "directory missing does not exist"),
    ],
)
def test_graph_usage_errors_are_exit_2(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    result = _graph(tmp_path, *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stdout == ""


# --- report ---------------------------------------------------------------------

SECRET = "s3cr3t-value-xyz"  # noqa: S105 - a test value


def _failed_run(tmp_path: Path) -> tuple[Path, str]:
    """A real run: setup succeeds, ``flaky.step`` fails three times (two retries)
    printing markup and the secret; ``after`` is cancelled (on_failure abort)."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "rep<ort>",
            "secrets": ["TOKEN"],
            "steps": [
                sh("setup", "echo setup ok"),
                sh(
                    "flaky.step",
                    'echo "attempt boom <script>alert(1)</script> ${TOKEN}"; exit 3',
                    retries=2,
                    retry_delay_sec=0.1,
                    depends_on=["setup"],
                ),
                sh("after", "true", depends_on=["flaky.step"]),
            ],
        },
    )
    state = tmp_path / "state"
    env = clean_env(TOKEN=SECRET)
    run = planrun(
        "run", plan, "--run-id", "r1", "--state-dir", state, "--plain", cwd=tmp_path, env=env
    )
    assert run.returncode == 1, run.stderr
    return state, "r1"


def write_report(tmp_path: Path) -> Path:
    """A report of a real failed run with retries, at ``tmp_path/out/report.html``."""
    state, run_id = _failed_run(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = planrun(
        "report", run_id, "-o", out / "report.html", "--state-dir", state, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    return out / "report.html"


def _attempt_bars(html: str, step_id: str) -> list[str]:
    return re.findall(rf'class="span state-(\w+)" data-step="{re.escape(step_id)}"', html)


def test_report_of_a_failed_run_with_retries(tmp_path: Path) -> None:
    path = write_report(tmp_path)
    html = path.read_text(encoding="utf-8")
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]  # no temp left
    # Self-contained: no script, nothing fetched, nothing linked.
    assert "<script" not in html
    assert not re.search(r"\b(src|href)=", html)
    assert "url(" not in html
    assert "default-src 'none'" in html
    # The graph with the failed step, the Gantt with its three attempts.
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="dag"' in html
    assert '<g class="node state-failed" data-step="flaky.step"' in html
    assert '<g class="node state-cancelled" data-step="after"' in html
    assert '<path class="edge fail-path" data-from="flaky.step" data-to="after"' in html
    assert _attempt_bars(html, "flaky.step") == ["failed", "failed", "failed"]
    assert _attempt_bars(html, "setup") == ["succeeded"]
    # The step table and each failed attempt's log tail, escaped and masked.
    assert re.search(r'<tr data-step="flaky.step">.*?exit 3.*?</tr>', html)
    tails = re.findall(r'attempt #(\d) log</summary><pre class="log">([^<]*)</pre>', html)
    assert [n for n, _ in tails] == ["1", "2", "3"]
    for _, text in tails:
        assert text == "attempt boom &lt;script&gt;alert(1)&lt;/script&gt; ***"
    assert SECRET not in html
    assert "rep&lt;ort&gt;" in html
    assert "rep<ort>" not in html
    assert "setup ok" not in html  # only failed steps' logs are shown


def test_report_replaces_an_existing_file(tmp_path: Path) -> None:
    state, run_id = _failed_run(tmp_path)
    out = tmp_path / "report.html"
    out.write_text("old")
    result = planrun("report", run_id, "-o", out, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("<!doctype html>")


def test_report_of_an_unknown_run_is_exit_2_with_the_hint(tmp_path: Path) -> None:
    state, _ = _failed_run(tmp_path)
    out = tmp_path / "report.html"
    result = planrun("report", "nope", "-o", out, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 2
    assert f"no run 'nope' in {state}" in result.stderr
    assert "planrun list" in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "state"]


def test_report_into_a_missing_directory_fails_before_reading(tmp_path: Path) -> None:
    """Checked first: even with no store at all, the directory is what is reported."""
    result = planrun(
        "report",
        "r1",
        "-o",
        tmp_path / "missing" / "r.html",
        "--state-dir",
        tmp_path / "none",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "directory" in result.stderr
    assert "does not exist" in result.stderr
    assert "run store" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_onto_a_directory_is_exit_2(tmp_path: Path) -> None:
    state, run_id = _failed_run(tmp_path)
    result = planrun("report", run_id, "-o", tmp_path, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 2
    assert "is a directory" in result.stderr


def test_report_of_a_big_run_draws_one_row_per_level(tmp_path: Path) -> None:
    """Above the run page's threshold (300 steps) a node per step is unreadable and
    megabytes: the report draws the collapsed graph, one row per level."""
    steps: list[dict[str, object]] = [{"id": f"a{i}", "command": "true"} for i in range(160)]
    steps += [{"id": f"b{i}", "command": "true", "depends_on": [f"a{i}"]} for i in range(160)]
    plan = write_json(tmp_path / "big.json", {"plan_id": "big", "steps": steps})
    state = tmp_path / "state"
    ran = planrun(
        "run",
        plan,
        "--state-dir",
        state,
        "--run-id",
        "big-1",
        "--output",
        "quiet",
        cwd=tmp_path,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "report.html"
    result = planrun("report", "big-1", "-o", out, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert 'class="dag levels"' in html
    assert len(re.findall(r'<g class="level[^"]*" data-level="\d+"', html)) == 2
    assert 'class="node ' not in html  # no per-step node
