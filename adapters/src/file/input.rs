//! Exports as they are delivered: one side's input named by files, a directory or a glob of
//! parts, or `-` for standard input; each part gzip, zstd, Parquet or plain text, told by its
//! first bytes (never by its name).
//!
//! Decompression is bounded: a part may not expand past `DECOMPRESSION_RATIO_MAX` times the
//! compressed bytes read (once past `DECOMPRESSION_FLOOR_BYTES`) nor past
//! `DECOMPRESSED_BYTES_MAX` in all, so a small bomb is refused while it is read, before it
//! spends the memory of the lines it would make.

use std::cmp::Ordering as CmpOrdering;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::limits::{
    DECOMPRESSED_BYTES_MAX, DECOMPRESSION_FLOOR_BYTES, DECOMPRESSION_RATIO_MAX, STDIN_HEAD_BYTES,
};

use super::error::{DecodeProblem, ReadError, decode_problem};

/// How standard input is named in errors.
pub const STDIN_ORIGIN: &str = "standard input";

/// One side's input: standard input, or the parts of an export in the order they are read.
#[derive(Debug)]
pub enum Input {
    /// `-`: the bytes already taken to tell the format, then the rest of standard input.
    Stdin { head: Vec<u8> },
    /// Files, in order: those named, a directory's files sorted by name, a glob's matches.
    Parts { name: String, parts: Vec<PathBuf> },
}

impl Input {
    /// Resolves the names given for one side: `-` alone (standard input), or any mix of
    /// files, directories (every file in it not starting with `.`, in name order, numbers
    /// compared as numbers: `part-2` before `part-10`) and glob patterns (their matches, in
    /// the same order). A name that is none of these, an empty directory and a pattern that
    /// matches nothing are errors.
    pub fn resolve(names: &[PathBuf]) -> Result<Input, ReadError> {
        if names.iter().any(|n| n.as_os_str() == "-") {
            if names.len() > 1 {
                return Err(ReadError::Parts {
                    origin: STDIN_ORIGIN.to_owned(),
                    message: "`-` (standard input) cannot be mixed with files on one side"
                        .to_owned(),
                });
            }
            let mut head = Vec::new();
            io::stdin()
                .lock()
                .take(STDIN_HEAD_BYTES as u64)
                .read_to_end(&mut head)
                .map_err(|source| ReadError::Io {
                    origin: STDIN_ORIGIN.to_owned(),
                    source,
                })?;
            return Ok(Input::Stdin { head });
        }
        let mut parts = Vec::new();
        for name in names {
            parts.extend(resolve_one(name)?);
        }
        let name = match names {
            [one] => one.display().to_string(),
            _ => names
                .iter()
                .map(|n| n.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        };
        Ok(Input::Parts { name, parts })
    }

    /// One file, as it is.
    pub fn file(path: &Path) -> Input {
        Input::Parts {
            name: path.display().to_string(),
            parts: vec![path.to_path_buf()],
        }
    }

    /// The input as the report names it: the name given (`-` for standard input).
    pub fn name(&self) -> &str {
        match self {
            Input::Stdin { .. } => "-",
            Input::Parts { name, .. } => name,
        }
    }

    /// How many parts it has (standard input is one).
    pub fn part_count(&self) -> usize {
        match self {
            Input::Stdin { .. } => 1,
            Input::Parts { parts, .. } => parts.len(),
        }
    }

    /// The bytes to read, as stored (compressed when compressed); `None` for standard input.
    pub fn stored_bytes(&self) -> Option<u64> {
        match self {
            Input::Stdin { .. } => None,
            Input::Parts { parts, .. } => Some(
                parts
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum(),
            ),
        }
    }

    /// Whether this is standard input.
    pub fn is_stdin(&self) -> bool {
        matches!(self, Input::Stdin { .. })
    }
}

fn resolve_one(name: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let origin = name.display().to_string();
    if name.is_dir() {
        let entries = std::fs::read_dir(name).map_err(|source| ReadError::Io {
            origin: origin.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ReadError::Io {
                origin: origin.clone(),
                source,
            })?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && path.is_file() {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(ReadError::Parts {
                origin,
                message: "the directory has no files; expected the parts of an export".to_owned(),
            });
        }
        files.sort_by(|a, b| natural_order(&file_name(a), &file_name(b)));
        return Ok(files);
    }
    if name.is_file() {
        return Ok(vec![name.to_path_buf()]);
    }
    let text = name.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let pattern = glob::glob(&text).map_err(|e| ReadError::Parts {
            origin: origin.clone(),
            message: format!("not a valid glob pattern: {}", e.msg),
        })?;
        let mut files: Vec<PathBuf> = pattern
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if files.is_empty() {
            return Err(ReadError::Parts {
                origin,
                message: "no file matches this pattern".to_owned(),
            });
        }
        files.sort_by(|a, b| natural_order(&a.to_string_lossy(), &b.to_string_lossy()));
        return Ok(files);
    }
    Err(ReadError::Parts {
        origin,
        message: "does not exist (expected a file, a directory, a glob or `-`)".to_owned(),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Names in order, runs of digits compared as numbers: `part-2` before `part-10`.
pub(crate) fn natural_order(a: &str, b: &str) -> CmpOrdering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return CmpOrdering::Equal,
            (None, Some(_)) => return CmpOrdering::Less,
            (Some(_), None) => return CmpOrdering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (run(a), run(b));
                let (da, db) = (&a[..na], &b[..nb]);
                let trim = |d: &[u8]| {
                    let zeros = d.iter().take_while(|c| **c == b'0').count();
                    d.len() - zeros
                };
                let order = trim(da)
                    .cmp(&trim(db))
                    .then_with(|| da[da.len() - trim(da)..].cmp(&db[db.len() - trim(db)..]))
                    .then_with(|| na.cmp(&nb));
                if order != CmpOrdering::Equal {
                    return order;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// What a part's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Gzip,
    Zstd,
    Parquet,
}

impl Encoding {
    /// From the first bytes: gzip `1f 8b`, zstd `28 b5 2f fd`, Parquet `PAR1`.
    pub fn sniff(head: &[u8]) -> Encoding {
        if head.starts_with(&[0x1f, 0x8b]) {
            Encoding::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Encoding::Zstd
        } else if head.starts_with(b"PAR1") {
            Encoding::Parquet
        } else {
            Encoding::Plain
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
            Encoding::Parquet => "Parquet",
        }
    }
}

/// A part, opened: a stream of text (decoded when compressed), or a Parquet file.
pub(super) enum Opened {
    Text(Box<dyn Read>),
    Parquet(std::fs::File),
}

/// Opens one part of an input: its raw bytes counted into `progress`, decoded by what its
/// first bytes say.
pub(super) fn open_part(
    origin: &str,
    path: Option<&Path>,
    stdin_head: Option<Vec<u8>>,
    progress: Option<Arc<AtomicU64>>,
) -> Result<Opened, ReadError> {
    open_source(origin, path, stdin_head, true, progress)
}

/// Standard input's head alone, decoded: what tells its format, standard input left unread.
pub(super) fn open_head(origin: &str, head: &[u8]) -> Result<Opened, ReadError> {
    open_source(origin, None, Some(head.to_vec()), false, None)
}

fn open_source(
    origin: &str,
    path: Option<&Path>,
    stdin_head: Option<Vec<u8>>,
    then_stdin: bool,
    progress: Option<Arc<AtomicU64>>,
) -> Result<Opened, ReadError> {
    let io_error = |source| ReadError::Io {
        origin: origin.to_owned(),
        source,
    };
    let raw: Box<dyn Read> = match path {
        Some(path) => {
            let mut file = std::fs::File::open(path).map_err(io_error)?;
            let mut magic = [0u8; 4];
            let n = read_up_to(&mut file, &mut magic).map_err(io_error)?;
            if Encoding::sniff(&magic[..n]) == Encoding::Parquet {
                return Ok(Opened::Parquet(
                    std::fs::File::open(path).map_err(io_error)?,
                ));
            }
            Box::new(Cursor::new(magic[..n].to_vec()).chain(file))
        }
        None if then_stdin => {
            Box::new(Cursor::new(stdin_head.unwrap_or_default()).chain(io::stdin()))
        }
        None => Box::new(Cursor::new(stdin_head.unwrap_or_default())),
    };
    let counted = Counted {
        inner: raw,
        read: Arc::new(AtomicU64::new(0)),
        progress,
    };
    let consumed = Arc::clone(&counted.read);
    let mut buffered = BufReader::with_capacity(1 << 16, counted);
    let head = buffered.fill_buf().map_err(io_error)?;
    let encoding = Encoding::sniff(head);
    let decoded: Box<dyn Read> = match encoding {
        Encoding::Plain => return Ok(Opened::Text(Box::new(buffered))),
        Encoding::Parquet => {
            return Err(ReadError::Decode {
                origin: origin.to_owned(),
                format: "Parquet",
                message: "Parquet cannot be read from standard input (its index is at its end); pass the file".to_owned(),
            });
        }
        Encoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Encoding::Zstd => Box::new(zstd::Decoder::with_buffer(buffered).map_err(io_error)?),
    };
    Ok(Opened::Text(Box::new(Bounded {
        inner: decoded,
        encoding,
        consumed,
        produced: 0,
    })))
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Counts the raw bytes read: for the decompression bound, and into the progress counter.
struct Counted {
    inner: Box<dyn Read>,
    read: Arc<AtomicU64>,
    progress: Option<Arc<AtomicU64>>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(progress) = &self.progress {
            progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// A decoder's output, bounded against decompression bombs; its errors said as the
/// compressed data being corrupt.
struct Bounded {
    inner: Box<dyn Read>,
    encoding: Encoding,
    consumed: Arc<AtomicU64>,
    produced: u64,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let format = self.encoding.name();
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData
                        | io::ErrorKind::InvalidInput
                        | io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::Other
                ) && decode_problem(&e).is_none() =>
            {
                let message = format!(
                    "the {format} data is corrupt or truncated after {} decompressed bytes ({e}); expected a whole {format} file",
                    self.produced
                );
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    DecodeProblem { format, message },
                ));
            }
            Err(e) => return Err(e),
        };
        self.produced += n as u64;
        let consumed = self.consumed.load(Ordering::Relaxed).max(1);
        let too_much = self.produced > DECOMPRESSED_BYTES_MAX
            || (self.produced > DECOMPRESSION_FLOOR_BYTES
                && self.produced / consumed > DECOMPRESSION_RATIO_MAX);
        if too_much {
            let message = format!(
                "refused as a decompression bomb: {} bytes decompressed from {consumed} (the limits: {DECOMPRESSION_RATIO_MAX} times the compressed bytes past the first {DECOMPRESSION_FLOOR_BYTES}, {DECOMPRESSED_BYTES_MAX} in all)",
                self.produced
            );
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                DecodeProblem { format, message },
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_natural_order() {
        let mut names = vec![
            "part-10.csv",
            "part-2.csv",
            "part-1.csv",
            "part-02.csv",
            "a.csv",
            "part-1a.csv",
        ];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            names,
            [
                "a.csv",
                "part-1.csv",
                "part-1a.csv",
                "part-2.csv",
                "part-02.csv",
                "part-10.csv"
            ]
        );
    }

    #[test]
    fn encodings_by_their_first_bytes() {
        assert_eq!(Encoding::sniff(&[0x1f, 0x8b, 8, 0]), Encoding::Gzip);
        assert_eq!(Encoding::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Encoding::Zstd);
        assert_eq!(Encoding::sniff(b"PAR1...."), Encoding::Parquet);
        assert_eq!(Encoding::sniff(b"account_id,"), Encoding::Plain);
        assert_eq!(Encoding::sniff(b""), Encoding::Plain);
    }
}
