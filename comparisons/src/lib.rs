//! The canonical bill model and the to-the-cent diff engine of billshadow.
//!
//! Pure: no I/O, no async, no clock (the date waivers are judged against is passed in).
//! No amount is ever an `f64`: money is `rust_decimal::Decimal` with ISO 4217 minor units.

pub mod config;
pub mod diff;
pub mod difference;
mod fields;
pub mod model;
pub mod money;
mod pairing;
pub mod partitioned;
pub mod signature;
pub mod summary;
pub mod waive;

pub use config::{CompareConfig, Ignored, KeyField, Tolerance, Tolerances, Waiver};
pub use diff::{
    Comparison, CustomerPart, compare, compare_deferring_customers, compare_with_threads,
    customer_total_diff,
};
pub use difference::{Diff, DiffClass, Evidence, Fields, Scope};
pub use model::{Field, Line, LineStore, LineType, NewLine};
pub use money::{Currency, parse_amount, parse_decimal};
pub use partitioned::PartitionedComparison;
pub use signature::{Causes, Signature};
pub use summary::{CurrencyTotals, CustomerTotals, Summary, Verdict, WaiverUse};
