use std::time::Duration;

use inferix_core::ids::{JobId, NodeId};
use inferix_core::protocol::{Envelope, Message, PROTOCOL_VERSION};
use quinn::{ConnectionError, RecvStream, SendStream, VarInt};

use super::*;
use crate::frame::encode_frame_with;
use crate::{Listener, Transport, TransportError};

/// Upper bound on anything a test waits for; never a synchronisation.
const LIMIT: Duration = Duration::from_secs(20);

fn test_config() -> QuicConfig {
    let mut c = QuicConfig::default();
    // Short, because `connecting_to_nobody_fails` waits it out (UDP has no
    // "connection refused").
    c.handshake_timeout(Duration::from_secs(2));
    c
}

fn transport() -> QuicTransport {
    QuicTransport::new(NodeIdentity::generate(), test_config()).unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step exceeded its upper bound")
}

fn msg(i: u64) -> Envelope {
    Envelope::with_id(
        i,
        Message::Cancel {
            job: JobId(i as u128),
        },
    )
}

/// Checks that a listener still serves well-behaved peers.
async fn listener_still_serves(listener: &mut Box<dyn Listener>) {
    let client = transport();
    let target = listener.local_addr();
    let (c, s) = tokio::join!(client.connect(&target), listener.accept());
    let (mut c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.peer, client.local_id());
    s.sender.send(msg(77)).await.unwrap();
    assert_eq!(within(c.receiver.recv()).await.unwrap(), Some(msg(77)));
}

/// A peer under the test's control: the regular handshake and preamble,
/// then raw bytes on the envelope stream.
async fn raw_connect(
    client: &QuicTransport,
    addr: &str,
) -> (quinn::Connection, SendStream, RecvStream) {
    let (pin, host) = parse_addr(addr).unwrap();
    let sa = resolve(host).await.unwrap();
    let endpoint = client.inner.client_endpoint(sa.is_ipv6()).unwrap();
    let (config, _) = client.inner.client_config(pin).unwrap();
    let conn = endpoint
        .connect_with(config, sa, SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    let Ok((send, recv)) = client_stream(&conn).await else {
        panic!("stream setup failed")
    };
    (conn, send, recv)
}

/// Sends `bytes` raw; the server's `recv` must fail with the error `check`
/// accepts, close the connection with `code`, and keep listening.
async fn server_rejects_raw_bytes(
    bytes: Vec<u8>,
    code: u32,
    check: impl Fn(&TransportError) -> bool,
) {
    let server = transport();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    let client = transport();
    let ((conn, mut send, _recv), s) =
        tokio::join!(raw_connect(&client, &target), listener.accept());
    let mut s = s.unwrap();
    send.write_all(&bytes).await.unwrap();
    let err = within(s.receiver.recv()).await.unwrap_err();
    assert!(check(&err), "unexpected error {err:?}");
    match within(conn.closed()).await {
        ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, VarInt::from_u32(code));
            assert!(!c.reason.is_empty(), "the close carries the reason");
        }
        other => panic!("expected an application close, got {other:?}"),
    }
    listener_still_serves(&mut listener).await;
}

#[tokio::test]
async fn quic_passes_the_transport_conformance_suite() {
    crate::conformance::test_all(|_| transport(), |_| "127.0.0.1:0".to_string()).await;
}

#[tokio::test]
async fn both_sides_see_the_node_ids_of_the_keys_and_addresses_are_pinned() {
    let (a, b) = (NodeIdentity::generate(), NodeIdentity::generate());
    let server = QuicTransport::new(a.clone(), test_config()).unwrap();
    let client = QuicTransport::new(b.clone(), test_config()).unwrap();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    assert!(
        target.starts_with(&format!("{}@127.0.0.1:", a.node_id())),
        "{target}"
    );
    let (c, s) = tokio::join!(client.connect(&target), listener.accept());
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.peer, b.node_id());
    assert_eq!(s.peer, NodeId::from_public_key(&b.public_key()));
    assert_eq!(c.peer, a.node_id());

    // The bare host:port works too (no pin).
    let bare = target.split_once('@').unwrap().1.to_string();
    let (c2, s2) = tokio::join!(client.connect(&bare), listener.accept());
    assert_eq!(c2.unwrap().peer, a.node_id());
    assert_eq!(s2.unwrap().peer, b.node_id());
}

#[tokio::test]
async fn a_server_with_another_key_than_the_pinned_id_is_refused() {
    let server = transport();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().split_once('@').unwrap().1.to_string();
    let impostor_pin = format!("{}@{host}", NodeIdentity::generate().node_id());
    let err = within(transport().connect(&impostor_pin))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Refused(r) if r.contains("expected")),
        "{err:?}"
    );
    listener_still_serves(&mut listener).await;
}

/// Trust on first use: the first server met at an address is recorded and
/// pinned from then on; another key at that address is refused, naming
/// the file. PinnedOnly refuses an address without an id before sending
/// anything.
#[tokio::test]
async fn known_hosts_pin_the_first_server_met_and_pinned_only_needs_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("keys").join("known-managers");
    let mut config = test_config();
    config.server_trust(ServerTrust::KnownHosts(known.clone()));
    let client = QuicTransport::new(NodeIdentity::generate(), config).unwrap();
    let server = transport();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let (_, host) = parse_addr(&listener.local_addr())
        .map(|(id, h)| (id, h.to_string()))
        .unwrap();
    for _ in 0..2 {
        let (c, s) = tokio::join!(client.connect(&host), within(listener.accept()));
        assert_eq!(c.unwrap().peer, server.local_id());
        drop(s.unwrap());
    }
    let text = std::fs::read_to_string(&known).unwrap();
    assert_eq!(
        text,
        format!("{host} {}\n", server.local_id()),
        "recorded once"
    );

    // Another server at a recorded address: say the file holds another id.
    std::fs::write(&known, format!("{host} {}\n", NodeId(42))).unwrap();
    let err = within(client.connect(&host)).await.unwrap_err();
    match &err {
        TransportError::Refused(why) => assert!(why.contains("known-managers"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let mut strict = test_config();
    strict.server_trust(ServerTrust::PinnedOnly);
    let strict = QuicTransport::new(NodeIdentity::generate(), strict).unwrap();
    let err = within(strict.connect(&host)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Refused(ref why) if why.contains("<id>@")),
        "{err:?}"
    );
    let pinned = format!("{}@{host}", server.local_id());
    let (c, _s) = tokio::join!(strict.connect(&pinned), within(listener.accept()));
    assert!(c.is_ok());
}

#[tokio::test]
async fn the_allowlist_refuses_unlisted_clients_and_admits_listed_ones() {
    let allowed = transport();
    let stranger = transport();
    let mut config = test_config();
    config.allow_only([allowed.local_id()]);
    let server = QuicTransport::new(NodeIdentity::generate(), config).unwrap();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();

    let err = within(stranger.connect(&target)).await.unwrap_err();
    assert!(matches!(err, TransportError::Refused(_)), "{err:?}");

    // The refused client never reaches `accept`: the next one is the allowed.
    let (c, s) = tokio::join!(allowed.connect(&target), within(listener.accept()));
    let (mut c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.peer, allowed.local_id());
    s.sender.send(msg(1)).await.unwrap();
    assert_eq!(within(c.receiver.recv()).await.unwrap(), Some(msg(1)));
}

/// One address may hold only so many connections: the next is refused at
/// once (not left to time out), and the ones already open keep working.
#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_refused() {
    let mut config = test_config();
    config.max_connections_per_address(2);
    let server = QuicTransport::new(NodeIdentity::generate(), config).unwrap();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    let mut open = Vec::new();
    for _ in 0..2 {
        let client = transport();
        let (c, s) = tokio::join!(client.connect(&target), within(listener.accept()));
        open.push((client, c.unwrap(), s.unwrap()));
    }
    let flood = transport();
    let err = within(flood.connect(&target)).await.unwrap_err();
    // Refused by the server, not an unanswered connect timing out.
    assert!(matches!(err, TransportError::Refused(_)), "{err:?}");
    for (i, (_, c, s)) in open.iter_mut().enumerate() {
        s.sender.send(msg(i as u64)).await.unwrap();
        assert_eq!(
            within(c.receiver.recv()).await.unwrap(),
            Some(msg(i as u64))
        );
    }
}

#[tokio::test]
async fn garbage_bytes_are_a_bad_frame_and_the_listener_keeps_serving() {
    let mut garbage = vec![0, 0, 0, 10];
    garbage.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 8]);
    server_rejects_raw_bytes(garbage, code::BAD_FRAME, |e| {
        matches!(e, TransportError::BadFrame(_))
    })
    .await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_from_its_length_prefix() {
    // Only the prefix is sent: the receiver must refuse without waiting for
    // (or allocating) the 16 MiB it announces.
    let prefix = (DEFAULT_MAX_FRAME_SIZE + 1).to_be_bytes().to_vec();
    server_rejects_raw_bytes(
        prefix,
        code::BAD_FRAME,
        |e| matches!(e, TransportError::BadFrame(m) if m.contains("exceeds")),
    )
    .await;
}

#[tokio::test]
async fn another_protocol_version_is_a_typed_error_and_closes_the_connection() {
    let frame = encode_frame_with(PROTOCOL_VERSION + 1, &msg(1), DEFAULT_MAX_FRAME_SIZE).unwrap();
    server_rejects_raw_bytes(frame, code::UNSUPPORTED_VERSION, |e| {
        matches!(e, TransportError::UnsupportedVersion { theirs, ours } if *theirs == PROTOCOL_VERSION + 1 && *ours == PROTOCOL_VERSION)
    })
    .await;
}

#[tokio::test]
async fn the_sender_of_a_rejected_frame_learns_why() {
    let server = transport();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    let client = transport();
    let ((conn, mut send, recv), s) =
        tokio::join!(raw_connect(&client, &target), listener.accept());
    let mut s = s.unwrap();
    // Forge a frame the regular sender would never produce, then read the
    // outcome through the regular receiver.
    let forged = encode_frame_with(PROTOCOL_VERSION + 1, &msg(1), DEFAULT_MAX_FRAME_SIZE).unwrap();
    send.write_all(&forged).await.unwrap();
    let mut c = wrap(
        conn,
        send,
        recv,
        server.local_id(),
        client.inner.conn_settings(),
    );
    assert!(matches!(
        within(s.receiver.recv()).await,
        Err(TransportError::UnsupportedVersion { .. })
    ));
    let err = within(c.receiver.recv()).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::Closed(Some(r)) if r.contains("version")),
        "{err:?}"
    );
    assert!(c.sender.send(msg(2)).await.is_err());
}

#[tokio::test]
async fn large_envelopes_cross_and_oversized_ones_fail_locally() {
    let mut config = test_config();
    config.max_frame_size(4 << 20);
    let server = QuicTransport::new(NodeIdentity::generate(), config.clone()).unwrap();
    let client = QuicTransport::new(NodeIdentity::generate(), config).unwrap();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    let (c, s) = tokio::join!(client.connect(&target), listener.accept());
    let (c, mut s) = (c.unwrap(), s.unwrap());

    let big = Envelope::with_id(
        1,
        Message::BlobChunk {
            data: vec![0xab; 3 << 20],
            last: false,
        },
    );
    let too_big = Envelope::with_id(
        2,
        Message::BlobChunk {
            data: vec![0xab; 5 << 20],
            last: true,
        },
    );
    let sender = c.sender.clone();
    let sent = big.clone();
    let writer = tokio::spawn(async move { sender.send(sent).await });
    assert_eq!(within(s.receiver.recv()).await.unwrap(), Some(big));
    writer.await.unwrap().unwrap();
    assert!(matches!(
        c.sender.send(too_big).await,
        Err(TransportError::BadFrame(_))
    ));
    // The connection survives a local refusal.
    c.sender.send(msg(3)).await.unwrap();
    assert_eq!(within(s.receiver.recv()).await.unwrap(), Some(msg(3)));
}

#[tokio::test]
async fn close_delivers_what_was_sent_before_it_then_carries_the_reason() {
    let server = transport();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    let client = transport();
    let ((conn, send, recv), s) = tokio::join!(raw_connect(&client, &target), listener.accept());
    let s = s.unwrap();
    // A worker's last words before it exits.
    s.sender.send(msg(5)).await.unwrap();
    s.sender.close("shutting down");
    assert!(
        matches!(s.sender.send(msg(6)).await, Err(TransportError::Closed(Some(r))) if r == "shutting down"),
        "sending after close fails at once"
    );
    let mut c = wrap(
        conn.clone(),
        send,
        recv,
        server.local_id(),
        client.inner.conn_settings(),
    );
    assert_eq!(within(c.receiver.recv()).await.unwrap(), Some(msg(5)));
    assert_eq!(within(c.receiver.recv()).await.unwrap(), None);
    match within(conn.closed()).await {
        ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, VarInt::from_u32(code::CLOSED));
            assert_eq!(&c.reason[..], b"shutting down");
        }
        other => panic!("{other:?}"),
    }
    within(server.wait_closed()).await;
}

#[tokio::test]
async fn close_gives_up_after_the_linger_on_a_peer_that_stopped_answering() {
    let mut config = test_config();
    config.close_linger(Duration::from_millis(200));
    let server = QuicTransport::new(NodeIdentity::generate(), config).unwrap();
    let mut listener = server.listen("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr();
    // The peer runs on its own thread and runtime, which the test freezes:
    // while frozen it neither reads nor acknowledges anything.
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    let (thaw_tx, thaw_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut c = transport().connect(&target).await.unwrap();
            connected_tx.send(()).unwrap();
            thaw_rx.recv().unwrap();
            // Once thawed it learns that the connection ended.
            while let Ok(Some(_)) = within(c.receiver.recv()).await {}
        });
    });
    let s = within(listener.accept()).await.unwrap();
    within(tokio::task::spawn_blocking(move || connected_rx.recv()))
        .await
        .unwrap()
        .unwrap();
    s.sender.send(msg(1)).await.unwrap();
    let closing = std::time::Instant::now();
    s.sender.close("bye");
    within(server.wait_closed()).await;
    assert!(
        closing.elapsed() >= Duration::from_millis(150),
        "close waited for the linger, not {:?}",
        closing.elapsed()
    );
    thaw_tx.send(()).unwrap();
    within(tokio::task::spawn_blocking(move || peer.join()))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn listening_twice_on_one_port_is_address_in_use() {
    let t = transport();
    let l = t.listen("127.0.0.1:0").await.unwrap();
    let host = l.local_addr().split_once('@').unwrap().1.to_string();
    assert!(matches!(
        t.listen(&host).await,
        Err(TransportError::AddressInUse(_))
    ));
}

#[test]
fn installing_the_crypto_provider_twice_is_harmless() {
    install_crypto_provider();
    install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
