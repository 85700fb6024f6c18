//! Writing a run: the run and its cohort in one transaction, the pending pages a runner takes,
//! and each account's outcome with its diffs, totals and evidence in one transaction.

use super::read::account_of_row;
use super::*;

impl Store {
    /// Records a run and its cohort, streamed from `cohort` in chunks, in one transaction: a
    /// run exists whole or not at all. An account listed twice fails it.
    pub(crate) async fn create_run(
        &self,
        run: &NewRun<'_>,
        cohort: impl Iterator<Item = anyhow::Result<AccountRequest>>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, kind, status, started_at, finished_at, started_by, spec_path, spec_text, spec_hash, \
             cohort_path, cohort_hash, accounts_total, as_of, stack_versions, note) \
             VALUES ($1, $2, 'running', $3, NULL, $4, $5, $6, $7, $8, $9, 0, $10, $11, '')",
        )
        .bind(run.id)
        .bind(run.kind.as_str())
        .bind(now())
        .bind(run.started_by)
        .bind(run.spec_path)
        .bind(run.spec_text)
        .bind(run.spec_hash)
        .bind(run.cohort_path)
        .bind(run.cohort_hash)
        .bind(run.as_of)
        .bind(run.stack_versions)
        .execute(&mut *tx)
        .await?;
        let mut position = 0i64;
        let mut chunk: Vec<AccountRequest> = Vec::with_capacity(COHORT_CHUNK);
        let mut cohort = cohort.peekable();
        while cohort.peek().is_some() {
            chunk.clear();
            while chunk.len() < COHORT_CHUNK {
                match cohort.next() {
                    Some(account) => chunk.push(account?),
                    None => break,
                }
            }
            insert_cohort_chunk(&mut tx, self.sqlite, run.id, position, &chunk).await?;
            position += chunk.len() as i64;
        }
        sqlx::query("UPDATE runs SET accounts_total = $1 WHERE id = $2")
            .bind(position)
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if !self.sqlite {
            // A cohort inserted just now has no statistics until autovacuum comes by: the
            // planner would take the table for empty, and claiming a page of pending accounts
            // then scanned the cohort (seconds per page at 20,000 accounts).
            sqlx::query("ANALYZE cohort, outcomes")
                .execute(&self.pool)
                .await?;
        }
        Ok(position as u64)
    }

    /// Up to `limit` accounts of a run that have no outcome yet (with `redo_errors`, or
    /// whose outcome is `stack_error`), after cohort position `after` (exclusive), in cohort
    /// order, with their positions: a run pages through its cohort, so its memory does not
    /// grow with the cohort.
    pub(crate) async fn pending_page(
        &self,
        run_id: &str,
        after: i64,
        limit: usize,
        redo_errors: bool,
    ) -> anyhow::Result<Vec<(i64, AccountRequest)>> {
        let rows = sqlx::query(&format!(
            "SELECT c.account_id, c.customer_id, c.partition, c.region, c.period_start, c.period_end, c.position FROM cohort c \
             WHERE c.run_id = $1 AND c.position > $2 AND {} \
             ORDER BY c.position LIMIT $3",
            not_done(redo_errors)
        ))
        .bind(run_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(6)?, account_of_row(r)?)))
            .collect()
    }

    /// How many accounts of a run have no outcome yet (with `redo_errors`, or a
    /// `stack_error` one).
    pub(crate) async fn pending_count(
        &self,
        run_id: &str,
        redo_errors: bool,
    ) -> anyhow::Result<u64> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) FROM cohort c WHERE c.run_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.run_id = c.run_id AND o.account_id = c.account_id{})",
            kept_outcomes(redo_errors)
        ))
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// Up to `limit` pending accounts of a run (as `pending_page` finds them) that no other
    /// worker holds a live lease on, leased to `worker` for `lease_ms` milliseconds, with
    /// their positions, in cohort order. PostgreSQL only: the rows are taken with `FOR
    /// UPDATE SKIP LOCKED`, so two workers claiming at once never take the same account, and
    /// lease times are the server's clock, so workers' clocks do not matter. The rows to
    /// update are named by their positions (`= ANY(ARRAY(…))`), which the cohort's position
    /// index finds: as `IN (…)` the planner joined them against a scan of the whole cohort.
    pub(crate) async fn claim_page(
        &self,
        claim: &Claim<'_>,
        after: i64,
        limit: usize,
        redo_errors: bool,
    ) -> anyhow::Result<Vec<(i64, AccountRequest)>> {
        const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
        let rows = sqlx::query(&format!(
            "UPDATE cohort SET lease_owner = $1, lease_until = {NOW_MS} + $2 \
             WHERE run_id = $3 AND position = ANY(ARRAY(\
             SELECT c.position FROM cohort c WHERE c.run_id = $3 AND c.position > $4 \
             AND (c.lease_until IS NULL OR c.lease_until < {NOW_MS}) AND {} \
             ORDER BY c.position LIMIT $5 FOR UPDATE SKIP LOCKED)) \
             RETURNING account_id, customer_id, partition, region, period_start, period_end, position",
            not_done(redo_errors)
        ))
        .bind(claim.worker)
        .bind(claim.lease_ms)
        .bind(claim.run_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut page = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(6)?, account_of_row(r)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        page.sort_by_key(|(position, _)| *position);
        Ok(page)
    }

    /// Renews `worker`'s leases on `accounts` (a heartbeat): each lease it still holds ends
    /// `lease_ms` from now, by the server's clock. A lease another worker took meanwhile is
    /// left alone. Returns how many leases were renewed.
    pub(crate) async fn renew_leases(
        &self,
        claim: &Claim<'_>,
        accounts: &[String],
    ) -> anyhow::Result<u64> {
        const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
        let mut renewed = 0;
        for chunk in accounts.chunks(PARAMS_PER_STATEMENT) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
            let sql = format!(
                "UPDATE cohort SET lease_until = {NOW_MS} + $1 \
                 WHERE run_id = $2 AND lease_owner = $3 AND account_id IN ({})",
                list.join(",")
            );
            let mut query = sqlx::query(&sql)
                .persistent(false)
                .bind(claim.lease_ms)
                .bind(claim.run_id)
                .bind(claim.worker);
            for account in chunk {
                query = query.bind(account.as_str());
            }
            renewed += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(renewed)
    }

    /// Gives up `worker`'s leases on `accounts` (a worker stopping before its accounts are
    /// done lets the others take them at once), found by key. A lease another worker took
    /// meanwhile is left alone. (Every row it ever leased, found by owner, was a scan and a
    /// rewrite of the whole cohort: 5,000,000 rows and over a minute at the end of a run.)
    pub(crate) async fn release_leases(
        &self,
        claim: &Claim<'_>,
        accounts: &[String],
    ) -> anyhow::Result<()> {
        for chunk in accounts.chunks(PARAMS_PER_STATEMENT) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE cohort SET lease_owner = NULL, lease_until = NULL \
                 WHERE run_id = $1 AND lease_owner = $2 AND account_id IN ({})",
                list.join(",")
            );
            let mut query = sqlx::query(&sql)
                .persistent(false)
                .bind(claim.run_id)
                .bind(claim.worker);
            for account in chunk {
                query = query.bind(account.as_str());
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Records outcomes, all or none; returns how many were recorded. The first outcome
    /// stored for an account wins: one that another worker stored already (a lease that
    /// expired while its worker was still at work) is left out with its totals, diffs and
    /// evidence, so no account is counted twice. With `replace_errors`, an account's
    /// `stack_error` outcome is replaced in the same transaction: its rows are deleted and
    /// its totals taken out of its cell's before the new outcome goes in.
    ///
    /// Several workers write at once: outcomes are inserted in account order and the cells'
    /// totals rows locked in cell order (`FOR UPDATE` on PostgreSQL; SQLite has one writer
    /// at a time), so two transactions neither lose each other's amounts nor deadlock.
    pub(crate) async fn record(
        &self,
        run_id: &str,
        writer: &str,
        outcomes: &[AccountOutcome],
        replace_errors: bool,
    ) -> anyhow::Result<u64> {
        let mut ordered: Vec<&AccountOutcome> = outcomes.iter().collect();
        ordered.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        // An account twice in one batch (its own lease ran out and this worker took it again):
        // the first outcome is the one stored, as across transactions.
        ordered.dedup_by(|a, b| a.account_id == b.account_id);
        let mut tx = self.pool.begin().await?;
        let finished_at = now();
        // Per cell and currency code: what this transaction adds to the cell's totals.
        let mut cells: CellDeltas<'_> = BTreeMap::new();
        let mut kept = Vec::with_capacity(ordered.len());
        for o in ordered {
            if !replace_errors || take_out_stack_error(&mut tx, run_id, o, &mut cells).await? {
                kept.push(o);
            }
        }
        let inserted = insert_outcomes(&mut tx, self.sqlite, run_id, &kept, &finished_at).await?;
        let kept: Vec<&AccountOutcome> = kept
            .into_iter()
            .filter(|o| inserted.contains(o.account_id.as_str()))
            .collect();
        insert_outcome_rows(&mut tx, self.sqlite, run_id, &kept).await?;
        for o in &kept {
            for (currency, legacy, modern) in &o.totals {
                let e = cells
                    .entry((
                        o.partition.as_str(),
                        o.region.as_str(),
                        currency.code().to_owned(),
                    ))
                    .or_default();
                e.0 += *legacy;
                e.1 += *modern;
            }
        }
        let recorded = kept.len() as u64;
        add_to_cell_totals(&mut tx, self.sqlite, run_id, writer, cells).await?;
        tx.commit().await?;
        if recorded < outcomes.len() as u64 {
            tracing::info!(
                run = run_id,
                "{} outcome(s) were already stored by another worker and were left out",
                outcomes.len() as u64 - recorded
            );
        }
        Ok(recorded)
    }

    /// Whether a run with this id is in the store, and its spec and cohort hashes.
    pub(crate) async fn run_hashes(
        &self,
        run_id: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT spec_hash, cohort_hash FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Whether the store is PostgreSQL (whose workers lease accounts) rather than SQLite.
    pub(crate) fn is_postgres(&self) -> bool {
        !self.sqlite
    }

    /// Sets a run's status. A run that one worker completed stays completed whatever another
    /// worker says on stopping (`interrupted`, `failed`).
    pub(crate) async fn set_status(&self, run_id: &str, status: RunStatus) -> anyhow::Result<()> {
        let finished = if status == RunStatus::Running {
            None
        } else {
            Some(now())
        };
        let guard = match status {
            RunStatus::Interrupted | RunStatus::Failed => " AND status <> 'completed'",
            RunStatus::Running | RunStatus::Completed => "",
        };
        sqlx::query(&format!(
            "UPDATE runs SET status = $1, finished_at = $2 WHERE id = $3{guard}"
        ))
        .bind(status.as_str())
        .bind(finished)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

async fn insert_cohort_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sqlite: bool,
    run_id: &str,
    first_position: i64,
    chunk: &[AccountRequest],
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO cohort (run_id, position, account_id, customer_id, partition, region, period_start, period_end) VALUES ",
    );
    for i in 0..chunk.len() {
        if i > 0 {
            sql.push(',');
        }
        if sqlite {
            sql.push_str("(?,?,?,?,?,?,?,?)");
        } else {
            let b = i * 8;
            let row: Vec<String> = (1..=8).map(|k| format!("${}", b + k)).collect();
            sql.push_str(&format!("({})", row.join(",")));
        }
    }
    let mut query = sqlx::query(&sql);
    for (i, a) in chunk.iter().enumerate() {
        query = query
            .bind(run_id)
            .bind(first_position + i as i64)
            .bind(a.account_id.as_str())
            .bind(a.customer_id.as_str())
            .bind(a.partition.as_str())
            .bind(a.region.as_str())
            .bind(a.period_start.as_str())
            .bind(a.period_end.as_str());
    }
    query.execute(&mut **tx).await.map_err(|e| {
        let duplicate = e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation());
        if duplicate {
            anyhow::anyhow!(
                "the cohort lists an account twice (between its rows {} and {})",
                first_position + 2,
                first_position + chunk.len() as i64 + 1
            )
        } else {
            anyhow::Error::new(e)
        }
    })?;
    Ok(())
}

/// The outcome's `delta_order` column: the largest |modern − legacy| of the account, in
/// ten-thousandths of a unit, truncated, whatever its currency. Never summed, shown or used to
/// rank accounts (that would compare yen with euros): reports rank within one currency
/// (`worst_accounts_by_currency`).
/// The condition on an outcome that keeps its account out of the work still to do: any
/// outcome, or with `redo_errors` any but a `stack_error`.
/// The condition that cohort row `c` has no outcome to keep: a lookup by the outcome's
/// primary key per row, written as a scalar subquery so that PostgreSQL cannot turn it into a
/// join. As a join (`NOT EXISTS`) its plan followed the statistics, and those of a run's
/// outcomes are stale all run long (none when the run starts): the planner then read every
/// outcome of the run for each page it claimed, and a run slowed down with the square of its
/// cohort. A page reads at most its own accounts' outcomes this way.
fn not_done(redo_errors: bool) -> String {
    format!(
        "(SELECT 1 FROM outcomes o WHERE o.run_id = c.run_id AND o.account_id = c.account_id{} LIMIT 1) IS NULL",
        kept_outcomes(redo_errors)
    )
}

fn kept_outcomes(redo_errors: bool) -> &'static str {
    if redo_errors {
        " AND o.status <> 'stack_error'"
    } else {
        ""
    }
}

fn delta_order(totals: &[(Currency, Decimal, Decimal)]) -> i64 {
    let largest = totals
        .iter()
        .map(|(_, l, m)| (*m - *l).abs())
        .max()
        .unwrap_or_default();
    (largest * Decimal::from(10_000))
        .trunc()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// Per cell (partition, region) and currency code: legacy and modern amounts to add.
type CellDeltas<'a> = BTreeMap<(&'a str, &'a str, String), (Decimal, Decimal)>;

/// An account's `stack_error` outcome, deleted with its rows and its totals taken out of its
/// cell's, so that the new outcome replaces it. Any other outcome was stored by another
/// worker meanwhile and stays: false, the new outcome is left out.
async fn take_out_stack_error<'a>(
    tx: &mut sqlx::AnyConnection,
    run_id: &str,
    o: &'a AccountOutcome,
    cells: &mut CellDeltas<'a>,
) -> anyhow::Result<bool> {
    let replaced = sqlx::query("SELECT status FROM outcomes WHERE run_id = $1 AND account_id = $2")
        .bind(run_id)
        .bind(o.account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = replaced {
        let status: String = row.try_get(0)?;
        if status != OutcomeStatus::StackError.as_str() {
            return Ok(false);
        }
        let totals = sqlx::query(
            "SELECT currency, legacy_total, modern_total FROM totals WHERE run_id = $1 AND account_id = $2",
        )
        .bind(run_id)
        .bind(o.account_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for t in &totals {
            let e = cells
                .entry((o.partition.as_str(), o.region.as_str(), t.try_get(0)?))
                .or_default();
            e.0 -= t.try_get::<String, _>(1)?.parse::<Decimal>()?;
            e.1 -= t.try_get::<String, _>(2)?.parse::<Decimal>()?;
        }
        for table in ["totals", "customer_totals", "diffs", "evidence", "outcomes"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE run_id = $1 AND account_id = $2"
            ))
            .bind(run_id)
            .bind(o.account_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(true)
}

/// A value bound to a multi-row insert.
enum Param<'a> {
    Str(&'a str),
    Text(String),
    Int(i64),
}

/// Parameters bound per statement at most: well under SQLite's 32,766 and PostgreSQL's
/// 65,535, and few enough that a statement's text stays small.
const PARAMS_PER_STATEMENT: usize = 4000;

/// The `VALUES` list of a multi-row insert of `rows` rows of `columns` values: `?` on
/// SQLite (positional, so binding does not look names up), `$n` on PostgreSQL.
fn values_list(sqlite: bool, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for k in 0..columns {
            if k > 0 {
                sql.push(',');
            }
            if sqlite {
                sql.push('?');
            } else {
                sql.push_str(&format!("${}", i * columns + k + 1));
            }
        }
        sql.push(')');
    }
    sql
}

/// Inserts `rows` (each `columns` values) with as few statements as the parameter limit
/// allows: `INSERT INTO {head} VALUES … {tail}`. Returns the rows the statements return
/// (with a `RETURNING` tail).
async fn insert_rows(
    tx: &mut sqlx::AnyConnection,
    sqlite: bool,
    head: &str,
    tail: &str,
    columns: usize,
    rows: Vec<Vec<Param<'_>>>,
) -> anyhow::Result<Vec<sqlx::any::AnyRow>> {
    let per_statement = (PARAMS_PER_STATEMENT / columns).max(1);
    let mut returned = Vec::new();
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO {head} VALUES {} {tail}",
            values_list(sqlite, chunk.len(), columns)
        );
        // Not kept prepared: its text changes with the number of rows, and a connection's
        // cache of prepared statements would fill with sizes never seen again.
        let mut query = sqlx::query(&sql).persistent(false);
        for row in chunk {
            debug_assert_eq!(row.len(), columns);
            for value in row {
                query = match value {
                    Param::Str(s) => query.bind(*s),
                    Param::Text(s) => query.bind(s.as_str()),
                    Param::Int(i) => query.bind(*i),
                };
            }
        }
        if tail.contains("RETURNING") {
            returned.extend(query.fetch_all(&mut *tx).await?);
        } else {
            query.execute(&mut *tx).await?;
        }
    }
    Ok(returned)
}

/// The outcome rows of `outcomes` (in account order, so that writers lock rows in one
/// order), each left out when its account has an outcome already; the ids of the accounts
/// whose row went in.
async fn insert_outcomes(
    tx: &mut sqlx::AnyConnection,
    sqlite: bool,
    run_id: &str,
    outcomes: &[&AccountOutcome],
    finished_at: &str,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let rows = outcomes
        .iter()
        .map(|o| {
            let int = |n: u64| Param::Int(i64::try_from(n).unwrap_or(i64::MAX));
            vec![
                Param::Str(run_id),
                Param::Str(o.account_id.as_str()),
                Param::Str(o.status.as_str()),
                int(o.diffs_failing),
                int(o.waived),
                int(o.lines_legacy),
                int(o.lines_modern),
                int(o.lines_matched),
                int(o.lines_mismatched),
                int(o.retries),
                Param::Str(o.error.as_str()),
                Param::Str(finished_at),
                Param::Int(delta_order(&o.totals)),
            ]
        })
        .collect();
    let returned = insert_rows(
        tx,
        sqlite,
        "outcomes (run_id, account_id, status, diffs_failing, waived, lines_legacy, lines_modern, \
         lines_matched, lines_mismatched, retries, error, finished_at, delta_order)",
        "ON CONFLICT (run_id, account_id) DO NOTHING RETURNING account_id",
        13,
        rows,
    )
    .await
    .context("cannot record the accounts' outcomes")?;
    returned
        .iter()
        .map(|r| Ok(r.try_get::<String, _>(0)?))
        .collect()
}

/// The totals, customers' amounts, diffs and evidence of outcomes just inserted, a
/// multi-row insert per table.
async fn insert_outcome_rows(
    tx: &mut sqlx::AnyConnection,
    sqlite: bool,
    run_id: &str,
    outcomes: &[&AccountOutcome],
) -> anyhow::Result<()> {
    let (mut customers, mut totals, mut diffs, mut evidence) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for o in outcomes {
        let account = Param::Str;
        for ((customer, currency), t) in &o.customers {
            customers.push(vec![
                Param::Str(run_id),
                account(o.account_id.as_str()),
                Param::Str(customer.as_str()),
                Param::Str(currency.code()),
                Param::Text(t.legacy.to_string()),
                Param::Text(t.modern.to_string()),
                Param::Text(t.unflagged_legacy.to_string()),
                Param::Text(t.unflagged_modern.to_string()),
            ]);
        }
        for (currency, legacy, modern) in &o.totals {
            totals.push(vec![
                Param::Str(run_id),
                account(o.account_id.as_str()),
                Param::Str(currency.code()),
                Param::Text(legacy.to_string()),
                Param::Text(modern.to_string()),
            ]);
        }
        for (seq, d) in o.diffs.iter().enumerate() {
            diffs.push(vec![
                Param::Str(run_id),
                account(o.account_id.as_str()),
                Param::Int(i64::try_from(seq).unwrap_or(i64::MAX)),
                Param::Str(d.class.as_str()),
                Param::Int(i64::from(d.is_failing())),
                Param::Str(d.waiver.as_deref().unwrap_or("")),
                Param::Text(d.delta.map(|x| x.to_string()).unwrap_or_default()),
                Param::Str(d.currency.map(|c| c.code()).unwrap_or("")),
                Param::Text(diff::diff_body(d)?),
            ]);
        }
        if let Some((legacy, modern)) = &o.evidence {
            for (side, body) in [("legacy", legacy), ("modern", modern)] {
                evidence.push(vec![
                    Param::Str(run_id),
                    account(o.account_id.as_str()),
                    Param::Str(side),
                    Param::Str(body.as_str()),
                ]);
            }
        }
    }
    let tables = [
        (
            "customer_totals (run_id, account_id, customer_id, currency, legacy_total, modern_total, \
             legacy_unflagged, modern_unflagged)",
            8,
            customers,
        ),
        (
            "totals (run_id, account_id, currency, legacy_total, modern_total)",
            5,
            totals,
        ),
        (
            "diffs (run_id, account_id, seq, class, failing, waiver, delta, currency, body)",
            9,
            diffs,
        ),
        ("evidence (run_id, account_id, side, body)", 4, evidence),
    ];
    for (head, columns, rows) in tables {
        if !rows.is_empty() {
            insert_rows(tx, sqlite, head, "", columns, rows).await?;
        }
    }
    Ok(())
}

/// Adds a transaction's amounts to this writer's running per-cell totals, cell by cell in
/// order. Each worker process has its own rows (`writer`), so workers never wait on each
/// other's; within one, on PostgreSQL each cell's row is made if missing and then locked
/// (`FOR UPDATE`) before it is read; SQLite lets one writer at a time in. Readers add a
/// cell's rows up.
async fn add_to_cell_totals(
    tx: &mut sqlx::AnyConnection,
    sqlite: bool,
    run_id: &str,
    writer: &str,
    cells: CellDeltas<'_>,
) -> anyhow::Result<()> {
    for ((partition, region, currency), (legacy, modern)) in cells {
        if !sqlite {
            sqlx::query(
                "INSERT INTO cell_totals (run_id, partition, region, currency, legacy_total, modern_total, writer) \
                 VALUES ($1,$2,$3,$4,'0','0',$5) ON CONFLICT (run_id, partition, region, currency, writer) DO NOTHING",
            )
            .bind(run_id)
            .bind(partition)
            .bind(region)
            .bind(currency.as_str())
            .bind(writer)
            .execute(&mut *tx)
            .await?;
        }
        let existing = sqlx::query(&format!(
            "SELECT legacy_total, modern_total FROM cell_totals WHERE run_id = $1 AND partition = $2 AND region = $3 AND currency = $4 AND writer = $5{}",
            if sqlite { "" } else { " FOR UPDATE" }
        ))
        .bind(run_id)
        .bind(partition)
        .bind(region)
        .bind(currency.as_str())
        .bind(writer)
        .fetch_optional(&mut *tx)
        .await?;
        let (l, m) = match existing {
            Some(r) => (
                r.try_get::<String, _>(0)?.parse::<Decimal>()? + legacy,
                r.try_get::<String, _>(1)?.parse::<Decimal>()? + modern,
            ),
            None => (legacy, modern),
        };
        sqlx::query(
            "INSERT INTO cell_totals (run_id, partition, region, currency, legacy_total, modern_total, writer) VALUES ($1,$2,$3,$4,$5,$6,$7) \
             ON CONFLICT (run_id, partition, region, currency, writer) DO UPDATE SET legacy_total = $5, modern_total = $6",
        )
        .bind(run_id)
        .bind(partition)
        .bind(region)
        .bind(currency.as_str())
        .bind(l.to_string())
        .bind(m.to_string())
        .bind(writer)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
