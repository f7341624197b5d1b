//! Logging for the programs (the CLI, the tray app): one subscriber per process, with
//! the piece audit's layer, which must see librqbit's events whatever the log level.

/// Logs to stderr (`RUST_LOG` overrides `default`), and returns the piece audit whose
/// layer now listens for librqbit's bad-piece reports whatever the log level.
pub fn init(default: &str) -> crate::torrents::PieceAudit {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let audit = crate::torrents::PieceAudit::new();
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(audit.layer())
        .try_init();
    audit
}
