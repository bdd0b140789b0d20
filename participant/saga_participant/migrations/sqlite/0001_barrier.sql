-- saga_participant barrier schema, version 1 (SQLite 3.24 or later). SQLiteStore applies it when it opens
-- a database; the columns mean what they mean in ../postgresql/0001_barrier.sql.

CREATE TABLE IF NOT EXISTS saga_barrier (
    scope           TEXT    NOT NULL,
    saga_id         TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('execute', 'compensate')),
    state           TEXT    NOT NULL CHECK (state IN ('claimed', 'done', 'blocked')),
    idempotency_key TEXT    NOT NULL,
    at_epoch        REAL    NOT NULL,
    status          INTEGER,
    body            TEXT,
    PRIMARY KEY (scope, saga_id, step, action)
);

CREATE TABLE IF NOT EXISTS saga_effect (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    scope           TEXT    NOT NULL,
    saga_id         TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('execute', 'compensate')),
    idempotency_key TEXT    NOT NULL,
    at_epoch        REAL    NOT NULL
);

CREATE INDEX IF NOT EXISTS saga_effect_by_saga ON saga_effect (scope, saga_id, seq);
