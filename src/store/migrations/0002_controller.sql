-- The migration controller: cell states (compare-and-set on `version`), approvals tied to the
-- evidence they approved, and the append-only, hash-chained audit log.

CREATE TABLE cells (
    cell         TEXT PRIMARY KEY,          -- partition/region
    partition    TEXT NOT NULL,
    region       TEXT NOT NULL,
    stage        TEXT NOT NULL,             -- legacy, shadow, canary, cutover, decommissioned, rolled_back
    step         BIGINT NOT NULL,           -- the canary step
    held_reason  TEXT NOT NULL,             -- '' when not held
    held_since   TEXT NOT NULL,
    held_run     TEXT NOT NULL,             -- the newest run when held: only a newer one releases it
    version      BIGINT NOT NULL,           -- bumped by every change; writers compare-and-set it
    updated_at   TEXT NOT NULL
);

CREATE TABLE approvals (
    cell           TEXT NOT NULL,
    target         TEXT NOT NULL,           -- the state approved, e.g. 'cutover'
    approver       TEXT NOT NULL,
    evidence_hash  TEXT NOT NULL,
    approved_at    TEXT NOT NULL,
    PRIMARY KEY (cell, target, approver, evidence_hash)
);

CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    cell         TEXT NOT NULL,
    action       TEXT NOT NULL,
    from_state   TEXT NOT NULL,
    to_state     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    policy_hash  TEXT NOT NULL,
    evidence     TEXT NOT NULL,             -- JSON: runs, metrics, evidence hash
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL              -- sha-256 over prev_hash and this record
);

-- The chain's head: every append compares-and-sets it, so two writers cannot fork the chain.
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
