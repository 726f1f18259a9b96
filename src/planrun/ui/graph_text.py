"""A plan's DAG as text for READMEs and reviews: Mermaid, Graphviz DOT, or a standalone
SVG (``planrun graph``). Pure: no I/O, no dashboard libraries.

Nodes are steps: the id, and the name when it differs; a ``when`` rule other than
``all_success`` is written on the node and its incoming edges are dashed; a
non-critical step is drawn dashed and labelled so. Everything taken from the plan is
escaped for the target language (ids may hold dots and dashes, names anything).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..model import Plan, Step, When
from .graph_svg import render_graph

__all__ = ["FORMATS", "render_plan", "to_dot", "to_mermaid", "to_svg"]


def _notes(step: Step) -> list[str]:
    """What a node says beyond its id and name: its trigger rule, non-critical."""
    notes = []
    if step.when is not When.ALL_SUCCESS:
        notes.append(f"when {step.when.value}")
    if not step.critical:
        notes.append("non-critical")
    return notes


def _lines(step: Step) -> list[str]:
    """A node's label, line by line."""
    lines = [step.id]
    if step.name is not None and step.name != step.id:
        lines.append(step.name)
    notes = _notes(step)
    if notes:
        lines.append(", ".join(notes))
    return lines


# --- Mermaid ----------------------------------------------------------------------

#: Characters written as themselves in a Mermaid label; every other one becomes an
#: entity code (``#35;``), so no quote, bracket, ``<`` or ``#`` can end or change it.
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 ._,:()/+=-]")


def _mermaid_text(text: str) -> str:
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in text)


def _mermaid_id(index: int, step_id: str) -> str:
    """A Mermaid node id: ``s<index>_`` then the step id's letters and digits (dots
    and dashes are edge syntax in Mermaid; the index keeps ``a.b`` and ``a-b`` apart,
    and the prefix keeps ids such as ``end`` or ``o1`` from being keywords)."""
    return f"s{index}_" + re.sub(r"[^A-Za-z0-9]", "_", step_id)


def to_mermaid(plan: Plan) -> str:
    """The plan as a Mermaid flowchart (left to right)."""
    ids = {s.id: _mermaid_id(i, s.id) for i, s in enumerate(plan.steps)}
    out = [f"%% plan {_mermaid_text(plan.plan_id)}", "flowchart LR"]
    for step in plan.steps:
        label = "<br>".join(_mermaid_text(line) for line in _lines(step))
        out.append(f'  {ids[step.id]}["{label}"]')
    for step in plan.steps:
        arrow = "-->" if step.when is When.ALL_SUCCESS else "-.->"
        out.extend(f"  {ids[dep]} {arrow} {ids[step.id]}" for dep in step.depends_on)
    ruled = [ids[s.id] for s in plan.steps if s.when is not When.ALL_SUCCESS]
    optional = [ids[s.id] for s in plan.steps if not s.critical]
    if ruled:
        out.append("  classDef when fill:#fef0c7,stroke:#b54708")
        out.append(f"  class {','.join(ruled)} when")
    if optional:
        out.append("  classDef noncritical stroke-dasharray:5 3")
        out.append(f"  class {','.join(optional)} noncritical")
    return "\n".join(out) + "\n"


# --- Graphviz DOT -----------------------------------------------------------------


def _dot_quote(text: str) -> str:
    """``text`` as a DOT quoted string whose label shows it literally (a backslash
    would start an escape such as ``\\N``, a newline would break the line)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def to_dot(plan: Plan) -> str:
    """The plan as a Graphviz digraph (left to right)."""
    out = [
        f"digraph {_dot_quote(plan.plan_id)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#e4e7ec", fontname="monospace"];',
    ]
    for step in plan.steps:
        label = "\\n".join(_dot_quote(line)[1:-1] for line in _lines(step))
        attrs = [f'label="{label}"']
        styles = ["rounded", "filled"]
        if not step.critical:
            styles.append("dashed")
        if step.when is not When.ALL_SUCCESS:
            attrs.append('fillcolor="#fef0c7"')
        attrs.append(f'style="{",".join(styles)}"')
        out.append(f"  {_dot_quote(step.id)} [{', '.join(attrs)}];")
    for step in plan.steps:
        edge = "" if step.when is When.ALL_SUCCESS else " [style=dashed]"
        out.extend(
            f"  {_dot_quote(dep)} -> {_dot_quote(step.id)}{edge};" for dep in step.depends_on
        )
    out.append("}")
    return "\n".join(out) + "\n"


# --- SVG --------------------------------------------------------------------------

#: The node and edge styles of the dashboard, for an SVG read on its own.
_SVG_STYLE = (
    "<style>.node rect{fill:#e4e7ec;stroke:#98a2b3}"
    ".node.when rect{fill:#fef0c7;stroke:#b54708}"
    ".node.noncritical rect{stroke-dasharray:5 3}"
    ".node text{font:12px ui-monospace,monospace;fill:#1d2330}"
    ".edge{fill:none;stroke:#98a2b3;stroke-width:1.2}</style>"
)


def _mark(step: Step) -> tuple[str, str] | None:
    """``step``'s node classes (``when``/``noncritical``) and tooltip saying so, or None
    when it has neither (``render_graph`` then draws its state only)."""
    lines = _lines(step)
    if lines == [step.id]:
        return None
    classes = " when" * (step.when is not When.ALL_SUCCESS) + " noncritical" * (not step.critical)
    return classes, " · ".join(lines)


def to_svg(plan: Plan) -> str:
    """The plan as the dashboard draws a run's graph, every step ``pending``; a
    standalone SVG document (its own styles), a step's ``when`` rule and being
    non-critical shown by its node's colour and border and named in its tooltip."""
    deps = {s.id: list(s.depends_on) for s in plan.steps}
    marks = {s.id: mark for s in plan.steps if (mark := _mark(s)) is not None}
    svg = render_graph(deps, {s.id: "pending" for s in plan.steps}, marks)
    head, sep, rest = svg.partition(">")
    return f"{head}{sep}{_SVG_STYLE}{rest}\n"


#: Format name -> renderer.
FORMATS: dict[str, Callable[[Plan], str]] = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg}


def render_plan(plan: Plan, fmt: str) -> str:
    """``plan`` in ``fmt`` (a key of :data:`FORMATS`)."""
    return FORMATS[fmt](plan)
