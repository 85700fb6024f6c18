//! The ordered merge (`diff --sorted-by-account`): when both inputs list their lines by
//! account, accounts in ascending byte order, the two reads are merged in one streaming
//! pass, no partition file written. Each side's reader hands its batches over a channel of
//! one (`Feeder`, checking the order as it goes); the merge compares every account below the
//! smaller of the two sides' last accounts seen, which no later line can belong to.
//!
//! Without the option, files too large for memory are merged this way too while they come
//! ordered (`Order::Detect`): the first line out of order stops both reads and the merge, and
//! the diff starts again, partitioned (`cli/diff.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use billshadow_adapters::Spill;
use billshadow_comparisons::{CompareConfig, Comparison, Field, LineStore, PartitionedComparison};

use super::temp::Scratch;
use super::{AccountOrder, OutOfCoreError, Plan};

/// Whether the order was declared (`--sorted-by-account`: a line out of order is an error)
/// or is being detected (a line out of order gives the merge up, to diff another way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Declared,
    Detect,
}

/// One side's reader end: checks that accounts come in ascending order and sends each batch.
pub(crate) struct Feeder<'p> {
    side: &'static str,
    origin: String,
    plan: &'p Plan,
    seen: AccountOrder,
    to_merge: SyncSender<LineStore>,
    /// The merge stopped (its own error) before this side was read to its end.
    stopped: bool,
    /// Set once either side's read failed: the other stops at its next batch, and so does
    /// the merge, rather than reading and comparing one side to its end for a diff that
    /// ends in the error anyway.
    halt: &'p AtomicBool,
    order: Order,
    /// Where this side's lines came out of order, when the order was being detected.
    disorder: Option<String>,
}

impl<'p> Feeder<'p> {
    pub(crate) fn new(
        side: &'static str,
        origin: &str,
        plan: &'p Plan,
        to_merge: SyncSender<LineStore>,
        halt: &'p AtomicBool,
        order: Order,
    ) -> Feeder<'p> {
        Feeder {
            side,
            origin: origin.to_owned(),
            plan,
            seen: AccountOrder::default(),
            to_merge,
            stopped: false,
            halt,
            order,
            disorder: None,
        }
    }

    /// Where this side's lines came out of order, when the order was being detected.
    pub(crate) fn disorder(&mut self) -> Option<String> {
        self.disorder.take()
    }

    /// This side's read failed (its own error): stops the other side and the merge.
    pub(crate) fn halt_all(&self) {
        self.halt.store(true, Ordering::Relaxed);
    }

    /// Whether the merge stopped before this side was read to its end: the read's error is
    /// then only that.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }
}

impl Spill for Feeder<'_> {
    fn threshold(&self) -> usize {
        // A quarter of a read batch: a side's lines are held up to four times over on their
        // way (the store being read, the channel, the send, the merge's pending lines).
        self.plan.read_batch / 4
    }

    fn spill(&mut self, lines: &LineStore) -> std::io::Result<()> {
        if self.halt.load(Ordering::Relaxed) {
            self.stopped = true;
            return Err(std::io::Error::other("the comparison stopped"));
        }
        for line in lines.lines() {
            let account = line.get(Field::AccountId);
            if let Err(last) = self.seen.next(account) {
                let place = format!(
                    "{} ({}), line {}: account `{account}` comes after `{last}`",
                    self.origin,
                    self.side,
                    line.source_line(),
                );
                return Err(match self.order {
                    Order::Detect => {
                        self.disorder = Some(place);
                        std::io::Error::other("the inputs are not ordered by account")
                    }
                    Order::Declared => std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{place}, but --sorted-by-account says the lines are in ascending account order; leave the option out to diff unordered inputs"
                        ),
                    ),
                });
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.to_merge.send(lines.clone()).map_err(|_| {
            self.stopped = true;
            std::io::Error::other("the comparison stopped")
        })
    }
}

/// One side's lines received and not yet compared: `lines[start..]`.
struct Pending {
    lines: LineStore,
    start: usize,
    done: bool,
    from: Receiver<LineStore>,
}

impl Pending {
    /// Waits for the next batch; marks the side done when there is none.
    fn receive(&mut self) {
        match self.from.recv() {
            Ok(batch) => {
                for line in batch.lines() {
                    self.lines.push_copy(&line);
                }
            }
            Err(_) => self.done = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.lines.len()
    }

    fn last_account(&self) -> Option<&str> {
        let n = self.lines.len();
        (n > self.start).then(|| self.lines.line(n - 1).get(Field::AccountId))
    }

    /// Takes the lines of the accounts below `bound` (all of them without one): a prefix.
    fn take_below(&mut self, bound: Option<&str>) -> LineStore {
        let len = self.lines.len();
        let end = match bound {
            None => len,
            Some(bound) => (self.start..len)
                .find(|&i| self.lines.line(i).get(Field::AccountId) >= bound)
                .unwrap_or(len),
        };
        let mut taken = LineStore::new();
        for i in self.start..end {
            taken.push_copy(&self.lines.line(i));
        }
        self.start = end;
        // What is taken is dropped once it is most of the store.
        if self.start * 2 > len {
            let mut rest = LineStore::new();
            for i in self.start..len {
                rest.push_copy(&self.lines.line(i));
            }
            (self.lines, self.start) = (rest, 0);
        }
        taken
    }
}

/// Merges both sides' batches as they come, comparing each run of complete accounts. Stops
/// at once with `Halted` when `halt` is set (a side's read failed or came out of order; that
/// is what the diff reports), the customers' files left unread.
pub(crate) fn merge(
    [legacy, modern]: [Receiver<LineStore>; 2],
    config: &CompareConfig,
    plan: &Plan,
    scratch: &Scratch,
    threads: usize,
    halt: &AtomicBool,
) -> Result<Comparison, OutOfCoreError> {
    let pending = |from| Pending {
        lines: LineStore::new(),
        start: 0,
        done: false,
        from,
    };
    let mut sides = [pending(legacy), pending(modern)];
    let mut comparison = PartitionedComparison::new(config);
    let mut customers = plan.customer_files(scratch);
    loop {
        if halt.load(Ordering::Relaxed) {
            return Err(OutOfCoreError::Halted);
        }
        // A side still reading has lines pending, or the bound below could pass its lines.
        for side in &mut sides {
            while !side.done && side.is_empty() {
                side.receive();
            }
        }
        // Again after waiting: a side that failed while the merge waited is done, not
        // finished, and the other side's lines are not compared against nothing.
        if halt.load(Ordering::Relaxed) {
            return Err(OutOfCoreError::Halted);
        }
        if sides.iter().all(|s| s.done && s.is_empty()) {
            break;
        }
        // Every account below the smallest last account of a side still reading is complete.
        let bound: Option<String> = sides
            .iter()
            .filter(|s| !s.done)
            .filter_map(|s| s.last_account())
            .min()
            .map(str::to_owned);
        let [l, m] = &mut sides;
        let (legacy, modern) = (
            l.take_below(bound.as_deref()),
            m.take_below(bound.as_deref()),
        );
        if legacy.is_empty() && modern.is_empty() {
            // The smallest side's last account may go on: read more of it.
            let lowest = sides
                .iter_mut()
                .filter(|s| !s.done)
                .min_by(|a, b| a.last_account().cmp(&b.last_account()));
            if let Some(side) = lowest {
                side.receive();
            }
            continue;
        }
        super::add(
            &mut comparison,
            &legacy,
            &modern,
            &mut customers,
            plan,
            threads,
        )?;
    }
    Ok(customers.finish(comparison)?)
}
