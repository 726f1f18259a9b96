"""CI output of ``planrun run``/``resume``: GitHub Actions annotations and job summary
(``GITHUB_ACTIONS=true`` or ``--ci github``), and the ``--junit FILE`` report, read back
with a real JUnit parser (junitparser) and with ``xml.etree``."""

from __future__ import annotations

import re
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from ._cli import PLANRUN, clean_env, planrun, read_events, sh, wait_until, write_json

SECRET = "hunter2-very-secret"  # noqa: S105 - a test value
#: A step name with every character GitHub's command syntax and Markdown act on.
NASTY_NAME = "bad | 100%, a::b\nsecond line <b>`x`</b>"
#: A log line with the same, and an HTML tag that must not reach the summary as HTML.
NASTY_LINE = "boom | 50% :: <script>alert(1)</script> `tick` @team"
#: Bytes a step may print that XML cannot carry: NUL, other C0 controls, ESC, and
#: invalid UTF-8.
CONTROL_SCRIPT = r"printf 'ctl\000\001\033[31mred\377\376 end\n'"


def _plan() -> dict[str, Any]:
    """A plan with a succeeded, a failed (critical, the run continues), a timed-out
    (non-critical), a skipped and a failed non-critical step."""
    return {
        "plan_id": "ci-demo",
        "steps": [
            sh("ok", "echo all good"),
            sh(
                "bad",
                f"{CONTROL_SCRIPT}; echo '{NASTY_LINE}'; echo token=$TOKEN; exit 3",
                name=NASTY_NAME,
                on_failure="continue",
            ),
            sh("slow", "echo started; sleep 30", timeout_sec=0.5, critical=False),
            sh("after", "echo never", depends_on=["slow"]),
            sh("flaky", "echo nope; exit 7", critical=False),
        ],
    }


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    plan = write_json(tmp_path / "plan.json", _plan())
    return planrun(
        "run",
        plan,
        "--secret",
        "TOKEN",
        "--run-id",
        "r1",
        *args,
        cwd=tmp_path,
        env=clean_env(TOKEN=SECRET, **env),
    )


def _unescape(text: str) -> str:
    """What GitHub's runner makes of an escaped workflow-command value."""
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def _annotations(stdout: str) -> list[tuple[dict[str, str], str]]:
    """``(properties, message)`` of each ``::error`` command in ``stdout``, parsed the
    way the runner does (properties up to the first ``::``, split on ``,`` and ``=``)."""
    found = []
    for line in stdout.splitlines():
        if not line.startswith("::error"):
            continue
        head, _, data = line[len("::error ") :].partition("::")
        props = dict(p.split("=", 1) for p in head.split(","))
        found.append(({k: _unescape(v) for k, v in props.items()}, _unescape(data)))
    return found


def test_github_mode_annotates_failed_steps_and_appends_a_job_summary(tmp_path: Path) -> None:
    """With GITHUB_ACTIONS=true: one ``::error`` per failed/timed-out step (title names
    the step, message has state, exit code, log lines), escaped so a ``%``, ``,``,
    ``::`` or newline in them survives; the summary is APPENDED to $GITHUB_STEP_SUMMARY
    with a table that Markdown/HTML in a step's text cannot break; no secret anywhere."""
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step's summary\n", encoding="utf-8")
    result = _run(tmp_path, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 1, result.stderr
    found = _annotations(result.stdout)
    assert [p["title"] for p, _ in found] == [
        f"planrun step bad ({NASTY_NAME}) failed",
        "planrun step slow timed_out (non-critical)",
        "planrun step flaky failed (non-critical)",
    ]
    assert list(found[0][0]) == ["title"]  # the name's ',' and '::' did not split it
    bad_message = found[0][1]
    assert bad_message.startswith("bad: failed, exit code 3\n"), bad_message
    assert NASTY_LINE in bad_message.splitlines()
    assert r"ctl\x00\x01\x1b[31mred" in bad_message  # controls shown, not sent raw
    assert "token=***" in bad_message
    assert found[1][1].startswith("slow: timed_out, ")
    assert "started" in found[1][1]
    assert "exit code 7" in found[2][1]
    assert SECRET not in result.stdout + result.stderr

    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step's summary\n### planrun: run r1 failed\n"), text
    assert SECRET not in text
    assert "**plan**: ci-demo" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| step | state | attempts | duration | exit code |"
    cells = {r.split(" | ")[0][2:]: r for r in rows[1:]}
    assert list(cells) == ["ok", "bad", "slow", "after", "flaky"]
    for row in rows:  # five cells: nothing a step said added a column
        assert len(re.findall(r"(?<!\\)\|", row)) == 6, row
    assert re.fullmatch(r"\| bad \| failed \| 1/1 \| \d+\.\ds \| 3 \|", cells["bad"])
    assert "| after | skipped |  |  |  |" in rows
    # The step's own words are shown, never interpreted.
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>" not in text
    assert "@team" not in text  # no @mention of anyone from a step's log
    assert "second line" in text
    assert f"bad ({NASTY_NAME.splitlines()[0]}" not in text  # the name's '|' is escaped


def test_ci_none_and_ci_github_override_the_environment(tmp_path: Path) -> None:
    """``--ci none`` under GITHUB_ACTIONS=true writes no annotation and no summary;
    ``--ci github`` outside Actions annotates, and with no $GITHUB_STEP_SUMMARY skips
    the summary quietly."""
    summary = tmp_path / "summary.md"
    off = _run(tmp_path, "--ci", "none", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert off.returncode == 1, off.stderr
    assert "::error" not in off.stdout + off.stderr
    assert not summary.exists()

    (tmp_path / ".planrun").rename(tmp_path / "old-state")
    on = _run(tmp_path, "--ci", "github")
    assert on.returncode == 1, on.stderr
    assert len(_annotations(on.stdout)) == 3
    assert "summary" not in on.stderr

    (tmp_path / ".planrun").rename(tmp_path / "old-state-2")
    auto = _run(tmp_path)  # auto, and not under GitHub Actions
    assert auto.returncode == 1, auto.stderr
    assert "::error" not in auto.stdout


def test_an_unwritable_job_summary_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    """A $GITHUB_STEP_SUMMARY that cannot be written: a one-line warning naming it,
    no traceback (planrun() checks), and the run's own exit code."""
    plan = write_json(tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("a", "true")]})
    missing = tmp_path / "no-such-dir" / "summary.md"
    result = planrun(
        "run",
        plan,
        cwd=tmp_path,
        env=clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(missing)),
    )
    assert result.returncode == 0, result.stderr
    assert f"warning: cannot write the job summary to {missing}" in result.stderr


def _case(suite: TestSuite, name: str) -> TestCase:
    matches = [case for case in suite if case.name == name]
    assert len(matches) == 1, [case.name for case in suite]
    return matches[0]


def test_junit_report_parses_with_one_testcase_per_step(tmp_path: Path) -> None:
    """``--junit``: one testcase per step (classname = plan id, name = step id), a
    <failure> with state and exit code and the log tail for failed/timed-out steps,
    <skipped> for a skipped one, the counts on the suite; control characters and
    invalid UTF-8 from a step do not stop a parser; the secret is not in the file."""
    report = tmp_path / "out" / "report.xml"
    report.parent.mkdir()
    result = _run(tmp_path, "--junit", str(report))
    assert result.returncode == 1, result.stderr
    data = report.read_bytes()
    assert SECRET.encode() not in data
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.xml"]  # no temp left
    root = ET.fromstring(data)  # noqa: S314 - our own report; a strict XML 1.0 parser
    assert root.tag == "testsuites"
    (suite_element,) = root.iter("testsuite")
    assert [c.get("name") for c in suite_element.iter("testcase")] == [
        "ok",
        "bad",
        "slow",
        "after",
        "flaky",
    ]
    assert {k: suite_element.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "3",
        "errors": "0",
        "skipped": "1",
    }

    xml = JUnitXml.fromfile(str(report))
    suites = list(xml)  # <testsuites> around one <testsuite>
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "ci-demo"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 3, 0, 1)
    assert suite.hostname
    assert suite.timestamp
    assert suite.time is not None
    assert suite.time > 0
    assert {case.classname for case in suite} == {"ci-demo"}

    ok = _case(suite, "ok")
    assert ok.is_passed
    assert ok.system_out == "all good"
    bad = _case(suite, "bad")
    (failure,) = bad.result
    assert isinstance(failure, Failure)
    assert failure.message == "failed, exit code 3"
    assert failure.text is not None
    assert NASTY_LINE in failure.text
    assert "token=***" in failure.text
    assert r"ctl\x00\x01\x1b[31mred" in failure.text
    assert "\ufffd\ufffd end" in failure.text  # invalid UTF-8 shown as U+FFFD
    assert bad.system_out is not None
    assert NASTY_LINE in bad.system_out
    slow = _case(suite, "slow")
    (timeout,) = slow.result
    assert isinstance(timeout, Failure)
    assert timeout.message is not None
    assert timeout.message.startswith("timed_out, ")
    assert timeout.message.endswith(", non-critical")
    assert slow.time >= 0.4
    (skipped,) = _case(suite, "after").result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "skipped, dependency 'slow' timed_out"
    (flaky,) = _case(suite, "flaky").result
    assert isinstance(flaky, Failure)
    assert flaky.message == "failed, exit code 7, non-critical"


def test_junit_report_is_written_when_the_run_is_cancelled(tmp_path: Path) -> None:
    """SIGINT mid-run: planrun exits 130 and the report is there: the running step as an
    <error> (cancelled while it ran), the one that never started as <skipped>."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "cancel-me",
            "steps": [sh("long", "echo begun; sleep 60"), sh("next", "true", depends_on=["long"])],
        },
    )
    report = tmp_path / "report.xml"
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        proc = subprocess.Popen(
            [*PLANRUN, "run", str(plan), "--run-id", "c1", "--junit", str(report)],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:

        def begun() -> bool:
            log = tmp_path / ".planrun" / "runs" / "c1" / "logs" / "long.1.log"
            started = any(
                e["type"] == "attempt_started" for e in read_events(tmp_path / ".planrun", "c1")
            )
            return started and log.exists() and b"begun" in log.read_bytes()

        assert wait_until(begun, timeout=20), (tmp_path / "err.txt").read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in (tmp_path / "err.txt").read_text()
    ET.parse(report)  # noqa: S314 - our own report
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert isinstance(suite, TestSuite)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (2, 0, 1, 1)
    (error,) = _case(suite, "long").result
    assert isinstance(error, Error)
    assert error.message is not None
    assert error.message.startswith("cancelled")
    assert _case(suite, "long").system_out == "begun"
    (skipped,) = _case(suite, "next").result
    assert isinstance(skipped, Skipped)
    assert skipped.message is not None
    assert "never started" in skipped.message


@pytest.mark.parametrize("command", ["run", "resume"])
def test_junit_path_in_a_missing_directory_is_a_usage_error_before_the_run(
    tmp_path: Path, command: str
) -> None:
    """``--junit missing/r.xml``: exit 2 with a message naming the directory, and no run
    was started (no state dir is made)."""
    plan = write_json(tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("a", "true")]})
    target = "run-id-that-does-not-matter" if command == "resume" else str(plan)
    result = planrun(command, target, "--junit", tmp_path / "missing" / "r.xml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"directory {tmp_path / 'missing'} does not exist" in result.stderr
    assert not (tmp_path / ".planrun").exists()


def test_junit_on_resume_reports_every_step_of_the_run(tmp_path: Path) -> None:
    """``resume --junit``: the report holds the whole run: the step kept from the first
    session (with its time) and the one the resume reran."""
    marker = tmp_path / "fixed"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "res",
            "steps": [
                sh("first", "echo one"),
                sh("second", f"test -e {marker} || exit 4", depends_on=["first"]),
            ],
        },
    )
    failed = planrun("run", plan, "--run-id", "r9", "--junit", tmp_path / "a.xml", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "a.xml"))))
    assert isinstance(suite, TestSuite)
    assert (suite.tests, suite.failures) == (2, 1)

    marker.touch()
    resumed = planrun("resume", "r9", "--junit", tmp_path / "b.xml", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "b.xml"))))
    assert isinstance(suite, TestSuite)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (2, 0, 0, 0)
    assert [case.name for case in suite] == ["first", "second"]
    assert _case(suite, "first").system_out == "one"
    assert all(case.is_passed for case in suite)


def test_junit_on_a_resume_with_nothing_to_rerun_still_writes_the_report(
    tmp_path: Path,
) -> None:
    """A CI job that resumes a run which already succeeded still gets its report (the
    upload step after it would fail on a missing file)."""
    plan = write_json(tmp_path / "plan.json", {"plan_id": "done", "steps": [sh("a", "echo hi")]})
    assert planrun("run", plan, "--run-id", "d1", cwd=tmp_path).returncode == 0
    result = planrun("resume", "d1", "--junit", tmp_path / "r.xml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nothing to rerun" in result.stderr
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "r.xml"))))
    assert isinstance(suite, TestSuite)
    assert [(case.name, case.is_passed, case.system_out) for case in suite] == [("a", True, "hi")]
