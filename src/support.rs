//! Helpers every capability uses: the async runtime and content hashes.

use sha2::{Digest, Sha256};

use crate::exit::Failure;

/// The multi-threaded runtime a command's async work runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::from)
}

/// A text file the user named (a spec, a template): its errors are input errors.
pub(crate) fn read_named(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(crate::exit::input)
}

/// A file the user named, as bytes: its errors are input errors.
pub(crate) fn read_named_bytes(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(crate::exit::input)
}

/// The SHA-256 of some bytes, in lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
