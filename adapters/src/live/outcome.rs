//! What asking a stack for an account's bill gives: the bill, or a failure (an outage is
//! no verdict).

use billshadow_comparisons::LineStore;

/// Why a stack gave no bill for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFailure {
    pub message: String,
    pub retries: u32,
    /// The stack stayed down past its `outage_max`: no verdict for the account, which stays
    /// pending, and the run stops.
    pub outage: bool,
}

/// One account's bill as a stack computed it.
#[derive(Debug)]
pub struct Fetched {
    pub lines: LineStore,
    pub retries: u32,
}

pub type FetchResult = Result<Fetched, StackFailure>;
