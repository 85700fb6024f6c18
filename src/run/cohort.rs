//! The cohort: the accounts a shadow run replays, with their customer, partition, region and
//! billing period. A CSV file with a header:
//! `account_id,customer_id,partition,region,period_start,period_end` (customer_id optional).

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use billshadow_adapters::lines::{LineCounter, Lines};
use billshadow_adapters::live::AccountRequest;

const REQUIRED: [&str; 5] = [
    "account_id",
    "partition",
    "region",
    "period_start",
    "period_end",
];

/// The longest cohort value accepted, in bytes.
pub(crate) const VALUE_BYTES_MAX: usize = 256;

pub(crate) use crate::spec::CohortRules as Rules;

/// A cohort file read row by row: memory does not grow with the cohort.
pub(crate) struct CohortReader {
    origin: String,
    records: csv::StringRecordsIntoIter<LineCounter<std::fs::File>>,
    lines: Lines,
    index: Vec<usize>,
    customer: Option<usize>,
    rules: Rules,
    rows: u64,
}

/// Opens a cohort and checks its header.
/// Opens a cohort file; its errors are input errors.
pub(crate) fn open(path: &Path, rules: Rules) -> anyhow::Result<CohortReader> {
    open_file(path, rules).map_err(crate::exit::input)
}

fn open_file(path: &Path, rules: Rules) -> anyhow::Result<CohortReader> {
    let origin = path.display().to_string();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read the cohort {origin}"))?;
    let (counter, lines) = LineCounter::new(file);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(counter);
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
    for (i, name) in header.iter().enumerate() {
        if let Some(first) = header[..i].iter().position(|h| h == name) {
            bail!(
                "{origin}, line 1, column {}: the column `{name}` appears twice in the header (first at column {})",
                i + 1,
                first + 1
            );
        }
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
        lines,
        index,
        customer,
        rules,
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

/// Why a cohort value may not reach a stack, if it may not.
fn refuse(value: &str, rules: Rules) -> Option<String> {
    if value.len() > VALUE_BYTES_MAX {
        return Some(format!(
            "the value is {} bytes long; at most {VALUE_BYTES_MAX} are accepted",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Some(format!(
            "`{}` contains the control character U+{:04X}; control characters (NUL, tab, line ends, escapes) are refused",
            billshadow_reports::clean(value),
            c as u32
        ));
    }
    if value != value.trim() {
        return Some(format!("`{value}` starts or ends with white space"));
    }
    if value.starts_with('-') && !rules.allow_leading_dash {
        return Some(format!(
            "`{value}` starts with `-`, which a stack's command line would read as an option; set `allow_leading_dash = true` under `[cohort]` in the spec to accept it"
        ));
    }
    None
}

impl CohortReader {
    fn account(
        &self,
        record: Result<csv::StringRecord, csv::Error>,
    ) -> anyhow::Result<AccountRequest> {
        let origin = &self.origin;
        let record = record.map_err(|e| {
            let line = e.position().map_or(1, |p| self.lines.line_at(p.byte()));
            match e.kind() {
                csv::ErrorKind::Utf8 { err, .. } => anyhow!(
                    "{origin}, line {line}, column {}: invalid UTF-8; expected UTF-8 text",
                    err.field() + 1
                ),
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => anyhow!(
                    "{origin}, line {line}: the row has {len} fields; the header has {expected_len}"
                ),
                _ => anyhow!("{origin}, line {line}: {e}"),
            }
        })?;
        let line = record
            .position()
            .map_or(0, |p| self.lines.line_at(p.byte()));
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
        let mut checked: Vec<(&str, usize)> = vec![
            ("account_id", index[0]),
            ("partition", index[1]),
            ("region", index[2]),
        ];
        if let Some(i) = self.customer {
            checked.push(("customer_id", i));
        }
        for (name, i) in checked {
            if let Some(why) = refuse(record.get(i).unwrap_or(""), self.rules) {
                bail!("{origin}, line {line}, column {} (`{name}`): {why}", i + 1);
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
        let mut dates = Vec::new();
        for (name, i, value) in [
            ("period_start", index[3], &account.period_start),
            ("period_end", index[4], &account.period_end),
        ] {
            match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
                Ok(date) if value.len() == 10 => dates.push(date),
                _ => bail!(
                    "{origin}, line {line}, column {} (`{name}`): `{}` is not a date; expected YYYY-MM-DD",
                    i + 1,
                    billshadow_reports::clean(value)
                ),
            }
        }
        if dates[1] < dates[0] {
            bail!(
                "{origin}, line {line}, column {} (`period_end`): {} is before period_start {}",
                index[4] + 1,
                account.period_end,
                account.period_start
            );
        }
        Ok(account)
    }
}

/// Reads the whole cohort once to check every row, before any work starts; returns its size.
/// Reads a whole cohort file to check it, counting its accounts; its errors are input errors.
pub(crate) fn check(path: &Path, rules: Rules) -> anyhow::Result<u64> {
    check_file(path, rules).map_err(crate::exit::input)
}

fn check_file(path: &Path, rules: Rules) -> anyhow::Result<u64> {
    let mut rows = 0;
    for account in open(path, rules)? {
        account?;
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: the cohort has no accounts", path.display());
    }
    Ok(rows)
}
