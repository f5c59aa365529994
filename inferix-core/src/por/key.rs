//! Per-task verification keys.

use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

use crate::ids::TaskId;

/// The secret shared by all managers of a network (from configuration).
#[derive(Clone)]
pub struct ManagerSecret(pub Vec<u8>);

impl std::fmt::Debug for ManagerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagerSecret(…)")
    }
}

/// A task's secret verification key: HMAC-SHA256(manager secret, task id).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerificationKey(pub [u8; 32]);

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerificationKey(…)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl VerificationKey {
    /// Derives the key of `task`.
    pub fn derive(secret: &ManagerSecret, task: TaskId) -> Self {
        Self(hmac(
            &secret.0,
            &[b"inferix/por/v1/task", task.to_string().as_bytes()],
        ))
    }

    /// Derives the key of one lease of `task`: a re-queued task gets fresh
    /// watermarks and challenges, so a worker that saw an earlier attempt
    /// learns nothing about the next.
    pub fn for_attempt(secret: &ManagerSecret, task: TaskId, attempt: u32) -> Self {
        let base = Self::derive(secret, task);
        Self(base.subkey("attempt", &attempt.to_le_bytes()))
    }

    /// A sub-key for one purpose and context (watermark layout, challenges
    /// after a commitment), so uses of one key never share randomness.
    pub fn subkey(&self, purpose: &str, context: &[u8]) -> [u8; 32] {
        hmac(&self.0, &[purpose.as_bytes(), &[0], context])
    }

    /// A deterministic random generator for `purpose` and `context`.
    pub fn rng(&self, purpose: &str, context: &[u8]) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.subkey(purpose, context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    #[test]
    fn keys_depend_on_secret_and_task() {
        let s = ManagerSecret(b"secret".to_vec());
        let t0 = TaskId::new(JobId(1), 0);
        let t1 = TaskId::new(JobId(1), 1);
        assert_eq!(
            VerificationKey::derive(&s, t0),
            VerificationKey::derive(&s, t0)
        );
        assert_ne!(
            VerificationKey::derive(&s, t0),
            VerificationKey::derive(&s, t1)
        );
        assert_ne!(
            VerificationKey::derive(&s, t0),
            VerificationKey::derive(&ManagerSecret(b"other".to_vec()), t0)
        );
        let k = VerificationKey::derive(&s, t0);
        assert_ne!(k.subkey("a", b""), k.subkey("b", b""));
        assert_ne!(k.subkey("a", b"x"), k.subkey("a", b"y"));
    }
}
