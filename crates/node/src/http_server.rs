//! The accept loop of the public HTTP ports (SPEC §9): HTTP/1.1 through hyper, with the
//! limits a server facing anyone needs and `axum::serve` does not set — a cap on open
//! connections in all and per address, a deadline for a request's headers (slowloris),
//! and an idle deadline between keep-alive requests.
//!
//! Written out here rather than through `axum::serve` because that one takes no
//! connection limits and runs hyper without a timer, so hyper's own header timeout
//! never fires.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits of one HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Open connections from one IP address at most.
    pub max_per_ip: usize,
    /// Time a client has to send a request's headers, and to start the next request
    /// on a kept-alive connection.
    pub header_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 2048,
            max_per_ip: 64,
            header_timeout: Duration::from_secs(15),
        }
    }
}

/// Open connections, in all and per address.
#[derive(Default)]
struct Open {
    all: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Takes a connection's place; gives it back when dropped.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("open lock");
        open.all -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

fn take_slot(open: &Arc<Mutex<Open>>, ip: IpAddr, limits: &HttpLimits) -> Option<Slot> {
    let mut o = open.lock().expect("open lock");
    let from_ip = o.per_ip.get(&ip).copied().unwrap_or(0);
    if o.all >= limits.max_connections || from_ip >= limits.max_per_ip {
        return None;
    }
    o.all += 1;
    *o.per_ip.entry(ip).or_default() += 1;
    Some(Slot {
        open: Arc::clone(open),
        ip,
    })
}

/// Serves `router` on `listener` until `cancel`; connections then finish the request
/// under way (at most 5 s more).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    cancel: CancellationToken,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment instead of spinning.
                    tracing::debug!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let Some(slot) = take_slot(&open, remote.ip(), &limits) else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(remote);
        let conn_info = ConnectInfo(HttpConn { local, remote });
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn_info);
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// Both ends of an HTTP connection.
#[derive(Clone, Copy, Debug)]
pub struct HttpConn {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for HttpConn
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        let remote = *stream.remote_addr();
        HttpConn {
            local: stream.io().local_addr().unwrap_or(remote),
            remote,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let open = Arc::new(Mutex::new(Open::default()));
        let limits = HttpLimits {
            max_connections: 3,
            max_per_ip: 2,
            header_timeout: Duration::from_secs(1),
        };
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let s1 = take_slot(&open, a, &limits).unwrap();
        let s2 = take_slot(&open, a, &limits).unwrap();
        assert!(take_slot(&open, a, &limits).is_none(), "per address");
        let s3 = take_slot(&open, b, &limits).unwrap();
        assert!(take_slot(&open, b, &limits).is_none(), "in all");
        drop(s1);
        let s4 = take_slot(&open, a, &limits).unwrap();
        drop((s2, s3, s4));
        let o = open.lock().unwrap();
        assert_eq!((o.all, o.per_ip.len()), (0, 0));
    }
}
