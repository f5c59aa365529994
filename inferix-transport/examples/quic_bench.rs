//! Loopback throughput of the QUIC transport, next to plain TCP measured in
//! the same run (the ratio is what to compare across machines).
//!
//! `cargo run --release -p inferix-transport --example quic_bench`

use std::time::{Duration, Instant};

use inferix_core::protocol::{Envelope, Message};
use inferix_transport::{NodeIdentity, QuicConfig, QuicTransport, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PING_PONG_TIME: Duration = Duration::from_secs(3);
const STREAM_BYTES: usize = 256 << 20;
const CHUNK: usize = 1 << 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = QuicTransport::new(NodeIdentity::generate(), QuicConfig::default())?;
    let client = QuicTransport::new(NodeIdentity::generate(), QuicConfig::default())?;
    let mut listener = server.listen("127.0.0.1:0").await?;
    let target = listener.local_addr();

    // Request/response: one connection, the server echoes each message.
    let (c, s) = tokio::join!(client.connect(&target), listener.accept());
    let (mut c, mut s) = (c?, s?);
    let echo = tokio::spawn(async move {
        while let Ok(Some(m)) = s.receiver.recv().await {
            if s.sender.send(m).await.is_err() {
                break;
            }
        }
    });
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
    c.sender.close("done");
    echo.await?;
    println!("QUIC request/response: {rps:.0} round trips/s ({round_trips} in {PING_PONG_TIME:?}, 1 connection)");

    // Bulk: 256 MiB of 1 MiB blob chunks through the transport.
    let (c, s) = tokio::join!(client.connect(&target), listener.accept());
    let (c, mut s) = (c?, s?);
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        while let Ok(Some(m)) = s.receiver.recv().await {
            if let Message::BlobChunk { data, last } = m.body {
                got += data.len();
                if last {
                    break;
                }
            }
        }
        got
    });
    let chunks = STREAM_BYTES / CHUNK;
    for i in 0..chunks {
        let body = Message::BlobChunk {
            data: vec![i as u8; CHUNK],
            last: i + 1 == chunks,
        };
        c.sender.send(Envelope::with_id(1, body)).await?;
    }
    let got = reader.await?;
    assert_eq!(got, STREAM_BYTES);
    let quic_mbs = STREAM_BYTES as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();

    // The same bytes over plain TCP (no TLS, no framing), same chunk size.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let (mut sock, _) = tcp.accept().await?;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0usize;
        loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok::<_, std::io::Error>(got)
    });
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    for i in 0..chunks {
        sock.write_all(&vec![i as u8; CHUNK]).await?;
    }
    sock.shutdown().await?;
    assert_eq!(reader.await??, STREAM_BYTES);
    let tcp_mbs = STREAM_BYTES as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();

    println!(
        "streaming 256 MiB in 1 MiB messages: QUIC {quic_mbs:.0} MB/s, plain TCP {tcp_mbs:.0} MB/s"
    );
    println!("ratio QUIC/TCP: {:.2}", quic_mbs / tcp_mbs);

    // How much of the gap is the codec: encode + decode of the same chunks,
    // no network (serde encodes `Vec<u8>` byte by byte).
    let start = Instant::now();
    for i in 0..chunks / 4 {
        let body = Message::BlobChunk {
            data: vec![i as u8; CHUNK],
            last: false,
        };
        let frame = inferix_transport::encode_frame(&Envelope::with_id(1, body))?;
        std::hint::black_box(inferix_transport::decode_frame(&frame)?);
    }
    let codec_mbs = (chunks / 4 * CHUNK) as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();
    println!("frame codec alone (encode + decode, 1 MiB chunks): {codec_mbs:.0} MB/s");
    c.sender.close("done");
    Ok(())
}
