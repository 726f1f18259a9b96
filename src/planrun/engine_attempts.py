"""One attempt, for the engine: fill in its step references, run it on the executor,
and read what its result means.

The scheduler (``planrun.engine``) decides *when* an attempt runs and what happens
after it; this module holds what an attempt is: its :class:`AttemptSpec`, the task
that runs it under its own cancel scope and reports to the scheduler's inbox, and the
classification of its :class:`ProcessResult`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from . import policy
from .engine_nodes import AttemptDone, EngineConfig, Message, Node
from .masking import Masker
from .model import AttemptState, Step, StepState
from .plan import ArgBinding, ResolvedStep
from .plan.rules import stop_signal
from .ports import AttemptSpec, ChildStarted, Executor, ProcessResult, RunChild
from .subst import StepRef

__all__ = [
    "Bound",
    "Unbound",
    "attempt_spec",
    "classify",
    "failure_reason",
    "lookup",
    "run_attempt",
    "secret_on_command_line",
]

#: A step with its references filled in: (argv, env, cwd).
Bound = tuple[tuple[str, ...], dict[str, str], str | None]


class Unbound(Exception):
    """A step reference has no value (the producer failed, or wrote no such key)."""


def lookup(nodes: Sequence[Node], index: Mapping[str, int], ref: StepRef) -> str:
    """The value of ``${steps.ID.outputs.KEY}`` / ``${steps.ID.exit_code}`` now;
    the reference's default if it has none and carries one, else :class:`Unbound`."""
    try:
        return _value(nodes[index[ref.step_id]], ref)
    except Unbound:
        if ref.default is None:
            raise
        return ref.default


def _value(node: Node, ref: StepRef) -> str:
    if ref.key is None:
        if node.exit_code is None:
            raise Unbound(
                f"'{ref.text}' has no value: step '{ref.step_id}' {node.state.value} "
                "without an exit code"
            )
        return str(node.exit_code)
    if node.state is not StepState.SUCCEEDED:
        raise Unbound(
            f"output '{ref.key}' of step '{ref.step_id}' is missing: "
            f"'{ref.step_id}' {node.state.value}"
        )
    if node.outputs is None or ref.key not in node.outputs:
        raise Unbound(
            f"output '{ref.key}' of step '{ref.step_id}' is missing: the step did not "
            f"write {ref.key}=... to $PLANRUN_OUTPUT"
        )
    return node.outputs[ref.key]


def attempt_spec(cfg: EngineConfig, rs: ResolvedStep, attempt: int, bound: Bound) -> AttemptSpec:
    """What the executor gets for attempt ``attempt`` of ``rs``."""
    argv, env, cwd = bound
    log_path = None
    if cfg.log_dir is not None and rs.step.uses is None:  # a child run has logs of its own
        log_path = str(cfg.log_dir / f"{rs.step.id}.{attempt}.log")
    return AttemptSpec(
        run_id=cfg.run_id,
        step_id=rs.step.id,
        attempt=attempt,
        argv=argv,
        env=env,
        cwd=cwd,
        timeout=rs.timeout,
        kill_grace=cfg.kill_grace,
        log_path=log_path,
        masker=cfg.masker,
        max_log_bytes=rs.max_log_bytes,
        run_key=cfg.run_key,
        hidden_env=cfg.hidden_env,
        output_name=cfg.output_prefix + rs.step.id if cfg.output_prefix else None,
        stop_signal=stop_signal(rs.step.stop_signal),
        resources=rs.step.resources,
    )


def secret_on_command_line(
    masker: Masker | None, rs: ResolvedStep, argv: tuple[str, ...]
) -> str | None:
    """The warning for a step reference whose bound value holds a secret and went
    into argv (validation warns about ``${SECRET}`` there, but an output's value is
    only known now); None if there is none.

    The one place the engine reads ``rs.late`` (the step's reference bindings).
    """
    if not masker:
        return None
    for late in rs.late:
        key = late.index if isinstance(late, ArgBinding) else None
        if key is not None and masker.text(argv[key]) != argv[key]:
            refs = ", ".join(p.text for p in late.pieces if isinstance(p, StepRef))
            where = "command" if key == 0 else f"args[{key - 1}]"
            return (
                f"warning: {refs} holds a secret and is put on the command line "
                f"({where}), which other local users can read (ps, /proc); pass it "
                "in env instead"
            )
    return None


async def run_attempt(
    executor: Executor,
    spec: AttemptSpec,
    node: Node,
    index: int,
    on_started: ChildStarted,
    inbox: MemoryObjectSendStream[Message],
    run_child: RunChild | None = None,
) -> None:
    """Run one attempt under a cancel scope of its own (``node.scope``, so an abort can
    stop just this attempt) and always report its end to ``inbox``: with the result,
    or with None if it was cancelled first. A ``uses`` step's attempt is a child run
    (``run_child``) instead of a process."""
    begin = time.monotonic()
    result: ProcessResult | None = None
    try:
        with anyio.CancelScope() as scope:
            node.scope = scope
            if run_child is not None and node.rs.step.uses is not None:
                result = await run_child(node.rs.step, spec, on_started)
            else:
                result = await executor.run(spec, on_started)
    finally:
        node.scope = None
        inbox.send_nowait(AttemptDone(index, spec.attempt, result, time.monotonic() - begin))


def classify(
    step: Step, result: ProcessResult | None
) -> tuple[AttemptState, int | None, str | None]:
    """An attempt's state, exit code and error from its result (None: cancelled).

    A success whose outputs file could not be used is a failure with that error.
    """
    if result is None:
        return AttemptState.CANCELLED, None, None
    exit_code, error = result.exit_code, result.error
    state = policy.attempt_state(step, exit_code, timed_out=result.timed_out)
    if state is AttemptState.SUCCEEDED and result.output_error is not None:
        state, error = AttemptState.FAILED, result.output_error
    return state, exit_code, error


def failure_reason(state: StepState, exit_code: int | None, timeout: float | None) -> str:
    """The reason recorded for a step that ended failed or timed out without an error."""
    if state is StepState.TIMED_OUT:
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    if exit_code is not None and exit_code < 0:
        return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"
