//! The behaviour every [`Signer`] must show (feature `testing`): results
//! are evidence about strangers, so a signature must verify under the
//! signer's own key and for nothing but what was signed.
//!
//! An implementation's tests call [`test_all`] with the signer and the
//! verification its peers use (`inferix_transport::verify` for ed25519).

use crate::ids::{JobId, NodeId, TaskId};
use crate::task::{Signer, TaskResult};
use crate::ContentHash;

/// Runs every case.
pub fn test_all(signer: &dyn Signer, verify: impl Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool) {
    a_signature_verifies_under_the_signers_key(signer, &verify);
    nothing_else_verifies(signer, &verify);
    a_signed_result_names_the_key_and_verifies(signer, &verify);
}

/// `sign` gives a signature that `verify` accepts with `public_key`.
pub fn a_signature_verifies_under_the_signers_key(
    signer: &dyn Signer,
    verify: &impl Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
) {
    for msg in [&b""[..], b"frame 1", &[7u8; 4096]] {
        let sig = signer.sign(msg);
        assert!(
            verify(&signer.public_key(), msg, &sig),
            "{} bytes",
            msg.len()
        );
    }
}

/// Another message, a flipped bit of the signature, or another key: none
/// verifies.
pub fn nothing_else_verifies(
    signer: &dyn Signer,
    verify: &impl Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
) {
    let key = signer.public_key();
    let sig = signer.sign(b"frame 1");
    assert!(!verify(&key, b"frame 2", &sig), "another message verified");
    let mut flipped = sig;
    flipped[10] ^= 1;
    assert!(
        !verify(&key, b"frame 1", &flipped),
        "a changed signature verified"
    );
    let mut other = key;
    other[0] ^= 1;
    assert!(!verify(&other, b"frame 1", &sig), "another key verified");
}

/// [`TaskResult::sign`] puts the signer's key in the result, and the
/// signature covers its signing bytes for that task only.
pub fn a_signed_result_names_the_key_and_verifies(
    signer: &dyn Signer,
    verify: &impl Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
) {
    let task = TaskId::new(JobId(3), 1);
    let mut result = TaskResult {
        worker: NodeId(9),
        frames: Vec::new(),
        render_ms: 12,
        attempt: 1,
        scene: ContentHash::of(b"scene"),
        device_class: "suite".into(),
        public_key: Vec::new(),
        signature: Vec::new(),
    };
    result.sign(task, signer);
    assert_eq!(result.public_key, signer.public_key().to_vec());
    let sig: [u8; 64] = result.signature.as_slice().try_into().expect("64 bytes");
    assert!(verify(
        &signer.public_key(),
        &result.signing_bytes(task),
        &sig
    ));
    let other_task = TaskId::new(JobId(3), 2);
    assert!(
        !verify(
            &signer.public_key(),
            &result.signing_bytes(other_task),
            &sig
        ),
        "a result's signature held for another task"
    );
}
