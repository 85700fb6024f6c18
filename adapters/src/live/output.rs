//! A stack's output read into bills: through the mapping (any bad row fails the output),
//! split by account, and a failing command's stderr tail.

use billshadow_comparisons::LineStore;

use super::template::AccountRequest;
use crate::file::{ReadOptions, read_from};
use crate::mapping::Mapping;

/// The largest output a stack may produce for one request or batch.
pub const OUTPUT_BYTES_MAX: usize = 256 * 1024 * 1024;

/// How much of a failing command's stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// Reads a stack's output through the mapping; any bad row fails the whole output (a
/// stack that prints garbage for an account has not billed it).
pub(crate) fn parse_output(
    origin: &str,
    bytes: &[u8],
    mapping: &Mapping,
) -> Result<LineStore, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(LineStore::new());
    }
    read_from(origin, bytes, bytes.len(), mapping, ReadOptions::default())
        .map(|(store, _)| store)
        .map_err(|e| e.to_string())
}

/// The last `STDERR_TAIL_BYTES` of a process's stderr, as text.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

/// Splits a batch's lines by account, in the batch's order; accounts with no line get an
/// empty store (the stack billed nothing for them).
pub(crate) fn split(store: LineStore, batch: &[AccountRequest]) -> Vec<LineStore> {
    let mut by_account: std::collections::HashMap<String, LineStore> =
        store.split_by_account().into_iter().collect();
    batch
        .iter()
        .map(|a| by_account.remove(&a.account_id).unwrap_or_default())
        .collect()
}
