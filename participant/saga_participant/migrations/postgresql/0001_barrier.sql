-- saga_participant barrier schema, version 1 (PostgreSQL 11 or later).
-- Apply once per database, before the participant starts:  psql "$DATABASE_URL" -f 0001_barrier.sql
-- or call PostgresStore.migrate(), which runs this file (idempotent: every statement is IF NOT EXISTS).
--
-- saga_barrier: one row per (scope, saga, step, action). state 'claimed' = a delivery is at work since
-- at_epoch; 'done' = answered (status, body = the answer's JSON text, replayed for the same
-- Idempotency-Key); 'blocked' = an execute that must never run, its step having been compensated first.
-- saga_effect: the business effects actually applied, in the order they were recorded.
-- Transactions lock one (scope, saga, step) with pg_advisory_xact_lock(hashtextextended(...)).

CREATE TABLE IF NOT EXISTS saga_barrier (
    scope           text             NOT NULL,
    saga_id         text             NOT NULL,
    step            text             NOT NULL,
    action          text             NOT NULL CHECK (action IN ('execute', 'compensate')),
    state           text             NOT NULL CHECK (state IN ('claimed', 'done', 'blocked')),
    idempotency_key text             NOT NULL,
    at_epoch        double precision NOT NULL,
    status          integer,
    body            text,
    PRIMARY KEY (scope, saga_id, step, action)
);

CREATE TABLE IF NOT EXISTS saga_effect (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope           text             NOT NULL,
    saga_id         text             NOT NULL,
    step            text             NOT NULL,
    action          text             NOT NULL CHECK (action IN ('execute', 'compensate')),
    idempotency_key text             NOT NULL,
    at_epoch        double precision NOT NULL
);

CREATE INDEX IF NOT EXISTS saga_effect_by_saga ON saga_effect (scope, saga_id, seq);
