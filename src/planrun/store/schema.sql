-- planrun run store, schema version 1 (later versions: MIGRATIONS in sql.py). No ";" inside comments:
-- the statements are split on it.
-- Times are UTC ISO 8601 strings; states are the lowercase enum values.
CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,
    plan_id           TEXT NOT NULL,
    plan_path         TEXT,
    state             TEXT NOT NULL,
    variables         TEXT NOT NULL,      -- JSON object
    started_at        TEXT NOT NULL,
    ended_at          TEXT,
    exit_code         INTEGER,
    reason            TEXT,
    owner_pid         INTEGER NOT NULL,
    owner_start_time  INTEGER,            -- /proc/<pid>/stat field 22, clock ticks
    owner_host        TEXT NOT NULL,
    step_count        INTEGER NOT NULL,
    last_seq          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);

CREATE TABLE IF NOT EXISTS steps (
    run_id      TEXT NOT NULL REFERENCES runs (run_id),
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    reason      TEXT,
    started_at  TEXT,
    ended_at    TEXT,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS attempts (
    run_id        TEXT NOT NULL,
    step_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    state         TEXT NOT NULL,
    exit_code     INTEGER,
    pid           INTEGER,
    log_path      TEXT,
    started_at    TEXT,
    ended_at      TEXT,
    duration_sec  REAL,
    error         TEXT,
    PRIMARY KEY (run_id, step_id, attempt)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    run_id   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    ts       TEXT NOT NULL,
    type     TEXT NOT NULL,
    step_id  TEXT,
    body     TEXT NOT NULL,                -- the event as JSON, byte-identical to events.jsonl
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
