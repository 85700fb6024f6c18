-- A run's causes (diff signatures), stored when the run ends so that later commands and the
-- dashboard's trend read them without grouping every diff again. `signature_runs` says a run's
-- signatures are stored (a run without a row there has them computed on read); one row per
-- signature (at most 200 per run, ranked by `position`) and one per signature and currency.
-- Each diff names its signature ('' until the run's signatures are stored).

CREATE TABLE signature_runs (
    run_id       TEXT PRIMARY KEY,
    left_off     BIGINT NOT NULL,           -- signatures past the cap, counted but not kept
    computed_at  TEXT NOT NULL
);

CREATE TABLE signatures (
    run_id       TEXT NOT NULL,
    id           TEXT NOT NULL,             -- sig- and 16 hex digits: the same cause, the same id
    position     BIGINT NOT NULL,           -- rank in the run, from 0
    hypothesis   TEXT NOT NULL,
    class        TEXT NOT NULL,
    fields       TEXT NOT NULL,             -- JSON array
    shape        TEXT NOT NULL,             -- the shape's kind
    rule         TEXT NOT NULL,             -- the shape with its values, as in the id's recipe
    charge_code  TEXT,
    line_type    TEXT,
    currency     TEXT,
    cell         TEXT,
    diffs        BIGINT NOT NULL,
    follow_on    BIGINT NOT NULL,
    failing      BIGINT NOT NULL,
    accounts     BIGINT NOT NULL,
    cells        TEXT NOT NULL,             -- JSON array, at most 20
    cells_total  BIGINT NOT NULL,
    examples     TEXT NOT NULL,             -- JSON array of account ids, at most 5
    PRIMARY KEY (run_id, id)
);

CREATE TABLE signature_money (
    run_id        TEXT NOT NULL,
    signature_id  TEXT NOT NULL,
    currency      TEXT NOT NULL,
    net           TEXT NOT NULL,            -- sum of delta, exact
    gross         TEXT NOT NULL,            -- sum of |delta|, exact
    PRIMARY KEY (run_id, signature_id, currency)
);

ALTER TABLE diffs ADD COLUMN signature TEXT NOT NULL DEFAULT '';
