//! Shadow runs: the cohort, the runner that sends each account to both stacks and keeps
//! every outcome, and a stored run read back as a report.

pub(crate) mod causes;
pub(crate) mod cohort;
pub(crate) mod report;
pub(crate) mod runner;
