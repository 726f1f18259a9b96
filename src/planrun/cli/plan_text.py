"""What ``run --dry-run`` and ``resume --explain`` print for a person (moved out of
``app.py`` to keep it under the 500-line rule)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..graph import levels
from ..model import Plan, Step, base_id
from ..plan import ResolvedStep
from ..plan.rules import signal_name
from ..prepare import PreparedRun
from ..resume import Action
from ..subst import StepRef
from .handler_text import print_handlers
from .trigger_text import plan_triggers_line
from .words import counted

if TYPE_CHECKING:  # the store loads only for resume --explain; options for a dry run
    from rich.console import Console

    from ..options import RunOptions
    from ..resume.load import LoadedResume

__all__ = ["print_dry_run", "print_explain", "print_instances"]


def _on(options: RunOptions) -> str:
    """Where the steps would run, when not locally: ``, on dask tcp://HOST:8786``."""
    from ..options import ExecutorKind  # loaded by now (a dry run): validate needs none

    return "" if options.kind() is ExecutorKind.LOCAL else f", on {options.executor_text()}"


def print_dry_run(console: Console, prepared: PreparedRun, options: RunOptions) -> None:
    """``run --dry-run``: the resolved steps level by level, secrets masked."""
    plan = prepared.plan
    masker = prepared.masker

    def say(text: str) -> None:
        console.print(masker.text(text), markup=False, soft_wrap=True)

    def quote(value: str) -> str:
        # Mask before quoting: shlex would rewrite a secret holding a quote into a
        # form the masker does not know.
        return shlex.quote(masker.text(value))

    by_id = {rs.step.id: rs for rs in prepared.steps}
    tiers = levels({s.id: s.depends_on for s in plan.steps})
    concurrency = options.concurrency(plan)
    say(
        f"plan {plan.plan_id}: {counted(len(plan.steps), 'step')} in "
        f"{counted(len(tiers), 'level')}, "
        f"max concurrency {concurrency}{_on(options)} (dry run: nothing is written or started)"
    )
    shown = {k: v for k, v in prepared.variables.items() if k != "PLAN_DIR"}
    if shown:
        say("variables: " + " ".join(f"{k}={quote(v)}" for k, v in shown.items()))
    for line in _plan_lines(plan):
        say(line)
    for depth, tier in enumerate(tiers):
        say(f"level {depth}:")
        for step_id in tier:
            rs = by_id[step_id]
            step = rs.step
            say(f"  {step_id}: {_what(rs, quote)}")
            details = [f"secrets {', '.join(step.pass_secrets)}"] if step.pass_secrets else []
            if step.depends_on:
                details.append(f"after {', '.join(step.depends_on)}")
            if step.when.value != "all_success":
                details.append(f"when {step.when.value}")
            if step.if_ is not None:
                details.append(f"if {step.if_}")
            if rs.cwd:
                details.append(f"cwd {rs.cwd}")
            if rs.timeout:
                details.append(f"timeout {rs.timeout:g}s")
            if step.retries:
                details.append(f"retries {step.retries}")
            if step.on_failure.value != "abort":
                details.append(f"on_failure {step.on_failure.value}")
            if not step.critical:
                details.append("non-critical")
            if step.for_each is not None:  # the rendered template, as the step has it
                details.append(f"for_each {quote(_template(rs.for_each or ()))} (one per item)")
            details += _runtime_details(step)
            extra_env = {**plan.globals.env, **step.env}
            if extra_env:
                details.append("env " + " ".join(f"{k}={quote(rs.env[k])}" for k in extra_env))
            if details:
                say(f"      {'; '.join(details)}")
    print_handlers(say, prepared)


def _plan_lines(plan: Plan) -> list[str]:
    """The plan's pools and triggers, a line each (if it has them)."""
    lines = []
    if plan.globals.pools:
        pools = plan.globals.pools.items()
        lines.append("pools: " + ", ".join(f"{k} (at most {n} at once)" for k, n in pools))
    if (triggers := plan_triggers_line(plan)) is not None:
        lines.append(triggers)
    return lines


def _runtime_details(step: Step) -> list[str]:
    """What a step's pool, max_parallel/fail_fast, skip codes and stop signal say."""
    details = []
    if step.pool is not None:
        details.append(f"pool {step.pool}")
    if step.max_parallel is not None:
        details.append(f"max_parallel {step.max_parallel}")
    if step.fail_fast:
        details.append("fail_fast")
    if step.skip_exit_codes:
        details.append("skip on exit " + ", ".join(map(str, step.skip_exit_codes)))
    if step.stop_signal is not None:
        details.append(f"stop with {signal_name(step.stop_signal)}")
    return details


def _what(rs: ResolvedStep, quote: Callable[[str], str]) -> str:
    """What a step runs: its argv, or ``uses PLAN with K=V ...`` for a ``uses`` step
    (its ``env`` holds the ``with`` values)."""
    if rs.step.uses is None:
        return " ".join(map(quote, rs.argv))
    passed = " ".join(f"{k}={quote(v)}" for k, v in rs.env.items())
    return f"uses {quote(rs.argv[0])}" + (f" with {passed}" if passed else "")


def print_explain(console: Console, loaded: LoadedResume) -> None:
    """``resume --explain``: what each step would do and why."""
    run = loaded.run
    choices = loaded.resume.choices
    rerun = sum(c.action is Action.RERUN for c in choices)
    console.print(
        f"run {run.run_id} ({run.state.value}): a resume would rerun {rerun} of "
        f"{len(choices)} steps (nothing is run: --explain)",
        markup=False,
    )
    for change in loaded.changes:
        console.print(f"changed since the run (allowed): {change}", markup=False)
    width = max(len(c.step_id) for c in choices)
    for choice in choices:
        console.print(
            f"  {choice.step_id:<{width}}  {choice.action.value:<5}  {choice.why}", markup=False
        )


def print_instances(console: Console, plan: Plan) -> None:
    """``validate``: the instances each matrix step expanded to, one line per step."""
    groups: dict[str, list[str]] = {}
    for step in plan.steps:
        if base_id(step.id) != step.id:
            groups.setdefault(base_id(step.id), []).append(step.id)
    for base, ids in groups.items():
        console.print(f"  {base}: {counted(len(ids), 'instance')}: {', '.join(ids)}", markup=False)


def _template(pieces: tuple[str | StepRef, ...]) -> str:
    """A template with its variables substituted and its step references as written."""
    return "".join(p if isinstance(p, str) else p.text for p in pieces)
