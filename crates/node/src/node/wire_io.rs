//! Socket tasks: one per wire connection, driving a [`Connection`] with tokio.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::unix_ms;
use crate::gossip::PeerKey;
use crate::wire::{Connection, Event, Message, WireConfig};

/// What a connection task tells the core: one of its connection's events.
pub struct ConnReport {
    pub key: PeerKey,
    pub event: Event,
    /// Held until the core has handled the event: one connection has at most
    /// [`IN_FLIGHT`] events waiting in the core's shared queue, so a flooding peer is
    /// slowed by TCP instead of filling the queue (and memory) for everyone. Never
    /// read: dropping it is what counts.
    #[allow(dead_code)]
    pub in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Events of one connection waiting for the core at most.
const IN_FLIGHT: usize = 8;

/// Runs one connection until it closes. Bytes are written in full before reading on,
/// and the socket is closed after the last bytes of a closing connection went out.
pub async fn run(
    mut stream: TcpStream,
    key: PeerKey,
    initiator: bool,
    cfg: WireConfig,
    to_core: mpsc::Sender<ConnReport>,
    mut from_core: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = Connection::new(cfg, unix_ms(), initiator);
    let mut buf = vec![0u8; 16 * 1024];
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        let out = conn.take_transmit();
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            conn.close_local();
        }
        while let Some(ev) = conn.poll_event() {
            let Ok(permit) = std::sync::Arc::clone(&in_flight).acquire_owned().await else {
                return;
            };
            let report = ConnReport {
                key,
                event: ev,
                in_flight: Some(permit),
            };
            if to_core.send(report).await.is_err() {
                return;
            }
        }
        if conn.is_closed() {
            let _ = stream.shutdown().await;
            return;
        }
        let wait = conn.next_timeout().map_or(Duration::from_secs(3600), |t| {
            Duration::from_millis(t.saturating_sub(unix_ms()))
        });
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => conn.handle_eof(),
                Ok(n) => conn.handle_input(&buf[..n], unix_ms()),
            },
            msg = from_core.recv() => match msg {
                Some(m) => conn.send(&m, unix_ms()),
                None => conn.close_local(),
            },
            _ = tokio::time::sleep(wait) => conn.handle_timeout(unix_ms()),
            _ = cancel.cancelled() => conn.close_local(),
        }
    }
}

/// Dials `addr` from `local` (when not a wildcard: on a loopback test network each node
/// has its own 127.0.0.x, and peers must see that address, not 127.0.0.1), with a bound
/// on how long the attempt may take.
pub async fn dial(addr: SocketAddr, local: std::net::IpAddr) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if !local.is_unspecified() && local.is_ipv4() == addr.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    match tokio::time::timeout(
        Duration::from_millis(crate::policy::DIAL_TIMEOUT_MS),
        socket.connect(addr),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}
