//! UPnP IGD port mapping (SPEC §11, PROTOCOL §23), the IO: [`run`] performs the
//! requests of the protocol's sans-IO [`Mapper`] (`swarmsite_protocol::upnp`,
//! re-exported here) with `igd-next`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;
use igd_next::{
    AddPortError, GetExternalIpError, PortMappingProtocol, RemovePortError, RequestError,
    SearchOptions,
};
use tokio_util::sync::CancellationToken;

pub use swarmsite_protocol::upnp::*;

/// Performs the [`Mapper`]'s requests with `igd-next` until `cancel`, then removes the
/// mappings. Reports every status change to `publish`.
pub async fn run(mut m: Mapper, cancel: CancellationToken, publish: impl Fn(&UpnpStatus)) {
    // Where the SSDP search goes out is where the router most likely is.
    let ssdp: SocketAddr = "239.255.255.250:1900".parse().expect("addr");
    if let Ok(IpAddr::V4(local)) = local_ip_towards(ssdp).await
        && !local.is_unspecified()
        && !local.is_loopback()
    {
        m.assume_local(local);
    }
    let mut gateway: Option<Gateway<Tokio>> = None;
    let mut last: Option<UpnpStatus> = None;
    loop {
        if cancel.is_cancelled() {
            m.shutdown();
        }
        let now = crate::clock::unix_ms();
        let action = m.next(now);
        // Reported where it waits (for the clock, the router or nothing), so a round of
        // requests makes one change, not one per mapping.
        let settled = matches!(action, Action::Wait(_) | Action::Search | Action::Done);
        let st = m.status();
        if settled && last.as_ref() != Some(&st) {
            log_change(last.as_ref(), &st);
            publish(&st);
            last = Some(st);
        }
        match action {
            Action::Done => break,
            Action::Wait(until) => {
                let wait = until.map_or(Duration::MAX, |u| Duration::from_millis(u - now));
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(wait.min(Duration::from_secs(86_400))) => {}
                }
            }
            Action::Search => {
                let found = tokio::select! {
                    _ = cancel.cancelled() => continue,
                    found = search(m.search_timeout()) => found,
                };
                let now = crate::clock::unix_ms();
                match found {
                    Ok((gw, local)) => {
                        let addr = gw.addr;
                        gateway = Some(gw);
                        m.on_search(now, Ok((addr, local)));
                    }
                    Err(e) => m.on_search(now, Err(e)),
                }
            }
            Action::ExternalIp => {
                let Some(gw) = &gateway else {
                    m.on_external_ip(now, Err(Failure::Unreachable("no router".into())));
                    continue;
                };
                if let Ok(IpAddr::V4(local)) = local_ip_towards(gw.addr).await {
                    m.relocate(local);
                    if m.next(now) != Action::ExternalIp {
                        continue;
                    }
                }
                let r = gw.get_external_ip().await.map_err(|e| match e {
                    GetExternalIpError::ActionNotAuthorized => {
                        Failure::Refused("not authorised (606)".into())
                    }
                    GetExternalIpError::RequestError(e) => classify(e),
                });
                m.on_external_ip(crate::clock::unix_ms(), r);
            }
            Action::Add {
                protocol,
                external,
                internal,
                lease_secs,
                description,
            } => {
                let Some(gw) = &gateway else {
                    m.on_add(now, Err(Failure::Unreachable("no router".into())));
                    continue;
                };
                let r = gw
                    .add_port(
                        igd_protocol(protocol),
                        external,
                        SocketAddr::V4(internal),
                        lease_secs,
                        &description,
                    )
                    .await
                    .map_err(classify_add);
                m.on_add(crate::clock::unix_ms(), r);
            }
            Action::Remove { protocol, external } => {
                let Some(gw) = &gateway else {
                    m.on_remove(now, Err(Failure::Unreachable("no router".into())));
                    continue;
                };
                let r = gw
                    .remove_port(igd_protocol(protocol), external)
                    .await
                    .map_err(|e| match e {
                        RemovePortError::RequestError(e) => classify(e),
                        other => Failure::Refused(other.to_string()),
                    });
                m.on_remove(crate::clock::unix_ms(), r);
            }
        }
    }
}

/// Finds the router and this host's address towards it (where mappings must point).
async fn search(timeout: Duration) -> Result<(Gateway<Tokio>, Ipv4Addr), String> {
    let mut opts = SearchOptions::default();
    opts.timeout = Some(timeout);
    opts.single_search_timeout = Some(timeout);
    // Mappings are IPv4 (IPv6 needs no NAT).
    opts.gateway_ip_version = igd_next::GatewayIpVersion::V4;
    let gw = igd_next::aio::tokio::search_gateway(opts)
        .await
        .map_err(|e| e.to_string())?;
    match local_ip_towards(gw.addr).await.map_err(|e| e.to_string())? {
        IpAddr::V4(local) => Ok((gw, local)),
        IpAddr::V6(ip) => Err(format!("no IPv4 address towards the router (got {ip})")),
    }
}

/// The source address the kernel picks towards `to`: our address on that LAN.
/// Connecting a UDP socket sends nothing.
async fn local_ip_towards(to: SocketAddr) -> std::io::Result<IpAddr> {
    let probe = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    probe.connect(to).await?;
    Ok(probe.local_addr()?.ip())
}

fn igd_protocol(p: Protocol) -> PortMappingProtocol {
    match p {
        Protocol::Tcp => PortMappingProtocol::TCP,
        Protocol::Udp => PortMappingProtocol::UDP,
    }
}

fn classify_add(e: AddPortError) -> Failure {
    match e {
        AddPortError::PortInUse | AddPortError::SamePortValuesRequired => Failure::Conflict,
        AddPortError::OnlyPermanentLeasesSupported => Failure::PermanentOnly,
        AddPortError::RequestError(e) => classify(e),
        other => Failure::Refused(other.to_string()),
    }
}

/// An error code is the router saying no; anything else means it did not answer
/// properly (gone, restarting, or not a router after all).
fn classify(e: RequestError) -> Failure {
    match e {
        RequestError::ErrorCode(718, _) => Failure::Conflict,
        RequestError::ErrorCode(725, _) => Failure::PermanentOnly,
        RequestError::ErrorCode(code, text) => Failure::Refused(format!("{code} {text}")),
        RequestError::UnsupportedAction(a) => {
            Failure::Refused(format!("the router does not support {a}"))
        }
        RequestError::HyperClientError(e) if e.is_connect() => {
            Failure::Unreachable("cannot connect to it".into())
        }
        RequestError::IoError(e) => Failure::Unreachable(e.to_string()),
        other => Failure::Unreachable(other.to_string()),
    }
}

fn log_change(before: Option<&UpnpStatus>, now: &UpnpStatus) {
    if before.map(|b| (b.state, &b.error)) == Some((now.state, &now.error)) {
        return;
    }
    let held: Vec<String> = now
        .mappings
        .iter()
        .filter_map(|m| {
            m.external_port.map(|p| {
                format!(
                    "{} {} {}:{p} → {}",
                    service_name(m.service),
                    m.protocol,
                    now.external_ip.as_deref().unwrap_or("?"),
                    m.internal
                )
            })
        })
        .collect();
    match (&now.state, &now.error) {
        (UpnpState::Mapped, _) => tracing::info!("UPnP: mapped {}", held.join(", ")),
        (UpnpState::Stopped, _) => tracing::info!("UPnP: mappings removed"),
        (_, Some(e)) => tracing::warn!("UPnP: {e}"),
        _ => tracing::debug!("UPnP: {:?}", now.state),
    }
}
