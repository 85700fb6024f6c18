//! A comparison made partition by partition: what an out-of-core diff adds up.

use crate::config::CompareConfig;
use crate::diff::{Comparison, compare_part, customer_diffs};
use crate::difference::Diff;
use crate::model::LineStore;
use crate::summary::Tally;

/// A comparison made partition by partition (an out-of-core diff): the accounts are split
/// into partitions, every account's lines of both sides in one partition, and each partition
/// is compared on its own ([`PartitionedComparison::add`], partitions in any order).
/// [`PartitionedComparison::finish`] then gives what [`compare_with_threads`](crate::compare_with_threads) of all the
/// lines at once gives, diff for diff and in the same order: the diffs are put back in
/// account order, and the customers, whose accounts may lie in different partitions, are
/// judged once over all of them.
#[derive(Debug)]
pub struct PartitionedComparison<'c> {
    config: &'c CompareConfig,
    diffs: Vec<Diff>,
    tally: Tally,
    /// About how many bytes the diffs held take.
    diff_bytes: usize,
}

impl<'c> PartitionedComparison<'c> {
    pub fn new(config: &'c CompareConfig) -> PartitionedComparison<'c> {
        PartitionedComparison {
            config,
            diffs: Vec::new(),
            tally: Tally::new(config),
            diff_bytes: 0,
        }
    }

    /// Compares one partition. Every account of `legacy` and `modern` must have all its
    /// lines of both sides in this partition, and be in no other.
    pub fn add(&mut self, legacy: &LineStore, modern: &LineStore, threads: usize) {
        let (diffs, tally) = compare_part(
            legacy,
            modern,
            self.config,
            threads,
            self.config.customer_totals,
        );
        self.diff_bytes += diffs.iter().map(Diff::approx_bytes).sum::<usize>();
        self.diffs.extend(diffs);
        let lines = (
            self.tally.lines_legacy + tally.lines_legacy,
            self.tally.lines_modern + tally.lines_modern,
        );
        self.tally.merge(tally);
        (self.tally.lines_legacy, self.tally.lines_modern) = lines;
    }

    /// The diffs held so far, and about how many bytes they take.
    pub fn diffs_held(&self) -> (usize, usize) {
        (self.diffs.len(), self.diff_bytes)
    }

    /// The customers whose totals are held so far (for the customer-level check at the
    /// end), and about how many bytes they take.
    pub fn customers_held(&self) -> (usize, usize) {
        self.tally.customer_bytes()
    }

    /// The comparison of every partition added: the diffs in account order (each account's
    /// in the order its partition gave them), then the customers' diffs.
    pub fn finish(self) -> Comparison {
        let PartitionedComparison {
            config,
            mut diffs,
            mut tally,
            ..
        } = self;
        // Stable: an account's diffs keep their order.
        diffs.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        diffs.extend(customer_diffs(config, &mut tally));
        let summary = tally.finish(config);
        Comparison { summary, diffs }
    }
}
