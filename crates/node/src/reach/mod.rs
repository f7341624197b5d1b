//! Reachability (SPEC §11, PROTOCOL §23): the node opens its ports on the home router
//! with UPnP IGD ([`upnp`]) and announces the site on the LAN with mDNS ([`mdns`]).
//! Both run beside the node, never stop it, and report what they did in
//! [`ReachStatus`]; both are switched off for loopback nodes (tests, the demo).

pub mod mdns;
pub mod upnp;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use mdns::{MdnsState, MdnsStatus};
pub use upnp::{Listeners, MappingStatus, UpnpConfig, UpnpState, UpnpStatus};

/// Which mechanisms run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachConfig {
    /// UPnP port mapping; `None`: off.
    pub upnp: Option<UpnpConfig>,
    /// mDNS announcement.
    pub mdns: bool,
}

impl ReachConfig {
    /// Both on, with the default lease: a volunteer's node.
    pub fn on() -> Self {
        ReachConfig {
            upnp: Some(UpnpConfig::default()),
            mdns: true,
        }
    }

    /// Both off: nothing is said to the router or the LAN.
    pub fn off() -> Self {
        ReachConfig {
            upnp: None,
            mdns: false,
        }
    }
}

/// What each mechanism did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReachStatus {
    pub upnp: UpnpStatus,
    pub mdns: MdnsStatus,
}

/// How long [`Reach::stop`] waits for the mappings to be removed and the goodbye sent.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The running mechanisms. Dropping it does not withdraw anything: call [`Reach::stop`].
pub struct Reach {
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Reach {
    /// Starts what `cfg` asks for on the node's bound `listeners`, for the site named
    /// `site` (a DNS label). `on_change` hears every status change, in order.
    pub fn start(
        cfg: &ReachConfig,
        listeners: Listeners,
        site: &str,
        on_change: impl Fn(&ReachStatus) + Send + 'static,
    ) -> Reach {
        let cancel = CancellationToken::new();
        let state = Mutex::new((ReachStatus::default(), on_change));
        let update = Arc::new(move |f: &dyn Fn(&mut ReachStatus)| {
            // One lock around the change and its report keeps reports in order.
            let mut guard = state.lock().expect("reach status lock");
            let (status, on_change) = &mut *guard;
            f(status);
            on_change(status);
        });
        let mut tasks = Vec::new();
        if let Some(u) = &cfg.upnp {
            let mapper = upnp::Mapper::new(u.clone(), listeners.clone(), site);
            let update = Arc::clone(&update);
            tasks.push(tokio::spawn(upnp::run(
                mapper,
                cancel.clone(),
                move |st: &UpnpStatus| update(&|s: &mut ReachStatus| s.upnp = st.clone()),
            )));
        }
        if cfg.mdns {
            match mdns::plan(site, &listeners.http) {
                Ok(a) => {
                    let update = Arc::clone(&update);
                    tasks.push(tokio::spawn(mdns::run(
                        a,
                        cancel.clone(),
                        move |st: &MdnsStatus| update(&|s: &mut ReachStatus| s.mdns = st.clone()),
                    )));
                }
                Err(why) => update(&|s: &mut ReachStatus| {
                    s.mdns = MdnsStatus {
                        state: MdnsState::Idle,
                        error: Some(why.clone()),
                        ..MdnsStatus::default()
                    }
                }),
            }
        }
        Reach { cancel, tasks }
    }

    /// Removes every mapping and withdraws the announcement (bounded in time: a router
    /// that no longer answers cannot hold the node's exit).
    pub async fn stop(self) {
        self.cancel.cancel();
        let aborts: Vec<_> = self.tasks.iter().map(|t| t.abort_handle()).collect();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
            tracing::warn!("UPnP/mDNS did not stop within {STOP_TIMEOUT:?}; left to the leases");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }
}
