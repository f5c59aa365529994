//! Who may join: tokens per role and a sane hello.
//!
//! Stakes are the other half of a node's admission; their rule is in
//! [`crate::economy::stake_decision`] since it is a ledger rule. Clients
//! are admitted by API key, against their account
//! ([`crate::accounts::client_lookup`]).

use inferix_core::protocol::{ErrorCode, Hello, Role};

/// The largest Inferix Bench index a worker may declare. The reference
/// machine (IB 1) is two CPU cores running a software GPU, so the fastest
/// data-centre GPUs declare hundreds to a few thousand; beyond this the
/// number is a lie or a bug, and it would size an absurd stake.
pub const MAX_DECLARED_IB: f64 = 100_000.0;

/// Admission tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdmissionConfig {
    /// Token workers must present (and verifiers too, unless
    /// `verifier_token` is set); `None` admits anyone.
    pub node_token: Option<String>,
    /// Token verifiers must present instead of the node token. With it, a
    /// worker's operator cannot also run the verifiers that judge its
    /// work by holding the one token, and the node token admits no
    /// verifier.
    pub verifier_token: Option<String>,
}

/// Why a hello is refused: the error the peer gets, and the reason its
/// connection is closed with.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Error code sent to the peer.
    pub code: ErrorCode,
    /// Message sent to the peer.
    pub message: String,
    /// Short reason for the log and the connection close.
    pub close: &'static str,
}

/// Compares tokens in time that depends on neither their contents nor
/// their lengths: both are hashed to 32 bytes, and `blake3::Hash`'s
/// equality is constant-time. A peer timing refusals learns nothing about
/// the token.
fn tokens_match(want: &str, given: &str) -> bool {
    blake3::hash(want.as_bytes()) == blake3::hash(given.as_bytes())
}

/// Checks a hello's token and numbers. Managers are never admitted as
/// peers of a manager; a client's key is checked against its account
/// afterwards.
pub fn check_hello(cfg: &AdmissionConfig, h: &Hello) -> Result<(), Refusal> {
    // A node presenting an account's API key is checked against that
    // account by the driver (`operators::check_operator`).
    let keyed = crate::operators::node_key(h).is_some();
    let token_ok = |want: &Option<String>| {
        keyed
            || match (want, &h.token) {
                (None, _) => true,
                (Some(want), Some(given)) => tokens_match(want, given),
                (Some(_), None) => false,
            }
    };
    let admitted = match h.role {
        Role::Worker => token_ok(&cfg.node_token),
        Role::Verifier => match &cfg.verifier_token {
            Some(_) => token_ok(&cfg.verifier_token),
            None => token_ok(&cfg.node_token),
        },
        Role::Client => true,
        Role::Manager => false,
    };
    if !admitted {
        return Err(Refusal {
            code: ErrorCode::Unauthorized,
            message: format!("{:?} not admitted: bad or missing token", h.role),
            close: "unauthorized",
        });
    }
    if !(h.ib.is_finite() && h.ib >= 0.0) {
        return Err(Refusal {
            code: ErrorCode::InvalidRequest,
            message: "IB must be a finite number >= 0".into(),
            close: "invalid hello",
        });
    }
    // A worker's index sizes its stake and its share of leases: 0 would
    // need no stake, a huge one would win nearly every lease.
    if h.role == Role::Worker && !(h.ib > 0.0 && h.ib <= MAX_DECLARED_IB) {
        return Err(Refusal {
            code: ErrorCode::InvalidRequest,
            message: format!(
                "a worker's IB must be above 0 and at most {MAX_DECLARED_IB}, not {}",
                h.ib
            ),
            close: "invalid hello",
        });
    }
    Ok(())
}
