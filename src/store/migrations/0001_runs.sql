-- The run store: one schema for SQLite and PostgreSQL (portable types only).
-- Amounts are TEXT holding exact decimals; times are TEXT in RFC 3339 (UTC).

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,          -- 'shadow' or 'calibration'
    status          TEXT NOT NULL,          -- 'running', 'completed', 'interrupted', 'failed'
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    started_by      TEXT NOT NULL,
    spec_path       TEXT NOT NULL,
    spec_text       TEXT NOT NULL,
    spec_hash       TEXT NOT NULL,
    cohort_path     TEXT NOT NULL,
    cohort_hash     TEXT NOT NULL,
    accounts_total  BIGINT NOT NULL,
    as_of           TEXT NOT NULL,          -- the date waivers are judged against
    stack_versions  TEXT NOT NULL,
    note            TEXT NOT NULL
);

-- The cohort as the run saw it: resume works from here, never from the file again.
CREATE TABLE cohort (
    run_id        TEXT NOT NULL,
    position      BIGINT NOT NULL,
    account_id    TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    partition     TEXT NOT NULL,
    region        TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    period_end    TEXT NOT NULL,
    PRIMARY KEY (run_id, account_id)
);

-- Exactly one outcome per account and run: the primary key makes a second one impossible.
CREATE TABLE outcomes (
    run_id            TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    status            TEXT NOT NULL,        -- 'parity', 'mismatch', 'stack_error'
    diffs_failing     BIGINT NOT NULL,
    waived            BIGINT NOT NULL,
    lines_legacy      BIGINT NOT NULL,
    lines_modern      BIGINT NOT NULL,
    lines_matched     BIGINT NOT NULL,
    lines_mismatched  BIGINT NOT NULL,
    retries           BIGINT NOT NULL,
    error             TEXT NOT NULL,
    finished_at       TEXT NOT NULL,
    delta_order       BIGINT NOT NULL,      -- |largest total delta| x 10^4, truncated: an ordering key only
    PRIMARY KEY (run_id, account_id)
);

-- Per cell and currency, the run's totals, added up exactly as outcomes are stored (one writer
-- per run), so reading a run back never walks every account.
CREATE TABLE cell_totals (
    run_id        TEXT NOT NULL,
    partition     TEXT NOT NULL,
    region        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    legacy_total  TEXT NOT NULL,
    modern_total  TEXT NOT NULL,
    PRIMARY KEY (run_id, partition, region, currency)
);

CREATE TABLE totals (
    run_id        TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    currency      TEXT NOT NULL,
    legacy_total  TEXT NOT NULL,
    modern_total  TEXT NOT NULL,
    PRIMARY KEY (run_id, account_id, currency)
);

CREATE TABLE diffs (
    run_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    class       TEXT NOT NULL,
    failing     BIGINT NOT NULL,            -- 1 when neither informational nor waived
    waiver      TEXT NOT NULL,              -- the id of the waiver covering it, or ''
    delta       TEXT NOT NULL,              -- modern - legacy, or '' (currencies differ, stack error)
    currency    TEXT NOT NULL,              -- of the delta, or ''
    body        TEXT NOT NULL,              -- the diff as in billshadow.diff/v1
    PRIMARY KEY (run_id, account_id, seq)
);

-- Both sides' lines of every mismatched account, for `explain`.
CREATE TABLE evidence (
    run_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    side        TEXT NOT NULL,              -- 'legacy' or 'modern'
    body        TEXT NOT NULL,              -- JSON array of the lines
    PRIMARY KEY (run_id, account_id, side)
);
