//! A node's long-lived ed25519 identity.
//!
//! The public key *is* the node: its [`NodeId`] is derived from it, the QUIC
//! certificate is bound to it, and task results are signed with it. Losing
//! the key means becoming a new node; leaking it lets anyone impersonate the
//! node, hence the private file and folder modes.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use inferix_core::ids::{NodeId, TaskId};
use inferix_core::task::TaskResult;

use crate::TransportError;

/// File holding the PKCS#8 PEM private key inside the identity folder.
pub const KEY_FILE_NAME: &str = "node_key.pem";

/// An ed25519 key pair and the node id derived from it.
#[derive(Clone)]
pub struct NodeIdentity {
    key: SigningKey,
    id: NodeId,
}

// Never print the secret key, even in debug logs.
impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// A fresh random identity, kept only in memory (tests, ephemeral clients).
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The identity whose secret key is `seed`: reproducible identities for
    /// seeded simulations and tests. Never use a guessable seed for a real
    /// node.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(&seed))
    }

    /// The identity stored in `dir`, creating it on first start.
    ///
    /// A new folder is created with mode 0700 and the key file with mode
    /// 0600; a key file found readable by others is tightened to 0600
    /// (with a warning) rather than refused, so that a restored backup does
    /// not prevent the node from starting. Creation is atomic: two processes
    /// starting at once end up with the same key.
    pub fn load_or_create(dir: impl AsRef<Path>) -> Result<Self, TransportError> {
        let dir = dir.as_ref();
        let path = dir.join(KEY_FILE_NAME);
        if path.exists() {
            return Self::load(&path);
        }
        inferix_core::fs::create_private_dir(dir).map_err(|e| io_err(dir, e))?;
        let identity = Self::generate();
        let pem = identity
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| io_err(&path, e))?;
        // Write a temporary file, then hard-link it into place: the link
        // fails if another process won the race, and the key file is never
        // seen half-written.
        let tmp = dir.join(format!(".{KEY_FILE_NAME}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            let mut f = private_file(&tmp)?;
            f.write_all(pem.as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, &path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match result {
            Ok(()) => Ok(identity),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn load(path: &Path) -> Result<Self, TransportError> {
        tighten_permissions(path)?;
        let pem = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
            TransportError::Io(format!(
                "{}: not an ed25519 PKCS#8 key: {e}",
                path.display()
            ))
        })?;
        Ok(Self::from_signing_key(key))
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let id = NodeId::from_public_key(key.verifying_key().as_bytes());
        Self { key, id }
    }

    /// The node id peers know this node by.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The raw ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `msg` (e.g. a task result) so that anyone holding the public key
    /// can check it came from this node.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// The private key as PKCS#8 DER, for the TLS certificate and handshake.
    pub(crate) fn pkcs8_der(&self) -> Result<Vec<u8>, TransportError> {
        self.key
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| TransportError::Io(format!("encoding the node key: {e}")))
    }
}

impl inferix_core::task::Signer for NodeIdentity {
    fn public_key(&self) -> [u8; 32] {
        NodeIdentity::public_key(self)
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        NodeIdentity::sign(self, msg)
    }
}

/// Why a signed task result is not accepted as the named worker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultSignatureError {
    /// The key or signature has the wrong length (or is missing).
    #[error("result of {task} carries a malformed key or signature")]
    Malformed {
        /// Task the result claims to answer.
        task: TaskId,
    },
    /// The key is not the one the worker's node id derives from.
    #[error("result of {task} is signed with a key that is not worker {worker:?}'s")]
    WrongKey {
        /// Task.
        task: TaskId,
        /// Worker the result names.
        worker: NodeId,
    },
    /// The signature does not verify: the result was altered or forged.
    #[error("result of {task} has a bad signature")]
    BadSignature {
        /// Task.
        task: TaskId,
    },
}

/// Checks that `result` was signed, for `task`, by the worker it names.
pub fn verify_result(task: TaskId, result: &TaskResult) -> Result<(), ResultSignatureError> {
    let (Ok(key), Ok(sig)) = (
        <[u8; 32]>::try_from(result.public_key.as_slice()),
        <[u8; 64]>::try_from(result.signature.as_slice()),
    ) else {
        return Err(ResultSignatureError::Malformed { task });
    };
    if NodeId::from_public_key(&key) != result.worker {
        return Err(ResultSignatureError::WrongKey {
            task,
            worker: result.worker,
        });
    }
    if !verify(&key, &result.signing_bytes(task), &sig) {
        return Err(ResultSignatureError::BadSignature { task });
    }
    Ok(())
}

/// Whether `sig` is `public_key`'s signature of `msg`.
///
/// Uses strict verification (rejects small-order keys and non-canonical
/// signatures), because signatures here are evidence about strangers and
/// must not be malleable.
pub fn verify(public_key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(sig);
    key.verify_strict(msg, &sig).is_ok()
}

fn io_err(path: &Path, e: impl fmt::Display) -> TransportError {
    TransportError::Io(format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn private_file(path: &PathBuf) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn tighten_permissions(path: &Path) -> Result<(), TransportError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| io_err(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "node key readable by others; setting mode 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(path, e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_permissions(_path: &Path) -> Result<(), TransportError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_identity_passes_the_signer_conformance_suite() {
        inferix_core::signer_conformance::test_all(&NodeIdentity::generate(), verify);
    }

    #[test]
    fn identity_is_created_once_and_reloaded_with_the_same_node_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node").join("identity");
        let a = NodeIdentity::load_or_create(&dir).unwrap();
        let b = NodeIdentity::load_or_create(&dir).unwrap();
        assert_eq!(a.node_id(), b.node_id());
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.node_id(), NodeId::from_public_key(&a.public_key()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file_mode = std::fs::metadata(dir.join(KEY_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(file_mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_tightened_on_load() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let a = NodeIdentity::load_or_create(tmp.path()).unwrap();
        let path = tmp.path().join(KEY_FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let b = NodeIdentity::load_or_create(tmp.path()).unwrap();
        assert_eq!(a.node_id(), b.node_id());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_new_identity() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(KEY_FILE_NAME), "not a key").unwrap();
        assert!(matches!(
            NodeIdentity::load_or_create(tmp.path()),
            Err(TransportError::Io(_))
        ));
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let a = NodeIdentity::generate();
        let b = NodeIdentity::generate();
        assert_ne!(a.node_id(), b.node_id());
        let sig = a.sign(b"task result");
        assert!(verify(&a.public_key(), b"task result", &sig));
        assert!(!verify(&a.public_key(), b"task resulT", &sig));
        assert!(!verify(&b.public_key(), b"task result", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify(&a.public_key(), b"task result", &bad));
        assert!(!format!("{a:?}").contains(&hex::encode(a.key.to_bytes())));
    }

    #[test]
    fn results_verify_only_as_signed_by_the_named_worker_for_that_task() {
        use inferix_core::ids::JobId;
        use inferix_core::task::FrameOutput;
        use inferix_core::ContentHash;
        let worker = NodeIdentity::generate();
        let other = NodeIdentity::generate();
        let task = TaskId::new(JobId(1), 0);
        let mut result = TaskResult {
            worker: worker.node_id(),
            frames: vec![FrameOutput {
                frame: 1,
                pixel_hash: ContentHash::of(b"pixels"),
                blob: ContentHash::of(b"png"),
                width: 4,
                height: 4,
                tile_root: ContentHash::of(b"tiles"),
            }],
            render_ms: 10,
            attempt: 1,
            scene: ContentHash::of(b"scene"),
            device_class: "x".into(),
            public_key: vec![],
            signature: vec![],
        };
        assert!(matches!(
            verify_result(task, &result),
            Err(ResultSignatureError::Malformed { .. })
        ));
        result.sign(task, &worker);
        verify_result(task, &result).unwrap();
        // Replayed into another task or another lease.
        assert!(matches!(
            verify_result(TaskId::new(JobId(1), 1), &result),
            Err(ResultSignatureError::BadSignature { .. })
        ));
        let mut replayed = result.clone();
        replayed.attempt = 2;
        assert!(verify_result(task, &replayed).is_err());
        // Altered pixels.
        let mut forged = result.clone();
        forged.frames[0].pixel_hash = ContentHash::of(b"other");
        assert!(verify_result(task, &forged).is_err());
        // Signed by someone else in the worker's name.
        let mut impostor = result.clone();
        impostor.sign(task, &other);
        assert!(matches!(
            verify_result(task, &impostor),
            Err(ResultSignatureError::WrongKey { .. })
        ));
    }
}
