"""Read, decode and validate plans; resolve variables into ready-to-run steps.

Validation reports every problem in one pass, each with a location (a JSON path such
as ``$.steps[3].depends_on[0]``, or ``line:column`` for syntax errors), the step id
when there is one, and a hint. Pure except for :func:`read_document`, which reads the
file it is given.

The package, bottom up: :mod:`.read` (file text into data, within limits),
:mod:`.decode` (data into a :class:`~planrun.model.Plan`, msgspec's errors located),
:mod:`.checks`, :mod:`.variables` and :mod:`.expand` (the rules; ``expand`` also
turns a matrix step into its instances), :mod:`.validation` (the entry points) and
:mod:`.resolve` (steps ready to run, with typed late bindings).
"""

from __future__ import annotations

from .checks import BUILTIN_VARIABLES
from .decode import decode_plan
from .read import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_PLAN_BYTES,
    MAX_VALUES,
    parse_document,
    read_document,
)
from .resolve import (
    ArgBinding,
    CwdBinding,
    EnvBinding,
    LateBinding,
    ResolvedStep,
    parse_var,
    resolve_step,
    resolve_steps,
    resolve_variables,
)
from .validation import Validation, load_plan, validate

__all__ = [
    "BUILTIN_VARIABLES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_PLAN_BYTES",
    "MAX_VALUES",
    "ArgBinding",
    "CwdBinding",
    "EnvBinding",
    "LateBinding",
    "ResolvedStep",
    "Validation",
    "decode_plan",
    "load_plan",
    "parse_document",
    "parse_var",
    "read_document",
    "resolve_step",
    "resolve_steps",
    "resolve_variables",
    "validate",
]
