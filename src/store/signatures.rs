//! A run's causes (diff signatures) as the store keeps them: written once when the run
//! completes (`save_causes`, one transaction with the waivers by signature it applies),
//! read back by every later command without grouping the diffs again. A run without them
//! (older, unfinished) has them computed on read by `run::causes`.

use billshadow_comparisons::Causes;
use billshadow_reports::causes::{CausesView, MoneyJson, SignatureJson};

use super::*;

/// A diff of a run with where it is stored and the signature its row names ('' when the
/// run's signatures are not stored).
#[derive(Debug, Clone)]
pub(crate) struct KeyedDiff {
    pub(crate) account_id: String,
    pub(crate) seq: i64,
    pub(crate) signature: String,
    pub(crate) diff: Diff,
}

impl Store {
    /// The diffs of a run with their keys, in account order: all of them, or those of the
    /// first `accounts` accounts that have a failing or waived diff.
    pub(crate) async fn keyed_diffs(
        &self,
        run_id: &str,
        accounts: Option<usize>,
    ) -> anyhow::Result<Vec<KeyedDiff>> {
        let rows = match accounts {
            None => {
                sqlx::query("SELECT account_id, seq, signature, body FROM diffs WHERE run_id = $1 ORDER BY account_id, seq")
                    .bind(run_id)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(n) => {
                sqlx::query(&format!(
                    "SELECT account_id, seq, signature, body FROM diffs WHERE run_id = $1 AND account_id IN \
                     (SELECT DISTINCT account_id FROM diffs WHERE run_id = $1 AND {} ORDER BY account_id LIMIT $2) \
                     ORDER BY account_id, seq",
                    super::read::not_informational()
                ))
                .bind(run_id)
                .bind(n as i64)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let body: String = r.try_get(3)?;
                Ok(KeyedDiff {
                    account_id: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    signature: r.try_get(2)?,
                    diff: diff::diff_of_str(&body)?,
                })
            })
            .collect()
    }

    /// A run's stored signatures, ranked; `None` when they are not stored (an unfinished run,
    /// or one made before signatures were stored).
    pub(crate) async fn stored_causes(&self, run_id: &str) -> anyhow::Result<Option<CausesView>> {
        let Some(marker) = sqlx::query("SELECT left_off FROM signature_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let left_off: i64 = marker.try_get(0)?;
        let rows = sqlx::query(
            "SELECT id, hypothesis, class, fields, shape, rule, charge_code, line_type, currency, cell, \
             diffs, follow_on, failing, accounts, cells, cells_total, examples \
             FROM signatures WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut money: BTreeMap<String, BTreeMap<String, MoneyJson>> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT signature_id, currency, net, gross FROM signature_money WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        {
            let (id, currency, net, gross): (String, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let amount = |s: &str| {
                s.parse::<Decimal>().with_context(|| {
                    format!("signature {id} of run {run_id}: `{s}` is not an amount")
                })
            };
            let m = MoneyJson {
                net: amount(&net)?,
                gross: amount(&gross)?,
            };
            money.entry(id.clone()).or_default().insert(currency, m);
        }
        let list = |r: &sqlx::any::AnyRow, i: usize| -> anyhow::Result<Vec<String>> {
            let text: String = r.try_get(i)?;
            serde_json::from_str(&text)
                .with_context(|| format!("a stored signature of run {run_id} does not read back"))
        };
        let count = |r: &sqlx::any::AnyRow, i: usize| -> anyhow::Result<u64> {
            Ok(u64::try_from(r.try_get::<i64, _>(i)?)?)
        };
        let mut signatures = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get(0)?;
            signatures.push(SignatureJson {
                money: money.remove(&id).unwrap_or_default(),
                id,
                hypothesis: r.try_get(1)?,
                class: r.try_get(2)?,
                fields: list(r, 3)?,
                shape: r.try_get(4)?,
                rule: r.try_get(5)?,
                charge_code: r.try_get(6)?,
                line_type: r.try_get(7)?,
                currency: r.try_get(8)?,
                cell: r.try_get(9)?,
                diffs: count(r, 10)?,
                follow_on: count(r, 11)?,
                failing: count(r, 12)?,
                accounts: count(r, 13)?,
                cells: list(r, 14)?,
                cells_total: count(r, 15)?,
                examples: list(r, 16)?,
            });
        }
        Ok(Some(CausesView {
            signatures,
            left_off: u64::try_from(left_off)?,
        }))
    }

    /// Stores a completed run's causes in one transaction: the waivers by signature applied
    /// (`waived`: indices into `diffs` whose `waiver` is now set; their rows and their
    /// accounts' outcomes follow), each diff's signature id, the signatures and their money.
    /// When the run's causes are already stored (another worker of the run stored them),
    /// nothing is written: a resumed run forgets its causes before it runs again.
    pub(crate) async fn save_causes(
        &self,
        run_id: &str,
        diffs: &[KeyedDiff],
        waived: &[usize],
        causes: &Causes,
    ) -> anyhow::Result<()> {
        let view = CausesView::from(causes);
        let mut tx = self.pool.begin().await?;
        // The run's row first: of several workers finishing one run at once, the first to
        // insert it settles the run; the others wait for its transaction, insert nothing and
        // leave (their waivers are not applied twice). A resumed run forgot its row first.
        let claimed = sqlx::query(
            "INSERT INTO signature_runs (run_id, left_off, computed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(run_id)
        .bind(i64::try_from(view.left_off)?)
        .bind(now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        let mut per_account: BTreeMap<&str, i64> = BTreeMap::new();
        for &i in waived {
            let k = &diffs[i];
            sqlx::query("UPDATE diffs SET failing = 0, waiver = $1, body = $2 WHERE run_id = $3 AND account_id = $4 AND seq = $5")
                .bind(k.diff.waiver.as_deref().unwrap_or(""))
                .bind(diff::diff_body(&k.diff)?)
                .bind(run_id)
                .bind(k.account_id.as_str())
                .bind(k.seq)
                .execute(&mut *tx)
                .await?;
            *per_account.entry(k.account_id.as_str()).or_default() += 1;
        }
        for (account, n) in per_account {
            // SET reads the row as it was: an account whose every failing diff is now
            // waived is at parity, thanks to waivers.
            sqlx::query(
                "UPDATE outcomes SET diffs_failing = diffs_failing - $1, waived = waived + $1, \
                 status = CASE WHEN status = 'mismatch' AND diffs_failing - $1 <= 0 THEN 'parity' ELSE status END \
                 WHERE run_id = $2 AND account_id = $3",
            )
            .bind(n)
            .bind(run_id)
            .bind(account)
            .execute(&mut *tx)
            .await?;
        }
        for (i, k) in diffs.iter().enumerate() {
            let signature = causes.signature_of(i).unwrap_or("");
            if signature == k.signature {
                continue;
            }
            sqlx::query(
                "UPDATE diffs SET signature = $1 WHERE run_id = $2 AND account_id = $3 AND seq = $4",
            )
            .bind(signature)
            .bind(run_id)
            .bind(k.account_id.as_str())
            .bind(k.seq)
            .execute(&mut *tx)
            .await?;
        }
        for (position, s) in view.signatures.iter().enumerate() {
            insert_signature(&mut tx, run_id, position, s).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The sequence number and signature column of each diff of one account of a run.
    pub(crate) async fn account_signatures(
        &self,
        run_id: &str,
        account: &str,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT seq, signature FROM diffs WHERE run_id = $1 AND account_id = $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// How the accounts of two runs moved: accounts counted by (status in `a`, status in
    /// `b`), an account in one run only under `None` on the other side; added up by the store.
    pub(crate) async fn account_moves(
        &self,
        a: &str,
        b: &str,
    ) -> anyhow::Result<Vec<(Option<String>, Option<String>, u64)>> {
        let mut out = Vec::new();
        let both = sqlx::query(
            "SELECT x.status, y.status, COUNT(*) FROM outcomes x JOIN outcomes y \
             ON y.run_id = $2 AND y.account_id = x.account_id WHERE x.run_id = $1 \
             GROUP BY x.status, y.status",
        )
        .bind(a)
        .bind(b)
        .fetch_all(&self.pool)
        .await?;
        for r in &both {
            out.push((
                Some(r.try_get(0)?),
                Some(r.try_get(1)?),
                u64::try_from(r.try_get::<i64, _>(2)?)?,
            ));
        }
        for (first, second, swap) in [(a, b, false), (b, a, true)] {
            let rows = sqlx::query(
                "SELECT x.status, COUNT(*) FROM outcomes x WHERE x.run_id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM outcomes y WHERE y.run_id = $2 AND y.account_id = x.account_id) \
                 GROUP BY x.status",
            )
            .bind(first)
            .bind(second)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let status: String = r.try_get(0)?;
                let n = u64::try_from(r.try_get::<i64, _>(1)?)?;
                out.push(if swap {
                    (None, Some(status), n)
                } else {
                    (Some(status), None, n)
                });
            }
        }
        Ok(out)
    }

    /// The first `limit` accounts (by id) with status `from` in run `a` and `to` in run `b`.
    pub(crate) async fn accounts_moved(
        &self,
        a: &str,
        b: &str,
        from: &str,
        to: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT x.account_id FROM outcomes x JOIN outcomes y \
             ON y.run_id = $2 AND y.account_id = x.account_id \
             WHERE x.run_id = $1 AND x.status = $3 AND y.status = $4 \
             ORDER BY x.account_id LIMIT $5",
        )
        .bind(a)
        .bind(b)
        .bind(from)
        .bind(to)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Forgets a run's stored causes (a run resumed: its diffs are about to change); they are
    /// computed on read until it completes again.
    pub(crate) async fn forget_causes(&self, run_id: &str) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["signature_runs", "signatures", "signature_money"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE run_id = $1"))
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_signature(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    position: usize,
    s: &SignatureJson,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO signatures (run_id, id, position, hypothesis, class, fields, shape, rule, charge_code, line_type, \
         currency, cell, diffs, follow_on, failing, accounts, cells, cells_total, examples) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
    )
    .bind(run_id)
    .bind(s.id.as_str())
    .bind(position as i64)
    .bind(s.hypothesis.as_str())
    .bind(s.class.as_str())
    .bind(serde_json::to_string(&s.fields)?)
    .bind(s.shape.as_str())
    .bind(s.rule.as_str())
    .bind(s.charge_code.as_deref())
    .bind(s.line_type.as_deref())
    .bind(s.currency.as_deref())
    .bind(s.cell.as_deref())
    .bind(i64::try_from(s.diffs)?)
    .bind(i64::try_from(s.follow_on)?)
    .bind(i64::try_from(s.failing)?)
    .bind(i64::try_from(s.accounts)?)
    .bind(serde_json::to_string(&s.cells)?)
    .bind(i64::try_from(s.cells_total)?)
    .bind(serde_json::to_string(&s.examples)?)
    .execute(&mut **tx)
    .await?;
    for (currency, m) in &s.money {
        sqlx::query("INSERT INTO signature_money (run_id, signature_id, currency, net, gross) VALUES ($1,$2,$3,$4,$5)")
            .bind(run_id)
            .bind(s.id.as_str())
            .bind(currency.as_str())
            .bind(m.net.to_string())
            .bind(m.gross.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
