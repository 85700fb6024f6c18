//! The limits every input is read under, in one place: the file adapter, the CSV guard and
//! the JSON lines guard share them. A limit is enforced before the memory is spent, and
//! hitting one is a located error, never a silent stall or an abort.

/// The largest single field accepted, in bytes (once unescaped).
pub const FIELD_BYTES_MAX: usize = 64 * 1024;

/// The most a reader pre-allocates for the lines it will hold, whatever the file's size: the
/// store grows past it as lines come, never on the strength of a size alone.
pub const PREALLOCATE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest JSON document accepted, in bytes.
pub const JSON_DOCUMENT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The raw bytes a CSV field may take (quotes and doubled quotes included): twice the field
/// limit plus its quotes, so that no field within the limit once unescaped is refused.
pub const FIELD_RAW_MAX: usize = 2 * FIELD_BYTES_MAX + 2;

/// The raw bytes a JSON value may take: six times the field limit plus its quotes, since the
/// longest escape (`\u0001`) writes one byte in six, so that no value within the limit once
/// unescaped is refused.
pub const JSON_VALUE_RAW_MAX: usize = 6 * FIELD_BYTES_MAX + 2;

/// The bytes one record may take: a CSV record, or a JSON line with all its line items.
pub const RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The fields one record may have: a CSV record's fields, or a JSON line's values (every
/// string, number, boolean, null, object and array in it).
pub const RECORD_FIELDS_MAX: usize = 100_000;

/// The most a compressed part may expand to, in bytes: beyond it the part is refused as a
/// decompression bomb whatever its ratio (a terabyte: no month of billing lines is this big).
pub const DECOMPRESSED_BYTES_MAX: u64 = 1 << 40;

/// How many times the compressed bytes read a part may expand to, once past
/// `DECOMPRESSION_FLOOR_BYTES`. Billing CSV compresses 5 to 50 times; gzip cannot pass about
/// 1,030 and zstd reaches millions on a bomb's repeated bytes.
pub const DECOMPRESSION_RATIO_MAX: u64 = 250;

/// The decompressed bytes a part may reach at any ratio: a small file of repeated rows
/// legitimately compresses past the ratio bound.
pub const DECOMPRESSION_FLOOR_BYTES: u64 = 16 * 1024 * 1024;

/// The bytes of standard input read ahead to tell its encoding and format.
pub const STDIN_HEAD_BYTES: usize = 256 * 1024;

/// The most a Parquet column chunk may declare it decompresses to (and the ratio bound above
/// applies to it too): checked from the file's index before any page is read.
pub const PARQUET_CHUNK_BYTES_MAX: u64 = 4 << 30;
