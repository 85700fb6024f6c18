//! A comparison made partition by partition: what an out-of-core diff adds up.

use crate::config::CompareConfig;
use crate::diff::{Comparison, CustomerPart, compare_part, customer_diffs};
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

    /// Takes the customers' totals held so far out, for the caller to keep elsewhere (an
    /// out-of-core diff writes them to files by customer) and hand back to
    /// [`PartitionedComparison::finish_with_customers`]. A customer's totals may come out
    /// in several parts (one per partition with one of its accounts): they add up.
    pub fn take_customers(&mut self) -> Vec<CustomerPart> {
        self.tally.take_customers()
    }

    /// The comparison of every partition added: the diffs in account order (each account's
    /// in the order its partition gave them), then the customers' diffs.
    pub fn finish(mut self) -> Comparison {
        let held = self.tally.take_customers();
        let groups = std::iter::once(Ok::<_, std::convert::Infallible>(held));
        match self.finish_with_customers(groups) {
            Ok(comparison) => comparison,
            Err(never) => match never {},
        }
    }

    /// As [`PartitionedComparison::finish`], every customer's totals taken out before
    /// ([`PartitionedComparison::take_customers`]) and handed back in groups: each customer's
    /// parts all in one group, in any order. One group is held at a time; the customers'
    /// diffs come out in customer and currency order, as [`finish`](Self::finish) gives.
    pub fn finish_with_customers<E>(
        self,
        groups: impl IntoIterator<Item = Result<Vec<CustomerPart>, E>>,
    ) -> Result<Comparison, E> {
        let PartitionedComparison {
            config,
            mut diffs,
            mut tally,
            ..
        } = self;
        debug_assert_eq!(tally.customer_bytes().0, 0, "customers held at the end");
        // Stable: an account's diffs keep their order.
        diffs.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        let mut customers = Vec::new();
        for group in groups {
            let mut judged = Tally::new(config);
            judged.add_customer_parts(group?);
            customers.extend(customer_diffs(config, &mut judged));
            tally.merge_judged_customers(judged);
        }
        // Stable: each group's diffs are in this order already.
        customers.sort_by(|a, b| (&a.customer_id, a.currency).cmp(&(&b.customer_id, b.currency)));
        diffs.extend(customers);
        let summary = tally.finish(config);
        Ok(Comparison { summary, diffs })
    }
}
