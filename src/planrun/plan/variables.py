"""The variable and secret rules of a decoded plan, one function each.

``given`` are the variables passed in (``--var``, ``run_plan(variables=...)``) and
``secrets`` the secret names passed besides the plan's own (``--secret``). Every rule
returns the problems it found and never raises; each variable's problem is its own
:class:`Problem` (three bad variables: three problems, each located).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .. import subst
from ..errors import Problem
from ..model import Plan, Step
from .checks import BUILTIN_VARIABLES, VAR_NAME, Indexed, Template, envs
from .text import encodable, shown

__all__ = ["STRICT", "GivenRules", "check_variables", "escaped_for_shell"]

_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"})
_LEADING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The inside of each ``${...}`` that is not the escape ``$${``.
_FORM = re.compile(r"(?<!\$)\$\{([^}]*)\}")
#: A shell's parameter expansion (``X:-default``, ``#X``, ``1``, ``@``), not ours.
_SHELL_FORM = re.compile(
    r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:[-:=+?#%/^,\[].*)?", re.S
)
#: The name a malformed reference starts with (``${X:-y}``, ``${X``): used all the same.
_NAME_AFTER_BRACE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


class GivenRules(msgspec.Struct, frozen=True):
    """How strictly the given variables are checked.

    ``require_values``: a required variable (``null`` default) without a value is an
    error; ``planrun validate`` turns it off, to check a plan's structure before the
    values are known. ``allow_undeclared``: a given variable the plan neither declares
    nor uses is let through (to the steps' environment) instead of being an error.
    ``known``: names accepted as declared besides the plan's own (a resumed run's
    variables, accepted when the run started).
    """

    require_values: bool = True
    allow_undeclared: bool = False
    known: frozenset[str] = frozenset()


#: The rules of a run: every required variable given, no undeclared one.
STRICT = GivenRules()


def check_variables(
    plan: Plan,
    indexed: Indexed,
    parsed: Sequence[Template],
    given: Mapping[str, str],
    secrets: Collection[str] = (),
    rules: GivenRules = STRICT,
    conditions: Sequence[Template] = (),
) -> list[Problem]:
    """Undefined or malformed references, required variables without a value,
    undeclared given variables, secrets that clash, variables spliced into ``sh -c``
    scripts, and shadowed env entries. ``conditions`` name the variables the steps'
    ``if`` use (checked there; here they count as uses). An instance's own names
    (``${matrix.K}``, ``${item}`` in a ``for_each`` step) are checked elsewhere."""
    defined = (
        set(plan.variables) | set(given) | set(BUILTIN_VARIABLES) | set(plan.secrets) | set(secrets)
    )
    secret_names = set(plan.secrets) | set(secrets)
    # By id, as the references are: of two steps sharing an id (an error of its own)
    # the later one counts.
    # Only the steps whose templates are looked at (a reference may be in a script).
    referring = {t.step_id for t in parsed}
    script_at = {s.id: _shell_script_index(s) for _, s in indexed if s.id in referring}
    texts = {t.path: t.text for t in parsed}
    uses = [*parsed, *_names_of_malformed(parsed, texts), *conditions]
    for_each = {s.id for _, s in indexed if s.for_each is not None}
    return [
        *_check_secrets(plan, given, secrets),
        *(_required_without_value(plan, given) if rules.require_values else []),
        *_unusable_values(plan, given),
        *_bad_given_names(given),
        *_undeclared(plan, uses, given, secret_names, rules),
        *_check_references(parsed, defined, secret_names, script_at, texts, for_each),
        *_check_shadowed_env(plan, indexed, defined),
    ]


def _check_secrets(plan: Plan, given: Mapping[str, str], secrets: Collection[str]) -> list[Problem]:
    """Secret names that are invalid or clash with variables or built-ins."""
    problems: list[Problem] = []
    declared = [(f"$.secrets[{i}]", name) for i, name in enumerate(plan.secrets)]
    declared += [(f"--secret {name}", name) for name in secrets if name not in plan.secrets]
    for where, name in declared:
        if not VAR_NAME.match(name):
            problems.append(Problem(shown(where), f"invalid secret name '{shown(name)}'"))
        elif name in BUILTIN_VARIABLES or name in plan.variables or name in given:
            problems.append(
                Problem(
                    where,
                    f"'{name}' is both a secret and a variable",
                    hint="rename one of them: a secret's value never comes from --var",
                )
            )
    return problems + _secret_in_lock_name(plan, set(plan.secrets) | set(secrets))


def _secret_in_lock_name(plan: Plan, secret_names: Collection[str]) -> list[Problem]:
    """Lock names are stored and shown in clear: no secret may feed one."""
    problems: list[Problem] = []
    for path, template in plan.globals.lock_templates():
        with contextlib.suppress(subst.SubstError):
            # dict.fromkeys: each secret once, in order of first use.
            for name in dict.fromkeys(subst.references(template)):
                if name in secret_names:
                    problems.append(
                        Problem(
                            path,
                            f"the lock name uses secret '{name}'",
                            hint="lock names are stored and shown in clear: use a variable",
                        )
                    )
    return problems


def _required_without_value(plan: Plan, given: Mapping[str, str]) -> list[Problem]:
    return [
        Problem(
            f"$.variables.{name}",
            f"variable '{name}' has no default and no value",
            hint=f"pass --var {name}=...",
        )
        for name, default in plan.variables.items()
        if default is None and name not in given
    ]


def _unusable_values(plan: Plan, given: Mapping[str, str]) -> list[Problem]:
    """Values (plan defaults, then the given ones) no program can be passed."""
    values = {k: v for k, v in plan.variables.items() if isinstance(v, str)} | dict(given)
    problems: list[Problem] = []
    for name, value in values.items():
        problem = _bad_value(name, value)
        if problem is not None:
            where = f"--var {shown(name)}" if name in given else f"$.variables.{name}"
            hint = "remove it: it cannot be passed to a program or stored"
            problems.append(Problem(where, problem, hint=hint))
    return problems


def _bad_value(name: str, value: Any) -> str | None:
    """Why a variable's value cannot be passed to a program or stored, if it cannot.

    Plan values were checked by :func:`.read.check_limits`; this is for ``--var`` and
    ``run_plan(variables=...)``, whose undecodable bytes come as lone surrogates.
    """
    if not isinstance(value, str):
        return f"variable '{shown(name)}' is a {type(value).__name__}, not a string"
    if "\0" in value:
        return f"variable '{shown(name)}' contains a NUL byte"
    if not encodable(value):
        return f"variable '{shown(name)}' is not valid UTF-8 (it holds a lone surrogate)"
    return None


def _bad_given_names(given: Mapping[str, str]) -> list[Problem]:
    """Given names that are not names, or name a built-in."""
    problems: list[Problem] = []
    for name in given:
        if not isinstance(name, str) or not VAR_NAME.match(name):
            problems.append(
                Problem(
                    f"--var {shown(name)}",
                    f"invalid variable name '{shown(name)}'",
                    hint="use letters, digits and '_' (not starting with a digit)",
                )
            )
        elif name in BUILTIN_VARIABLES:
            problems.append(Problem(f"--var {name}", f"'{name}' is built in and cannot be set"))
    return problems


def _names_of_malformed(parsed: Iterable[Template], texts: Mapping[str, str]) -> list[Template]:
    """Stand-ins naming what the malformed templates refer to (``${X:-y}``: X), so
    that a variable given for them is not also reported as undeclared."""
    return [
        Template(t.path, t.step_id, tuple(_NAME_AFTER_BRACE.findall(texts[t.path])), ())
        for t in parsed
        if t.error is not None and t.path in texts
    ]


def _undeclared(
    plan: Plan,
    parsed: Iterable[Template],
    given: Mapping[str, str],
    secret_names: Collection[str],
    rules: GivenRules,
) -> list[Problem]:
    """Given variables the plan neither declares nor uses (``${NAME}``): most likely a
    typo, which would otherwise vanish into the steps' environment unnoticed."""
    if rules.allow_undeclared:
        return []
    # A name the plan uses is declared by that use (the format lets ``${X}`` be given
    # with --var alone); built-in, secret and malformed names have rules of their own.
    used = {name for template in parsed for name in template.names if "." not in name}
    candidates = sorted((set(plan.variables) | used | rules.known) - set(BUILTIN_VARIABLES))
    accepted = {*candidates, *BUILTIN_VARIABLES, *secret_names}
    return [
        Problem(
            f"--var {name}",
            f"variable '{name}' is not declared in the plan",
            hint=_undeclared_hint(name, candidates),
        )
        for name in given
        if isinstance(name, str) and VAR_NAME.match(name) and name not in accepted
    ]


def _undeclared_hint(name: str, candidates: Sequence[str]) -> str:
    """Did you mean (case-insensitively, then by difflib), else what the plan declares."""
    folded = {c.casefold(): c for c in candidates}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
    anyway = "or pass --allow-undeclared to put it in the steps' environment anyway"
    if close:
        return f"did you mean '{folded[close[0]]}'? ({anyway})"
    if candidates:
        return f"the plan's variables are {', '.join(candidates)}; {anyway}"
    return f"the plan declares no variables; {anyway}"


def _check_references(
    parsed: Iterable[Template],
    defined: Collection[str],
    secret_names: Collection[str],
    script_at: Mapping[str, int | None],
    texts: Mapping[str, str],
    for_each: Collection[str] = (),
) -> list[Problem]:
    """The rules for each template's ``${NAME}`` references, template by template."""
    problems: list[Problem] = []
    for template in parsed:
        if template.error is not None:
            hint = _shell_form_hint(template, texts.get(template.path))
            problems.append(Problem(template.path, template.error, template.step_id, hint))
            continue
        problems += _undefined(template, defined, template.step_id in for_each)
        spliced = _spliced_into_script(template, script_at)
        if spliced is not None:
            problems.append(spliced)
        on_command_line = _secret_on_command_line(template, secret_names)
        if on_command_line is not None:
            problems.append(on_command_line)
    return problems


def _shell_form_hint(template: Template, text: str | None) -> str | None:
    """For ``${X:-default}`` and other shell forms: how to write the ``${`` so that a
    shell (``sh -c``) expands it, in the exact form to paste."""
    if text is None or template.error is None or "invalid variable name" not in template.error:
        return None
    fixed = escaped_for_shell(text)
    if fixed == text or not any(_SHELL_FORM.fullmatch(f) for f in _FORM.findall(text)):
        return None
    quoted = json.dumps(fixed, ensure_ascii=False)
    hint = (
        "planrun's ${NAME} takes no shell forms such as ${X:-default}; '$${' writes a "
        f"literal '${{', so that a shell (sh -c) expands it itself: {quoted}"
    )
    for inner in _FORM.findall(text):
        lead = _LEADING_NAME.match(inner)
        if lead and inner[lead.end() :].startswith((":-", ":=", "-", "=")):
            hint += (
                f' (or give {lead[0]} a default under "variables": every variable is in '
                f"the step's environment, as ${lead[0]})"
            )
            break
    return hint


def escaped_for_shell(text: str) -> str:
    """``text`` with every ``${`` that is not a valid planrun reference written as
    ``$${`` (a literal ``${``), valid references and existing escapes kept."""
    out: list[str] = []
    i = 0
    while (dollar := text.find("$", i)) >= 0:
        out.append(text[i:dollar])
        if text.startswith("$${", dollar):
            out.append("$${")
            i = dollar + 3
        elif text.startswith("${", dollar):
            end = text.find("}", dollar + 2)
            if end >= 0 and _valid_reference(text[dollar : end + 1]):
                out.append(text[dollar : end + 1])
                i = end + 1
            else:
                out.append("$${")
                i = dollar + 2
        else:
            out.append("$")
            i = dollar + 1
    out.append(text[i:])
    return "".join(out)


def _valid_reference(reference: str) -> bool:
    try:
        subst.parse(reference)
    except subst.SubstError:
        return False
    return True


def _undefined(template: Template, defined: Collection[str], for_each: bool) -> list[Problem]:
    """Names no value is given for (an instance's own names are not variables)."""
    return [
        Problem(
            template.path,
            f"variable '{name}' is not defined",
            template.step_id,
            _undefined_hint(name, defined),
        )
        for name in dict.fromkeys(template.names)
        if name not in defined
        and not (subst.is_instance_name(name) and (name != "item" or for_each))
    ]


def _undefined_hint(name: str, defined: Collection[str]) -> str:
    close = difflib.get_close_matches(name, sorted(defined), n=1)
    if close:
        return f"did you mean '{close[0]}'? (or pass --var {name}=...)"
    return f'pass --var {name}=... or declare it under "variables" (or "secrets")'


def _spliced_into_script(template: Template, script_at: Mapping[str, int | None]) -> Problem | None:
    """A warning for ``${NAME}`` in the script of ``sh -c SCRIPT``."""
    sid = template.step_id
    index = script_at.get(sid) if sid is not None else None
    if not template.names or index is None or not template.path.endswith(f".args[{index}]"):
        return None
    first = template.names[0]
    return Problem(
        template.path,
        f"'${{{first}}}' is spliced into a shell script: a value with quotes or "
        "';' would run as code",
        sid,
        f'use "${first}" instead (every variable is in the step\'s environment)',
        warning=True,
    )


def _secret_on_command_line(template: Template, secret_names: Collection[str]) -> Problem | None:
    """A warning for a secret in argv, which other local users can read."""
    path = template.path
    if ".args[" not in path and not path.endswith(".command"):
        return None
    secret = next((n for n in template.names if n in secret_names), None)
    if secret is None:
        return None
    return Problem(
        path,
        f"secret '{secret}' is put on a command line, which other local users can read (ps, /proc)",
        template.step_id,
        f'read it from the environment instead ("${secret}" in a script)',
        warning=True,
    )


def _shell_script_index(step: Step) -> int | None:
    """Index in ``args`` of the script of ``sh -c SCRIPT`` (None if not such a step)."""
    if step.command is None or os.path.basename(step.command) not in _SHELLS:
        return None
    takes_value = False
    for j, arg in enumerate(step.args):
        if takes_value:  # the value of -o/-O (e.g. "-o pipefail")
            takes_value = False
            continue
        if arg == "--" or not arg.startswith(("-", "+")) or len(arg) < 2:
            return None
        if arg.startswith("--"):
            continue  # long options such as --norc take no value
        letters = arg[1:]
        if "c" in letters and arg[0] == "-":
            return j + 1 if j + 1 < len(step.args) else None
        takes_value = letters[-1] in "oO"
    return None


def _check_shadowed_env(plan: Plan, indexed: Indexed, defined: Collection[str]) -> list[Problem]:
    """Warn about env entries a variable or secret of the same name overrides (they
    come last in a step's environment), unless the entry is just ``${NAME}``."""
    return [
        Problem(
            f"{base}.{key}",
            f"env '{key}' has no effect: the variable '{key}' overrides it "
            "(variables and secrets come last in a step's environment)",
            sid,
            "rename the env entry or the variable",
            warning=True,
        )
        for base, sid, env in envs(plan, indexed)
        for key, value in env.items()
        if key in defined and value != f"${{{key}}}"
    ]
