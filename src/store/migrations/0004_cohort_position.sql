-- A run pages through its cohort in cohort order (`position > $after ORDER BY position`):
-- without this index every page scanned and sorted the whole cohort.
CREATE INDEX cohort_position ON cohort (run_id, position);
