//! The cohort: the accounts a shadow run replays, with their customer, partition, region and
//! billing period. A CSV file with a header:
//! `account_id,customer_id,partition,region,period_start,period_end` (customer_id optional).

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use billshadow_adapters::live::AccountRequest;

const REQUIRED: [&str; 5] = [
    "account_id",
    "partition",
    "region",
    "period_start",
    "period_end",
];

/// A cohort file read row by row: memory does not grow with the cohort.
pub(crate) struct CohortReader {
    origin: String,
    records: csv::StringRecordsIntoIter<std::fs::File>,
    index: Vec<usize>,
    customer: Option<usize>,
    rows: u64,
}

/// Opens a cohort and checks its header.
pub(crate) fn open(path: &Path) -> anyhow::Result<CohortReader> {
    let origin = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("cannot read the cohort {origin}"))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{origin}, line 1: cannot read the header"))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    if header.len() <= 1 && header.first().is_none_or(|h| h.is_empty()) {
        bail!(
            "{origin}: the cohort is empty; expected a header row with {}",
            REQUIRED.join(", ")
        );
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let mut index = Vec::new();
    for name in REQUIRED {
        index.push(column(name).ok_or_else(|| {
            anyhow!("{origin}: the cohort has no `{name}` column; expected {} (and optionally customer_id)", REQUIRED.join(", "))
        })?);
    }
    let customer = column("customer_id");
    Ok(CohortReader {
        origin,
        records: reader.into_records(),
        index,
        customer,
        rows: 0,
    })
}

impl Iterator for CohortReader {
    type Item = anyhow::Result<AccountRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = self.records.next()?;
        self.rows += 1;
        Some(self.account(record))
    }
}

impl CohortReader {
    fn account(
        &self,
        record: Result<csv::StringRecord, csv::Error>,
    ) -> anyhow::Result<AccountRequest> {
        let origin = &self.origin;
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow!("{origin}, line {line}: {e}")
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("").to_owned();
        let index = &self.index;
        for (name, i) in REQUIRED.iter().zip(index) {
            if record.get(*i).unwrap_or("").trim().is_empty() {
                bail!(
                    "{origin}, line {line}, column {} (`{name}`): empty value",
                    i + 1
                );
            }
        }
        let account = AccountRequest {
            account_id: field(index[0]),
            customer_id: self.customer.map(field).unwrap_or_default(),
            partition: field(index[1]),
            region: field(index[2]),
            period_start: field(index[3]),
            period_end: field(index[4]),
        };
        for (name, i, value) in [
            ("period_start", index[3], &account.period_start),
            ("period_end", index[4], &account.period_end),
        ] {
            if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() {
                bail!(
                    "{origin}, line {line}, column {} (`{name}`): `{value}` is not a date; expected YYYY-MM-DD",
                    i + 1
                );
            }
        }
        Ok(account)
    }
}

/// Reads the whole cohort once to check every row, before any work starts; returns its size.
pub(crate) fn check(path: &Path) -> anyhow::Result<u64> {
    let mut rows = 0;
    for account in open(path)? {
        account?;
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: the cohort has no accounts", path.display());
    }
    Ok(rows)
}

/// Writes a cohort file.
pub(crate) fn write(path: &Path, accounts: &[AccountRequest]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    w.write_record([
        "account_id",
        "customer_id",
        "partition",
        "region",
        "period_start",
        "period_end",
    ])?;
    for a in accounts {
        w.write_record([
            &a.account_id,
            &a.customer_id,
            &a.partition,
            &a.region,
            &a.period_start,
            &a.period_end,
        ])?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}
