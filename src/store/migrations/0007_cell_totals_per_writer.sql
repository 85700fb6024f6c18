-- Per cell and currency, the run's totals kept per writer (a worker process): each worker adds
-- its outcomes' amounts to its own rows, so several workers never wait on one shared row for
-- every transaction; readers add a cell's rows up, exactly, in Rust. Rows stored before this
-- migration keep the writer ''.
CREATE TABLE cell_totals_per_writer (
    run_id        TEXT NOT NULL,
    partition     TEXT NOT NULL,
    region        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    legacy_total  TEXT NOT NULL,
    modern_total  TEXT NOT NULL,
    writer        TEXT NOT NULL,
    PRIMARY KEY (run_id, partition, region, currency, writer)
);
INSERT INTO cell_totals_per_writer (run_id, partition, region, currency, legacy_total, modern_total, writer)
    SELECT run_id, partition, region, currency, legacy_total, modern_total, '' FROM cell_totals;
DROP TABLE cell_totals;
ALTER TABLE cell_totals_per_writer RENAME TO cell_totals;
