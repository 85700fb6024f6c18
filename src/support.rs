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

/// The SHA-256 of a file the user named, in lowercase hex, read in blocks: a cohort of
/// millions of accounts is never held in memory to be hashed. Its errors are input errors.
pub(crate) fn sha256_file_hex(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::io::Read;
    let hash = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut block = vec![0u8; 1 << 16];
        loop {
            match file.read(&mut block) {
                Ok(0) => break,
                Ok(n) => hasher.update(&block[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    };
    hash()
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(crate::exit::input)
}

/// The SHA-256 of some bytes, in lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_hashed_in_blocks_has_the_hash_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cohort.csv");
        // Longer than one block, not a multiple of it.
        let bytes: Vec<u8> = (0..200_003u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            super::sha256_file_hex(&path).unwrap(),
            super::sha256_hex(&bytes)
        );
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            super::sha256_file_hex(&path).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
