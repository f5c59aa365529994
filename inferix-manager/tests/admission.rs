//! Admission: tokens per role and a sane hello.

use inferix_core::ids::NodeId;
use inferix_core::protocol::{ErrorCode, Hello, Role};
use inferix_manager::admission::{check_hello, AdmissionConfig, MAX_DECLARED_IB};

fn hello(role: Role, token: Option<&str>, ib: f64) -> Hello {
    Hello {
        role,
        node: NodeId(3),
        ib,
        tags: vec![],
        device_class: String::new(),
        token: token.map(Into::into),
        formats: vec![],
    }
}

fn tokens() -> AdmissionConfig {
    AdmissionConfig {
        node_token: Some("node".into()),
        verifier_token: None,
    }
}

#[test]
fn each_role_needs_its_own_token() {
    let cfg = tokens();
    assert!(check_hello(&cfg, &hello(Role::Worker, Some("node"), 1.0)).is_ok());
    assert!(check_hello(&cfg, &hello(Role::Verifier, Some("node"), 0.0)).is_ok());
    // A client's key is checked against its account, not here.
    assert!(check_hello(&cfg, &hello(Role::Client, Some("anything"), 0.0)).is_ok());
    for (role, token) in [
        (Role::Worker, Some("client")),
        (Role::Worker, None),
        (Role::Verifier, Some("wrong")),
        // Prefixes, extensions and the empty token: the comparison is of
        // fixed-length digests, so none of them can match by length.
        (Role::Worker, Some("nod")),
        (Role::Worker, Some("node ")),
        (Role::Worker, Some("nodenode")),
        (Role::Verifier, Some("")),
    ] {
        let r = check_hello(&cfg, &hello(role, token, 1.0)).unwrap_err();
        assert_eq!(r.code, ErrorCode::Unauthorized, "{role:?} {token:?}");
        assert_eq!(r.close, "unauthorized");
        assert!(r.message.contains("not admitted"), "{}", r.message);
    }
}

#[test]
fn without_tokens_anyone_but_a_manager_is_admitted() {
    let open = AdmissionConfig::default();
    assert!(check_hello(&open, &hello(Role::Worker, None, 2.0)).is_ok());
    assert!(check_hello(&open, &hello(Role::Client, Some("x"), 0.0)).is_ok());
    let r = check_hello(&open, &hello(Role::Manager, None, 0.0)).unwrap_err();
    assert_eq!(r.code, ErrorCode::Unauthorized);
}

#[test]
fn an_index_that_is_not_a_finite_non_negative_number_is_refused() {
    let open = AdmissionConfig::default();
    for ib in [
        f64::NAN,
        f64::INFINITY,
        -1.0,
        0.0,
        1e9,
        MAX_DECLARED_IB * 1.01,
    ] {
        let r = check_hello(&open, &hello(Role::Worker, None, ib)).unwrap_err();
        assert_eq!(r.code, ErrorCode::InvalidRequest, "{ib}");
        assert_eq!(r.close, "invalid hello");
    }
    assert!(check_hello(&open, &hello(Role::Worker, None, MAX_DECLARED_IB)).is_ok());
    assert!(check_hello(&open, &hello(Role::Worker, None, 0.05)).is_ok());
}

#[test]
fn a_verifier_token_admits_verifiers_only_and_the_node_token_workers_only() {
    let cfg = AdmissionConfig {
        node_token: Some("node".into()),
        verifier_token: Some("judge".into()),
    };
    assert!(check_hello(&cfg, &hello(Role::Worker, Some("node"), 1.0)).is_ok());
    assert!(check_hello(&cfg, &hello(Role::Verifier, Some("judge"), 0.0)).is_ok());
    for (role, token) in [
        (Role::Verifier, Some("node")),
        (Role::Worker, Some("judge")),
        (Role::Verifier, None),
    ] {
        let r = check_hello(&cfg, &hello(role, token, 1.0)).unwrap_err();
        assert_eq!(r.code, ErrorCode::Unauthorized, "{role:?} {token:?}");
    }
    // Without a verifier token, verifiers present the node token as before.
    let shared = tokens();
    assert!(check_hello(&shared, &hello(Role::Verifier, Some("node"), 0.0)).is_ok());
}
