"""Preparing a run: validate the plan, resolve its variables and secrets. No run yet.

Everything here is below :mod:`planrun.api` (which executes what this prepares) and
below :mod:`planrun.resume.load` (which prepares a run again to resume it), so neither
imports the other. No I/O but reading the plan file and the environment, and, when
asked (``check_host``, :func:`check_plan`), looking for the plan's programs, scripts
and working directories on this host (:mod:`planrun.hostcheck`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from . import hostcheck
from .errors import PlanError, Problem, UsageError
from .events import Event, StepsExpanded
from .gcpause import paused_gc
from .masking import MIN_SECRET, Masker, secret_problem
from .model import MAX_CONCURRENCY, Plan
from .plan import ResolvedStep, Validation, resolve_steps, resolve_variables, validate
from .plan.expand import expand
from .plan.handlers import resolve_handlers
from .plan.text import shown
from .resume import Action, Choice, PriorStep

__all__ = [
    "PreparedRun",
    "Resume",
    "check_concurrency",
    "check_plan",
    "check_run_id",
    "check_secrets",
    "new_run_id",
    "prepare",
    "secret_hint",
    "secrets_from_env",
]

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class PreparedRun:
    """A validated plan with its variables resolved: ready to execute.

    ``variables`` are the plain variables (stored and shown); ``secrets`` hold the
    secret values, which reach the steps but are masked everywhere else. ``plan`` has
    its matrices expanded (one step per instance); ``written`` is the plan as written
    (what is stored; None: the same as ``plan``).
    """

    plan: Plan
    steps: list[ResolvedStep]
    variables: dict[str, str]
    source: str | None
    warnings: tuple[Problem, ...]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    written: Plan | None = None
    #: The run handlers resolved like steps, each with its list (``on_failure``, ...).
    handlers: tuple[tuple[str, ResolvedStep], ...] = ()

    @functools.cached_property
    def masker(self) -> Masker:
        """Masks this run's secret values (built once: it compiles a pattern)."""
        return Masker(self.secrets.values())

    @functools.cached_property
    def masked_variables(self) -> dict[str, str]:
        """``variables`` as stored and shown: a value holding a secret is masked (names
        and the ``PLAN_DIR`` path are kept)."""
        return self.masker.variables(self.variables)

    def plan_json(self) -> str:
        """The plan as run, secrets masked: what ``resume`` compares against."""
        plan = self.written if self.written is not None else self.plan
        return msgspec.json.encode(self.masker.struct(plan)).decode()


class Resume(msgspec.Struct, frozen=True):
    """What a resume does (see :func:`planrun.resume.load.load_resume`)."""

    run_id: str
    choices: list[Choice]
    prior: dict[str, PriorStep]
    history: list[Event]
    last_seq: int

    @property
    def rerun(self) -> list[str]:
        return [c.step_id for c in self.choices if c.action is Action.RERUN]

    @property
    def expanded(self) -> dict[str, list[Any]]:
        """The items each for_each step was last expanded from (``steps_expanded``)."""
        return {e.step_id: e.items for e in self.history if isinstance(e, StepsExpanded)}


def new_run_id() -> str:
    """A fresh run id that sorts by start time: ``20261124T101502123Z-3f9a2c``."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    # What secrets.token_hex(3) returns; importing secrets loads hmac and OpenSSL.
    return f"{stamp}{int(now % 1 * 1000):03d}Z-{os.urandom(3).hex()}"


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is safe as a file name, else :class:`UsageError`."""
    if not _RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id


def check_concurrency(max_concurrency: int | None) -> None:
    """``UsageError`` unless ``max_concurrency`` is None or within 1..MAX_CONCURRENCY
    (the bound of ``globals.max_concurrency``)."""
    if max_concurrency is not None and not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise UsageError(
            f"max_concurrency must be between 1 and {MAX_CONCURRENCY}", field="max_concurrency"
        )


def secrets_from_env(
    names: Iterable[str], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The values of secrets ``names`` from ``environ`` (default ``os.environ``), and,
    for each name without a usable one, why: ``"not set"``, ``"empty"`` (it would mask
    nothing) or ``"shorter than 4 characters"`` (it would mask parts of ids, paths and
    numbers). Callers word the error for their own input."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name in names:
        value = environ.get(name)
        why = "not set" if value is None else secret_problem(value)
        if why is None and value is not None:
            values[name] = value
        else:
            missing[name] = why or "not set"
    return values, missing


def secret_hint(name: str, why: str) -> str:
    """What to do about secret ``name`` that :func:`secrets_from_env` refused."""
    if why in ("not set", "empty"):
        return f"export {name}=... in the environment planrun runs in"
    if why == "not valid UTF-8":
        return f"give {name} a value that is UTF-8 text (encode binary secrets, e.g. base64)"
    return (
        f"give {name} a value of at least {MIN_SECRET} characters (a shorter one occurs "
        "inside ids, paths and numbers, and cannot be masked without corrupting them)"
    )


def check_secrets(secrets: Mapping[str, str]) -> None:
    """``UsageError`` naming the first secret value given directly that is unusable."""
    for name, value in secrets.items():
        why = secret_problem(value)
        if why is not None:
            raise UsageError(f"secret '{name}' is {why}; {secret_hint(name, why)}")


@paused_gc()  # a large plan is millions of objects, none of them garbage
def prepare(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    allow_undeclared: bool = False,
    known_variables: Collection[str] = (),
    check_host: bool = False,
) -> PreparedRun:
    """Validate ``plan`` and resolve its variables and secrets (raises ``PlanError``
    listing every problem: each bad, missing or undeclared variable and each unusable
    secret on its own).

    ``secrets`` are secret values given directly (the CLI's ``--secret``); the
    plan's own ``secrets`` names are read from ``environ`` (default ``os.environ``)
    unless given. A variable the plan neither declares nor uses is an error (a typo,
    most likely) unless ``allow_undeclared`` or it is in ``known_variables`` (a resumed
    run's own). ``check_host`` adds warnings for programs, scripts and working
    directories missing on this host (see :mod:`planrun.hostcheck`). No I/O but
    reading the plan file (and what ``check_host`` looks at).
    """
    given = dict(variables or {})
    explicit = dict(secrets or {})
    check_secrets(explicit)
    validation = validate(
        plan,
        given,
        secrets=list(explicit),
        allow_undeclared=allow_undeclared,
        known=known_variables,
    )
    found, missing = _plan_secrets(validation.plan, explicit, environ)
    if missing or not validation.ok:
        raise PlanError(validation.problems + tuple(missing), validation.source)
    checked = validation.raise_for_errors()
    explicit |= found
    values = resolve_variables(checked, given, validation.base_dir)
    expanded = expand(checked)
    prepared = PreparedRun(
        plan=expanded,
        steps=resolve_steps(expanded, values | explicit, validation.base_dir),
        variables=values,
        source=str(Path(validation.source).resolve()) if validation.source else None,
        warnings=validation.warnings,
        secrets=explicit,
        written=checked if expanded is not checked else None,
        handlers=tuple(resolve_handlers(expanded, values | explicit, validation.base_dir)),
    )
    if not check_host:
        return prepared
    # Only the plain variables: a field using a secret is not checked. The paths shown
    # are masked all the same (a variable's value may hold a secret).
    masker = prepared.masker
    host = [
        msgspec.structs.replace(p, message=masker.text(p.message))
        for p in hostcheck.check_host(checked, values, validation.base_dir, environ)
    ]
    return dataclasses.replace(prepared, warnings=prepared.warnings + tuple(host))


def _plan_secrets(
    plan: Plan | None, explicit: Mapping[str, str], environ: Mapping[str, str] | None
) -> tuple[dict[str, str], list[Problem]]:
    """The values of the plan's own secrets from ``environ``, and a problem for each
    one without a usable value (reported with the plan's other problems)."""
    if plan is None:
        return {}, []
    found, missing = secrets_from_env((n for n in plan.secrets if n not in explicit), environ)
    problems = [
        Problem(
            f"$.secrets[{i}]",
            f"secret '{name}' is {missing[name]}",
            hint=secret_hint(name, missing[name]),
        )
        for i, name in enumerate(plan.secrets)
        if name in missing
    ]
    return found, problems


@paused_gc()  # a large plan is millions of objects, none of them garbage
def check_plan(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    *,
    allow_undeclared: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Validation:
    """What ``planrun validate`` reports: the plan checked without requiring values for
    its required variables (they are listed in ``Validation.unset``), the given
    ``variables`` checked as a run checks them, and, for a valid plan, warnings for
    programs, scripts and working directories missing on this host (``environ``:
    default ``os.environ``). Raises ``PlanError`` only when the file cannot be read
    or parsed. The plan of a valid one is returned with its matrices expanded (what
    ``validate`` and ``graph`` show); the problems' paths are those of the plan as
    written."""
    given = dict(variables or {})
    validation = validate(plan, given, require_values=False, allow_undeclared=allow_undeclared)
    if not validation.ok or validation.plan is None:
        return validation
    values = resolve_variables(validation.plan, given, validation.base_dir)
    host = hostcheck.check_host(validation.plan, values, validation.base_dir, environ)
    return msgspec.structs.replace(
        validation, plan=expand(validation.plan), problems=validation.problems + tuple(host)
    )


def _a(value: object) -> str:
    """``a int``'s better spelling: the type of ``value`` with its article."""
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def check_strings(**kinds: Mapping[Any, Any]) -> None:
    """``UsageError`` naming the first of each kind (``variable=``, ``secret=``) whose
    name or value is not a string: they reach programs' arguments and environments, and
    the store, as text only. A secret's value is never shown."""
    for kind, given in kinds.items():
        _check_kind(kind, given)


def _check_kind(kind: str, given: Mapping[Any, Any]) -> None:
    for name, value in given.items():
        if not isinstance(name, str):
            raise UsageError(
                f"{kind} name {shown(repr(name), 80)} is {_a(name)}, not a "
                "string; name it with a str",
                field=f"{kind}s",
            )
        if not isinstance(value, str):
            raise UsageError(
                f"{kind} '{shown(name, 80)}' is {_a(value)}, not a string; "
                f"pass its text (e.g. str(value)) in {kind}s",
                field=f"{kind}s",
            )
