//! An auditor's own look at an accused peer (PROTOCOL.md §17): hints prove nothing, so
//! before evidence from a hint counts, the auto-blacklist node asks the accused itself,
//! over a connection it opens to the accused's own port. Nothing here asks the DHT or
//! any third party. These tasks only observe; the core judges what they saw.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{unix_ms, wire_io};
use crate::name::SystemName;
use crate::torrents::{PieceAudit, Torrents, TorrentsConfig};
use crate::wire::{CloseReason, Connection, Event, Message, WireConfig};

/// What the auditor saw.
#[derive(Clone, Debug)]
pub enum Finding {
    /// Nothing answered (it may just be offline): proves nothing.
    Unreachable,
    /// It answered, but not as a swarmsite node (another program on that port, say):
    /// proves nothing against the address.
    NotSwarmsite(CloseReason),
    /// A swarmsite node, and its answers (`rec`) to the `get`s asked, in the order
    /// they came; a name it did not answer in time is missing.
    Node {
        answers: Vec<(SystemName, Option<Vec<u8>>)>,
    },
    /// Fetching the torrent from it alone: whether a piece failed its hash check.
    Pieces { bad: bool },
    /// The check itself could not run.
    Failed(String),
}

/// Talks to the wire port `addr` as a stranger (a fresh peer id, so the accused cannot
/// tell the probe from a new node) and asks it for each of `asks`.
pub async fn probe(
    addr: SocketAddr,
    local: IpAddr,
    rendezvous: [u8; 20],
    asks: Vec<SystemName>,
    limit: Duration,
) -> Finding {
    let Ok(mut stream) = wire_io::dial(addr, local).await else {
        return Finding::Unreachable;
    };
    let mut peer_id = [0u8; 20];
    peer_id[..8].copy_from_slice(b"-SW0100-");
    peer_id[8..].copy_from_slice(&rand::random::<[u8; 12]>());
    let mut conn = Connection::new(WireConfig::new(rendezvous, peer_id, None), unix_ms(), true);
    let mut buf = vec![0u8; 16 * 1024];
    let (mut ready, mut answers) = (false, Vec::<(SystemName, Option<Vec<u8>>)>::new());
    let deadline = Instant::now() + limit;
    loop {
        let out = conn.take_transmit();
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            conn.close_local();
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Ready { .. } => {
                    ready = true;
                    for &name in &asks {
                        conn.send(&Message::Get { name }, unix_ms());
                    }
                }
                Event::Message(Message::Rec { name, record })
                    if asks.contains(&name) && !answers.iter().any(|(n, _)| *n == name) =>
                {
                    answers.push((name, record))
                }
                Event::Message(_) => {}
                Event::Closed(reason) if !ready => {
                    return match reason {
                        CloseReason::NotSwarmsite | CloseReason::Garbage => {
                            Finding::NotSwarmsite(reason)
                        }
                        _ => Finding::Unreachable,
                    };
                }
                Event::Closed(_) => {}
            }
        }
        let done = ready && answers.len() == asks.len();
        if conn.is_closed() || done || Instant::now() >= deadline {
            let _ = stream.shutdown().await;
            return if ready {
                Finding::Node { answers }
            } else {
                Finding::Unreachable
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.min(Duration::from_millis(500)), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => conn.handle_eof(),
            Ok(Ok(n)) => conn.handle_input(&buf[..n], unix_ms()),
            Err(_) => conn.handle_timeout(unix_ms()),
        }
    }
}

/// Fetches torrent `ih` from `peer` alone, in a throw-away session in a folder under
/// `parent` (removed afterwards), and says whether a piece from it failed its hash
/// check within `limit`.
pub async fn pieces(
    audit: PieceAudit,
    parent: PathBuf,
    local: IpAddr,
    ih: [u8; 20],
    torrent: Option<bytes::Bytes>,
    peer: SocketAddr,
    limit: Duration,
) -> Finding {
    let dir = match std::fs::create_dir_all(&parent).and_then(|_| {
        tempfile::Builder::new()
            .prefix("recheck-")
            .tempdir_in(&parent)
    }) {
        Ok(d) => d,
        Err(e) => return Finding::Failed(format!("{}: {e}", parent.display())),
    };
    let cfg = TorrentsConfig {
        audit: Some(audit),
        ..TorrentsConfig::loopback(dir.path().join("state"), local)
    };
    let session = match Torrents::start(cfg).await {
        Ok(s) => s,
        Err(e) => return Finding::Failed(e.to_string()),
    };
    let Some(mut reports) = session.take_bad_pieces() else {
        return Finding::Failed("no piece audit".into());
    };
    let finding = match session
        .add(&ih, torrent, &dir.path().join("out"), vec![peer])
        .await
    {
        Err(e) => Finding::Failed(e.to_string()),
        Ok(handle) => {
            let wait = Torrents::wait(&handle, Duration::from_millis(500), |_| {});
            let bad = async {
                while let Some(r) = reports.recv().await {
                    // The accused's own port, over the connection this session opened:
                    // nobody else's piece counts against it.
                    if r.peer == peer {
                        return;
                    }
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = bad => Finding::Pieces { bad: true },
                _ = wait => Finding::Pieces { bad: false },
                _ = tokio::time::sleep(limit) => Finding::Pieces { bad: false },
            }
        }
    };
    session.stop().await;
    finding
}
