//! The conformance suite every [`Transport`] runs.
//!
//! `make_transport(i)` builds the transport of node `i` (distinct
//! identities); `listen_addr(i)` is an address node `i` can listen on
//! (`"127.0.0.1:0"` for sockets: the suite connects to
//! [`Listener::local_addr`]).

use inferix_core::ids::JobId;
use inferix_core::protocol::{Envelope, Message};

use crate::{Listener, Transport, TransportError};

/// Runs every case.
pub async fn test_all<T: Transport>(
    make_transport: impl Fn(usize) -> T,
    listen_addr: impl Fn(usize) -> String,
) {
    peers_see_each_others_identity_and_messages_keep_order(
        make_transport(0),
        make_transport(1),
        &listen_addr(0),
    )
    .await;
    connecting_to_nobody_fails(make_transport(2), &listen_addr(2)).await;
    closing_ends_the_peers_receiver(make_transport(3), make_transport(4), &listen_addr(3)).await;
    many_clients_one_listener(
        make_transport(5),
        (6..10).map(&make_transport).collect(),
        &listen_addr(5),
    )
    .await;
}

fn msg(i: u64) -> Envelope {
    Envelope::with_id(
        i,
        Message::Cancel {
            job: JobId(i as u128),
        },
    )
}

/// Identities are the transports' own; 2,000 messages each way arrive in order.
pub async fn peers_see_each_others_identity_and_messages_keep_order<T: Transport>(
    server: T,
    client: T,
    addr: &str,
) {
    let mut listener = server.listen(addr).await.unwrap();
    let target = listener.local_addr();
    let accept = tokio::spawn(async move { listener.accept().await.map(|c| (c, listener)) });
    let mut c = client.connect(&target).await.unwrap();
    let (mut s, _listener) = accept.await.unwrap().unwrap();
    assert_eq!(
        s.peer,
        client.local_id(),
        "server sees the client's identity"
    );
    assert_eq!(
        c.peer,
        server.local_id(),
        "client sees the server's identity"
    );

    const N: u64 = 2000;
    let cs = c.sender.clone();
    let writer = tokio::spawn(async move {
        for i in 0..N {
            cs.send(msg(i)).await.unwrap();
        }
    });
    for i in 0..N {
        let got = s.receiver.recv().await.unwrap().unwrap();
        assert_eq!(got, msg(i), "client→server order");
        s.sender.send(msg(i + N)).await.unwrap();
        assert_eq!(
            c.receiver.recv().await.unwrap().unwrap(),
            msg(i + N),
            "server→client"
        );
    }
    writer.await.unwrap();
}

/// No listener: a typed error, not a hang.
pub async fn connecting_to_nobody_fails<T: Transport>(client: T, addr: &str) {
    // Listen then drop, so the address is valid but unused.
    let listener = client.listen(addr).await.unwrap();
    let target = listener.local_addr();
    drop(listener);
    let err = client.connect(&target).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Unreachable(_) | TransportError::Io(_)),
        "got {err:?}"
    );
}

/// `close` on one side makes the other side's `recv` return `None`.
pub async fn closing_ends_the_peers_receiver<T: Transport>(server: T, client: T, addr: &str) {
    let mut listener = server.listen(addr).await.unwrap();
    let target = listener.local_addr();
    let accept = tokio::spawn(async move { listener.accept().await.map(|c| (c, listener)) });
    let c = client.connect(&target).await.unwrap();
    let (mut s, _l) = accept.await.unwrap().unwrap();
    c.sender.send(msg(1)).await.unwrap();
    assert_eq!(s.receiver.recv().await.unwrap(), Some(msg(1)));
    let waiter = tokio::spawn(async move { s.receiver.recv().await });
    c.sender.close("bye");
    assert!(matches!(
        waiter.await.unwrap(),
        Ok(None) | Err(TransportError::Closed(_))
    ));
    assert!(
        c.sender.send(msg(2)).await.is_err(),
        "sending on a closed connection fails"
    );
}

/// One listener serves several clients independently.
pub async fn many_clients_one_listener<T: Transport>(server: T, clients: Vec<T>, addr: &str) {
    let mut listener: Box<dyn Listener> = server.listen(addr).await.unwrap();
    let target = listener.local_addr();
    let n = clients.len();
    let server_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..n {
            let mut c = listener.accept().await.unwrap();
            let m = c.receiver.recv().await.unwrap().unwrap();
            c.sender.send(m.clone()).await.unwrap();
            seen.push((c.peer, m.id));
            // Keep the connection open until the client has read the echo.
            tokio::spawn(async move { while let Ok(Some(_)) = c.receiver.recv().await {} });
        }
        seen
    });
    for (i, t) in clients.iter().enumerate() {
        let mut c = t.connect(&target).await.unwrap();
        c.sender.send(msg(i as u64)).await.unwrap();
        assert_eq!(c.receiver.recv().await.unwrap(), Some(msg(i as u64)));
    }
    let seen = server_task.await.unwrap();
    for (i, t) in clients.iter().enumerate() {
        assert!(seen.contains(&(t.local_id(), i as u64)));
    }
}
