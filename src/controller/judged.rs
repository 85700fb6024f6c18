//! One cell judged for its next step: what the controller decides from and what its
//! renderings show. A leaf of the controller's folder: both the commands (`mod.rs`) and the
//! renderings (`render.rs`) read it, so it imports neither.

use super::machine::{CellState, Decision, RunEvidence, Stage, Verdict};
use super::policy::CellId;

/// One cell, judged for its next step.
pub(crate) struct Judged {
    pub(crate) cell: CellId,
    pub(crate) state: CellState,
    pub(crate) target: Option<(Stage, usize)>,
    /// The next step as the command line names it (`canary:5`), or `none`.
    pub(crate) next: String,
    pub(crate) verdict: Verdict,
    pub(crate) decision: Decision,
    pub(crate) approvals: Vec<String>,
    pub(crate) latest: Option<RunEvidence>,
    pub(crate) streak: String,
}
