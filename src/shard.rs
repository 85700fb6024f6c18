//! The static split of a run's accounts over workers (`run --shard I/N`). A leaf: the
//! command line parses a shard, the runner asks it which accounts it takes.
//!
//! An account belongs to shard `FNV-1a 64(account id as UTF-8 bytes) mod N`: FNV-1a 64 with
//! offset basis 0xcbf29ce484222325 and prime 0x100000001b3, over the id's bytes exactly as
//! the cohort holds them (no trimming, no case folding), the hash taken as an unsigned 64-bit
//! integer. The same on every version, platform and language: `acct-000042` has hash
//! 0x4d38216c58747e33, so it is in shard 1 of 2 and shard 3 of 16. Changing this would move
//! accounts between the shards of runs under way, so it is frozen (the unit tests pin it).

use std::str::FromStr;

/// Shards a run can be split into at most.
pub(crate) const SHARDS_MAX: u64 = 100_000;

/// One shard of a run: `index` of `count` (`0/2`, `1/2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) index: u64,
    pub(crate) count: u64,
}

impl Shard {
    /// Whether this shard takes the account.
    pub(crate) fn takes(&self, account_id: &str) -> bool {
        fnv1a64(account_id.as_bytes()) % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let expected = "expected I/N: shard I of N, counted from 0 (`0/4` … `3/4`)";
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: {expected}"))?;
        let number = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{s}`: `{v}` is not a whole number; {expected}"))
        };
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 || count > SHARDS_MAX {
            return Err(format!(
                "`{s}`: a run is split into 1 to {SHARDS_MAX} shards; {expected}"
            ));
        }
        if index >= count {
            return Err(format!(
                "`{s}`: shard {index} of {count} does not exist (shards count from 0 to {}); {expected}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 vectors, and account ids with their shards: the split is
    /// frozen (README and ARCHITECTURE.md quote `acct-000042`).
    #[test]
    fn the_shard_hash_is_fnv1a_64_of_the_utf8_id() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64("acct-000042".as_bytes()), 0x4d38_216c_5874_7e33);
        assert_eq!(fnv1a64("ACME-0001".as_bytes()), 0x7546_cef2_030f_2919);
        // UTF-8 bytes, not UTF-16 code units or code points.
        assert_eq!(fnv1a64("compte-é".as_bytes()), 0x115f_50e6_d3bf_9c10);
        let shard = |s: &str| s.parse::<Shard>().unwrap();
        assert!(shard("1/2").takes("acct-000042"));
        assert!(shard("3/16").takes("acct-000042"));
        assert!(shard("1/3").takes("acct-000042"));
        assert!(shard("0/16").takes("compte-é"));
        assert!(shard("0/1").takes("anything"));
    }

    #[test]
    fn every_account_is_in_exactly_one_shard() {
        for count in [1, 2, 3, 7] {
            for i in 0..500 {
                let id = format!("acct-{i:06}");
                let shards = (0..count)
                    .filter(|&index| Shard { index, count }.takes(&id))
                    .count();
                assert_eq!(shards, 1, "{id} in {count} shards");
            }
        }
    }

    #[test]
    fn a_shard_is_written_i_of_n() {
        assert_eq!("0/2".parse(), Ok(Shard { index: 0, count: 2 }));
        for bad in ["2/2", "1", "a/2", "0/0", "-1/2", "1/100001", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(
            "2/2"
                .parse::<Shard>()
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
