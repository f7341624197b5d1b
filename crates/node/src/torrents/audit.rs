//! Which peer sent a piece that failed its hash check.
//!
//! librqbit checks every piece and drops the peer that sent a bad one, but it tells no
//! one except its log: the only trace is a `WARN` event carrying the peer's address
//! (librqbit 9.1, `torrent_state/live`). This layer listens for that event and routes it
//! to the session it came from, found through the root span each [`super::Torrents`]
//! session runs under. No crate offers this, hence a small hand-written layer.
//!
//! The layer has to see librqbit's (debug-level) spans to walk from the event up to the
//! root span, so its filter enables them for itself; other layers keep their own filters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// Name of the root span of every session; its `session` field routes events.
pub(crate) const ROOT_SPAN: &str = "swarmsite_torrents";
const BAD_PIECE_MESSAGE: &str = "did not validate";

/// A piece that failed its hash check, and the peer that sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPiece {
    pub ih: [u8; 20],
    pub peer: SocketAddr,
}

/// Where bad-piece reports go: one channel per registered session. Created once by the
/// program (its [`PieceAudit::layer`] goes into the tracing subscriber) and handed to
/// every node that should hear of bad pieces.
#[derive(Clone, Default, Debug)]
pub struct PieceAudit {
    inner: Arc<AuditInner>,
}

#[derive(Default, Debug)]
struct AuditInner {
    next: AtomicU64,
    sessions: Mutex<HashMap<u64, mpsc::Sender<BadPiece>>>,
}

impl PieceAudit {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracing layer to install (with its own filter) in the program's subscriber.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        AuditLayer {
            audit: self.clone(),
        }
        .with_filter(AuditFilter)
    }

    /// Registers a session: its root span's id and the receiver of its reports.
    pub(crate) fn register(&self) -> (u64, mpsc::Receiver<BadPiece>) {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(256);
        self.inner
            .sessions
            .lock()
            .expect("audit lock")
            .insert(id, tx);
        (id, rx)
    }

    fn deliver(&self, session: u64, report: BadPiece) {
        let mut sessions = self.inner.sessions.lock().expect("audit lock");
        if let Some(tx) = sessions.get(&session)
            && let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(report)
        {
            sessions.remove(&session);
        }
    }
}

/// librqbit's spans (to find the root) and its warnings (the reports); nothing else.
struct AuditFilter;

impl<S> Filter<S> for AuditFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        if meta.is_span() {
            return meta.name() == ROOT_SPAN || meta.target().starts_with("librqbit");
        }
        *meta.level() <= Level::WARN && meta.target().starts_with("librqbit")
    }
}

struct AuditLayer {
    audit: PieceAudit,
}

/// The routing id stored in a root span's extensions.
struct SessionId(u64);

impl<S> Layer<S> for AuditLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != ROOT_SPAN {
            return;
        }
        let mut v = Fields::default();
        attrs.record(&mut v);
        if let (Some(session), Some(span)) = (v.session, ctx.span(id)) {
            span.extensions_mut().insert(SessionId(session));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        if !v.message.contains(BAD_PIECE_MESSAGE) {
            return;
        }
        let (Some(peer), Some(ih)) = (
            v.addr.as_deref().and_then(parse_addr),
            v.info_hash.as_deref().and_then(parse_ih),
        ) else {
            return;
        };
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(SessionId(session)) = span.extensions().get::<SessionId>() {
                self.audit.deliver(*session, BadPiece { ih, peer });
                return;
            }
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    addr: Option<String>,
    info_hash: Option<String>,
    session: Option<u64>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "session" {
            self.session = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let s = format!("{value:?}");
        match field.name() {
            "message" => self.message = s,
            "addr" => self.addr = Some(s),
            "info_hash" => self.info_hash = Some(s),
            _ => {}
        }
    }
}

/// `addr` is logged as `?addr`: a `SocketAddr`'s Debug form, possibly inside `Some(..)`.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let s = s
        .strip_prefix("Some(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(s);
    s.parse().ok()
}

/// `info_hash` is logged as `?Id20`: 40 lowercase hex digits.
fn parse_ih(s: &str) -> Option<[u8; 20]> {
    hex::decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_bad_piece_warning_reaches_the_session_it_happened_in() {
        let audit = PieceAudit::new();
        let subscriber = tracing_subscriber::registry().with(audit.layer());
        let (one, mut rx_one) = audit.register();
        let (two, mut rx_two) = audit.register();
        let ih = [0xab; 20];
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::error_span!(parent: None, "swarmsite_torrents", session = two);
            // Shaped like librqbit's own spans and event.
            let torrent =
                tracing::debug_span!(target: "librqbit::session", parent: &root, "torrent", id = 0);
            let peer = tracing::debug_span!(target: "librqbit::torrent_state::live", parent: &torrent, "manage_peer");
            let _e = peer.enter();
            let addr: SocketAddr = "127.0.0.9:6881".parse().unwrap();
            tracing::warn!(
                target: "librqbit::torrent_state::live",
                id = 0,
                info_hash = ?librqbit::dht::Id20::new(ih),
                ?addr,
                "checksum for piece={} did not validate. disconnecting peer.", 3
            );
            // Other warnings are not reports.
            tracing::warn!(target: "librqbit::torrent_state::live", ?addr, "something else");
            let _ = one;
        });
        assert_eq!(
            rx_two.try_recv().unwrap(),
            BadPiece {
                ih,
                peer: "127.0.0.9:6881".parse().unwrap()
            }
        );
        assert!(rx_two.try_recv().is_err());
        assert!(
            rx_one.try_recv().is_err(),
            "only the session it happened in"
        );
    }

    #[test]
    fn logged_values_parse() {
        assert_eq!(
            parse_addr("Some([::1]:80)"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_addr("nonsense"), None);
        assert_eq!(parse_ih(&"0f".repeat(20)), Some([0x0f; 20]));
        assert_eq!(parse_ih("0f"), None);
    }
}
