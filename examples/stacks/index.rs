//! The sample legacy program's index of its data files, so that a batch of accounts costs the
//! same whatever the size of the data: a batch program is started once per batch, and reading
//! every row of `accounts.csv` and `usage.csv` for each batch made a run's time grow with the
//! square of its accounts.
//!
//! `FILE.idx`, next to `FILE.csv`, is an on-disk hash table from an account id (FNV-1a, 64 bits)
//! to the byte offset of the account's first row, with linear probing. It is built on first use,
//! written to a temporary file and renamed (two programs building it at once both write a whole
//! index), and rebuilt when the CSV file's length or modification time is not the one the index
//! was built from. An account's rows must be consecutive (as `billshadow generate cohort`
//! writes them): rows of one account apart are refused. When the index cannot be written (a
//! read-only folder), the table is kept in memory for this batch.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"BSLIDX01";
/// Magic, the CSV file's length, its modification time (seconds, nanoseconds), the slot count.
const HEADER: u64 = 40;

pub(crate) struct Index {
    csv: File,
    name: String,
    slots: Slots,
}

enum Slots {
    File(File, u64),
    Memory(Vec<u64>),
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The CSV file's length and modification time, which the index must have been built from.
fn stamp(csv: &File) -> std::io::Result<[u64; 3]> {
    let meta = csv.metadata()?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok([
        meta.len(),
        modified.as_secs(),
        u64::from(modified.subsec_nanos()),
    ])
}

impl Index {
    /// Opens `path`'s index, building it when it is missing or stale.
    pub(crate) fn open(path: &Path) -> Result<Index, String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let csv = File::open(path).map_err(|e| format!("{name}: {e}"))?;
        let stamp = stamp(&csv).map_err(|e| format!("{name}: {e}"))?;
        let mut index_path = PathBuf::from(path);
        index_path.set_extension("idx");
        if let Some(slots) = read_header(&index_path, stamp) {
            return Ok(Index { csv, name, slots });
        }
        let table = build(path, &name)?;
        let slots = match write(&index_path, stamp, &table) {
            Ok(()) => read_header(&index_path, stamp).unwrap_or(Slots::Memory(table)),
            Err(e) => {
                eprintln!(
                    "legacy: cannot write {} ({e}); reading {name} whole for this batch",
                    index_path.display()
                );
                Slots::Memory(table)
            }
        };
        Ok(Index { csv, name, slots })
    }

    fn slot_count(&self) -> u64 {
        match &self.slots {
            Slots::File(_, count) => *count,
            Slots::Memory(table) => table.len() as u64,
        }
    }

    fn slot(&self, i: u64) -> Result<u64, String> {
        match &self.slots {
            Slots::Memory(table) => Ok(table[i as usize]),
            Slots::File(file, _) => {
                let mut file: &File = file;
                let mut bytes = [0u8; 8];
                file.seek(SeekFrom::Start(HEADER + 8 * i))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(|e| format!("{}.idx: {e}", self.name))?;
                Ok(u64::from_le_bytes(bytes))
            }
        }
    }

    /// Every row of account `id` (none when the file does not list it).
    pub(crate) fn rows(&self, id: &str) -> Result<Vec<csv::StringRecord>, String> {
        let count = self.slot_count();
        let mut i = fnv1a(id.as_bytes()) % count;
        loop {
            let offset = match self.slot(i)? {
                0 => return Ok(Vec::new()),
                stored => stored - 1,
            };
            let rows = self.rows_at(offset, id)?;
            if !rows.is_empty() {
                return Ok(rows);
            }
            i = (i + 1) % count;
        }
    }

    /// The consecutive rows of account `id` from `offset` (none when another account's row is
    /// there: a hash collision).
    fn rows_at(&self, offset: u64, id: &str) -> Result<Vec<csv::StringRecord>, String> {
        let mut file = &self.csv;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("{}: {e}", self.name))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .buffer_capacity(4096)
            .from_reader(file);
        let mut rows = Vec::new();
        for row in reader.records() {
            let row = row.map_err(|e| format!("{}: {e}", self.name))?;
            if row.get(0) != Some(id) {
                break;
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// The index's slots when its header matches the CSV file's `stamp`.
fn read_header(index: &Path, stamp: [u64; 3]) -> Option<Slots> {
    let mut file = File::open(index).ok()?;
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header).ok()?;
    let field = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[8 * i..8 * i + 8]);
        u64::from_le_bytes(bytes)
    };
    let count = field(4);
    let fresh = &header[..8] == MAGIC
        && [field(1), field(2), field(3)] == stamp
        && count > 0
        && file.metadata().ok()?.len() == HEADER + 8 * count;
    fresh.then_some(Slots::File(file, count))
}

/// Reads the CSV file once: each account's first row's offset, plus one, in its slot.
fn build(path: &Path, name: &str) -> Result<Vec<u64>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{name}: {e}"))?;
    reader.byte_headers().map_err(|e| format!("{name}: {e}"))?;
    let mut firsts: Vec<(u64, u64)> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut last: Vec<u8> = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let offset = reader.position().byte();
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| format!("{name}: {e}"))?;
        if !more {
            break;
        }
        let id = record.get(0).unwrap_or_default();
        if id == last.as_slice() {
            continue;
        }
        if !seen.insert(id.to_vec()) {
            return Err(format!(
                "{name}: line {}: the rows of account {} are not together",
                record.position().map_or(0, |p| p.line()),
                String::from_utf8_lossy(id)
            ));
        }
        last = id.to_vec();
        firsts.push((fnv1a(id), offset));
    }
    let count = (firsts.len() as u64 * 2).max(1);
    let mut table = vec![0u64; count as usize];
    for (hash, offset) in firsts {
        let mut i = hash % count;
        while table[i as usize] != 0 {
            i = (i + 1) % count;
        }
        table[i as usize] = offset + 1;
    }
    Ok(table)
}

/// Writes the index to a temporary file, renamed over `index` once whole.
fn write(index: &Path, stamp: [u64; 3], table: &[u64]) -> std::io::Result<()> {
    let mut temporary = index.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let mut out = std::io::BufWriter::new(File::create(&temporary)?);
        out.write_all(MAGIC)?;
        for value in [stamp[0], stamp[1], stamp[2], table.len() as u64]
            .iter()
            .chain(table)
        {
            out.write_all(&value.to_le_bytes())?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, index)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
