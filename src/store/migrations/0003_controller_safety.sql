-- Controller safety. Every controller write takes the lock row first, so policy limits
-- (max_in_flight, `after`, one step at a time) are checked and taken in the same transaction
-- as the cell's move. Cells record when they took their step, the runs that count as
-- evidence for the next one, and a transition written before its hook ran (JSON, '' when
-- none). Approvals carry the approver's signature; audit records and the head the
-- controller's.

CREATE TABLE controller_lock (
    id       BIGINT PRIMARY KEY,
    version  BIGINT NOT NULL
);
INSERT INTO controller_lock (id, version) VALUES (1, 0);

ALTER TABLE cells ADD COLUMN entered_at TEXT NOT NULL DEFAULT '';
ALTER TABLE cells ADD COLUMN fresh_after TEXT NOT NULL DEFAULT '';
ALTER TABLE cells ADD COLUMN pending TEXT NOT NULL DEFAULT '';
UPDATE cells SET entered_at = updated_at, fresh_after = updated_at WHERE stage <> 'legacy';

ALTER TABLE approvals ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN policy_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN signature TEXT NOT NULL DEFAULT '';

ALTER TABLE audit ADD COLUMN signature TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_head ADD COLUMN signature TEXT NOT NULL DEFAULT '';
