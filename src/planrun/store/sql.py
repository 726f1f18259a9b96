"""SQL statements of the run store, as data.

Parameters are named (``:name``, bound from a dict or a struct's fields) in every
statement with more than two; the short ones keep ``?``. A set of ids is one JSON
array parameter read with ``json_each`` (no SQL built from the number of ids).
"""

from __future__ import annotations

import os

SCHEMA_VERSION = 8
#: Read through this module's loader, which finds package data wherever the package
#: is (a directory or a zip): ``importlib.resources`` would do the same, importing
#: ~5 ms of modules (zipfile, tempfile) on every start of a run.
SCHEMA = __loader__.get_data(  # type: ignore[name-defined]
    os.path.join(os.path.dirname(__file__), "schema.sql")
).decode("utf-8")
#: The schema as single statements (run one by one inside one transaction).
SCHEMA_STATEMENTS = [
    statement.strip()
    for statement in "\n".join(
        line for line in SCHEMA.splitlines() if not line.lstrip().startswith("--")
    ).split(";")
    if statement.strip()
]
#: Statements that take a store from version N-1 to N (1: the schema above).
MIGRATIONS: dict[int, list[str]] = {
    1: SCHEMA_STATEMENTS,
    # owner_kind: 'cli' (cancels on SIGTERM, so `planrun cancel` works) or 'api'.
    2: ["ALTER TABLE runs ADD COLUMN owner_kind TEXT NOT NULL DEFAULT 'api'"],
    # Run locks (globals.lock) were rows here until they became machine-wide flock
    # files (planrun.locks); the table stays so migrations keep their numbers.
    3: [
        """CREATE TABLE IF NOT EXISTS locks (
            name TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            owner_pid INTEGER NOT NULL,
            owner_start_time INTEGER,
            owner_host TEXT NOT NULL,
            acquired_at TEXT NOT NULL
        )"""
    ],
    # The owner's boot id: after a reboot its pid means nothing.
    4: ["ALTER TABLE runs ADD COLUMN owner_boot_id TEXT"],
    # Durable runs: the plan as run (for resume), secret names, a heartbeat, how many
    # times the run was resumed; step outputs (masked) and which keys were masked.
    5: [
        "ALTER TABLE runs ADD COLUMN plan_json TEXT",
        "ALTER TABLE runs ADD COLUMN secret_names TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE runs ADD COLUMN heartbeat_at TEXT",
        "ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE steps ADD COLUMN outputs TEXT",
        "ALTER TABLE steps ADD COLUMN masked_outputs TEXT",
    ],
    # The executor's short name, from run_started/run_resumed (NULL: not recorded).
    6: ["ALTER TABLE runs ADD COLUMN executor TEXT"],
    # Sub-plans: a child run names the run and step that started it (NULL: a top run).
    7: [
        "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
        "ALTER TABLE runs ADD COLUMN parent_step_id TEXT",
        "CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id)",
        "ALTER TABLE attempts ADD COLUMN child_run_id TEXT",
    ],
    # Triggers (`planrun serve`): what started a run (JSON; NULL: started by hand), the
    # last slot each trigger of a plan fired (so a restart never fires one twice), and
    # the index `list --plan` and retention read by.
    8: [
        "ALTER TABLE runs ADD COLUMN trigger TEXT",
        """CREATE TABLE IF NOT EXISTS trigger_state (
            plan_key    TEXT NOT NULL,
            trigger_key TEXT NOT NULL,
            last_slot   TEXT,
            state       TEXT,
            updated_at  TEXT NOT NULL,
            PRIMARY KEY (plan_key, trigger_key)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS runs_by_plan ON runs (plan_id, started_at)",
    ],
}
ABANDON_RUN = """
UPDATE runs SET state = 'cancelled', exit_code = :exit_code, ended_at = :now, reason = :reason
WHERE run_id = :run_id AND state = 'running'
"""
ABANDON_STEPS = """
UPDATE steps SET state = 'cancelled', reason = ? WHERE run_id = ? AND state = 'pending'
"""
CRASH_RUN = """
UPDATE runs SET state = 'crashed', ended_at = :now, reason = :reason, last_seq = :seq
WHERE run_id = :run_id AND state = 'running'
"""
CRASH_STEPS = """
UPDATE steps SET state = 'crashed', ended_at = :now, reason = :reason
WHERE run_id = :run_id AND state = 'running'
"""
CRASH_ATTEMPTS = """
UPDATE attempts SET state = 'crashed', ended_at = ? WHERE run_id = ? AND state = 'running'
"""

BUSY_TIMEOUT_SEC = 5.0
ENABLE_WAL = "PRAGMA journal_mode=WAL"
PRAGMAS = (
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SEC * 1000)}",
    "PRAGMA foreign_keys=ON",
)
#: ``synchronous`` by durability (planrun.options.Durability). In WAL mode FULL syncs
#: the WAL at every commit (a commit survives power loss), except a run's event
#: batches, which are committed NORMAL and synced at a pace (walsync.py); NORMAL only
#: at checkpoints (a commit survives a crash of the process, not necessarily of the
#: machine).
SYNCHRONOUS = {"full": "PRAGMA synchronous=FULL", "normal": "PRAGMA synchronous=NORMAL"}

INSERT_RUN = """
INSERT INTO runs (run_id, plan_id, plan_path, state, variables, started_at, owner_pid,
                  owner_start_time, owner_host, owner_kind, step_count, owner_boot_id,
                  plan_json, secret_names, heartbeat_at, parent_run_id, parent_step_id)
VALUES (:run_id, :plan_id, :plan_path, 'running', :variables, :started_at, :owner_pid,
        :owner_start_time, :owner_host, :owner_kind, :step_count, :owner_boot_id,
        :plan_json, :secret_names, :started_at, :parent_run_id, :parent_step_id)
"""
CLAIM_RUN = """
UPDATE runs SET state = 'running', ended_at = NULL, exit_code = NULL, reason = NULL,
    owner_pid = :owner_pid, owner_start_time = :owner_start_time, owner_host = :owner_host,
    owner_kind = :owner_kind, owner_boot_id = :owner_boot_id, heartbeat_at = :now,
    variables = :variables, plan_json = :plan_json, secret_names = :secret_names,
    resumes = resumes + 1
WHERE run_id = :run_id AND state != 'running'
"""
RESUME_STEP = """
UPDATE steps SET state = 'pending', exit_code = NULL, reason = NULL, started_at = NULL,
    ended_at = NULL, outputs = NULL, masked_outputs = NULL
WHERE run_id = ? AND step_id = ?
"""
UPSERT_PLAN_STEP = """
INSERT INTO steps (run_id, step_id, position, name, state)
VALUES (:run_id, :step_id, :position, :name, 'pending')
ON CONFLICT (run_id, step_id) DO UPDATE SET position = excluded.position, name = excluded.name
"""
#: What a claim (resume) or a crash mark checks first.
SELECT_RUN_HEAD = "SELECT state, last_seq, owner_pid, owner_host FROM runs WHERE run_id = ?"
#: ``(run_id, state)`` of the runs among the JSON array of ids ``?``.
SELECT_RUN_STATES = """
SELECT run_id, state FROM runs WHERE run_id IN (SELECT value FROM json_each(?))
"""
UPDATE_STEP_COUNT = """
UPDATE runs SET step_count = (SELECT COUNT(*) FROM steps WHERE run_id = ?) WHERE run_id = ?
"""
SELECT_STEP_IDS = "SELECT step_id FROM steps WHERE run_id = ?"
DELETE_STEP = "DELETE FROM steps WHERE run_id = ? AND step_id = ?"
DELETE_STEP_ATTEMPTS = "DELETE FROM attempts WHERE run_id = ? AND step_id = ?"
HEARTBEAT = "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?"
INSERT_STEP = """
INSERT INTO steps (run_id, step_id, position, name, state)
VALUES (:run_id, :step_id, :position, :name, 'pending')
"""
RUN_EXISTS = "SELECT 1 FROM runs WHERE run_id = ?"
SELECT_STEP_POSITIONS = "SELECT step_id, position FROM steps WHERE run_id = ?"
#: Make room after a for_each step for its instances (JSON array ``:ids``): every later
#: row but theirs moves ``:n`` down.
SHIFT_STEPS = """
UPDATE steps SET position = position + :n
WHERE run_id = :run_id AND position > :position
  AND step_id NOT IN (SELECT value FROM json_each(:ids))
"""

INSERT_EVENT = """
INSERT OR IGNORE INTO events (run_id, seq, ts, type, step_id, body)
VALUES (:run_id, :seq, :ts, :type, :step_id, :body)
"""
UPSERT_ATTEMPT = """
INSERT INTO attempts (run_id, step_id, attempt, state, exit_code, pid, log_path, started_at,
                      ended_at, duration_sec, error, child_run_id)
VALUES (:run_id, :step_id, :attempt, :state, :exit_code, :pid, :log_path, :started_at,
        :ended_at, :duration_sec, :error, :child_run_id)
ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET
    state = excluded.state,
    exit_code = COALESCE(excluded.exit_code, exit_code),
    pid = COALESCE(excluded.pid, pid),
    log_path = COALESCE(excluded.log_path, log_path),
    started_at = COALESCE(started_at, excluded.started_at),
    ended_at = COALESCE(excluded.ended_at, ended_at),
    duration_sec = COALESCE(excluded.duration_sec, duration_sec),
    error = COALESCE(excluded.error, error),
    child_run_id = COALESCE(excluded.child_run_id, child_run_id)
"""
UPDATE_STEP = """
UPDATE steps SET
    state = :state,
    attempts = MAX(attempts, :attempts),
    exit_code = COALESCE(:exit_code, exit_code),
    reason = COALESCE(:reason, reason),
    started_at = COALESCE(started_at, :started_at),
    ended_at = COALESCE(:ended_at, ended_at),
    outputs = COALESCE(:outputs, outputs),
    masked_outputs = COALESCE(:masked_outputs, masked_outputs)
WHERE run_id = :run_id AND step_id = :step_id
"""
UPDATE_RUN_SEQ = """
UPDATE runs SET last_seq = MAX(last_seq, :seq), heartbeat_at = :ts WHERE run_id = :run_id
"""
SET_RUN_EXECUTOR = """
UPDATE runs SET executor = :executor, trigger = COALESCE(:trigger, trigger) WHERE run_id = :run_id
"""
FINISH_RUN = """
UPDATE runs SET state = :state, exit_code = :exit_code, reason = :reason, ended_at = :ended_at
WHERE run_id = :run_id
"""

# Every runs column but plan_json (large; read only by resume: SELECT_PLAN_JSON).
SELECT_RUNS = """
SELECT r.run_id, r.plan_id, r.plan_path, r.state, r.variables, r.started_at, r.ended_at,
       r.exit_code, r.reason, r.owner_pid, r.owner_start_time, r.owner_host, r.step_count,
       r.last_seq, r.owner_kind, r.owner_boot_id, r.secret_names, r.heartbeat_at, r.resumes,
       r.executor, r.parent_run_id, r.parent_step_id, r.trigger,
       (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id
        AND s.state NOT IN ('pending', 'running')) AS steps_done
FROM runs r
"""
#: The runs in state ``:state`` among the JSON array of ids ``:run_ids``.
SELECT_RUNS_IN_STATE = SELECT_RUNS + (  # noqa: S608 - constants only, no input
    " WHERE r.state = :state AND r.run_id IN (SELECT value FROM json_each(:run_ids))"
)
#: The child runs of run ``?`` (``uses`` steps), oldest first.
SELECT_PLAN_JSON = "SELECT plan_json FROM runs WHERE run_id = ?"
# Just the run handlers of the plan (their ids say which steps are handlers); a plan
# without the key is not parsed (instr is a plain scan, json_extract parses it all).
SELECT_HANDLERS = """
SELECT CASE WHEN instr(plan_json, '"handlers":') > 0
            THEN json_extract(plan_json, '$.handlers') END AS handlers
FROM runs WHERE run_id = ?
"""
SELECT_STEPS = "SELECT * FROM steps WHERE run_id = ? ORDER BY position"
SELECT_ATTEMPTS = "SELECT * FROM attempts WHERE run_id = ? ORDER BY step_id, attempt"
SELECT_EVENTS = "SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
#: At most ``?`` of them (-1: all): a page of a long run.
SELECT_EVENTS_PAGE = SELECT_EVENTS + " LIMIT ?"
#: Steps by state: ``show``'s summary of a large run.
COUNT_STEPS_BY_STATE = "SELECT state, COUNT(*) AS n FROM steps WHERE run_id = ? GROUP BY state"
#: The first ``?`` steps in plan order (of any state, or of the states in a JSON list).
SELECT_FIRST_STEPS = "SELECT * FROM steps WHERE run_id = ? ORDER BY position LIMIT ?"
SELECT_FIRST_STEPS_IN = """
SELECT * FROM steps WHERE run_id = ? AND state IN (SELECT value FROM json_each(?))
ORDER BY position LIMIT ?
"""
#: The attempts of the steps in a JSON list of step ids.
SELECT_ATTEMPTS_OF = """
SELECT * FROM attempts WHERE run_id = ? AND step_id IN (SELECT value FROM json_each(?))
ORDER BY step_id, attempt
"""
#: Every attempt of a run in the order of its steps (to stream them beside the steps).
SELECT_ATTEMPTS_BY_POSITION = """
SELECT a.*, s.position AS position FROM attempts a
JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id
WHERE a.run_id = ? ORDER BY s.position, a.attempt
"""

# --- retention (planrun.prune) ------------------------------------------------------
#: The top-level runs (and children whose parent row is gone), as retention sees them.
SELECT_PRUNE_CANDIDATES = """
SELECT r.run_id, r.plan_id, r.state, r.started_at, r.ended_at, r.owner_pid,
       r.owner_start_time, r.owner_host, r.owner_boot_id
FROM runs r
WHERE (r.parent_run_id IS NULL
       OR NOT EXISTS (SELECT 1 FROM runs p WHERE p.run_id = r.parent_run_id))
"""
SELECT_PRUNE_CANDIDATES_OF_PLAN = SELECT_PRUNE_CANDIDATES + " AND r.plan_id = ?"
#: ``(root, run_id, state)`` of each run in the trees (a run, its child runs, theirs...)
#: of the JSON array of root ids ``?``.
SELECT_RUN_TREES = """
WITH RECURSIVE tree(root, run_id) AS (
    SELECT value, value FROM json_each(?)
    UNION
    SELECT t.root, r.run_id FROM runs r JOIN tree t ON r.parent_run_id = t.run_id
)
SELECT t.root, t.run_id, r.state FROM tree t JOIN runs r ON r.run_id = t.run_id
"""
#: Every row of the runs in the JSON array ``?``, children's tables first (steps
#: reference runs).
DELETE_RUN_ROWS = [
    f"DELETE FROM {table} WHERE run_id IN (SELECT value FROM json_each(?))"  # noqa: S608
    for table in ("events", "attempts", "steps", "runs")
]
#: Which of the JSON array of ids ``?`` the store has a run for.
SELECT_KNOWN_RUN_IDS = "SELECT run_id FROM runs WHERE run_id IN (SELECT value FROM json_each(?))"
