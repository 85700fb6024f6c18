//! The customers' totals of an out-of-core diff, kept in files until every account is
//! compared. A customer's accounts lie in several partitions (or merged batches), so its
//! totals can be judged only at the end. Once the totals held take more than their share of
//! `--memory-limit`, they go to one of `count` files by a hash of the customer, after every
//! partition from then on; at the end the files are read back one at a time, each customer's
//! parts added up and judged (`PartitionedComparison::finish_with_customers`). What memory
//! holds is then one file's customers, not all of them.
//!
//! A record: the customer id's length (u32) and bytes, the currency code (3 bytes), then the
//! legacy, modern, unflagged legacy and unflagged modern totals (`Decimal::serialize`, 16
//! bytes each).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use billshadow_comparisons::diff::CustomerPart;
use billshadow_comparisons::{Comparison, Currency, CustomerTotals, PartitionedComparison};
use rust_decimal::Decimal;

use super::temp::Scratch;

/// A customer id read back longer than this is a corrupt file, not a customer.
const ID_BYTES_MAX: usize = 1 << 20;

/// The customers' files: written partition by partition once the totals held outgrow their
/// share, read back file by file.
pub(crate) struct CustomerFiles<'s> {
    scratch: &'s Scratch,
    count: usize,
    buffer: usize,
    /// Customers' totals held in memory may take this many bytes before they go to files.
    hold_max: u64,
    /// That share as the note says it (`512KiB`).
    hold_max_text: String,
    /// Opened once totals are first written, under the scratch directory.
    files: Vec<BufWriter<File>>,
    dir: PathBuf,
}

impl<'s> CustomerFiles<'s> {
    /// `count` files (at least one) under `scratch`'s directory, each written through a
    /// `buffer`-byte buffer, once the customers' totals held take more than `hold_max` bytes
    /// (`hold_max_text`, for the note that says so).
    pub(crate) fn new(
        scratch: &'s Scratch,
        count: usize,
        buffer: usize,
        (hold_max, hold_max_text): (u64, String),
    ) -> CustomerFiles<'s> {
        CustomerFiles {
            scratch,
            count: count.max(1),
            buffer,
            hold_max,
            hold_max_text,
            files: Vec::new(),
            dir: PathBuf::new(),
        }
    }

    /// After each partition (or merged batch) is added: the customers' totals held go to
    /// their files once they take more than their share, and from then on after every
    /// partition.
    pub(crate) fn keep(
        &mut self,
        comparison: &mut PartitionedComparison<'_>,
    ) -> std::io::Result<()> {
        let (_, held) = comparison.customers_held();
        if !self.files.is_empty() || held as u64 > self.hold_max {
            self.put(comparison.take_customers())?;
        }
        Ok(())
    }

    /// The comparison finished: its customers judged from memory when none went to files,
    /// else file by file, what was still held written first.
    pub(crate) fn finish(
        mut self,
        mut comparison: PartitionedComparison<'_>,
    ) -> std::io::Result<Comparison> {
        if self.files.is_empty() {
            return Ok(comparison.finish());
        }
        self.put(comparison.take_customers())?;
        for mut file in std::mem::take(&mut self.files) {
            file.flush()?;
        }
        let dir = self.dir;
        let groups = (0..self.count).map(|i| read(&path(&dir, i)));
        comparison.finish_with_customers(groups)
    }

    /// Writes customers' totals (parts of them: a customer may come again) to their files.
    fn put(&mut self, parts: Vec<CustomerPart>) -> std::io::Result<()> {
        if self.files.is_empty() {
            self.dir = self.scratch.dir()?;
            crate::note!(
                "the customers' totals take more than {} of --memory-limit: kept in {} files until every account is compared",
                self.hold_max_text,
                self.count
            );
            self.files = (0..self.count)
                .map(|i| {
                    File::create(path(&self.dir, i))
                        .map(|f| BufWriter::with_capacity(self.buffer, f))
                })
                .collect::<std::io::Result<_>>()?;
        }
        for ((customer, currency), totals) in parts {
            let i = (crate::shard::fnv1a64(customer.as_bytes()) % self.count as u64) as usize;
            let out = &mut self.files[i];
            // Ids are fields of a line, bounded far below this.
            let len = u32::try_from(customer.len())
                .map_err(|_| std::io::Error::other("a customer id of 4 GiB or more"))?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(customer.as_bytes())?;
            let code = currency.code().as_bytes();
            let mut fixed = [0u8; 3 + 4 * 16];
            fixed[..3].copy_from_slice(&code[..3.min(code.len())]);
            let amounts = [
                totals.legacy,
                totals.modern,
                totals.unflagged_legacy,
                totals.unflagged_modern,
            ];
            for (slot, amount) in fixed[3..].chunks_exact_mut(16).zip(amounts) {
                slot.copy_from_slice(&amount.serialize());
            }
            out.write_all(&fixed)?;
        }
        Ok(())
    }
}

fn path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("customers-{i}.part"))
}

fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a temporary customers' file is corrupt: {what}"),
    )
}

/// One file's customers, each customer's parts added up as they are read (a customer comes
/// once per partition or merged batch that held one of its accounts); the file removed once
/// read. A file that ends inside a record is corrupt.
fn read(path: &Path) -> std::io::Result<Vec<CustomerPart>> {
    let mut input = BufReader::new(File::open(path)?);
    let mut customers: HashMap<(String, Currency), CustomerTotals> = HashMap::new();
    let mut currency: Option<([u8; 3], Currency)> = None;
    while !input.fill_buf()?.is_empty() {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > ID_BYTES_MAX {
            return Err(corrupt("customer id length"));
        }
        let mut id = vec![0u8; len];
        input.read_exact(&mut id)?;
        let id = String::from_utf8(id).map_err(|_| corrupt("customer id is not UTF-8"))?;
        let mut fixed = [0u8; 3 + 4 * 16];
        input.read_exact(&mut fixed)?;
        let cur = super::codec::read_currency([fixed[0], fixed[1], fixed[2]], &mut currency)
            .ok_or_else(|| corrupt("unknown currency"))?;
        let amount = |i: usize| {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&fixed[3 + 16 * i..3 + 16 * (i + 1)]);
            Decimal::deserialize(bytes)
        };
        let totals = CustomerTotals {
            legacy: amount(0),
            modern: amount(1),
            unflagged_legacy: amount(2),
            unflagged_modern: amount(3),
        };
        customers.entry((id, cur)).or_default().add(&totals);
    }
    std::fs::remove_file(path)?;
    Ok(customers.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use billshadow_comparisons::CompareConfig;

    fn part(id: &str, currency: &str, legacy: i64) -> CustomerPart {
        let totals = CustomerTotals {
            legacy: Decimal::new(legacy, 2),
            modern: Decimal::new(legacy + 1, 2),
            unflagged_legacy: Decimal::new(-legacy, 3),
            unflagged_modern: Decimal::ZERO,
        };
        ((id.to_owned(), currency.parse().unwrap()), totals)
    }

    #[test]
    fn customers_come_back_added_up_each_in_one_file() {
        let root = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(root.path());
        let mut files = CustomerFiles::new(&scratch, 3, 4096, (0, "0KiB".to_owned()));
        let first: Vec<CustomerPart> = (0..40)
            .map(|i| part(&format!("cust-{i}"), "USD", i))
            .collect();
        files.put(first.clone()).unwrap();
        files
            .put(vec![part("cust-7", "JPY", 500), part("cust-7", "USD", 3)])
            .unwrap();
        for file in &mut files.files {
            file.flush().unwrap();
        }
        let groups: Vec<Vec<CustomerPart>> = (0..3)
            .map(|i| read(&path(&files.dir, i)).unwrap())
            .collect();
        let mut all: Vec<CustomerPart> = groups.iter().flatten().cloned().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        // Each customer's parts added up: cust-7's two USD parts are one.
        let mut expected = std::collections::BTreeMap::new();
        for (key, totals) in first
            .into_iter()
            .chain([part("cust-7", "JPY", 500), part("cust-7", "USD", 3)])
        {
            expected
                .entry(key)
                .or_insert_with(CustomerTotals::default)
                .add(&totals);
        }
        assert_eq!(all, expected.into_iter().collect::<Vec<_>>());
        assert_eq!(all.len(), 41);
        // Each customer's parts in one file only.
        for id in ["cust-7", "cust-0", "cust-39"] {
            let holding = groups
                .iter()
                .filter(|g| g.iter().any(|((c, _), _)| c == id))
                .count();
            assert_eq!(holding, 1, "{id}");
        }
        // Every file removed once read.
        assert_eq!(std::fs::read_dir(&files.dir).unwrap().count(), 0);
    }

    #[test]
    fn a_file_that_ends_inside_a_record_is_corrupt() {
        let root = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(root.path());
        let mut files = CustomerFiles::new(&scratch, 1, 4096, (0, "0KiB".to_owned()));
        files.put(vec![part("cust-1", "USD", 5)]).unwrap();
        for file in &mut files.files {
            file.flush().unwrap();
        }
        let file = path(&files.dir, 0);
        let bytes = std::fs::read(&file).unwrap();
        for cut in [2, bytes.len() - 1] {
            std::fs::write(&file, &bytes[..cut]).unwrap();
            assert!(read(&file).is_err(), "cut at {cut} of {}", bytes.len());
        }
    }

    #[test]
    fn totals_within_their_share_stay_in_memory_and_make_no_file() {
        let root = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(root.path());
        let config = CompareConfig::new(chrono::NaiveDate::MIN);
        let mut comparison = PartitionedComparison::new(&config);
        let mut files = CustomerFiles::new(&scratch, 4, 4096, (u64::MAX, String::new()));
        files.keep(&mut comparison).unwrap();
        files.finish(comparison).unwrap();
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
