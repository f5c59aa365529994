//! Typed identifiers. Ids are random 128-bit values (unique across managers
//! without coordination) shown as 32 hex digits; a task id is its job id plus
//! the task's index within the job.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// A string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: {value:?}")]
pub struct ParseIdError {
    /// Which id type was parsed.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u128);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                let mut b = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut b);
                Self(u128::from_be_bytes(b))
            }
            /// A random id drawn from a seeded generator (simulation, tests).
            pub fn from_rng(rng: &mut impl RngCore) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                Self(u128::from_be_bytes(b))
            }
            /// The last 8 hex digits, for humans.
            pub fn short(&self) -> String {
                format!("{:08x}", self.0 as u32)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:032x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($kind, "-{}"), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 32 {
                    return Err(ParseIdError { kind: $kind, value: s.to_string() });
                }
                u128::from_str_radix(s, 16)
                    .map(Self)
                    .map_err(|_| ParseIdError { kind: $kind, value: s.to_string() })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// Identifies a render job.
    JobId,
    "job"
);
hex_id!(
    /// Identifies a node (manager, worker, verifier, client) by its key.
    NodeId,
    "node"
);

impl NodeId {
    /// The id of the node whose public key is `key`: the first 16 bytes of
    /// its BLAKE3 hash, so an id cannot be claimed without the key.
    pub fn from_public_key(key: &[u8]) -> Self {
        let h = blake3::hash(key);
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.as_bytes()[..16]);
        Self(u128::from_be_bytes(b))
    }
}

/// Identifies a task: the job it belongs to and its index in that job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// Owning job.
    pub job: JobId,
    /// Position of the task in the job's split, from 0.
    pub index: u32,
}

impl TaskId {
    /// The task at `index` of `job`.
    pub fn new(job: JobId, index: u32) -> Self {
        Self { job, index }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:05}", self.job, self.index)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task-{}-{}", self.job.short(), self.index)
    }
}

impl FromStr for TaskId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIdError {
            kind: "task",
            value: s.to_string(),
        };
        let (job, index) = s.split_once('-').ok_or_else(err)?;
        Ok(Self {
            job: job.parse().map_err(|_| err())?,
            index: index.parse().map_err(|_| err())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let j = JobId::random();
        assert_eq!(j.to_string().parse::<JobId>().unwrap(), j);
        let t = TaskId::new(j, 42);
        assert_eq!(t.to_string().parse::<TaskId>().unwrap(), t);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), t);
        assert!("xyz".parse::<JobId>().is_err());
        assert!("0123".parse::<TaskId>().is_err());
    }

    #[test]
    fn node_id_depends_on_key() {
        assert_ne!(NodeId::from_public_key(b"a"), NodeId::from_public_key(b"b"));
        assert_eq!(NodeId::from_public_key(b"a"), NodeId::from_public_key(b"a"));
    }
}
