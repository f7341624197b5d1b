//! UPnP IGD port mapping (SPEC §11, PROTOCOL §23), the decision logic, sans-IO.
//!
//! [`Mapper`] decides which ports to map and in what order, the next port when another
//! device holds one, lease renewal, back-off while the router is missing or refuses, and
//! removal at shutdown. It takes outcomes and the clock and returns the next request; the
//! node performs those requests with `igd-next` (`swarmsite::reach::upnp::run`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::Serialize;

/// External ports tried for HTTP, in order: the DNS prober (SPEC §10) looks at exactly
/// these two, so another port would serve nobody.
pub const HTTP_PORTS: [u16; 2] = [80, 18880];
/// External ports tried for the other services: their own port, then the next ones.
pub const PORT_TRIES: u16 = 8;
/// Without a lease (routers that take only permanent mappings), how often the mappings
/// are checked and re-added anyway (the router may have rebooted and forgotten them).
pub const PERMANENT_RECHECK: Duration = Duration::from_secs(15 * 60);

/// Settings of UPnP port mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpnpConfig {
    /// Lease asked for each mapping; renewed at half of it.
    pub lease: Duration,
    /// First retry after a failure; doubled after each further failure.
    pub retry_min: Duration,
    /// Longest wait between retries (never longer than the renewal period, so a router
    /// that comes back is used again within one renewal period).
    pub retry_max: Duration,
    /// How long a gateway search waits for an answer.
    pub search_timeout: Duration,
}

impl Default for UpnpConfig {
    fn default() -> Self {
        UpnpConfig {
            lease: Duration::from_secs(3600),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            search_timeout: Duration::from_secs(5),
        }
    }
}

/// What a mapping is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The site's HTTP server (TCP), mapped to external port 80 or 18880.
    Http,
    /// The BitTorrent listener (TCP).
    Bittorrent,
    /// The wire listener (TCP): connections between nodes.
    Wire,
    /// The rendezvous DHT (UDP, same port number as the wire port by default).
    Dht,
}

/// The transport of a mapping, named as UPnP names it (`TCP`, `UDP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP: HTTP, BitTorrent and the wire.
    Tcp,
    /// UDP: the rendezvous DHT.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// The node's sockets as bound: what there is to map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listeners {
    /// The HTTP listeners; the one on port 80 is mapped if there is one, else the first
    /// reachable.
    pub http: Vec<SocketAddr>,
    /// The BitTorrent listener (TCP), if any.
    pub bittorrent: Option<SocketAddr>,
    /// The wire listener (TCP), if any.
    pub wire: Option<SocketAddr>,
    /// The rendezvous DHT socket (UDP), if any.
    pub dht: Option<SocketAddr>,
}

impl Listeners {
    /// True when some listener accepts more than loopback (only such ones can be mapped
    /// or announced).
    pub fn any_outside(&self) -> bool {
        self.http
            .iter()
            .chain(&self.bittorrent)
            .chain(&self.wire)
            .chain(&self.dht)
            .any(|a| !a.ip().is_loopback())
    }
}

/// One mapping the node wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// What the mapping is for.
    pub service: Service,
    /// Its transport.
    pub protocol: Protocol,
    /// Where the router forwards to: this host's LAN address and the listener's port.
    pub internal: SocketAddrV4,
    /// External ports to try, in order.
    pub candidates: Vec<u16>,
}

/// The mappings to ask for when this host is `local` on the router's LAN. A listener
/// bound to another address (loopback, another interface) cannot be reached through
/// this router and is left out. HTTP maps the port-80 listener if there is one, else the
/// first that can be reached.
pub fn plan(l: &Listeners, local: Ipv4Addr) -> Vec<Want> {
    let reachable = |a: &SocketAddr| match a.ip() {
        IpAddr::V4(ip) => ip.is_unspecified() || ip == local,
        // A dual-stack wildcard accepts IPv4 too.
        IpAddr::V6(ip) => ip.is_unspecified(),
    };
    let internal = |a: &SocketAddr| SocketAddrV4::new(local, a.port());
    let mut wants = Vec::new();
    let http: Vec<&SocketAddr> = l.http.iter().filter(|a| reachable(a)).collect();
    if let Some(a) = http.iter().find(|a| a.port() == 80).or(http.first()) {
        wants.push(Want {
            service: Service::Http,
            protocol: Protocol::Tcp,
            internal: internal(a),
            candidates: HTTP_PORTS.to_vec(),
        });
    }
    let others = [
        (Service::Bittorrent, Protocol::Tcp, l.bittorrent),
        (Service::Wire, Protocol::Tcp, l.wire),
        (Service::Dht, Protocol::Udp, l.dht),
    ];
    for (service, protocol, addr) in others {
        if let Some(a) = addr.filter(|a| reachable(a) && a.port() != 0) {
            let last = a.port().saturating_add(PORT_TRIES - 1);
            wants.push(Want {
                service,
                protocol,
                internal: internal(&a),
                candidates: (a.port()..=last).collect(),
            });
        }
    }
    wants
}

/// How a request to the router went wrong, as far as the decisions care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer, or not one a router gives: it is gone, restarting, or moved.
    Unreachable(String),
    /// Another device holds this external port (UPnP 718), or the router maps only
    /// equal port numbers (724): try the next port.
    Conflict,
    /// The router accepts only permanent mappings (725).
    PermanentOnly,
    /// The router said no (606 not authorised, 501 action failed, …).
    Refused(String),
}

/// The next request, or how long to wait for the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Look for the router on the LAN; report with [`Mapper::on_search`].
    Search,
    /// Ask the router its external address; call [`Mapper::relocate`] with this host's
    /// address towards it first, then report with [`Mapper::on_external_ip`].
    ExternalIp,
    /// Add (or renew) a port mapping; report with [`Mapper::on_add`].
    Add {
        /// The mapping's transport.
        protocol: Protocol,
        /// The external port asked for.
        external: u16,
        /// Where the router is to forward to.
        internal: SocketAddrV4,
        /// The lease asked for, in seconds; 0 asks for a permanent mapping.
        lease_secs: u32,
        /// The mapping's name on the router (`swarmsite <site> <service>`).
        description: String,
    },
    /// Remove a held mapping; report with [`Mapper::on_remove`].
    Remove {
        /// The mapping's transport.
        protocol: Protocol,
        /// Its external port.
        external: u16,
    },
    /// Until this time (unix ms); `None`: nothing more to do until shutdown.
    Wait(Option<u64>),
    /// Shut down: every mapping removed (or the router gone).
    Done,
}

/// Where UPnP mapping stands as a whole, for the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpnpState {
    /// Switched off by configuration.
    #[default]
    Off,
    /// Every listener is on loopback: nothing to map.
    Idle,
    /// Looking for the router.
    Searching,
    /// No router answered (or it stopped answering); retrying.
    NoRouter,
    /// Every wanted mapping is held.
    Mapped,
    /// Some are held, some failed.
    Partial,
    /// The router answered but refused every mapping.
    Refused,
    /// Shut down; mappings removed.
    Stopped,
}

/// What UPnP did, for the status API and `swarmsite status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UpnpStatus {
    /// Where mapping stands as a whole.
    pub state: UpnpState,
    /// The router's control address.
    pub gateway: Option<String>,
    /// This host's address on the router's LAN (where mappings point).
    pub local_ip: Option<String>,
    /// The router's external address.
    pub external_ip: Option<String>,
    /// Each wanted mapping and how it stands.
    pub mappings: Vec<MappingStatus>,
    /// Lease asked for (seconds; 0 = permanent, where the router insists).
    pub lease_secs: u32,
    /// The last failure, for people.
    pub error: Option<String>,
    /// Something that defeats the mappings although they worked (double NAT).
    pub warning: Option<String>,
    /// When the next attempt or renewal is due (unix seconds).
    pub next_attempt: Option<u64>,
}

/// One wanted mapping in [`UpnpStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MappingStatus {
    /// What the mapping is for.
    pub service: Service,
    /// Its transport.
    pub protocol: Protocol,
    /// Where the router forwards to.
    pub internal: String,
    /// The external port held, if any.
    pub external_port: Option<u16>,
    /// When the lease runs out unless renewed (unix seconds; `None` when permanent or
    /// not held).
    pub expires: Option<u64>,
    /// This mapping's last failure, for people (`None` once it is held).
    pub error: Option<String>,
}

/// One wanted mapping and how it stands.
#[derive(Clone, Debug)]
struct Slot {
    want: Want,
    /// Index in `want.candidates` of the port held or being tried.
    at: usize,
    /// Held: since when the lease runs (unix ms) — `Some` while mapped.
    held_since: Option<u64>,
    error: Option<String>,
}

impl Slot {
    fn new(want: Want) -> Slot {
        Slot {
            want,
            at: 0,
            held_since: None,
            error: None,
        }
    }

    fn port(&self) -> u16 {
        self.want.candidates[self.at]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Search,
    ExternalIp,
    /// Adding (or renewing) the slot at this index.
    Map(usize),
    Wait {
        until: u64,
        then: After,
    },
    /// Removing the held slots from this index on.
    Remove(usize),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Search,
    Round,
}

/// The UPnP decisions (see the module doc). Call [`Mapper::next`], perform the action,
/// report its outcome with the matching `on_*` method, repeat.
#[derive(Debug)]
pub struct Mapper {
    cfg: UpnpConfig,
    listeners: Listeners,
    description: String,
    phase: Phase,
    gateway: Option<SocketAddr>,
    local: Option<Ipv4Addr>,
    external: Option<IpAddr>,
    slots: Vec<Slot>,
    lease_secs: u32,
    /// Consecutive failed attempts (searches, lost routers, rounds with a failure).
    failures: u32,
    error: Option<String>,
    warning: Option<String>,
}

impl Mapper {
    /// `site` names the mappings on the router ("swarmsite <site> http").
    pub fn new(cfg: UpnpConfig, listeners: Listeners, site: &str) -> Self {
        let phase = if listeners.any_outside() {
            Phase::Search
        } else {
            Phase::Idle
        };
        Mapper {
            lease_secs: u32::try_from(cfg.lease.as_secs()).unwrap_or(u32::MAX),
            cfg,
            listeners,
            description: format!("swarmsite {site}"),
            phase,
            gateway: None,
            local: None,
            external: None,
            slots: Vec::new(),
            failures: 0,
            error: None,
            warning: None,
        }
    }

    /// Plans the mappings for `local` (this host's likely LAN address) before any router
    /// answered, so the status lists what a volunteer would forward by hand.
    pub fn assume_local(&mut self, local: Ipv4Addr) {
        if self.phase == Phase::Idle || self.local.is_some() {
            return;
        }
        let slots: Vec<Slot> = plan(&self.listeners, local)
            .into_iter()
            .map(Slot::new)
            .collect();
        // A guess that reaches no listener is no plan: the search will tell.
        if !slots.is_empty() {
            self.slots = slots;
            self.local = Some(local);
        }
    }

    /// How often held mappings are renewed.
    pub fn renew_every(&self) -> Duration {
        if self.lease_secs == 0 {
            PERMANENT_RECHECK
        } else {
            Duration::from_secs(u64::from(self.lease_secs) / 2).max(Duration::from_secs(1))
        }
    }

    /// How long a search waits for the router: at most a quarter of the renewal period.
    pub fn search_timeout(&self) -> Duration {
        self.cfg.search_timeout.min(self.renew_every() / 4)
    }

    /// The wait before the next attempt after `failures` failures in a row: at most half
    /// the renewal period, so a failed search and this wait fit in three quarters of it
    /// and a router that comes back is mapped again within one period.
    fn backoff(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let wait = self.cfg.retry_min.saturating_mul(1 << exp);
        wait.min(self.cfg.retry_max).min(self.renew_every() / 2)
    }

    /// The next thing to do at `now` (unix ms).
    pub fn next(&mut self, now: u64) -> Action {
        loop {
            match self.phase {
                Phase::Idle => return Action::Wait(None),
                Phase::Search => return Action::Search,
                Phase::ExternalIp => return Action::ExternalIp,
                Phase::Map(i) => {
                    let Some(slot) = self.slots.get(i) else {
                        self.end_round(now);
                        continue;
                    };
                    return Action::Add {
                        protocol: slot.want.protocol,
                        external: slot.port(),
                        internal: slot.want.internal,
                        lease_secs: self.lease_secs,
                        description: format!(
                            "{} {}",
                            self.description,
                            service_name(slot.want.service)
                        ),
                    };
                }
                Phase::Wait { until, then } => {
                    if now < until {
                        return Action::Wait(Some(until));
                    }
                    self.phase = match then {
                        After::Search => Phase::Search,
                        After::Round => Phase::ExternalIp,
                    };
                }
                Phase::Remove(i) => {
                    match self.slots[i.min(self.slots.len())..]
                        .iter()
                        .position(|s| s.held_since.is_some())
                    {
                        Some(off) => {
                            let slot = &self.slots[i + off];
                            self.phase = Phase::Remove(i + off);
                            return Action::Remove {
                                protocol: slot.want.protocol,
                                external: slot.port(),
                            };
                        }
                        None => self.phase = Phase::Done,
                    }
                }
                Phase::Done => return Action::Done,
            }
        }
    }

    /// The outcome of [`Action::Search`]: the router's control address and this host's
    /// address towards it.
    pub fn on_search(&mut self, now: u64, found: Result<(SocketAddr, Ipv4Addr), String>) {
        if self.phase != Phase::Search {
            return;
        }
        match found {
            Ok((gateway, local)) => {
                self.error = None;
                self.phase = Phase::ExternalIp;
                if self.local != Some(local) && !self.replan(local) {
                    return;
                }
                self.gateway = Some(gateway);
            }
            Err(e) => {
                self.failures += 1;
                self.gateway = None;
                self.error = Some(format!("no UPnP router answered: {e}"));
                self.phase = Phase::Wait {
                    until: now + ms(self.backoff()),
                    then: After::Search,
                };
            }
        }
    }

    /// At the start of a round ([`Action::ExternalIp`]): this host's address towards the
    /// router now. A new one (DHCP gave another) plans the mappings again for it; those
    /// of the old address cannot be removed by this one and are left to their leases.
    pub fn relocate(&mut self, local: Ipv4Addr) {
        if self.phase == Phase::ExternalIp && self.local != Some(local) {
            self.replan(local);
        }
    }

    /// Plans from scratch for a new LAN address (mappings to an old one are left to
    /// their leases). False, and idle, when no listener can be reached on it.
    fn replan(&mut self, local: Ipv4Addr) -> bool {
        self.local = Some(local);
        self.slots = plan(&self.listeners, local)
            .into_iter()
            .map(Slot::new)
            .collect();
        if self.slots.is_empty() {
            self.error = Some(format!(
                "nothing to map: no listener accepts connections on {local}"
            ));
            self.phase = Phase::Idle;
        }
        !self.slots.is_empty()
    }

    /// The outcome of [`Action::ExternalIp`].
    pub fn on_external_ip(&mut self, now: u64, ip: Result<IpAddr, Failure>) {
        if self.phase != Phase::ExternalIp {
            return;
        }
        match ip {
            Ok(ip) => {
                self.external = Some(ip);
                self.warning = behind_another_nat(ip).then(|| {
                    format!(
                        "the router's external address {ip} is not a public one: another \
                         router is in front of it, so mapped ports are reachable only from \
                         the network between the two"
                    )
                });
            }
            Err(Failure::Unreachable(e)) => return self.lost(now, e),
            Err(Failure::Refused(e)) => {
                self.external = None;
                self.warning = Some(format!("the router did not tell its external address: {e}"));
            }
            Err(_) => self.external = None,
        }
        self.phase = Phase::Map(0);
    }

    /// The outcome of [`Action::Add`].
    pub fn on_add(&mut self, now: u64, result: Result<(), Failure>) {
        let Phase::Map(i) = self.phase else {
            return;
        };
        let slot = &mut self.slots[i];
        match result {
            Ok(()) => {
                slot.held_since = Some(now);
                slot.error = None;
                self.phase = Phase::Map(i + 1);
            }
            Err(Failure::Conflict) => {
                slot.held_since = None;
                if slot.at + 1 < slot.want.candidates.len() {
                    slot.at += 1;
                } else {
                    let ports: Vec<String> =
                        slot.want.candidates.iter().map(u16::to_string).collect();
                    slot.error = Some(format!(
                        "external port{} {} taken by another device",
                        if ports.len() > 1 { "s" } else { "" },
                        ports.join(", ")
                    ));
                    slot.at = 0;
                    self.phase = Phase::Map(i + 1);
                }
            }
            Err(Failure::PermanentOnly) if self.lease_secs != 0 => {
                // Ask again for the same port, permanently; removed at shutdown.
                self.lease_secs = 0;
            }
            Err(Failure::PermanentOnly) => {
                slot.held_since = None;
                slot.error = Some("the router refused a permanent mapping".into());
                self.phase = Phase::Map(i + 1);
            }
            Err(Failure::Refused(e)) => {
                slot.held_since = None;
                slot.error = Some(format!("the router refused: {e}"));
                self.phase = Phase::Map(i + 1);
            }
            Err(Failure::Unreachable(e)) => self.lost(now, e),
        }
    }

    /// The outcome of [`Action::Remove`] (failures change nothing: the lease ends it).
    pub fn on_remove(&mut self, _now: u64, result: Result<(), Failure>) {
        let Phase::Remove(i) = self.phase else {
            return;
        };
        self.slots[i].held_since = None;
        self.phase = match result {
            // The router is gone: nothing more can be removed; the leases end them.
            Err(Failure::Unreachable(_)) => Phase::Done,
            _ => Phase::Remove(i + 1),
        };
    }

    /// Stop: remove what is held, then [`Action::Done`]. Safe to call more than once.
    pub fn shutdown(&mut self) {
        if matches!(self.phase, Phase::Remove(_) | Phase::Done) {
            return;
        }
        self.phase = if self.gateway.is_some() {
            Phase::Remove(0)
        } else {
            Phase::Done
        };
    }

    /// A round is over: wait for the renewal, or retry sooner what failed.
    fn end_round(&mut self, now: u64) {
        let all = self.slots.iter().all(|s| s.held_since.is_some());
        let wait = if all {
            self.failures = 0;
            self.renew_every()
        } else {
            self.failures += 1;
            self.backoff()
        };
        self.phase = Phase::Wait {
            until: now + ms(wait),
            then: After::Round,
        };
    }

    /// The router stopped answering: forget what it held, look for it again (at once the
    /// first time: it may have restarted on another port).
    fn lost(&mut self, now: u64, e: String) {
        for s in &mut self.slots {
            s.held_since = None;
        }
        self.failures += 1;
        self.gateway = None;
        self.external = None;
        self.error = Some(format!("the router stopped answering: {e}"));
        self.phase = if self.failures == 1 {
            Phase::Search
        } else {
            Phase::Wait {
                until: now + ms(self.backoff()),
                then: After::Search,
            }
        };
    }

    /// What UPnP did and holds now, for the status API.
    pub fn status(&self) -> UpnpStatus {
        let held = self.slots.iter().filter(|s| s.held_since.is_some()).count();
        let state = match self.phase {
            Phase::Idle => UpnpState::Idle,
            Phase::Done => UpnpState::Stopped,
            _ if self.gateway.is_none() && self.error.is_some() => UpnpState::NoRouter,
            _ if self.gateway.is_none() => UpnpState::Searching,
            _ if held == self.slots.len() => UpnpState::Mapped,
            _ if held > 0 => UpnpState::Partial,
            _ if self.slots.iter().any(|s| s.error.is_some()) => UpnpState::Refused,
            // Found; the first mappings are being asked for.
            _ => UpnpState::Searching,
        };
        let error = self.error.clone().or_else(|| {
            let failed: Vec<String> = self
                .slots
                .iter()
                .filter_map(|s| {
                    s.error
                        .as_ref()
                        .map(|e| format!("{}: {e}", service_name(s.want.service)))
                })
                .collect();
            (!failed.is_empty()).then(|| failed.join("; "))
        });
        let lease_ms = u64::from(self.lease_secs) * 1000;
        UpnpStatus {
            state,
            gateway: self.gateway.map(|g| g.to_string()),
            local_ip: self.local.map(|l| l.to_string()),
            external_ip: self.external.map(|e| e.to_string()),
            mappings: self
                .slots
                .iter()
                .map(|s| MappingStatus {
                    service: s.want.service,
                    protocol: s.want.protocol,
                    internal: s.want.internal.to_string(),
                    external_port: s.held_since.map(|_| s.port()),
                    expires: s
                        .held_since
                        .filter(|_| lease_ms > 0)
                        .map(|t| (t + lease_ms) / 1000),
                    error: s.error.clone(),
                })
                .collect(),
            lease_secs: self.lease_secs,
            error,
            warning: self.warning.clone(),
            next_attempt: match self.phase {
                Phase::Wait { until, .. } => Some(until / 1000),
                _ => None,
            },
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// The service's name in logs and the status (`http`, `bittorrent`, `wire`, `dht`).
pub fn service_name(s: Service) -> &'static str {
    match s {
        Service::Http => "http",
        Service::Bittorrent => "bittorrent",
        Service::Wire => "wire",
        Service::Dht => "dht",
    }
}

/// True for external addresses that cannot be reached from the internet: the router
/// itself sits behind another NAT (carrier-grade NAT included).
fn behind_another_nat(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, shared (CGNAT)
        }
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    const GW: &str = "192.168.1.1:5000";

    fn listeners() -> Listeners {
        Listeners {
            http: vec![
                "0.0.0.0:80".parse().unwrap(),
                "0.0.0.0:18880".parse().unwrap(),
            ],
            bittorrent: Some("0.0.0.0:6881".parse().unwrap()),
            wire: Some("0.0.0.0:6880".parse().unwrap()),
            dht: Some("0.0.0.0:6880".parse().unwrap()),
        }
    }

    fn cfg() -> UpnpConfig {
        UpnpConfig {
            lease: Duration::from_secs(600),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            search_timeout: Duration::from_secs(2),
        }
    }

    fn found(m: &mut Mapper, now: u64) {
        assert_eq!(m.next(now), Action::Search);
        m.on_search(now, Ok((GW.parse().unwrap(), LAN)));
        assert_eq!(m.next(now), Action::ExternalIp);
        m.on_external_ip(now, Ok("203.0.113.7".parse().unwrap()));
    }

    /// Answers every Add with `answer(external port)` until the round ends; returns the
    /// ports asked for and the wait that followed.
    fn round(
        m: &mut Mapper,
        now: u64,
        mut answer: impl FnMut(u16) -> Result<(), Failure>,
    ) -> (Vec<u16>, Option<u64>) {
        let mut asked = Vec::new();
        for _ in 0..100 {
            match m.next(now) {
                Action::Add { external, .. } => {
                    asked.push(external);
                    m.on_add(now, answer(external));
                }
                Action::Wait(until) => return (asked, until),
                Action::Search => return (asked, None),
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("round did not end");
    }

    #[test]
    fn plan_maps_http_to_80_from_the_port_80_listener_and_the_other_ports_to_themselves() {
        let wants = plan(&listeners(), LAN);
        let got: Vec<(Service, Protocol, String, Vec<u16>)> = wants
            .iter()
            .map(|w| {
                (
                    w.service,
                    w.protocol,
                    w.internal.to_string(),
                    w.candidates.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Service::Http,
                    Protocol::Tcp,
                    "192.168.1.20:80".into(),
                    vec![80, 18880]
                ),
                (
                    Service::Bittorrent,
                    Protocol::Tcp,
                    "192.168.1.20:6881".into(),
                    (6881..6889).collect()
                ),
                (
                    Service::Wire,
                    Protocol::Tcp,
                    "192.168.1.20:6880".into(),
                    (6880..6888).collect()
                ),
                (
                    Service::Dht,
                    Protocol::Udp,
                    "192.168.1.20:6880".into(),
                    (6880..6888).collect()
                ),
            ]
        );
    }

    #[test]
    fn plan_leaves_out_listeners_this_router_cannot_reach() {
        let l = Listeners {
            // Port 80 could not be bound; 18880 serves.
            http: vec![
                "127.0.0.1:8080".parse().unwrap(),
                "0.0.0.0:18880".parse().unwrap(),
            ],
            bittorrent: Some("10.9.9.9:6881".parse().unwrap()),
            wire: Some(SocketAddr::new(LAN.into(), 6880)),
            dht: None,
        };
        let wants = plan(&l, LAN);
        assert_eq!(wants.len(), 2);
        assert_eq!(wants[0].internal.port(), 18880);
        assert_eq!(wants[0].candidates, vec![80, 18880]);
        assert_eq!(wants[1].service, Service::Wire);
        assert!(plan(&l, Ipv4Addr::new(192, 168, 2, 2)).len() == 1);
    }

    #[test]
    fn loopback_only_node_never_searches() {
        let l = Listeners {
            http: vec!["127.0.0.5:18880".parse().unwrap()],
            wire: Some("127.0.0.5:6880".parse().unwrap()),
            ..Listeners::default()
        };
        let mut m = Mapper::new(cfg(), l, "s");
        assert_eq!(m.next(0), Action::Wait(None));
        assert_eq!(m.status().state, UpnpState::Idle);
        m.shutdown();
        assert_eq!(m.next(0), Action::Done);
    }

    #[test]
    fn maps_everything_then_renews_at_half_the_lease_with_the_same_ports() {
        let mut m = Mapper::new(cfg(), listeners(), "wikileaks");
        found(&mut m, 1_000);
        match m.next(1_000) {
            Action::Add {
                protocol,
                external,
                internal,
                lease_secs,
                description,
            } => {
                assert_eq!(protocol, Protocol::Tcp);
                assert_eq!(external, 80);
                assert_eq!(internal.to_string(), "192.168.1.20:80");
                assert_eq!(lease_secs, 600);
                assert_eq!(description, "swarmsite wikileaks http");
            }
            other => panic!("{other:?}"),
        }
        let (asked, until) = round(&mut m, 1_000, |_| Ok(()));
        assert_eq!(asked, vec![80, 6881, 6880, 6880]);
        assert_eq!(until, Some(1_000 + 300_000));
        let s = m.status();
        assert_eq!(s.state, UpnpState::Mapped);
        assert_eq!(s.external_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(s.mappings[0].expires, Some((1_000 + 600_000) / 1000));
        assert_eq!(s.next_attempt, Some(301));
        assert!(s.error.is_none() && s.warning.is_none());

        // Nothing before the renewal is due; then the same ports again.
        assert_eq!(m.next(200_000), Action::Wait(Some(301_000)));
        assert_eq!(m.next(301_000), Action::ExternalIp);
        m.on_external_ip(301_000, Ok("203.0.113.7".parse().unwrap()));
        let (asked, _) = round(&mut m, 301_000, |_| Ok(()));
        assert_eq!(asked, vec![80, 6881, 6880, 6880]);
        assert_eq!(m.status().mappings[0].expires, Some(901));
    }

    #[test]
    fn a_port_held_by_another_device_moves_to_the_next() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        // 80 and 6881, 6882 are taken.
        let (asked, _) = round(&mut m, 0, |p| {
            if [80, 6881, 6882].contains(&p) {
                Err(Failure::Conflict)
            } else {
                Ok(())
            }
        });
        assert_eq!(asked, vec![80, 18880, 6881, 6882, 6883, 6880, 6880]);
        let s = m.status();
        assert_eq!(s.state, UpnpState::Mapped);
        let ports: Vec<Option<u16>> = s.mappings.iter().map(|m| m.external_port).collect();
        assert_eq!(ports, vec![Some(18880), Some(6883), Some(6880), Some(6880)]);
    }

    #[test]
    fn every_port_taken_fails_that_mapping_alone_and_retries_with_back_off() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        let (asked, until) = round(&mut m, 0, |p| {
            if p == 80 || p == 18880 {
                Err(Failure::Conflict)
            } else {
                Ok(())
            }
        });
        assert_eq!(asked, vec![80, 18880, 6881, 6880, 6880]);
        assert_eq!(until, Some(5_000), "first retry after retry_min");
        let s = m.status();
        assert_eq!(s.state, UpnpState::Partial);
        assert_eq!(
            s.error.as_deref(),
            Some("http: external ports 80, 18880 taken by another device")
        );
        // The next round starts over from port 80, and backs off further.
        assert_eq!(m.next(5_000), Action::ExternalIp);
        m.on_external_ip(5_000, Ok("203.0.113.7".parse().unwrap()));
        let (asked, until) = round(&mut m, 5_000, |p| {
            if p == 80 || p == 18880 {
                Err(Failure::Conflict)
            } else {
                Ok(())
            }
        });
        assert_eq!(asked[..2], [80, 18880]);
        assert_eq!(until, Some(5_000 + 10_000));
    }

    #[test]
    fn refusals_are_reported_per_mapping() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        let (_, _) = round(&mut m, 0, |_| {
            Err(Failure::Refused("606 Action not authorized".into()))
        });
        let s = m.status();
        assert_eq!(s.state, UpnpState::Refused);
        assert!(s.mappings.iter().all(|m| m.external_port.is_none()));
        assert!(
            s.error
                .unwrap()
                .starts_with("http: the router refused: 606 Action not authorized;")
        );
    }

    #[test]
    fn permanent_only_routers_get_permanent_mappings() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        let mut leases = Vec::new();
        for _ in 0..10 {
            match m.next(0) {
                Action::Add { lease_secs, .. } => {
                    leases.push(lease_secs);
                    m.on_add(
                        0,
                        if lease_secs > 0 {
                            Err(Failure::PermanentOnly)
                        } else {
                            Ok(())
                        },
                    );
                }
                Action::Wait(until) => {
                    assert_eq!(until, Some(ms(PERMANENT_RECHECK)));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(leases, vec![600, 0, 0, 0, 0]);
        let s = m.status();
        assert_eq!((s.state, s.lease_secs), (UpnpState::Mapped, 0));
        assert!(s.mappings.iter().all(|m| m.expires.is_none()));
    }

    #[test]
    fn no_router_backs_off_up_to_the_renewal_period() {
        let mut c = cfg();
        c.lease = Duration::from_secs(40); // renewal every 20 s caps the back-off
        let mut m = Mapper::new(c, listeners(), "s");
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert_eq!(m.next(now), Action::Search);
            m.on_search(now, Err("No response within timeout".into()));
            let Action::Wait(Some(until)) = m.next(now) else {
                panic!()
            };
            waits.push((until - now) / 1000);
            now = until;
        }
        // The waits stop at half the renewal period.
        assert_eq!(waits, vec![5, 10, 10, 10, 10]);
        let s = m.status();
        assert_eq!(s.state, UpnpState::NoRouter);
        assert_eq!(
            s.error.as_deref(),
            Some("no UPnP router answered: No response within timeout")
        );
        // Found at last: the failure count starts over after a full round.
        found(&mut m, now);
        let (_, until) = round(&mut m, now, |_| Ok(()));
        assert_eq!(until, Some(now + 20_000));
        assert_eq!(m.status().state, UpnpState::Mapped);
        assert!(m.status().error.is_none());
    }

    #[test]
    fn without_a_router_the_status_lists_what_to_forward_by_hand() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        m.assume_local(LAN);
        assert_eq!(m.next(0), Action::Search);
        m.on_search(0, Err("No response within timeout".into()));
        let s = m.status();
        assert_eq!(s.state, UpnpState::NoRouter);
        let listed: Vec<(&str, Option<u16>)> = s
            .mappings
            .iter()
            .map(|m| (m.internal.as_str(), m.external_port))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("192.168.1.20:80", None),
                ("192.168.1.20:6881", None),
                ("192.168.1.20:6880", None),
                ("192.168.1.20:6880", None)
            ]
        );
        // Found with the address assumed: the plan stands.
        m.next(5_000);
        m.on_search(5_000, Ok((GW.parse().unwrap(), LAN)));
        m.on_external_ip(5_000, Ok("203.0.113.7".parse().unwrap()));
        let (asked, _) = round(&mut m, 5_000, |_| Ok(()));
        assert_eq!(asked, vec![80, 6881, 6880, 6880]);
    }

    #[test]
    fn a_wrong_guess_of_the_lan_address_is_planned_again_when_found() {
        let l = Listeners {
            http: vec![SocketAddr::new(LAN.into(), 18880)],
            ..Listeners::default()
        };
        let mut m = Mapper::new(cfg(), l, "s");
        m.assume_local(Ipv4Addr::new(10, 0, 0, 5));
        assert!(m.status().mappings.is_empty());
        m.next(0);
        m.on_search(0, Ok((GW.parse().unwrap(), LAN)));
        m.on_external_ip(0, Ok("203.0.113.7".parse().unwrap()));
        let (asked, _) = round(&mut m, 0, |_| Ok(()));
        assert_eq!(asked, vec![80]);

        // Found on an address no listener is bound to: nothing to map, said so.
        let mut m = Mapper::new(
            cfg(),
            Listeners {
                http: vec![SocketAddr::new(LAN.into(), 18880)],
                ..Listeners::default()
            },
            "s",
        );
        m.next(0);
        m.on_search(0, Ok((GW.parse().unwrap(), Ipv4Addr::new(10, 0, 0, 5))));
        assert_eq!(m.next(0), Action::Wait(None));
        let s = m.status();
        assert_eq!(s.state, UpnpState::Idle);
        assert_eq!(
            s.error.as_deref(),
            Some("nothing to map: no listener accepts connections on 10.0.0.5")
        );
    }

    #[test]
    fn short_leases_shorten_the_search() {
        let mut c = cfg();
        c.lease = Duration::from_secs(8);
        c.search_timeout = Duration::from_secs(5);
        let m = Mapper::new(c, listeners(), "s");
        assert_eq!(m.renew_every(), Duration::from_secs(4));
        assert_eq!(m.search_timeout(), Duration::from_secs(1));
        assert_eq!(m.backoff(), Duration::from_secs(2));
    }

    #[test]
    fn a_router_that_stops_answering_is_searched_again_and_mapped_again() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        round(&mut m, 0, |p| {
            if p == 6881 {
                Err(Failure::Conflict)
            } else {
                Ok(())
            }
        });
        // At renewal the router is gone.
        assert_eq!(m.next(300_000), Action::ExternalIp);
        m.on_external_ip(
            300_000,
            Err(Failure::Unreachable("connection refused".into())),
        );
        let s = m.status();
        assert_eq!(s.state, UpnpState::NoRouter);
        assert!(s.mappings.iter().all(|m| m.external_port.is_none()));
        assert_eq!(
            s.error.as_deref(),
            Some("the router stopped answering: connection refused")
        );
        // Searched again at once (it may have restarted on another port) ...
        assert_eq!(m.next(300_000), Action::Search);
        m.on_search(300_000, Err("No response within timeout".into()));
        // ... then with back-off.
        assert_eq!(m.next(300_000), Action::Wait(Some(310_000)));
        assert_eq!(m.next(310_000), Action::Search);
        m.on_search(310_000, Ok(("192.168.1.1:6000".parse().unwrap(), LAN)));
        assert_eq!(m.next(310_000), Action::ExternalIp);
        m.on_external_ip(310_000, Ok("203.0.113.7".parse().unwrap()));
        // The ports held before are asked for first.
        let (asked, _) = round(&mut m, 310_000, |_| Ok(()));
        assert_eq!(asked, vec![80, 6882, 6880, 6880]);
        assert_eq!(m.status().gateway.as_deref(), Some("192.168.1.1:6000"));
    }

    #[test]
    fn a_router_lost_in_the_middle_of_a_round() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        let (asked, until) = round(&mut m, 0, |p| {
            if p == 6880 {
                Err(Failure::Unreachable("timed out".into()))
            } else {
                Ok(())
            }
        });
        // The round ends at the loss: no waiting, a search comes next.
        assert_eq!((asked, until), (vec![80, 6881, 6880], None));
        assert_eq!(m.next(0), Action::Search);
    }

    #[test]
    fn shutdown_removes_what_is_held_and_only_that() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        round(&mut m, 0, |p| {
            if p == 6881 {
                Err(Failure::Refused("501".into()))
            } else {
                Ok(())
            }
        });
        m.shutdown();
        let mut removed = Vec::new();
        loop {
            match m.next(1) {
                Action::Remove { protocol, external } => {
                    removed.push((protocol, external));
                    m.on_remove(1, Ok(()));
                }
                Action::Done => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            removed,
            vec![
                (Protocol::Tcp, 80),
                (Protocol::Tcp, 6880),
                (Protocol::Udp, 6880)
            ]
        );
        m.shutdown();
        assert_eq!(m.next(2), Action::Done);
        assert_eq!(m.status().state, UpnpState::Stopped);
        assert!(
            m.status()
                .mappings
                .iter()
                .all(|m| m.external_port.is_none())
        );
    }

    #[test]
    fn shutdown_with_the_router_gone_does_not_wait_for_it() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        round(&mut m, 0, |_| Ok(()));
        m.shutdown();
        assert!(matches!(m.next(1), Action::Remove { .. }));
        m.on_remove(1, Err(Failure::Unreachable("refused".into())));
        assert_eq!(m.next(1), Action::Done);

        // Never found: nothing to remove.
        let mut m = Mapper::new(cfg(), listeners(), "s");
        assert_eq!(m.next(0), Action::Search);
        m.shutdown();
        assert_eq!(m.next(0), Action::Done);
    }

    #[test]
    fn a_new_lan_address_at_renewal_maps_it_instead() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        round(&mut m, 0, |_| Ok(()));
        assert_eq!(m.next(300_000), Action::ExternalIp);
        m.relocate(LAN); // unchanged: nothing happens
        assert_eq!(m.status().mappings[0].external_port, Some(80));
        let moved = Ipv4Addr::new(192, 168, 1, 33);
        m.relocate(moved);
        assert_eq!(m.next(300_000), Action::ExternalIp);
        m.on_external_ip(300_000, Ok("203.0.113.7".parse().unwrap()));
        let Action::Add { internal, .. } = m.next(300_000) else {
            panic!()
        };
        assert_eq!(internal.to_string(), "192.168.1.33:80");
        assert_eq!(m.status().local_ip.as_deref(), Some("192.168.1.33"));
    }

    #[test]
    fn a_private_external_address_is_a_warning() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        assert_eq!(m.next(0), Action::Search);
        m.on_search(0, Ok((GW.parse().unwrap(), LAN)));
        m.on_external_ip(0, Ok("100.72.1.9".parse().unwrap()));
        round(&mut m, 0, |_| Ok(()));
        let s = m.status();
        assert_eq!(s.state, UpnpState::Mapped);
        assert!(
            s.warning
                .unwrap()
                .contains("another router is in front of it")
        );
        assert!(!behind_another_nat("11.0.0.1".parse().unwrap()));
        assert!(behind_another_nat("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn a_new_lan_address_plans_again() {
        let mut m = Mapper::new(cfg(), listeners(), "s");
        found(&mut m, 0);
        round(&mut m, 0, |_| Ok(()));
        m.on_external_ip(0, Ok("203.0.113.7".parse().unwrap())); // ignored: wrong phase
        assert_eq!(m.next(300_000), Action::ExternalIp);
        m.on_external_ip(300_000, Err(Failure::Unreachable("x".into())));
        assert_eq!(m.next(300_000), Action::Search);
        m.on_search(
            300_000,
            Ok((GW.parse().unwrap(), Ipv4Addr::new(192, 168, 1, 77))),
        );
        m.on_external_ip(300_000, Ok("203.0.113.7".parse().unwrap()));
        let Action::Add { internal, .. } = m.next(300_000) else {
            panic!()
        };
        assert_eq!(internal.to_string(), "192.168.1.77:80");
    }
}
