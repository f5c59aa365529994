//! Loopback throughput of the QUIC transport, next to plain TCP measured in
//! the same run (the ratio is what to compare across machines, since the
//! absolute figures depend on the CPU and on what else it is doing).
//!
//! ```sh
//! cargo run --release -p inferix-transport --example quic_bench
//! cargo run --release -p inferix-transport --example quic_bench -- --mib 64 --max-udp-payload 1452
//! ```
//!
//! Prints small request/response round trips per second over one
//! connection, then MB/s for a blob streamed as 1 MiB `BlobChunk` messages
//! over a fresh connection (path MTU discovery has not run yet: 1200-byte
//! packets) and over the warmed one (MTU discovery done, as on a long-lived
//! worker session), then plain TCP moving the same bytes in the same chunks,
//! then TCP inside TLS 1.3 (QUIC always encrypts; plain TCP does not), and
//! the ratios. Each line also gives the CPU time the whole process spent per
//! GiB, which other load on the machine disturbs far less than MB/s. `--max-udp-payload 1452` caps packets at what a typical
//! Internet path carries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inferix_core::protocol::{Envelope, Message};
use inferix_transport::{
    MessageReceiver, MessageSender, NodeIdentity, QuicConfig, QuicTransport, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PING_PONG_TIME: Duration = Duration::from_secs(3);
const CHUNK: usize = 1 << 20;

struct Options {
    bytes: usize,
    max_udp_payload: Option<u16>,
}

fn options() -> Result<Options, Error> {
    let mut o = Options {
        bytes: 256 << 20,
        max_udp_payload: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--mib" => o.bytes = value()?.parse::<usize>()? << 20,
            "--max-udp-payload" => o.max_udp_payload = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if o.bytes < CHUNK {
        return Err("--mib must be at least 1".into());
    }
    Ok(o)
}

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` on Linux: the cost of moving the bytes, which unlike
/// wall-clock time barely changes when other programs compete for the CPU.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Wall-clock time and CPU seconds spent by `f`.
async fn measured<T>(
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<(T, Option<f64>), Error> {
    let before = cpu_seconds();
    let out = f.await?;
    let cpu = before.zip(cpu_seconds()).map(|(a, b)| b - a);
    Ok((out, cpu))
}

fn cpu_per_gib(cpu: Option<f64>, bytes: usize) -> String {
    cpu.map_or("n/a".into(), |c| {
        format!("{:.2} CPU s/GiB", c / (bytes as f64 / (1u64 << 30) as f64))
    })
}

fn mb_per_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

/// The receiving side, on its own thread and runtime as it would be in
/// another process: counts the blob chunks of each connection and answers
/// the last one with `Ok`; echoes every other message, so that the first
/// connection can also serve request/response round trips.
fn quic_server(config: QuicConfig, addr: std::sync::mpsc::Sender<String>) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = QuicTransport::new(NodeIdentity::generate(), config)?;
        let mut listener = server.listen("127.0.0.1:0").await?;
        addr.send(listener.local_addr())?;
        for _ in 0..2 {
            let mut s = listener.accept().await?;
            let mut got = 0usize;
            while let Some(m) = s.receiver.recv().await? {
                match m.body {
                    Message::BlobChunk { data, last } => {
                        got += data.len();
                        if last {
                            s.sender
                                .send(Envelope::with_id(
                                    m.id,
                                    Message::BlobSizeReply {
                                        size: Some(got as u64),
                                    },
                                ))
                                .await?;
                            got = 0;
                        }
                    }
                    other => s.sender.send(Envelope::with_id(m.id, other)).await?,
                }
            }
        }
        server.wait_closed().await;
        Ok::<_, Error>(())
    })
}

/// Streams `bytes` as 1 MiB blob chunks; the time until the receiver
/// confirms the last byte.
async fn stream(
    tx: &Arc<dyn MessageSender>,
    rx: &mut Box<dyn MessageReceiver>,
    bytes: usize,
) -> Result<Duration, Error> {
    let start = Instant::now();
    let chunks = bytes / CHUNK;
    for i in 0..chunks {
        let body = Message::BlobChunk {
            data: vec![i as u8; CHUNK],
            last: i + 1 == chunks,
        };
        tx.send(Envelope::with_id(1, body)).await?;
    }
    match rx.recv().await?.map(|e| e.body) {
        Some(Message::BlobSizeReply { size: Some(n) }) if n as usize == chunks * CHUNK => {
            Ok(start.elapsed())
        }
        other => Err(format!("unexpected answer {other:?}").into()),
    }
}

/// The same bytes over plain TCP (no TLS, no framing), same chunk size, the
/// receiver on its own thread and runtime too.
async fn tcp(bytes: usize) -> Result<Duration, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let (mut sock, _) = listener.accept().await?;
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0usize;
            while got < bytes {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            sock.write_all(&(got as u64).to_be_bytes()).await?;
            Ok(())
        })
    });
    let start = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    for i in 0..bytes / CHUNK {
        sock.write_all(&vec![i as u8; CHUNK]).await?;
    }
    let mut ack = [0u8; 8];
    sock.read_exact(&mut ack).await?;
    let t = start.elapsed();
    server.join().map_err(|_| "TCP server panicked")??;
    if u64::from_be_bytes(ack) as usize != bytes {
        return Err("TCP receiver got the wrong byte count".into());
    }
    Ok(t)
}

/// The same bytes over TCP inside TLS 1.3 (rustls, the QUIC transport's own
/// crypto provider), blocking sockets on two threads: what encryption alone
/// costs a stream, for comparison with QUIC, which always encrypts.
fn tls_tcp(bytes: usize) -> Result<Duration, Error> {
    use std::io::{Read, Write};

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let cert = rcgen::CertificateParams::new(vec!["bench.local".to_string()])?
        .self_signed(&key)?
        .der()
        .clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)?,
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<(), Error> {
        let (sock, _) = listener.accept()?;
        let conn = rustls::ServerConnection::new(server_config)?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0usize;
        while got < bytes {
            let n = tls.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        tls.write_all(&(got as u64).to_be_bytes())?;
        tls.flush()?;
        Ok(())
    });
    let start = Instant::now();
    let sock = std::net::TcpStream::connect(addr)?;
    let conn = rustls::ClientConnection::new(client_config, ServerName::try_from("bench.local")?)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    for i in 0..bytes / CHUNK {
        tls.write_all(&vec![i as u8; CHUNK])?;
    }
    tls.flush()?;
    let mut ack = [0u8; 8];
    tls.read_exact(&mut ack)?;
    let t = start.elapsed();
    server.join().map_err(|_| "TLS server panicked")??;
    if u64::from_be_bytes(ack) as usize != bytes / CHUNK * CHUNK {
        return Err("TLS receiver got the wrong byte count".into());
    }
    Ok(t)
}

fn main() -> Result<(), Error> {
    let o = options()?;
    let mut config = QuicConfig::default();
    if let Some(p) = o.max_udp_payload {
        config.max_udp_payload_size(p);
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server_config = config.clone();
    let server = std::thread::spawn(move || quic_server(server_config, addr_tx));
    let target = addr_rx.recv()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(client(o, config, target))?;
    server.join().map_err(|_| "server panicked")?
}

/// The sending side: a current-thread runtime like the receiver's, so that
/// each side has one core as two single-connection processes would.
async fn client(o: Options, config: QuicConfig, target: String) -> Result<(), Error> {
    let client = QuicTransport::new(NodeIdentity::generate(), config)?;
    let mib = o.bytes >> 20;

    // A fresh connection streams at once.
    let mut c = client.connect(&target).await?;
    let (cold, cold_cpu) = measured(stream(&c.sender, &mut c.receiver, o.bytes)).await?;
    c.sender.close("done");

    // Request/response, then the same (now warmed) connection streams.
    let mut c = client.connect(&target).await?;
    let start = Instant::now();
    let mut round_trips = 0u64;
    while start.elapsed() < PING_PONG_TIME {
        c.sender
            .send(Envelope::with_id(round_trips, Message::Heartbeat))
            .await?;
        let reply = c.receiver.recv().await?.ok_or("closed")?;
        assert_eq!(reply.id, round_trips);
        round_trips += 1;
    }
    let rps = round_trips as f64 / start.elapsed().as_secs_f64();
    let (warm, warm_cpu) = measured(stream(&c.sender, &mut c.receiver, o.bytes)).await?;
    c.sender.close("done");
    client.wait_closed().await;

    let (tcp, tcp_cpu) = measured(tcp(o.bytes)).await?;
    let (tls, tls_cpu) = measured(async { tls_tcp(o.bytes) }).await?;
    let (cold, warm, tcp, tls) = (
        mb_per_s(o.bytes, cold),
        mb_per_s(o.bytes, warm),
        mb_per_s(o.bytes, tcp),
        mb_per_s(o.bytes, tls),
    );
    println!("QUIC request/response: {rps:.0} round trips/s (1 connection, {PING_PONG_TIME:?})");
    println!("streaming {mib} MiB as 1 MiB messages, sender and receiver on their own threads:");
    let b = o.bytes;
    println!(
        "  QUIC, fresh connection:  {cold:>6.0} MB/s  {}",
        cpu_per_gib(cold_cpu, b)
    );
    println!(
        "  QUIC, warmed connection: {warm:>6.0} MB/s  {}",
        cpu_per_gib(warm_cpu, b)
    );
    println!(
        "  plain TCP:               {tcp:>6.0} MB/s  {}",
        cpu_per_gib(tcp_cpu, b)
    );
    println!(
        "  TCP + TLS 1.3 (rustls):  {tls:>6.0} MB/s  {}",
        cpu_per_gib(tls_cpu, b)
    );
    println!(
        "ratio QUIC/TCP: {:.2} fresh, {:.2} warmed; QUIC/(TCP+TLS): {:.2} fresh, {:.2} warmed",
        cold / tcp,
        warm / tcp,
        cold / tls,
        warm / tls
    );

    // How much of the cost is the codec: encode + decode of the same chunks,
    // no network.
    let n = (o.bytes / CHUNK / 4).max(1);
    let start = Instant::now();
    for i in 0..n {
        let body = Message::BlobChunk {
            data: vec![i as u8; CHUNK],
            last: false,
        };
        let frame = inferix_transport::encode_frame(&Envelope::with_id(1, body))?;
        std::hint::black_box(inferix_transport::decode_frame(&frame)?);
    }
    println!(
        "frame codec alone (encode + decode, 1 MiB chunks): {:.0} MB/s",
        mb_per_s(n * CHUNK, start.elapsed())
    );
    Ok(())
}
