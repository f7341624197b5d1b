//! mDNS announcement (SPEC §11, PROTOCOL §23): the service `_http._tcp.local.` and the
//! host `<site>.local.` on the served HTTP port, so a browser on the same LAN can open
//! `http://<site>.local:PORT/`. `mdns-sd` does the protocol (probing, answers, goodbyes,
//! following interface changes); this module decides what to announce and reports it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub const SERVICE_TYPE: &str = "_http._tcp.local.";
/// How long the goodbye and the daemon's shutdown may take at exit.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(3);

/// What to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// `<site>.local.`
    pub host: String,
    /// The DNS-SD instance name, what service browsers show.
    pub instance: String,
    pub port: u16,
    /// `Some(ip)`: HTTP listens on this address only, so only its interface announces
    /// (with this address); `None`: every interface but loopback, following changes.
    pub only: Option<IpAddr>,
}

/// What to announce for `site` served on `http` (the bound HTTP addresses), or why
/// nothing: the port-80 listener if one accepts more than loopback, else the first such.
pub fn plan(site: &str, http: &[SocketAddr]) -> Result<Announcement, String> {
    let outside: Vec<&SocketAddr> = http.iter().filter(|a| !a.ip().is_loopback()).collect();
    let Some(a) = outside.iter().find(|a| a.port() == 80).or(outside.first()) else {
        return Err("HTTP listens on loopback only: nothing to announce".into());
    };
    Ok(Announcement {
        host: format!("{site}.local."),
        instance: site.to_string(),
        port: a.port(),
        only: (!a.ip().is_unspecified()).then_some(a.ip()),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MdnsState {
    /// Switched off by configuration.
    #[default]
    Off,
    /// HTTP listens on loopback only: nothing to announce.
    Idle,
    /// Registered, probing the names.
    Announcing,
    /// Announced on at least one interface.
    Announced,
    /// The mDNS daemon could not start or stopped.
    Failed,
    /// Goodbye sent at shutdown.
    Withdrawn,
}

/// What mDNS did, for the status API and `swarmsite status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MdnsStatus {
    pub state: MdnsState,
    /// The announced host name (`<site>.local`, or `<site>-2.local` after a name
    /// conflict on the LAN).
    pub host: Option<String>,
    /// The DNS-SD instance (`<site>._http._tcp.local.`, renamed likewise).
    pub service: Option<String>,
    pub port: Option<u16>,
    /// The addresses announced for the host.
    pub addresses: Vec<String>,
    /// Where a browser on the LAN finds the site.
    pub url: Option<String>,
    pub error: Option<String>,
}

impl MdnsStatus {
    fn set_host(&mut self, host: &str, port: u16) {
        let host = host.trim_end_matches('.').to_string();
        self.url = Some(if port == 80 {
            format!("http://{host}/")
        } else {
            format!("http://{host}:{port}/")
        });
        self.host = Some(host);
        self.port = Some(port);
    }
}

/// Announces `a` until `cancel`, then withdraws it. Reports every change to `publish`.
pub async fn run(a: Announcement, cancel: CancellationToken, publish: impl Fn(&MdnsStatus)) {
    let mut st = MdnsStatus {
        state: MdnsState::Announcing,
        ..MdnsStatus::default()
    };
    st.set_host(&a.host, a.port);
    let (daemon, fullname, monitor) = match start(&a) {
        Ok(started) => started,
        Err(e) => {
            st.state = MdnsState::Failed;
            st.error = Some(format!("cannot start mDNS: {e}"));
            tracing::warn!("{}", st.error.as_deref().unwrap_or_default());
            publish(&st);
            return;
        }
    };
    st.service = Some(fullname.clone());
    st.addresses = serving_addresses(a.only);
    publish(&st);
    loop {
        let before = st.clone();
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = monitor.recv_async() => match ev {
                Ok(DaemonEvent::Announce(..)) => {
                    if st.state != MdnsState::Announced {
                        tracing::info!(
                            "mDNS: announced {}",
                            st.url.as_deref().unwrap_or_default()
                        );
                    }
                    st.state = MdnsState::Announced;
                    st.error = None;
                }
                Ok(DaemonEvent::IpAdd(_) | DaemonEvent::IpDel(_)) => {
                    st.addresses = serving_addresses(a.only);
                }
                Ok(DaemonEvent::NameChange(c)) => {
                    // Another host on the LAN has the name: mdns-sd picked the next one.
                    let (old, new) = (c.original.to_lowercase(), c.new_name);
                    if st.host.as_deref().is_some_and(|h| old.trim_end_matches('.') == h.to_lowercase()) {
                        st.set_host(&new, a.port);
                    } else if st.service.as_deref().is_some_and(|s| s.to_lowercase() == old) {
                        st.service = Some(new);
                    }
                    tracing::warn!("mDNS: name taken on the LAN, now {}", st.url.as_deref().unwrap_or_default());
                }
                Ok(DaemonEvent::Error(e)) => st.error = Some(e.to_string()),
                Ok(_) => {}
                Err(_) => {
                    st.state = MdnsState::Failed;
                    st.error = Some("the mDNS daemon stopped".into());
                    publish(&st);
                    return;
                }
            }
        }
        if st != before {
            publish(&st);
        }
    }
    withdraw(&daemon, &fullname).await;
    st.state = MdnsState::Withdrawn;
    st.addresses.clear();
    tracing::info!("mDNS: withdrew {}", st.host.as_deref().unwrap_or_default());
    publish(&st);
}

type Started = (ServiceDaemon, String, mdns_sd::Receiver<DaemonEvent>);

fn start(a: &Announcement) -> Result<Started, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let monitor = daemon.monitor()?;
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &a.instance,
        &a.host,
        a.only.map(|ip| ip.to_string()).unwrap_or_default(),
        a.port,
        &[("path", "/")][..],
    )?;
    let info = match a.only {
        Some(ip) => {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Addr(ip))?;
            info
        }
        None => {
            // Loopback answers would name 127.0.0.1: useless to anyone else.
            daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
            info.enable_addr_auto()
        }
    };
    let fullname = info.get_fullname().to_string();
    if let Err(e) = daemon.register(info) {
        let _ = daemon.shutdown();
        return Err(e);
    }
    Ok((daemon, fullname, monitor))
}

/// Sends the goodbye (records with TTL 0) and stops the daemon, each bounded in time.
async fn withdraw(daemon: &ServiceDaemon, fullname: &str) {
    if let Ok(rx) = daemon.unregister(fullname) {
        let _ = tokio::time::timeout(WITHDRAW_TIMEOUT, rx.recv_async()).await;
    }
    if let Ok(rx) = daemon.shutdown() {
        let _ = tokio::time::timeout(WITHDRAW_TIMEOUT, rx.recv_async()).await;
    }
}

/// The addresses announced: those of the interfaces mdns-sd uses (every one but
/// loopback, or the one HTTP listens on), IPv4 first.
fn serving_addresses(only: Option<IpAddr>) -> Vec<String> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && only.is_none_or(|o| o == *ip))
        .collect();
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    ips.iter().map(IpAddr::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn announces_the_port_80_listener_on_every_interface() {
        let a = plan("wikileaks", &addrs(&["0.0.0.0:18880", "0.0.0.0:80"])).unwrap();
        assert_eq!(
            a,
            Announcement {
                host: "wikileaks.local.".into(),
                instance: "wikileaks".into(),
                port: 80,
                only: None,
            }
        );
    }

    #[test]
    fn announces_a_listener_bound_to_one_address_there_only() {
        let a = plan(
            "site",
            &addrs(&["127.0.0.1:80", "192.168.1.20:18880", "0.0.0.0:8080"]),
        )
        .unwrap();
        assert_eq!(a.port, 18880);
        assert_eq!(a.only, Some("192.168.1.20".parse().unwrap()));
    }

    #[test]
    fn loopback_only_announces_nothing() {
        let e = plan("site", &addrs(&["127.0.0.3:18880", "[::1]:80"])).unwrap_err();
        assert!(e.contains("loopback only"));
    }

    #[test]
    fn url_leaves_out_port_80() {
        let mut st = MdnsStatus::default();
        st.set_host("site.local.", 80);
        assert_eq!(st.url.as_deref(), Some("http://site.local/"));
        assert_eq!(st.host.as_deref(), Some("site.local"));
        st.set_host("site-2.local.", 18880);
        assert_eq!(st.url.as_deref(), Some("http://site-2.local:18880/"));
    }
}
