"""The CLI leaves without the interpreter's teardown only when nothing can tell:
``atexit`` handlers still run, output is all there, exit codes are kept, and a
thread that is still working is waited for (through the real CLI entry point)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from ._cli import PY, clean_env, write_json

#: Runs ``main()`` after registering an atexit handler and (with "thread") starting a
#: non-daemon thread that writes its file 0.3 s later.
DRIVER = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from pathlib import Path
    out = Path(sys.argv[1])
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    if sys.argv[2] == "thread":
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
    sys.argv = ["planrun", *sys.argv[3:]]
    from planrun.cli.app import main
    main()
    """
)


def _drive(tmp_path: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-c", DRIVER, str(tmp_path), mode, *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )


def test_atexit_handlers_run_and_the_exit_code_is_kept(tmp_path: Path) -> None:
    plan = write_json(
        tmp_path / "one.json", {"plan_id": "one", "steps": [{"id": "a", "command": "true"}]}
    )
    done = _drive(
        tmp_path, "plain", "run", str(plan), "--plain", "--state-dir", str(tmp_path / "st")
    )
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout.splitlines()[-1]
    assert (tmp_path / "atexit").read_text() == "ran"
    bad = write_json(tmp_path / "bad.json", {"plan_id": "bad", "steps": [{"id": "a"}]})
    (tmp_path / "atexit").unlink()
    refused = _drive(tmp_path, "plain", "validate", str(bad))
    assert refused.returncode == 2
    assert "bad.json" in refused.stdout + refused.stderr
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_thread_still_working_is_waited_for(tmp_path: Path) -> None:
    done = _drive(tmp_path, "thread", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
