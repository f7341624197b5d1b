//! The core's own work: the wire connections. Accepting (within `policy::admit_inbound`),
//! dialling configured and discovered peers, the events of every connection routed to
//! the machine or feature that owns them, and what a closed connection leaves behind.

use super::*;

/// Refused items (forged records, bad metainfo) one connection may send before it is
/// closed: honest peers send none, but may relay a stale one now and then.
const MAX_REFUSED_PER_CONN: u32 = 8;
/// How long the address of a connection closed for refused items is kept out.
const SLOW_FOR: Duration = Duration::from_secs(600);

impl Core {
    pub(super) fn refresh_peers(&mut self) {
        ctx!(self).refresh_peers();
    }

    /// Whether an incoming connection from `ip` is taken (`policy::admit_inbound`, with
    /// `NodeConfig::max_inbound` and `max_inbound_per_ip`).
    pub(super) fn admit(&self, ip: IpAddr) -> Admit {
        let (mut all, mut from_ip) = (0, 0);
        for c in self.conns.values().filter(|c| !c.outgoing) {
            all += 1;
            from_ip += usize::from(c.remote.ip() == ip);
        }
        let caps = (self.cfg.max_inbound, self.cfg.max_inbound_per_ip);
        crate::policy::admit_inbound(
            ip,
            &self.blacklist,
            (all, from_ip),
            caps,
            self.is_slowed(ip),
        )
    }

    pub(super) fn spawn_conn(&mut self, stream: tokio::net::TcpStream, remote: SocketAddr) {
        let (key, rx) = self.conns.register(remote, None);
        let cfg = self.wire.clone();
        let reports = self.reports_tx.clone();
        let cancel = self.shared.cancel.clone();
        tokio::spawn(wire_io::run(stream, key, false, cfg, reports, rx, cancel));
    }

    pub(super) fn maintain_connections(&mut self) {
        let mut outgoing = self.conns.values().filter(|c| c.outgoing).count();
        let own = [self.cfg.wire_listen, self.wire_local()];
        let mut targets = Vec::new();
        for &addr in self.cfg.peers.iter().filter(|a| !own.contains(a)) {
            let check = crate::policy::DialCheck {
                connected: self.conns.values().any(|c| c.wire_addr == Some(addr)),
                listed: self.blacklist.contains(addr.ip()),
                outgoing,
                max_peers: self.cfg.max_peers,
                // Configured and given peers are dialled whatever they did before.
                ..crate::policy::DialCheck::default()
            };
            if crate::policy::may_dial(&check) {
                targets.push(addr);
                outgoing += 1;
            }
        }
        for addr in targets {
            self.dial(addr);
        }
    }

    pub(super) fn wire_local(&self) -> SocketAddr {
        SocketAddr::new(self.local_ip, self.wire.listen_port.unwrap_or(0))
    }

    pub(super) fn dial(&mut self, addr: SocketAddr) -> PeerKey {
        // Registered now so the next tick does not dial twice.
        let (key, rx) = self.conns.register(addr, Some(addr));
        let cfg = self.wire.clone();
        let reports = self.reports_tx.clone();
        let cancel = self.shared.cancel.clone();
        let local = self.local_ip;
        tokio::spawn(async move {
            match wire_io::dial(addr, local).await {
                Ok(stream) => wire_io::run(stream, key, true, cfg, reports, rx, cancel).await,
                Err(e) => {
                    tracing::debug!("dialling {addr}: {e}");
                    let _ = reports
                        .send(ConnReport {
                            in_flight: None,
                            key,
                            event: Event::Closed(CloseReason::Timeout),
                        })
                        .await;
                }
            }
        });
        key
    }

    pub(super) fn on_wire_event(&mut self, ConnReport { key, event, .. }: ConnReport) {
        match event {
            Event::Ready {
                peer_id,
                listen_port,
                bt_port,
                dht,
                client,
                uploads,
                metainfo,
            } => {
                if let (Some(r), Some((port, id)), Some(conn)) =
                    (&self.shared.rendezvous, dht, self.conns.get(&key))
                {
                    let (r, addr) = (Arc::clone(r), SocketAddr::new(conn.remote.ip(), port));
                    tokio::spawn(async move { r.add_contact(id, addr).await });
                }
                let duplicate = self
                    .conns
                    .iter()
                    .any(|(k, c)| *k != key && c.ready && c.peer_id == peer_id);
                let Some(conn) = self.conns.get_mut(&key) else {
                    return;
                };
                if duplicate || peer_id == self.wire.peer_id {
                    // Already connected to that node (or to ourselves): keep one link.
                    let _ = conn.tx.try_send(Message::Have { names: vec![] });
                    self.conns.remove(&key);
                    return;
                }
                conn.ready = true;
                conn.uploads = uploads;
                conn.metainfo = metainfo;
                conn.peer_id = peer_id;
                conn.dht_id = dht.map(|(_, id)| id);
                conn.client = client;
                conn.bt_addr = bt_port.map(|p| SocketAddr::new(conn.remote.ip(), p));
                if conn.wire_addr.is_none() {
                    conn.wire_addr = listen_port.map(|p| SocketAddr::new(conn.remote.ip(), p));
                }
                let addr = conn.remote.to_string();
                let source = conn.remote.ip();
                self.gossip.peer_up(key, source, unix_ms());
                self.archive.send_to(&mut ctx!(self), key);
                self.uploads.peer_up(&mut ctx!(self), key);
                self.refresh_peers();
                self.emit(NodeEvent::PeerUp { addr });
            }
            Event::Message(Message::Blob(blob)) => self.uploads.on_blob(&mut ctx!(self), key, blob),
            Event::Message(Message::Up { ih }) => self.uploads.on_up(&mut ctx!(self), key, ih),
            Event::Message(Message::Hint(hint)) => {
                if let Some(source) = self.conns.get(&key).map(|c| c.remote.ip())
                    && crate::policy::take_hint(&hint, self.local_ip, &self.blacklist)
                {
                    self.hints.receive(key, source, hint, unix_ms());
                }
            }
            Event::Message(Message::Docs(claims)) => {
                self.archive.on_peer_claims(&mut ctx!(self), key, claims)
            }
            Event::Message(Message::MetaGet { ih, part }) => self.on_meta_get(key, ih, part),
            Event::Message(Message::Meta(part)) => self.on_meta_part(key, part),
            Event::Message(msg) => {
                if let Message::Have { names } = &msg {
                    self.check_announcement(key, names);
                }
                self.gossip.handle_message(key, msg, unix_ms())
            }
            Event::Closed(reason) => {
                if let Some(conn) = self.conns.remove(&key) {
                    if let (false, Some(name)) = (conn.ready, conn.found_under)
                        && matches!(reason, CloseReason::NotSwarmsite | CloseReason::Garbage)
                    {
                        // It answered, but not as a swarmsite node: the DHT entry was a lie
                        // (by whoever wrote it). (An address that does not answer may just
                        // have gone offline.)
                        let addr = conn.wire_addr.unwrap_or(conn.remote);
                        self.drop_dht_entry(addr, name, true, &reason.to_string());
                    } else if reason.is_evidence() {
                        self.record_evidence(
                            Some(conn.remote),
                            None,
                            reason.code(),
                            reason.to_string(),
                        );
                    }
                    self.conn_gone(key, conn);
                }
            }
        }
    }

    /// Everything a connection leaves behind once it is out of `conns`.
    pub(super) fn conn_gone(&mut self, key: PeerKey, conn: Conn) {
        self.conns.remember_closed(key, conn.addrs());
        self.archive.peer_gone(key);
        self.metainfo_peer_gone(key);
        if conn.ready {
            self.gossip.peer_down(key, unix_ms());
            self.uploads.peer_down(key);
            self.refresh_peers();
            self.emit(NodeEvent::PeerDown {
                addr: conn.remote.to_string(),
            });
        }
    }

    /// Closes a connection from this side (dropping its sender ends its task).
    pub(super) fn close_conn(&mut self, key: PeerKey) {
        if let Some(conn) = self.conns.remove(&key) {
            let closing = conn.tx.clone();
            self.conn_gone(key, conn);
            drop(closing);
        }
    }

    /// A connection sent something refused as hostile: after
    /// [`MAX_REFUSED_PER_CONN`] it is closed and its address kept out for
    /// [`SLOW_FOR`] (incoming connections refused, not dialled).
    pub(super) fn count_refused_item(&mut self, key: PeerKey) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.refused += 1;
        if conn.refused < MAX_REFUSED_PER_CONN {
            return;
        }
        let ip = conn.remote.ip();
        tracing::warn!(
            "{}: {} refused items; closed, kept out for a while",
            conn.remote,
            conn.refused
        );
        self.close_conn(key);
        let now = unix_ms();
        if self.slowed.len() >= 4096 {
            self.slowed.retain(|_, until| *until > now);
            if self.slowed.len() >= 4096 {
                self.slowed.clear();
            }
        }
        self.slowed.insert(ip, now + SLOW_FOR.as_millis() as u64);
    }

    pub(super) fn is_slowed(&self, ip: IpAddr) -> bool {
        self.slowed.get(&ip).is_some_and(|until| *until > unix_ms())
    }

    pub(super) fn count_refused(&self, addr: SocketAddr) {
        self.update_status(|s| {
            if let Some(b) = s.blacklist.as_mut() {
                b.note_closed(addr);
            }
        });
    }
}
