-- Several workers on one run (`run --join`, `run --shard`).
--
-- A worker on PostgreSQL leases the pending accounts it takes: `lease_owner` names the
-- worker, `lease_until` (milliseconds since the Unix epoch) is when the lease ends. Until
-- then no other worker takes the account; a worker killed mid-batch leaves its lease to
-- expire, and another worker takes the account again. An outcome ends the account's part in
-- this: the lease is then never read.
ALTER TABLE cohort ADD COLUMN lease_owner TEXT;
ALTER TABLE cohort ADD COLUMN lease_until BIGINT;

-- Each account's amounts per customer and currency (a side's lines count toward that side's
-- own customer), written with the account's outcome. Once every account of the run is in,
-- a customer's totals are added up from here, whichever workers did its accounts, and
-- compared as `diff` compares them. The unflagged amounts are those of the account's bills
-- that are not themselves a total_mismatch. Exact decimals as text.
CREATE TABLE customer_totals (
    run_id            TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    currency          TEXT NOT NULL,
    legacy_total      TEXT NOT NULL,
    modern_total      TEXT NOT NULL,
    legacy_unflagged  TEXT NOT NULL,
    modern_unflagged  TEXT NOT NULL,
    PRIMARY KEY (run_id, account_id, customer_id, currency)
);
CREATE INDEX customer_totals_by_customer ON customer_totals (run_id, customer_id, currency);
