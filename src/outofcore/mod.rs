//! The out-of-core diff (`diff --memory-limit`): a grace hash join. Each side is read in
//! batches; once a batch fills (its share of the limit), both sides' lines are written to
//! partition files by a hash of the account (FNV-1a 64, as `run --shard`), every account's
//! lines of both sides in one partition, and the partitions are compared one at a time
//! (`PartitionedComparison`), a partition larger than its share split again by another hash.
//! Inputs that fit are compared in memory as before; both paths give the same report.
//!
//! - `temp`: the temporary directory, its removal on every exit, and leftovers of killed runs;
//! - `codec`: the partition files' encoding of parsed lines;
//! - `ordered`: inputs ordered by account merged in one pass instead, no partition written;
//! - `customers`: the customers' totals, kept in files by customer until every account is in.

pub(crate) mod codec;
pub(crate) mod customers;
pub(crate) mod ordered;
pub(crate) mod temp;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use billshadow_adapters::{Input, Spill};
use billshadow_comparisons::{CompareConfig, Comparison, Field, LineStore, PartitionedComparison};

use customers::CustomerFiles;
use temp::Scratch;

/// The smallest `--memory-limit` (`args::diff::memory_size` checks it too).
pub(crate) const LIMIT_MIN: u64 = 1024;
/// Partitions at most, per split (each is a file per side, open while writing).
const PARTITIONS_MAX: usize = 256;
/// How many times a partition too large for its share is split again; past this it is
/// compared as it is (an account's lines are never split).
const SPLITS_MAX: u32 = 3;
/// What the diffs held for the report may take at least, whatever the limit.
const DIFF_BYTES_MIN: u64 = 8 * 1024 * 1024;

/// How the memory limit is shared out.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) limit: u64,
    /// Bytes of lines a side holds while read before they go to partition files.
    read_batch: usize,
    /// Bytes of encoded lines (both sides) a partition is compared with at most.
    partition_bytes: u64,
    /// Partitions of the first split.
    pub(crate) partitions: usize,
    /// What the diffs held for the report may take.
    diff_bytes: u64,
    /// What the customers' totals may take in memory before they go to files.
    customer_bytes: u64,
    /// The bytes both sides' lines would take in memory, when known (not for standard input).
    estimate: Option<u64>,
}

impl Plan {
    /// Shares `limit` out: a side's read batch an eighth, a partition a quarter, and a half
    /// for what the report holds until the end: the diffs seven sixteenths (at least 8 MiB),
    /// the customers' totals a sixteenth (past it they go to files). `estimate`: the bytes the
    /// lines would take in memory, if known, which sets how many partitions the first split
    /// makes.
    pub(crate) fn new(limit: u64, estimate: Option<u64>) -> Plan {
        let limit = limit.max(LIMIT_MIN);
        let partition_bytes = limit / 4;
        let partitions = match estimate {
            Some(bytes) => bytes.div_ceil(partition_bytes) as usize,
            None => 64,
        };
        Plan {
            limit,
            read_batch: usize::try_from(limit / 8).unwrap_or(usize::MAX),
            partition_bytes,
            partitions: partitions.clamp(2, PARTITIONS_MAX),
            diff_bytes: (limit / 2 - limit / 16).max(DIFF_BYTES_MIN),
            customer_bytes: limit / 16,
            estimate,
        }
    }

    /// Whether the inputs would go out of core (a side holding more than a read batch),
    /// as far as their size tells; never for standard input, whose size is not known.
    pub(crate) fn likely_spills(&self) -> bool {
        self.estimate
            .is_some_and(|bytes| bytes / 2 > self.read_batch as u64)
    }

    /// The customers' files: as many as the first split's partitions, so that each holds
    /// about as many customers' totals as a partition holds accounts; written once the
    /// totals held take more than their share.
    pub(crate) fn customer_files<'s>(&self, scratch: &'s Scratch) -> CustomerFiles<'s> {
        let buffer = self.buffer(self.partitions);
        let share = self.customer_bytes;
        CustomerFiles::new(scratch, self.partitions, buffer, (share, human(share)))
    }

    /// A partition writer's buffer: the limit's share over every file open.
    fn buffer(&self, files: usize) -> usize {
        usize::try_from(self.limit / 8 / files.max(1) as u64)
            .unwrap_or(usize::MAX)
            .clamp(4096, 64 * 1024)
    }
}

/// A size for people: whole GiB when it is a whole number of them, else whole MiB (rounded
/// down), KiB under a MiB: `--memory-limit 1536MiB` reads back as 1536MiB, not 1GiB.
pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b < 1 << 20 => format!("{}KiB", b >> 10),
        b if b < 1 << 30 || b % (1 << 30) != 0 => format!("{}MiB", b >> 20),
        b => format!("{}GiB", b >> 30),
    }
}

/// The default `--memory-limit`: half the machine's memory, else 4 GiB.
pub(crate) fn default_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
        });
    total.map_or(4 << 30, |bytes| (bytes / 2).max(LIMIT_MIN))
}

/// About the bytes both inputs' lines take in memory: as stored, compressed parts counted
/// at what they usually expand to (gzip and zstd eight times, Parquet ten); `None` when a
/// side is standard input.
pub(crate) fn estimate(inputs: [&Input; 2]) -> Option<u64> {
    let mut total = 0u64;
    for input in inputs {
        let Input::Parts { parts, .. } = input else {
            return None;
        };
        for part in parts {
            let stored = std::fs::metadata(part).map_or(0, |m| m.len());
            let mut head = [0u8; 4];
            let read = File::open(part)
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let factor = match billshadow_adapters::file::Encoding::sniff(&head[..read]) {
                billshadow_adapters::file::Encoding::Plain => 3,
                billshadow_adapters::file::Encoding::Parquet => 20,
                _ => 16,
            };
            // Canonical CSV text held plus about 72 bytes a line: half again its size.
            total = total.saturating_add(stored.saturating_mul(factor) / 2);
        }
    }
    Some(total)
}

/// The partition an account goes to: FNV-1a 64 of its id mod `count` for the first split;
/// each later split mixes the hash with its level first, so it spreads what the one before
/// put together.
fn partition_of(account: &str, level: u32, count: usize) -> usize {
    let hash = crate::shard::fnv1a64(account.as_bytes());
    let hash = if level == 0 {
        hash
    } else {
        // splitmix64's finaliser.
        let mut z = hash ^ u64::from(level).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (hash % count as u64) as usize
}

fn part_path(dir: &Path, side: &str, id: &str) -> PathBuf {
    dir.join(format!("{side}-{id}.part"))
}

/// Writes lines to one side's partition files, by account.
struct Writers {
    files: Vec<BufWriter<File>>,
    level: u32,
}

impl Writers {
    fn open(
        dir: &Path,
        side: &str,
        id: &str,
        count: usize,
        buffer: usize,
    ) -> std::io::Result<Writers> {
        let files = (0..count)
            .map(|i| {
                let id = if id.is_empty() {
                    i.to_string()
                } else {
                    format!("{id}.{i}")
                };
                File::create(part_path(dir, side, &id)).map(|f| BufWriter::with_capacity(buffer, f))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Writers {
            files,
            level: if id.is_empty() {
                0
            } else {
                id.matches('.').count() as u32 + 1
            },
        })
    }

    fn write(&mut self, lines: &LineStore) -> std::io::Result<()> {
        let count = self.files.len();
        for line in lines.lines() {
            let p = partition_of(line.get(Field::AccountId), self.level, count);
            codec::encode(&line, &mut self.files[p])?;
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        for mut file in self.files {
            file.flush()?;
        }
        Ok(())
    }
}

/// The last account of a side's lines so far: whether they come by account in ascending
/// byte order, as the ordered merge needs (`ordered::Feeder`, and `Partitioner`, which says
/// when a partitioned side could have been merged).
#[derive(Debug, Default)]
pub(crate) struct AccountOrder {
    last: String,
}

impl AccountOrder {
    /// Takes the next line's account: `Err` with the account before it when that one is
    /// greater (the line is out of order).
    pub(crate) fn next(&mut self, account: &str) -> Result<(), &str> {
        if account < self.last.as_str() {
            return Err(&self.last);
        }
        if account != self.last {
            account.clone_into(&mut self.last);
        }
        Ok(())
    }
}

/// One side's lines as read: handed to partition files once a batch fills (`Spill`).
pub(crate) struct Partitioner<'s> {
    scratch: &'s Scratch,
    plan: &'s Plan,
    side: &'static str,
    writers: Option<Writers>,
    /// Whether the lines so far came by account in ascending order.
    ordered: bool,
    seen: AccountOrder,
}

impl<'s> Partitioner<'s> {
    pub(crate) fn new(scratch: &'s Scratch, plan: &'s Plan, side: &'static str) -> Partitioner<'s> {
        Partitioner {
            scratch,
            plan,
            side,
            writers: None,
            ordered: true,
            seen: AccountOrder::default(),
        }
    }

    /// Whether any line went to a partition file.
    pub(crate) fn spilled(&self) -> bool {
        self.writers.is_some()
    }

    /// Writes the lines still held (`rest`, the read's last batch) and what is buffered out;
    /// says whether every line came by account in ascending order.
    pub(crate) fn finish(mut self, rest: &LineStore) -> std::io::Result<bool> {
        self.spill(rest)?;
        self.writers.map_or(Ok(()), Writers::finish)?;
        Ok(self.ordered)
    }
}

impl Spill for Partitioner<'_> {
    fn threshold(&self) -> usize {
        self.plan.read_batch
    }

    fn spill(&mut self, lines: &LineStore) -> std::io::Result<()> {
        if self.writers.is_none() {
            let dir = self.scratch.dir()?;
            let count = self.plan.partitions;
            let buffer = self.plan.buffer(2 * count);
            self.writers = Some(Writers::open(&dir, self.side, "", count, buffer)?);
        }
        for line in lines.lines() {
            if !self.ordered {
                break;
            }
            self.ordered = self.seen.next(line.get(Field::AccountId)).is_ok();
        }
        match &mut self.writers {
            Some(writers) => writers.write(lines).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot write a temporary partition file (--temp-dir): {e}"),
                )
            }),
            None => Ok(()),
        }
    }
}

/// What stopped an out-of-core comparison.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutOfCoreError {
    #[error("the out-of-core diff's temporary files: {0}")]
    Io(#[from] std::io::Error),
    /// The ordered merge stopped before the end: a side's read failed or came out of order,
    /// which is what the diff reports.
    #[error("the ordered merge stopped before the end: a side's read failed")]
    Halted,
    #[error(
        "{diffs} diffs found so far take about {mib} MiB, more than the {max_mib} MiB --memory-limit leaves for the diffs the report holds; raise --memory-limit"
    )]
    TooManyDiffs {
        diffs: usize,
        mib: u64,
        max_mib: u64,
    },
}

/// Compares the partitions written by both sides' `Partitioner`s, one at a time.
pub(crate) fn compare_partitions(
    scratch: &Scratch,
    plan: &Plan,
    config: &CompareConfig,
    threads: usize,
) -> Result<Comparison, OutOfCoreError> {
    let dir = scratch.dir()?;
    let mut comparison = PartitionedComparison::new(config);
    let mut customers = plan.customer_files(scratch);
    for i in 0..plan.partitions {
        compare_one(
            &dir,
            plan,
            &i.to_string(),
            &mut comparison,
            &mut customers,
            threads,
        )?;
    }
    Ok(customers.finish(comparison)?)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Compares the partition `id`, or splits it again first when it is too large for its share.
fn compare_one(
    dir: &Path,
    plan: &Plan,
    id: &str,
    comparison: &mut PartitionedComparison<'_>,
    customers: &mut CustomerFiles<'_>,
    threads: usize,
) -> Result<(), OutOfCoreError> {
    let paths = [part_path(dir, "legacy", id), part_path(dir, "modern", id)];
    let bytes = file_len(&paths[0]) + file_len(&paths[1]);
    let level = id.matches('.').count() as u32 + 1;
    if bytes > plan.partition_bytes && level <= SPLITS_MAX {
        let count = (bytes.div_ceil(plan.partition_bytes) as usize + 1).clamp(2, PARTITIONS_MAX);
        for (side, path) in ["legacy", "modern"].into_iter().zip(&paths) {
            split(dir, plan, side, id, path, count)?;
        }
        for i in 0..count {
            let id = format!("{id}.{i}");
            compare_one(dir, plan, &id, comparison, customers, threads)?;
        }
        return Ok(());
    }
    if bytes > plan.partition_bytes {
        crate::note!(
            "a partition of {} MiB is compared in memory, over its share of --memory-limit: a few accounts hold that many lines",
            bytes >> 20
        );
    }
    let [legacy, modern] = paths.map(|path| load(&path));
    let (legacy, modern) = (legacy?, modern?);
    add(comparison, &legacy, &modern, customers, plan, threads)
}

/// Compares one partition (or merged batch): its customers' totals go to their files, and
/// the comparison stops once the diffs held for the report take more than their share.
pub(crate) fn add(
    comparison: &mut PartitionedComparison<'_>,
    legacy: &LineStore,
    modern: &LineStore,
    customers: &mut CustomerFiles<'_>,
    plan: &Plan,
    threads: usize,
) -> Result<(), OutOfCoreError> {
    comparison.add(legacy, modern, threads);
    customers.keep(comparison)?;
    let (diffs, bytes) = comparison.diffs_held();
    if bytes as u64 > plan.diff_bytes {
        return Err(OutOfCoreError::TooManyDiffs {
            diffs,
            mib: (bytes >> 20) as u64,
            max_mib: plan.diff_bytes >> 20,
        });
    }
    Ok(())
}

/// A partition file's lines (none if there is no file), the file removed once read.
fn load(path: &Path) -> std::io::Result<LineStore> {
    let mut store = LineStore::new();
    match File::open(path) {
        Ok(file) => {
            codec::decode(&mut BufReader::new(file), &mut store, usize::MAX)?;
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(store)
}

/// Splits one side's partition file into `count` by the next level's hash, a batch at a time;
/// removes it.
fn split(
    dir: &Path,
    plan: &Plan,
    side: &str,
    id: &str,
    path: &Path,
    count: usize,
) -> std::io::Result<()> {
    let mut writers = Writers::open(dir, side, id, count, plan.buffer(count))?;
    match File::open(path) {
        Ok(file) => {
            let mut input = BufReader::new(file);
            let mut batch = LineStore::new();
            loop {
                batch.clear();
                let more = codec::decode(&mut input, &mut batch, plan.read_batch)?;
                writers.write(&batch)?;
                if !more {
                    break;
                }
            }
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    writers.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_back_as_they_were_given() {
        for (bytes, text) in [
            (64 << 10, "64KiB"),
            (512 << 20, "512MiB"),
            (1 << 30, "1GiB"),
            (1536 << 20, "1536MiB"),
            (12 << 30, "12GiB"),
            ((12 << 30) + 5, "12288MiB"),
        ] {
            assert_eq!(human(bytes), text);
        }
    }

    #[test]
    fn every_split_spreads_what_the_one_before_put_together() {
        let accounts: Vec<String> = (0..4000).map(|i| format!("acct-{i:06}")).collect();
        let first: Vec<&String> = accounts
            .iter()
            .filter(|a| partition_of(a, 0, 4) == 1)
            .collect();
        let mut counts = [0usize; 4];
        for a in &first {
            counts[partition_of(a, 1, 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > first.len() / 8), "{counts:?}");
    }
}
