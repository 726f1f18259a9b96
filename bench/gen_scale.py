"""Generate large plans for bench_scale.py (stdlib only).

``gen_scale.py flat OUT.json N [FAILING]``: N independent ``true`` steps (those named in
the comma-separated FAILING list run ``false``, with ``on_failure: continue``).
``gen_scale.py layers OUT.json LxW [D]``: L layers of W ``true`` steps, each step
depending on D steps (default 3) of the layer before, picked round-robin so that every
step of a layer has a dependent. (A full bipartite join of 100,000 steps would exceed
the plan size limit of 16 MiB and 1,000,000 values; D deps per step keeps the plan
within both while giving (L-1)*W*D edges.)
"""

from __future__ import annotations

import json
import sys


def flat(n: int) -> list[dict[str, object]]:
    """``n`` independent steps."""
    return [{"id": f"s{i}", "command": "true", "args": [], "depends_on": []} for i in range(n)]


def layers(n_layers: int, width: int, deps: int) -> list[dict[str, object]]:
    """``n_layers`` layers of ``width`` steps, ``deps`` edges each from the layer before."""
    steps: list[dict[str, object]] = []
    for layer in range(n_layers):
        for k in range(width):
            before = (
                [f"s{(layer - 1) * width + (k + d) % width}" for d in range(min(deps, width))]
                if layer
                else []
            )
            sid = f"s{layer * width + k}"
            steps.append({"id": sid, "command": "true", "args": [], "depends_on": before})
    return steps


def write(path: str, steps: list[dict[str, object]], jobs: int = 8) -> None:
    """Write a plan of ``steps`` to ``path``, one step a line."""
    head = {"plan_id": "scale", "version": "1", "globals": {"max_concurrency": jobs}}
    body = ",\n".join("  " + json.dumps(s) for s in steps)
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(head)[:-1] + ', "steps": [\n' + body + "\n]}\n")


def main(argv: list[str]) -> None:
    """Command line: see the module docstring."""
    shape, path, size = argv[:3]
    if shape == "flat":
        steps = flat(int(size))
        failing = set(argv[3].split(",")) if len(argv) > 3 else set()
        for step in steps:
            if step["id"] in failing:
                step.update(command="false", on_failure="continue")
        write(path, steps)
    else:
        n_layers, width = (int(x) for x in size.lower().split("x"))
        write(path, layers(n_layers, width, int(argv[3]) if len(argv) > 3 else 3))


if __name__ == "__main__":
    main(sys.argv[1:])
