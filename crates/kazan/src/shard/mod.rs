//! Shards of a collection by hash, as server-side sharded list and watch defines them
//! (KEP-5866, "Server-side Sharded List and Watch", feature gate `ShardedListAndWatch`, alpha in
//! Kubernetes 1.36): a shard is one or more half-open ranges `[start, end)` of the 64-bit FNV-1a
//! hash of an object's `metadata.uid` (or `metadata.namespace`), sent as the `shardSelector`
//! parameter of a list or watch:
//!
//! ```text
//! shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000') || shardRange(...)
//! ```
//!
//! ```
//! use kazan::shard::{ShardKey, ShardSelector};
//!
//! // The second of four fixed shards, by UID.
//! let shard = ShardSelector::fixed(ShardKey::Uid, 1, 4)?;
//! assert_eq!(
//!     shard.to_string(),
//!     "shardRange(object.metadata.uid, '0x4000000000000000', '0x8000000000000000')"
//! );
//! // The same shard, read back from the wire.
//! assert_eq!(shard.to_string().parse::<ShardSelector>()?, shard);
//! // Client-side filtering, for a server that ignores the parameter.
//! let in_shard = shard.matches_value("2a9c1b7e-0042-4f3a-9c1d-000000000042");
//! # let _ = in_shard;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is followed, and where it differs from the documents:
//!
//! - **Hash**: FNV-1a, 64 bits, over the bytes of the field's string value; an empty or missing
//!   field hashes as the empty string (apimachinery `pkg/sharding`, `HashFieldValue` over
//!   `ResolveFieldValue`, which reads `GetUID()` / `GetNamespace()`; a cluster-scoped object's
//!   namespace is `""`).
//! - **Ranges**: `start <= hash < end`, `end` up to `0x10000000000000000` (2⁶⁴), written as
//!   `'0x'` and exactly 16 lower-case hex digits, or 17 for 2⁶⁴ alone. The API reference's
//!   examples shorten `'0x0'`, but the server's parser (k8s.io/apiserver `pkg/sharding/parser.go`)
//!   refuses anything but 16 digits ("did you mean ...?"); kazan writes and accepts what the
//!   parser accepts.
//! - **Fixed shards**: shard `I` of `N` is `[⌊I·2⁶⁴/N⌋, ⌊(I+1)·2⁶⁴/N⌋)`, the last ending at 2⁶⁴
//!   (apimachinery `NewShardRangeSelector`); the shards partition the hash space for any `N`.
//! - **Grammar**: a CEL expression of `shardRange(field, 'start', 'end')` calls joined by `||`
//!   (parentheses allowed), every call on the same field, `start < end`; the fields are
//!   `object.metadata.uid` and `object.metadata.namespace`. The server parses full CEL; kazan
//!   parses the subset that can form a valid selector (no escape sequences, comments or
//!   receiver-style calls) and words its refusals as the server does. See [`ShardSelector::parse`].
//! - **Echo**: a server that filtered says so in the list's `metadata.shardInfo.selector`, echoing
//!   the request's selector (KEP-5866: in the initial list, and the initial sync of a watch); a
//!   server without the feature ignores the parameter and sends everything, and the client must
//!   filter itself with [`ShardSelector::matches_meta`]. See [`ShardSelector::mode_of`].

pub mod membership;
mod parse;
pub mod watch;

use std::{fmt, str::FromStr};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};

pub use membership::{MembershipConfig, MembershipError, ShardMembership};
pub use parse::ShardSelectorError;
pub use watch::{ShardedEvent, ShardedWatcher};

/// One past the largest hash: the exclusive end of the hash space, 2⁶⁴.
pub const HASH_SPACE_END: u128 = 1 << 64;

/// The name of the query parameter of list and watch requests.
pub const PARAMETER: &str = "shardSelector";

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`, the hash shards are ranges of.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The field whose hash decides an object's shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShardKey {
    /// `object.metadata.uid`: objects spread evenly, each on its own.
    Uid,
    /// `object.metadata.namespace`: a namespace's objects stay together.
    Namespace,
}

impl ShardKey {
    /// The field path as the selector names it.
    pub fn path(self) -> &'static str {
        match self {
            ShardKey::Uid => "object.metadata.uid",
            ShardKey::Namespace => "object.metadata.namespace",
        }
    }

    /// The key of a field path, if it is one the server supports.
    pub fn from_path(path: &str) -> Option<ShardKey> {
        match path {
            "object.metadata.uid" => Some(ShardKey::Uid),
            "object.metadata.namespace" => Some(ShardKey::Namespace),
            _ => None,
        }
    }

    /// The value this key hashes in `meta` (`""` when absent, as the server reads it).
    pub fn value_of(self, meta: &ObjectMeta) -> &str {
        match self {
            ShardKey::Uid => meta.uid.as_deref().unwrap_or(""),
            ShardKey::Namespace => meta.namespace.as_deref().unwrap_or(""),
        }
    }
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// Why a range or a fixed shard cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardRangeError {
    /// A range must hold at least one hash.
    #[error("shard range start {start:#018x} must be less than end {end:#x}")]
    Empty {
        /// The start given.
        start: u64,
        /// The end given.
        end: u128,
    },
    /// An end beyond 2⁶⁴.
    #[error("shard range end {end:#x} is beyond the hash space (at most 0x10000000000000000)")]
    EndBeyondSpace {
        /// The end given.
        end: u128,
    },
    /// A fixed shard `index` of `total` with `index >= total` or `total == 0`.
    #[error("shard {index} of {total} does not exist: shards are numbered 0 to total-1, total at least 1")]
    NoSuchShard {
        /// The shard's number.
        index: u64,
        /// The number of shards.
        total: u64,
    },
    /// A selector needs at least one range.
    #[error("a shard selector needs at least one range")]
    NoRange,
}

/// A fixed shard `index` of `total`, written `I/N` (as `kazan watch --shard 1/4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedShard {
    /// Which shard, from 0.
    pub index: u64,
    /// How many shards.
    pub total: u64,
}

impl FixedShard {
    /// Its range of hashes: `[⌊I·2⁶⁴/N⌋, ⌊(I+1)·2⁶⁴/N⌋)`.
    pub fn range(self) -> Result<HashRange, ShardRangeError> {
        HashRange::of_shard(self.index, self.total)
    }

    /// Its selector on `key`.
    pub fn selector(self, key: ShardKey) -> Result<ShardSelector, ShardRangeError> {
        ShardSelector::fixed(key, self.index, self.total)
    }
}

impl fmt::Display for FixedShard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// Why `I/N` does not name a shard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a shard: expected I/N with 0 <= I < N, e.g. 0/3")]
pub struct FixedShardError {
    /// What was given.
    pub input: String,
}

impl FromStr for FixedShard {
    type Err = FixedShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || FixedShardError { input: s.to_string() };
        let (index, total) = s.trim().split_once('/').ok_or_else(invalid)?;
        let index: u64 = index.trim().parse().map_err(|_| invalid())?;
        let total: u64 = total.trim().parse().map_err(|_| invalid())?;
        if index >= total {
            return Err(invalid());
        }
        Ok(FixedShard { index, total })
    }
}

/// A half-open range `[start, end)` of hashes, `end` up to 2⁶⁴.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashRange {
    start: u64,
    end: u128,
}

impl HashRange {
    /// The range `[start, end)`; it must not be empty and `end` must not exceed 2⁶⁴.
    pub fn new(start: u64, end: u128) -> Result<HashRange, ShardRangeError> {
        if end > HASH_SPACE_END {
            return Err(ShardRangeError::EndBeyondSpace { end });
        }
        if u128::from(start) >= end {
            return Err(ShardRangeError::Empty { start, end });
        }
        Ok(HashRange { start, end })
    }

    /// Every hash.
    pub fn full() -> HashRange {
        HashRange {
            start: 0,
            end: HASH_SPACE_END,
        }
    }

    /// Fixed shard `index` of `total`: `[⌊index·2⁶⁴/total⌋, ⌊(index+1)·2⁶⁴/total⌋)`.
    pub fn of_shard(index: u64, total: u64) -> Result<HashRange, ShardRangeError> {
        if total == 0 || index >= total {
            return Err(ShardRangeError::NoSuchShard { index, total });
        }
        let bound = |i: u64| (u128::from(i) * HASH_SPACE_END) / u128::from(total);
        // Below 2⁶⁴ since index < total.
        let start = u64::try_from(bound(index)).map_err(|_| ShardRangeError::NoSuchShard { index, total })?;
        HashRange::new(start, bound(index + 1))
    }

    /// The first hash in the range.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last hash in the range (at most 2⁶⁴).
    pub fn end(&self) -> u128 {
        self.end
    }

    /// Whether `hash` is in the range.
    pub fn contains(&self, hash: u64) -> bool {
        self.start <= hash && u128::from(hash) < self.end
    }

    /// How many hashes the range holds.
    pub fn len(&self) -> u128 {
        self.end - u128::from(self.start)
    }

    /// Always false: a range holds at least one hash.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A bound as the wire writes it: `0x` and 16 lower-case hex digits, or `0x10000000000000000`.
fn write_bound(f: &mut fmt::Formatter<'_>, bound: u128) -> fmt::Result {
    if bound >= HASH_SPACE_END {
        write!(f, "0x{bound:x}")
    } else {
        write!(f, "0x{bound:016x}")
    }
}

/// A shard: ranges of the hash of one field. Its [`Display`](fmt::Display) is the
/// `shardSelector` parameter's value, and [`FromStr`] parses one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardSelector {
    key: ShardKey,
    ranges: Vec<HashRange>,
}

impl ShardSelector {
    /// The ranges of `key`'s hash, in the order given (the selector lists them in that order).
    pub fn new(key: ShardKey, ranges: impl IntoIterator<Item = HashRange>) -> Result<Self, ShardRangeError> {
        let ranges: Vec<HashRange> = ranges.into_iter().collect();
        if ranges.is_empty() {
            return Err(ShardRangeError::NoRange);
        }
        Ok(ShardSelector { key, ranges })
    }

    /// Fixed shard `index` of `total` (`kazan watch --shard I/N`).
    pub fn fixed(key: ShardKey, index: u64, total: u64) -> Result<Self, ShardRangeError> {
        Ok(ShardSelector {
            key,
            ranges: vec![HashRange::of_shard(index, total)?],
        })
    }

    /// Parses a `shardSelector` value; see [`ShardSelectorError`] for what is refused.
    pub fn parse(selector: &str) -> Result<Self, ShardSelectorError> {
        parse::parse(selector)
    }

    /// The field hashed.
    pub fn key(&self) -> ShardKey {
        self.key
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[HashRange] {
        &self.ranges
    }

    /// Whether a hash falls in one of the ranges.
    pub fn contains_hash(&self, hash: u64) -> bool {
        self.ranges.iter().any(|r| r.contains(hash))
    }

    /// Whether an object whose key field is `value` belongs to the shard.
    pub fn matches_value(&self, value: &str) -> bool {
        self.contains_hash(fnv1a_64(value.as_bytes()))
    }

    /// Whether an object belongs to the shard: the client-side filter, deciding as the server
    /// does.
    pub fn matches_meta(&self, meta: &ObjectMeta) -> bool {
        self.matches_value(self.key.value_of(meta))
    }

    /// Whether a typed object belongs to the shard.
    pub fn matches<K>(&self, object: &K) -> bool
    where
        K: k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        self.matches_meta(object.metadata())
    }

    /// Whether an object given as JSON belongs to the shard (`metadata.uid` or
    /// `metadata.namespace` read as strings, absent as `""`).
    pub fn matches_json(&self, object: &serde_json::Value) -> bool {
        let field = match self.key {
            ShardKey::Uid => "uid",
            ShardKey::Namespace => "namespace",
        };
        let value = object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        self.matches_value(value)
    }

    /// Whether the server filtered the list whose metadata this is: it did if
    /// `metadata.shardInfo.selector` is this selector (compared parsed, so spacing does not
    /// matter); a server without the feature leaves it out and sends every object.
    pub fn mode_of(&self, list: &ListMeta) -> ShardMode {
        match &list.shard_info {
            Some(info) if ShardSelector::parse(&info.selector).is_ok_and(|echoed| echoed == *self) => {
                ShardMode::ServerSide
            }
            Some(info) => ShardMode::Mismatch {
                echoed: info.selector.clone(),
            },
            None => ShardMode::ClientSide,
        }
    }
}

/// Who filters a sharded list or watch, as a list's `shardInfo` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardMode {
    /// The server echoed the selector: every object received belongs to the shard.
    ServerSide,
    /// No `shardInfo`: the server ignored the selector (no `ShardedListAndWatch`), so the client
    /// must drop objects outside the shard.
    ClientSide,
    /// The server echoed another selector: the list is some other subset; filter client-side and
    /// report it.
    Mismatch {
        /// What the server echoed.
        echoed: String,
    },
}

impl fmt::Display for ShardSelector {
    /// `shardRange(KEY, 'START', 'END')`, joined with ` || `: what the server's `String()` writes
    /// and echoes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(" || ")?;
            }
            write!(f, "shardRange({}, '", self.key)?;
            write_bound(f, u128::from(range.start))?;
            f.write_str("', '")?;
            write_bound(f, range.end)?;
            f.write_str("')")?;
        }
        Ok(())
    }
}

impl FromStr for ShardSelector {
    type Err = ShardSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShardSelector::parse(s)
    }
}

#[cfg(test)]
mod tests;
