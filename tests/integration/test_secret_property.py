"""Property: whatever the secret (4-64 characters, any of them), a real run through
``run_plan`` stores events that all decode, with every id, path and exit code intact.

The secrets are random text (JSON and regex metacharacters, unicode) and fragments of
the record's own structure (field names, JSON punctuation, parts of the paths), which
are the ones that used to corrupt it.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planrun import PlanError, RunState, UsageError, run_plan
from planrun.events import AttemptFinished, AttemptStarted, StepFinished, decode_event

from .helpers import make_plan, sh_step

RUN_ID = "r-prop-1"

#: Pieces of what planrun stores: a secret equal to one of them must change nothing.
STRUCTURE = [
    '"step_id"',
    '"type":"',
    "run_started",
    "step_finished",
    "exit_code",
    '":1,"',
    '":0,"',
    "null",
    "true",
    "runs",
    "logs",
    ".log",
    "/tmp",
    "r-prop",
    "prop-1",
    "work.1",
    "state",
    '3,"s',
]

SECRETS = st.one_of(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        min_size=4,
        max_size=64,
    ),
    st.text(alphabet="\"\\{}[]:,.*+?()|^$/ \n\t'", min_size=4, max_size=16),
    st.sampled_from(STRUCTURE),
)


#: Prints the secret to the log and passes it as output ``k`` (the multi-line form, so
#: any character can be in it).
WORK = (
    'printf "out: %s\\n" "$TOKEN"; '
    'printf "k<<END_OF_K_7f3a\\n%s\\nEND_OF_K_7f3a\\n" "$TOKEN" >> "$PLANRUN_OUTPUT"'
)


def _plan() -> dict[str, object]:
    return make_plan(
        [sh_step("work", WORK), sh_step("fail", "exit 3", depends_on=["work"])],
        plan_id="prop",
    )


def _check(secret: str) -> None:
    with tempfile.TemporaryDirectory(prefix="prop-") as tmp:
        state = Path(tmp) / "state"
        plan = _plan()
        result = anyio.run(
            lambda: run_plan(plan, state_dir=state, run_id=RUN_ID, secrets={"TOKEN": secret}),
            backend="asyncio",
        )
        assert result.state is RunState.FAILED
        assert result.run_id == RUN_ID
        assert set(result.steps) == {"work", "fail"}
        assert result.steps["fail"].exit_code == 3
        assert result.steps["work"].exit_code == 0
        log_dir = state.resolve() / "runs" / RUN_ID / "logs"
        for step in ("work", "fail"):
            (attempt,) = result.steps[step].attempts
            assert attempt.log_path == str(log_dir / f"{step}.1.log")

        lines = (state / "runs" / RUN_ID / "events.jsonl").read_bytes().splitlines()
        con = sqlite3.connect(state / "runs.db")
        try:
            bodies = [r[0] for r in con.execute("SELECT body FROM events ORDER BY seq")]
            attempts = con.execute(
                "SELECT run_id, step_id, attempt, exit_code, log_path FROM attempts "
                "ORDER BY step_id"
            ).fetchall()
            steps = con.execute(
                "SELECT run_id, step_id, exit_code FROM steps ORDER BY position"
            ).fetchall()
            runs = con.execute("SELECT run_id, plan_id, exit_code FROM runs").fetchall()
        finally:
            con.close()
        assert [b.encode() for b in bodies] == lines
        events = [decode_event(line) for line in lines]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert {e.run_id for e in events} == {RUN_ID}
        for event, line in zip(events, lines, strict=True):
            assert isinstance(json.loads(line), dict)  # plain JSON too
            if isinstance(event, AttemptStarted):
                assert event.log_path == str(log_dir / f"{event.step_id}.1.log")
            if isinstance(event, AttemptFinished | StepFinished):
                assert event.exit_code == {"work": 0, "fail": 3}[event.step_id]
        assert attempts == [
            (RUN_ID, "fail", 1, 3, str(log_dir / "fail.1.log")),
            (RUN_ID, "work", 1, 0, str(log_dir / "work.1.log")),
        ]
        assert steps == [(RUN_ID, "work", 0), (RUN_ID, "fail", 3)]
        assert runs == [(RUN_ID, "prop", 1)]
        # The step's output reached the log masked; its output key is intact.
        assert "***" in (log_dir / "work.1.log").read_text(encoding="utf-8", errors="replace")
        assert list(result.steps["work"].outputs or {}) == ["k"]


@settings(
    max_examples=30,
    deadline=None,
    # The autouse fixture that kills leftover steps runs once for all examples: fine.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(secret=SECRETS)
def test_random_secrets_never_corrupt_the_record(secret: str) -> None:
    """Every stored event decodes; run id, step ids, log paths and exit codes intact."""
    _check(secret)


def test_run_plan_refuses_short_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_plan`` refuses a secret of 1-3 characters before anything is written:
    ``UsageError`` for one given directly, ``PlanError`` (at ``$.secrets[0]``) for a
    plan secret read from the environment. Neither message holds the value."""
    with tempfile.TemporaryDirectory(prefix="prop-") as tmp:
        state = Path(tmp) / "state"
        plan = _plan()
        with pytest.raises(UsageError, match="secret 'TOKEN' is shorter than 4 characters"):
            anyio.run(lambda: run_plan(plan, state_dir=state, secrets={"TOKEN": "ab"}))
        monkeypatch.setenv("TOKEN", "xyz")
        with pytest.raises(PlanError) as caught:
            anyio.run(lambda: run_plan({**plan, "secrets": ["TOKEN"]}, state_dir=state))
        assert caught.value.problems[0].path == "$.secrets[0]"
        assert "xyz" not in str(caught.value)
        assert not state.exists()
