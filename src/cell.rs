//! A cell: one billing partition in one region, the unit the controller moves; its stored
//! state, a step's name, and what one run says about it. A leaf: the store reads and writes
//! these, the controller decides with them, and neither imports the other for them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One partition in one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub(crate) struct CellId {
    pub(crate) partition: String,
    pub(crate) region: String,
}

impl CellId {
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.partition, self.region)
    }

    pub(crate) fn parse(name: &str) -> Option<CellId> {
        let (partition, region) = name.split_once('/')?;
        (!partition.is_empty() && !region.is_empty()).then(|| CellId {
            partition: partition.to_owned(),
            region: region.to_owned(),
        })
    }
}

impl std::str::FromStr for CellId {
    type Err = String;

    /// A cell as the command line takes it: `partition/region`.
    fn from_str(name: &str) -> Result<CellId, String> {
        CellId::parse(name).ok_or_else(|| {
            format!("`{name}` is not a cell; write it as partition/region, e.g. p1/eu-west-1")
        })
    }
}

/// Where a cell is on its way from the legacy stack to the modern one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stage {
    Legacy,
    Shadow,
    /// Modern authoritative for a stable share of accounts: `policy.canary_steps[step]` %.
    Canary,
    Cutover,
    Decommissioned,
    RolledBack,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Legacy => "legacy",
            Stage::Shadow => "shadow",
            Stage::Canary => "canary",
            Stage::Cutover => "cutover",
            Stage::Decommissioned => "decommissioned",
            Stage::RolledBack => "rolled_back",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Stage> {
        [
            Stage::Legacy,
            Stage::Shadow,
            Stage::Canary,
            Stage::Cutover,
            Stage::Decommissioned,
            Stage::RolledBack,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether the modern stack bills some or all of the cell's accounts.
    pub(crate) fn modern_authoritative(self) -> bool {
        matches!(self, Stage::Canary | Stage::Cutover | Stage::Decommissioned)
    }
}

/// A cell's state as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CellState {
    pub(crate) stage: Stage,
    pub(crate) step: usize,
    /// Held: it advances no further until a passing verdict on evidence newer than `held_since`.
    pub(crate) held: Option<Hold>,
    pub(crate) version: i64,
    /// When the cell took its current step (`None`: never moved, or a store from before it was
    /// recorded).
    pub(crate) entered_at: Option<DateTime<Utc>>,
    /// Only runs started after this count as evidence for the next step: the later of when the
    /// current step was taken and when the newest run it was judged on started.
    pub(crate) fresh_after: Option<DateTime<Utc>>,
    /// A transition written before its hook ran and not completed yet.
    pub(crate) pending: Option<Pending>,
}

impl CellState {
    /// Whether `other` is at another stage or step (a move, not a hold or a release).
    pub(crate) fn moves_to(&self, other: &CellState) -> bool {
        (self.stage, self.step) != (other.stage, other.step)
    }
}

/// A transition recorded before its hook ran: the router may or may not have taken it yet.
/// `migrate reconcile` completes it (re-running the idempotent hook) or reverts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// advance, rollback, hold, release.
    pub(crate) action: String,
    pub(crate) stage: Stage,
    pub(crate) step: usize,
    pub(crate) held: Option<Hold>,
    /// The labels the hook was given (`{from}`, `{to}`).
    pub(crate) from_label: String,
    pub(crate) to_label: String,
    pub(crate) since: DateTime<Utc>,
    pub(crate) actor: String,
    pub(crate) reason: String,
    /// `fresh_after` the cell gets when the transition completes.
    pub(crate) fresh_after: Option<DateTime<Utc>>,
}

/// A step as `--to` names it: `shadow`, `canary` (its first step), `canary:5` (the step of
/// 5 %), `cutover`, `decommissioned`. Which step a percentage is depends on the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepName {
    pub(crate) stage: Stage,
    pub(crate) percent: Option<Decimal>,
    pub(crate) text: String,
}

impl std::str::FromStr for StepName {
    type Err = String;

    fn from_str(text: &str) -> Result<StepName, String> {
        let (name, percent) = text
            .split_once(':')
            .map_or((text, None), |(n, p)| (n, Some(p)));
        let stage = Stage::parse(name).filter(|s| *s != Stage::RolledBack && *s != Stage::Legacy);
        let Some(stage) = stage else {
            return Err(format!(
                "`{text}` is not a step (shadow, canary, canary:PERCENT, cutover, decommissioned)"
            ));
        };
        let percent = match (stage, percent) {
            (_, None) => None,
            (Stage::Canary, Some(p)) => Some(
                billshadow_comparisons::parse_decimal(p)
                    .ok()
                    .filter(|d| *d > Decimal::ZERO && *d <= Decimal::ONE_HUNDRED)
                    .ok_or_else(|| format!("`{text}`: `{p}` is not a percentage"))?,
            ),
            (_, Some(_)) => {
                return Err(format!(
                    "`{text}`: only canary steps have a percentage (canary:PERCENT)"
                ));
            }
        };
        Ok(StepName {
            stage,
            percent,
            text: text.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) reason: String,
    pub(crate) since: DateTime<Utc>,
    /// The newest run when the cell was held: only a run after it can release the cell.
    pub(crate) after_run: String,
}

/// What one completed run says about one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunEvidence {
    pub(crate) run_id: String,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    /// The cell's accounts in the run's cohort.
    pub(crate) cohort: u64,
    pub(crate) compared: u64,
    pub(crate) mismatched: u64,
    pub(crate) errored: u64,
    /// Customers with an account in the cell whose total across the run's accounts fails
    /// (no waiver covers it): any blocks the gate. Left out of the evidence hash when 0, as
    /// before customers were counted.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) customers_mismatched: u64,
    /// Per currency, modern − legacy over the cell's accounts.
    pub(crate) delta: BTreeMap<String, Decimal>,
    /// Per currency, the largest |delta| of an unwaived failing diff.
    pub(crate) largest_unwaived: BTreeMap<String, Decimal>,
    /// Waivers the run relied on that have expired since.
    pub(crate) expired_waivers: Vec<String>,
    /// What each stack reported as its version when the run started (left out of the evidence
    /// hash when none was recorded, as before versions were).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) stack_versions: crate::versions::StackVersions,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
