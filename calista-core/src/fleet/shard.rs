//! Shares of a fleet for machines that run it in parallel: `--shard I/N`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::Target;

/// Share `index` of `count` (from 0, as a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`).
///
/// A target's share is a stable hash of its own line (the URL as written, password
/// redacted, and the schema), not its position: adding, removing or reordering other lines
/// never moves it, so machines that read two versions of an edited file still never skip a
/// target that both versions hold, and a password change does not move it either. The
/// shares of one file are disjoint and together hold every target; their sizes vary a
/// little, as hashes do (about ±3 % for 1,000 targets in 4 shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Share `index` of `count`: `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// Its index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shares there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `target` is in this share.
    pub fn contains(&self, target: &Target) -> bool {
        share_of(target.shard_key(), self.count) == self.index
    }
}

/// SHA-256, not `std`'s hasher: the value must be the same on every machine, build and
/// release, or two machines would disagree on who runs what.
fn share_of(key: &str, count: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // The remainder is below `count`, a u32.
    u32::try_from(u64::from_be_bytes(head) % u64::from(count)).unwrap_or(0)
}

/// `I/N`, as `--shard` takes it.
impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || ShardError::Malformed {
            given: text.chars().take(40).collect(),
        };
        let (index, count) = text.trim().split_once('/').ok_or_else(malformed)?;
        let index = index.trim().parse().map_err(|_| malformed())?;
        let count = count.trim().parse().map_err(|_| malformed())?;
        Self::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A share that cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// Not `I/N`.
    #[error(
        "`{given}` is not a shard: write I/N, share I (from 0) of N, e.g. 0/4 … 3/4, or \
         $(JOB_COMPLETION_INDEX)/4 in a Kubernetes Indexed Job"
    )]
    Malformed {
        /// What was given (at most 40 characters).
        given: String,
    },
    /// `I` not below `N`.
    #[error(
        "shard {index}/{count} does not exist: the shares of {count} are numbered 0 to {} (I/N counts I from 0, as JOB_COMPLETION_INDEX does)",
        .count.saturating_sub(1)
    )]
    OutOfRange {
        /// I.
        index: u32,
        /// N.
        count: u32,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use super::*;
    use crate::fleet::Targets;

    fn fleet(n: usize) -> String {
        (0..n)
            .map(|i| format!("postgresql://app:pw@db/app tenant_{i}\n"))
            .collect()
    }

    fn names(targets: &Targets) -> Vec<String> {
        targets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_file() {
        let targets = Targets::parse(&fleet(1000), Path::new("/")).unwrap();
        let mut all: Vec<String> = Vec::new();
        for i in 0..4 {
            let share = targets.shard(Shard::new(i, 4).unwrap());
            // A hash spreads 1,000 targets evenly enough: 250 each, give or take.
            assert!((200..=300).contains(&share.len()), "{}", share.len());
            all.extend(names(&share));
        }
        let mut expected = names(&targets);
        all.sort();
        expected.sort();
        assert_eq!(all, expected);
    }

    #[test]
    fn editing_other_lines_or_a_password_moves_no_target() {
        let before = Targets::parse(&fleet(100), Path::new("/")).unwrap();
        let edited = format!(
            "postgresql://app:pw@db/app tenant_new\n{}",
            fleet(100)
                .lines()
                .filter(|line| !line.ends_with("tenant_7"))
                .map(|line| format!("{}\n", line.replace("app:pw@", "app:rotated@")))
                .collect::<String>()
        );
        let after = Targets::parse(&edited, Path::new("/")).unwrap();
        for i in 0..3 {
            let shard = Shard::new(i, 3).unwrap();
            let kept: Vec<String> = names(&before.shard(shard))
                .into_iter()
                .filter(|t| !t.ends_with("tenant_7"))
                .collect();
            let now: Vec<String> = names(&after.shard(shard))
                .into_iter()
                .filter(|t| !t.ends_with("tenant_new"))
                .collect();
            assert_eq!(kept, now, "shard {shard}");
        }
    }

    #[test]
    fn the_share_of_a_line_is_the_same_on_every_build() {
        // Fixed values (the first 8 bytes of SHA-256, big-endian, modulo N: any other tool
        // can compute them): a change here means machines of two releases would split a
        // fleet differently.
        let shares: Vec<u32> = (0..6)
            .map(|i| share_of(&format!("postgres://app:***@db/app\ttenant_{i}"), 4))
            .collect();
        assert_eq!(shares, [0, 0, 3, 1, 0, 3]);
    }

    #[test]
    fn shard_text_is_index_slash_count() {
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard::new(2, 8).unwrap());
        assert_eq!(" 0 / 1 ".parse::<Shard>().unwrap().to_string(), "0/1");
        for bad in ["8/8", "1/0", "-1/4", "1", "a/b", "1/2/3", ""] {
            let error = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(error.contains("shard"), "{bad}: {error}");
        }
        assert!(
            "4/4"
                .parse::<Shard>()
                .unwrap_err()
                .to_string()
                .contains("numbered 0 to 3")
        );
    }
}
