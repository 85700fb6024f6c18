//! The migration policy (TOML): the cells, their order and dependencies, the canary steps, the
//! gate, freeze windows, approvals, rollback triggers and the transition hook. Validated on
//! load with the line and column of every error (`billshadow migrate lint`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use billshadow_adapters::location::{TomlError, toml_error};
use billshadow_comparisons::parse_decimal;
use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

pub(crate) use crate::cell::CellId;

use super::keys;

/// The evidence a step needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gate {
    pub(crate) min_accounts: u64,
    /// Share of the cell's cohort that must have been compared.
    pub(crate) min_coverage: Decimal,
    pub(crate) max_mismatch_rate: Decimal,
    /// When set, the mismatch rate is judged by its upper confidence bound (Wilson score).
    pub(crate) confidence: Option<Decimal>,
    /// Per currency, the largest |modern − legacy| the cell may drift by in a run.
    pub(crate) max_delta: BTreeMap<String, Decimal>,
    /// Per currency, no unwaived diff may be this large or larger. An unwaived diff in a
    /// currency the table does not list cannot be judged: the gate holds (never passes).
    /// `None`: the policy has no critical-diff criterion.
    pub(crate) critical_amount: Option<BTreeMap<String, Decimal>>,
    pub(crate) consecutive_passing_runs: u32,
    pub(crate) min_span_hours: u32,
    pub(crate) max_stack_error_rate: Decimal,
    /// Approvals (not by the initiator) needed to enter these states.
    pub(crate) approvals: u32,
    pub(crate) approvals_for: Vec<String>,
    /// Hours a cell stays at a canary step (or in cutover) before its next step.
    pub(crate) min_step_hours: u32,
}

/// Someone who may approve a step, or initiate one that needs approvals, by their key.
#[derive(Debug, Clone)]
pub(crate) struct Approver {
    pub(crate) name: String,
    pub(crate) key: ssh_key::PublicKey,
    pub(crate) fingerprint: String,
}

/// A freeze window: the last `days_before_month_end` and first `days_after_month_start` days of
/// every month, in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Freeze {
    pub(crate) last_days: u32,
    pub(crate) first_days: u32,
    pub(crate) time_zone: chrono_tz::Tz,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rollback {
    pub(crate) on_critical_diff: bool,
    pub(crate) max_stack_error_rate: Option<Decimal>,
}

#[derive(Debug, Clone)]
pub(crate) struct CellPolicy {
    pub(crate) cell: CellId,
    pub(crate) order: i64,
    pub(crate) after: Vec<CellId>,
}

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) cells: Vec<CellPolicy>,
    pub(crate) max_in_flight: usize,
    /// Canary steps, in percent of accounts (by a stable hash of the account id).
    pub(crate) canary_steps: Vec<Decimal>,
    pub(crate) gate: Gate,
    pub(crate) freezes: Vec<Freeze>,
    pub(crate) rollback: Rollback,
    pub(crate) hook: Vec<String>,
    pub(crate) approvers: Vec<Approver>,
    /// The controller's public key: every audit record and the chain's head are signed by it.
    pub(crate) audit_key: Option<ssh_key::PublicKey>,
    /// sha-256 of the policy file, recorded with every transition.
    pub(crate) hash: String,
}

impl Policy {
    pub(crate) fn load(path: &Path) -> Result<Policy, TomlError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TomlError::io(&origin, &e))?;
        Policy::parse(&origin, &text)
    }

    pub(crate) fn parse(origin: &str, text: &str) -> Result<Policy, TomlError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        raw.validate()
            .map_err(|(span, message)| TomlError::at(origin, text, span, message))
            .map(|mut p| {
                p.hash = crate::support::sha256_hex(text.as_bytes());
                p
            })
    }

    pub(crate) fn cell(&self, id: &CellId) -> Option<&CellPolicy> {
        self.cells.iter().find(|c| &c.cell == id)
    }

    /// The approver whose key this is.
    pub(crate) fn approver(&self, key: &ssh_key::PublicKey) -> Option<&Approver> {
        self.approvers
            .iter()
            .find(|a| a.key.key_data() == key.key_data())
    }
}

type Invalid = (Range<usize>, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    canary_steps: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    hook: Vec<String>,
    cells: Spanned<Vec<Spanned<RawCells>>>,
    gate: Spanned<RawGate>,
    #[serde(default)]
    freeze: Vec<Spanned<RawFreeze>>,
    #[serde(default)]
    rollback: Option<Spanned<RawRollback>>,
    #[serde(default)]
    approvers: Vec<Spanned<RawApprover>>,
    #[serde(default)]
    audit: Option<Spanned<RawAudit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprover {
    name: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    public_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCells {
    partitions: Vec<String>,
    regions: Vec<String>,
    #[serde(default)]
    order: i64,
    #[serde(default)]
    after: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    min_accounts: u64,
    #[serde(default)]
    min_coverage: Option<String>,
    max_mismatch_rate: String,
    confidence: Option<String>,
    #[serde(default)]
    max_delta: BTreeMap<String, String>,
    critical_amount: Option<Spanned<toml::Value>>,
    #[serde(default)]
    consecutive_passing_runs: Option<u32>,
    #[serde(default)]
    min_span_hours: u32,
    #[serde(default)]
    max_stack_error_rate: Option<String>,
    #[serde(default)]
    approvals: u32,
    #[serde(default)]
    approvals_for: Option<Vec<String>>,
    #[serde(default)]
    min_step_hours: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreeze {
    #[serde(default)]
    days_before_month_end: u32,
    #[serde(default)]
    days_after_month_start: u32,
    time_zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollback {
    #[serde(default)]
    on_critical_diff: bool,
    max_stack_error_rate: Option<String>,
}

/// Hours at a step before the next one, when `[gate] min_step_hours` is not given.
pub(crate) const DEFAULT_MIN_STEP_HOURS: u32 = 24;

/// `[[approvers]]`: names and ed25519 keys, each listed once; enough of them that a step
/// needing `approvals` can get them from people other than its initiator.
fn approvers(
    raw: Vec<Spanned<RawApprover>>,
    gate: &Gate,
    gate_span: &Range<usize>,
) -> Result<Vec<Approver>, Invalid> {
    let mut out: Vec<Approver> = Vec::new();
    for entry in raw {
        let span = entry.span();
        let a = entry.into_inner();
        let key = keys::parse_public(&a.key)
            .map_err(|e| (span.clone(), format!("[[approvers]] {}: {e}", a.name)))?;
        if out.iter().any(|o| o.name == a.name) {
            return Err((span, format!("[[approvers]] {} is listed twice", a.name)));
        }
        if let Some(o) = out.iter().find(|o| o.key.key_data() == key.key_data()) {
            return Err((
                span,
                format!("[[approvers]] {} has the key of {}", a.name, o.name),
            ));
        }
        out.push(Approver {
            name: a.name,
            fingerprint: keys::fingerprint(&key),
            key,
        });
    }
    if gate.approvals > 0 && out.len() <= gate.approvals as usize {
        return Err((
            gate_span.clone(),
            format!(
                "[gate] approvals = {} needs at least {} [[approvers]] with keys (the initiator signs the step and cannot approve it); the policy lists {}",
                gate.approvals,
                gate.approvals + 1,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Expands `p0..p3` into p0, p1, p2, p3; anything else is itself.
fn expand(item: &str) -> Result<Vec<String>, String> {
    let Some((a, b)) = item.split_once("..") else {
        return Ok(vec![item.to_owned()]);
    };
    let split = |s: &str| {
        let digits = s.trim_start_matches(|c: char| !c.is_ascii_digit());
        let prefix = &s[..s.len() - digits.len()];
        digits
            .parse::<u32>()
            .ok()
            .map(|n| (prefix.to_owned(), n, digits.len()))
    };
    match (split(a), split(b)) {
        (Some((pa, x, width)), Some((pb, y, _))) if pa == pb && x <= y && y - x < 10_000 => {
            Ok((x..=y).map(|n| format!("{pa}{n:0width$}")).collect())
        }
        _ => Err(format!("`{item}` is not a range such as p0..p3")),
    }
}

fn ratio(name: &str, text: &str) -> Result<Decimal, String> {
    let v = parse_decimal(text).map_err(|e| format!("{name}: {e}"))?;
    if v < Decimal::ZERO || v > Decimal::ONE {
        return Err(format!("{name} = `{text}` must be between 0 and 1"));
    }
    Ok(v)
}

/// `critical_amount = { USD = "100.00", EUR = "90.00" }`: one threshold per currency. A bare
/// number has no currency, and amounts in different currencies are never compared: it is an
/// error, located on the setting.
fn critical_amount(raw: Spanned<toml::Value>) -> Result<BTreeMap<String, Decimal>, Invalid> {
    let span = raw.span();
    let err = |m: String| (span.clone(), format!("[gate] critical_amount: {m}"));
    let table = match raw.into_inner() {
        toml::Value::Table(t) => t,
        toml::Value::String(s) => {
            return Err(err(format!(
                "`{s}` has no currency; thresholds on money are per currency, e.g. critical_amount = {{ USD = \"{s}\" }}"
            )));
        }
        other => {
            return Err(err(format!(
                "expected a table of amounts per currency, e.g. {{ USD = \"100.00\", EUR = \"90.00\" }}, not {}",
                other.type_str()
            )));
        }
    };
    let mut out = BTreeMap::new();
    for (currency, value) in table {
        if currency
            .parse::<billshadow_comparisons::Currency>()
            .is_err()
        {
            return Err(err(format!("`{currency}` is not an ISO 4217 currency")));
        }
        let text = value.as_str().ok_or_else(|| {
            err(format!(
                "{currency}: write the amount as a string, e.g. \"100.00\""
            ))
        })?;
        let amount = parse_decimal(text).map_err(|e| err(format!("{currency}: {e}")))?;
        if amount <= Decimal::ZERO {
            return Err(err(format!("{currency} = `{text}` must be above zero")));
        }
        out.insert(currency, amount);
    }
    if out.is_empty() {
        return Err(err(
            "the table is empty; name at least one currency, or leave critical_amount out"
                .to_owned(),
        ));
    }
    Ok(out)
}

impl RawPolicy {
    /// The policy, each part validated in the order it is written in the file, so the first
    /// error found is the first one a reader meets.
    fn validate(self) -> Result<Policy, Invalid> {
        let cells = cells(self.cells)?;
        let canary_steps = canary_steps(self.canary_steps)?;
        let gate_span = self.gate.span();
        let gate = gate(self.gate)?;
        let freezes = self
            .freeze
            .into_iter()
            .map(freeze)
            .collect::<Result<Vec<_>, _>>()?;
        let rollback = rollback(self.rollback)?;
        let approvers = approvers(self.approvers, &gate, &gate_span)?;
        let audit_key = self
            .audit
            .map(|a| {
                let span = a.span();
                keys::parse_public(&a.into_inner().public_key)
                    .map_err(|e| (span, format!("[audit] public_key: {e}")))
            })
            .transpose()?;
        if let Some(key) = &audit_key
            && let Some(a) = approvers
                .iter()
                .find(|a| a.key.key_data() == key.key_data())
        {
            return Err((
                gate_span,
                format!(
                    "[[approvers]] {} has the controller's [audit] public_key: the controller signs the log, people sign steps",
                    a.name
                ),
            ));
        }
        Ok(Policy {
            cells,
            max_in_flight: self.max_in_flight.unwrap_or(2).max(1),
            canary_steps,
            gate,
            freezes,
            rollback,
            hook: self.hook,
            approvers,
            audit_key,
            hash: String::new(),
        })
    }
}

/// A cell's `after` list, resolved once every cell is known.
struct PendingAfter {
    index: usize,
    after: Vec<String>,
    span: Range<usize>,
}

/// Every cell of every `[[cells]]` entry, each listed once, with its dependencies.
fn cells(raw: Spanned<Vec<Spanned<RawCells>>>) -> Result<Vec<CellPolicy>, Invalid> {
    let span = raw.span();
    let mut cells: Vec<CellPolicy> = Vec::new();
    let mut pending: Vec<PendingAfter> = Vec::new();
    for entry in raw.into_inner() {
        expand_cells(entry, &mut cells, &mut pending)?;
    }
    if cells.is_empty() {
        return Err((span, "the policy has no cells".to_owned()));
    }
    for p in pending {
        resolve_after(&mut cells, p)?;
    }
    Ok(cells)
}

/// One `[[cells]]` entry: every partition × every region (ranges such as `p0..p3`
/// expanded), appended to `cells`, their `after` lists to `pending`.
fn expand_cells(
    entry: Spanned<RawCells>,
    cells: &mut Vec<CellPolicy>,
    pending: &mut Vec<PendingAfter>,
) -> Result<(), Invalid> {
    let span = entry.span();
    let raw = entry.into_inner();
    let err = |m: String| (span.clone(), m);
    let mut partitions = Vec::new();
    for p in &raw.partitions {
        partitions.extend(expand(p).map_err(err)?);
    }
    let mut regions = Vec::new();
    for r in &raw.regions {
        regions.extend(expand(r).map_err(err)?);
    }
    if partitions.is_empty() || regions.is_empty() {
        return Err(err(
            "a [[cells]] entry needs at least one partition and one region".to_owned(),
        ));
    }
    for partition in &partitions {
        for region in &regions {
            let cell = CellId {
                partition: partition.clone(),
                region: region.clone(),
            };
            if cells.iter().any(|c| c.cell == cell) {
                return Err(err(format!("the cell {} is listed twice", cell.name())));
            }
            pending.push(PendingAfter {
                index: cells.len(),
                after: raw.after.clone(),
                span: span.clone(),
            });
            cells.push(CellPolicy {
                cell,
                order: raw.order,
                after: Vec::new(),
            });
        }
    }
    Ok(())
}

/// One cell's `after` names, each a cell of the policy other than itself.
fn resolve_after(cells: &mut [CellPolicy], pending: PendingAfter) -> Result<(), Invalid> {
    let PendingAfter { index, after, span } = pending;
    for name in after {
        let id = CellId::parse(&name).ok_or_else(|| {
            (
                span.clone(),
                format!("after: `{name}` is not a cell (partition/region)"),
            )
        })?;
        if !cells.iter().any(|c| c.cell == id) {
            return Err((
                span.clone(),
                format!("after: the cell {name} is not in the policy"),
            ));
        }
        if id == cells[index].cell {
            return Err((
                span.clone(),
                format!("the cell {name} cannot come after itself"),
            ));
        }
        cells[index].after.push(id);
    }
    Ok(())
}

/// Canary steps, increasing percentages between 0 and 100; 1, 5 and 25 % when not given.
fn canary_steps(raw: Option<Spanned<Vec<String>>>) -> Result<Vec<Decimal>, Invalid> {
    let Some(steps) = raw else {
        return Ok(vec![Decimal::ONE, Decimal::from(5), Decimal::from(25)]);
    };
    let span = steps.span();
    let mut out: Vec<Decimal> = Vec::new();
    for s in steps.into_inner() {
        let v = parse_decimal(&s).map_err(|e| (span.clone(), format!("canary_steps: {e}")))?;
        if v <= Decimal::ZERO || v >= Decimal::ONE_HUNDRED || out.last().is_some_and(|l| *l >= v) {
            return Err((
                span,
                "canary_steps must be increasing percentages between 0 and 100 (exclusive)"
                    .to_owned(),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// The `[gate]` table; its errors are located on the table.
fn gate(raw: Spanned<RawGate>) -> Result<Gate, Invalid> {
    let gate_span = raw.span();
    let g = raw.into_inner();
    let gerr = |m: String| (gate_span.clone(), format!("[gate] {m}"));
    let optional_ratio =
        |name: &str, text: Option<&str>| text.map(|t| ratio(name, t)).transpose().map_err(gerr);
    let critical_amount = g.critical_amount.map(critical_amount).transpose()?;
    let max_delta = max_delta(g.max_delta).map_err(gerr)?;
    let approvals_for = approvals_for(g.approvals_for).map_err(gerr)?;
    let gate = Gate {
        min_accounts: g.min_accounts,
        min_coverage: optional_ratio("min_coverage", g.min_coverage.as_deref())?
            .unwrap_or(Decimal::ZERO),
        max_mismatch_rate: ratio("max_mismatch_rate", &g.max_mismatch_rate).map_err(gerr)?,
        confidence: optional_ratio("confidence", g.confidence.as_deref())?,
        max_delta,
        critical_amount,
        consecutive_passing_runs: g.consecutive_passing_runs.unwrap_or(1).max(1),
        min_span_hours: g.min_span_hours,
        max_stack_error_rate: optional_ratio(
            "max_stack_error_rate",
            g.max_stack_error_rate.as_deref(),
        )?
        .unwrap_or(Decimal::ZERO),
        approvals: g.approvals,
        approvals_for,
        min_step_hours: g.min_step_hours.unwrap_or(DEFAULT_MIN_STEP_HOURS),
    };
    if gate
        .confidence
        .is_some_and(|c| !(Decimal::new(5, 1)..Decimal::ONE).contains(&c))
    {
        return Err(gerr(
            "confidence must be at least 0.5 and below 1".to_owned(),
        ));
    }
    Ok(gate)
}

/// `max_delta = { USD = "5.00" }`: per ISO 4217 currency, the drift a cell's totals may show.
fn max_delta(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, Decimal>, String> {
    let mut out = BTreeMap::new();
    for (currency, value) in raw {
        if currency
            .parse::<billshadow_comparisons::Currency>()
            .is_err()
        {
            return Err(format!(
                "max_delta: `{currency}` is not an ISO 4217 currency"
            ));
        }
        out.insert(
            currency,
            parse_decimal(&value).map_err(|e| format!("max_delta: {e}"))?,
        );
    }
    Ok(out)
}

/// The states entering which needs approvals; cutover and decommissioned when not given.
fn approvals_for(raw: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let states = raw.unwrap_or_else(|| vec!["cutover".to_owned(), "decommissioned".to_owned()]);
    for state in &states {
        if !matches!(state.as_str(), "canary" | "cutover" | "decommissioned") {
            return Err(format!(
                "approvals_for: `{state}` is not canary, cutover or decommissioned"
            ));
        }
    }
    Ok(states)
}

/// One `[[freeze]]` window: a real time zone, at most 15 days at each end of a month.
fn freeze(raw: Spanned<RawFreeze>) -> Result<Freeze, Invalid> {
    let span = raw.span();
    let f = raw.into_inner();
    let time_zone: chrono_tz::Tz = f.time_zone.parse().map_err(|_| {
        (
            span.clone(),
            format!(
                "`{}` is not an IANA time zone such as Europe/Dublin",
                f.time_zone
            ),
        )
    })?;
    if f.days_before_month_end > 15 || f.days_after_month_start > 15 {
        return Err((
            span,
            "a freeze covers at most 15 days at each end of a month".to_owned(),
        ));
    }
    Ok(Freeze {
        last_days: f.days_before_month_end,
        first_days: f.days_after_month_start,
        time_zone,
    })
}

/// The `[rollback]` triggers; none when the table is left out. The table is read without a
/// span, so its errors are located on the `cells` array.
/// The `[rollback]` table; its errors are located on the table.
fn rollback(raw: Option<Spanned<RawRollback>>) -> Result<Rollback, Invalid> {
    let Some(r) = raw else {
        return Ok(Rollback {
            on_critical_diff: false,
            max_stack_error_rate: None,
        });
    };
    let span = r.span();
    let r = r.into_inner();
    Ok(Rollback {
        on_critical_diff: r.on_critical_diff,
        max_stack_error_rate: r
            .max_stack_error_rate
            .as_deref()
            .map(|x| ratio("[rollback] max_stack_error_rate", x))
            .transpose()
            .map_err(|m| (span, m))?,
    })
}

/// Two approvers with keys, for tests' policies.
#[cfg(test)]
pub(crate) const TEST_APPROVERS: &str = r#"
[[approvers]]
name = "alice"
key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvavjTqrsQaHYueHW2HWfDYD1nDMgMPdN8wBQ9wlm5M alice"

[[approvers]]
name = "bob"
key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL7SjTTCS2twG2riX4gGnHeWybrGNBGjSsnfLGjC+Uje bob"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) static POLICY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{POLICY_BODY}{TEST_APPROVERS}"));

    const POLICY_BODY: &str = r#"
max_in_flight = 2
canary_steps = ["1", "5", "25"]

[[cells]]
partitions = ["p0..p1"]
regions = ["us-east-1", "eu-west-1"]

[[cells]]
partitions = ["p2"]
regions = ["us-east-1"]
after = ["p0/us-east-1"]

[gate]
min_accounts = 100
min_coverage = "0.9"
max_mismatch_rate = "0.01"
max_delta = { USD = "5.00" }
critical_amount = { USD = "100.00", EUR = "90.00" }
consecutive_passing_runs = 1
approvals = 1

[[freeze]]
days_before_month_end = 2
days_after_month_start = 3
time_zone = "Europe/Dublin"
"#;

    #[test]
    fn a_rollback_error_points_at_the_rollback_table() {
        let text = format!("{}\n[rollback]\nmax_stack_error_rate = \"2\"\n", *POLICY);
        let e = error_of(&text);
        let line = text.lines().position(|l| l == "[rollback]").unwrap() + 1;
        assert!(
            e.starts_with(&format!("policy.toml:{line}:1: [rollback] max_stack_error_rate = `2` must be between 0 and 1")),
            "{e}"
        );
    }

    #[test]
    fn approvals_need_enough_approvers_with_ed25519_keys() {
        let p = Policy::parse("policy.toml", &POLICY).unwrap();
        assert_eq!(p.approvers.len(), 2);
        assert!(p.approvers[0].fingerprint.starts_with("SHA256:"));
        assert_eq!(p.gate.min_step_hours, DEFAULT_MIN_STEP_HOURS);
        let one = &POLICY[..POLICY.rfind("[[approvers]]").unwrap()];
        assert!(
            error_of(one).contains("approvals = 1 needs at least 2 [[approvers]] with keys"),
            "{}",
            error_of(one)
        );
        let twice = POLICY.replace(
            "AAAAIL7SjTTCS2twG2riX4gGnHeWybrGNBGjSsnfLGjC+Uje",
            "AAAAIOvavjTqrsQaHYueHW2HWfDYD1nDMgMPdN8wBQ9wlm5M",
        );
        assert!(error_of(&twice).contains("bob has the key of alice"));
        let bad = POLICY.replace(
            "AAAAIL7SjTTCS2twG2riX4gGnHeWybrGNBGjSsnfLGjC+Uje bob",
            "AAAAIL7 bob",
        );
        assert!(
            error_of(&bad).contains("[[approvers]] bob: not an OpenSSH public key"),
            "{}",
            error_of(&bad)
        );
    }

    fn error_of(text: &str) -> String {
        Policy::parse("policy.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn the_sample_policy_loads() {
        let p = Policy::parse("policy.toml", &POLICY).unwrap();
        assert_eq!(p.cells.len(), 5);
        assert_eq!(
            p.cells[4].after,
            [CellId {
                partition: "p0".into(),
                region: "us-east-1".into()
            }]
        );
        assert_eq!(p.freezes[0].time_zone, chrono_tz::Europe::Dublin);
        assert_eq!(p.hash.len(), 64);
    }

    #[test]
    fn errors_name_the_line() {
        assert!(
            error_of(&POLICY.replace("Europe/Dublin", "Europe/Atlantis"))
                .starts_with("policy.toml:23:1: `Europe/Atlantis` is not an IANA time zone"),
            "{}",
            error_of(&POLICY.replace("Europe/Dublin", "Europe/Atlantis"))
        );
        assert!(
            error_of(&POLICY.replace("p0/us-east-1", "p9/us-east-1"))
                .contains("after: the cell p9/us-east-1 is not in the policy")
        );
        assert!(
            error_of(&POLICY.replace("min_accounts", "min_acounts"))
                .contains("unknown field `min_acounts`")
        );
        assert!(
            error_of(&POLICY.replace("\"0.01\"", "\"1.5\""))
                .contains("max_mismatch_rate = `1.5` must be between 0 and 1")
        );
        assert!(error_of(&POLICY.replace("p0..p1", "p1..p0")).contains("`p1..p0` is not a range"));
    }

    #[test]
    fn a_critical_amount_without_a_currency_is_rejected_where_it_is_written() {
        let p = Policy::parse("policy.toml", &POLICY).unwrap();
        let critical = p.gate.critical_amount.unwrap();
        assert_eq!(critical["EUR"], Decimal::new(9000, 2));
        assert_eq!(critical.len(), 2);
        let bare = POLICY.replace(
            r#"critical_amount = { USD = "100.00", EUR = "90.00" }"#,
            r#"critical_amount = "100""#,
        );
        let e = error_of(&bare);
        assert!(
            e.starts_with("policy.toml:19:19: [gate] critical_amount: `100` has no currency"),
            "{e}"
        );
        assert!(
            error_of(&POLICY.replace("EUR = \"90.00\" }", "EURO = \"90.00\" }"))
                .contains("critical_amount: `EURO` is not an ISO 4217 currency")
        );
        assert!(
            error_of(&POLICY.replace("EUR = \"90.00\" }", "EUR = 90 }"))
                .contains("EUR: write the amount as a string")
        );
    }
}
