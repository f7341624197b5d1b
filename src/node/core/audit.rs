//! Evidence hints: accusing a peer to the wire peers, and (auditors) re-checking an
//! accused peer before its accusers count (PROTOCOL.md §17).

use super::*;

impl Core {
    /// Tells the wire peers (as a hint) that `addrs` did `reason`, when an auditor can
    /// check that again by itself.
    pub(super) fn accuse(&mut self, addrs: PeerAddrs, reason: &str, object: Option<SystemName>) {
        if !crate::blacklist::hintable(reason) {
            return;
        }
        let hint = Hint {
            ip: addrs.remote.ip(),
            wire_port: addrs.wire.map(|a| a.port()),
            bt_port: addrs.bt.map(|a| a.port()),
            reason: reason.into(),
            object,
            hops: crate::hints::HOPS,
        };
        self.hints.local(hint, unix_ms());
    }

    /// (Auditors) `from` accuses `hint.ip`: counts once confirmed by our own re-check.
    pub(super) fn audit(&mut self, hint: Hint, from: PeerKey) {
        let Some(hinter) = self.conns.get(&from).map(|c| c.remote.ip()) else {
            return;
        };
        if self.blacklist.hint(hint, hinter, self.local_ip, unix_ms()) {
            self.start_rechecks();
        }
    }

    /// Starts the re-checks that are due (a few at once).
    pub(super) fn start_rechecks(&mut self) {
        for hint in self.blacklist.due_rechecks() {
            let check = self.recheck_task(&hint);
            let commands = self.shared.commands.clone();
            tokio::spawn(async move {
                let finding = match check {
                    Some(f) => f.await,
                    None => Finding::Failed("nothing to check it with".into()),
                };
                let _ = commands.send(Command::Rechecked { hint, finding }).await;
            });
        }
    }

    /// How to look at the accused again, for this kind of accusation.
    fn recheck_task(
        &self,
        hint: &Hint,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = Finding> + Send>>> {
        const LIMIT: Duration = Duration::from_secs(20);
        let (local, rendezvous) = (self.local_ip, self.wire.rendezvous);
        let wire = hint.wire_port.map(|p| SocketAddr::new(hint.ip, p));
        match hint.reason.as_str() {
            "bad-piece" => {
                let peer = SocketAddr::new(hint.ip, hint.bt_port?);
                let object = hint.object?;
                let (record, _) = self.gossip.held(object.slot())?;
                let Payload::Torrent { ih, .. } = record.payload else {
                    return None;
                };
                if record.name != object {
                    return None; // a version we no longer (or do not yet) hold
                }
                let audit = self.cfg.piece_audit.clone()?;
                let torrent = self.local_payloads.get(&ih).and_then(|d| {
                    std::fs::read(d.join(crate::publisher::TORRENT_FILE))
                        .ok()
                        .map(bytes::Bytes::from)
                });
                let dir = self.cfg.data_dir.join("recheck");
                Some(Box::pin(recheck::pieces(
                    audit, dir, local, ih, torrent, peer, LIMIT,
                )))
            }
            "dht-empty-announce" | "dht-false-announce" => {
                // Anyone can point at an innocent address: it must really be in the
                // DHT under that name before its answer counts.
                let (dht, wire, name) = (self.shared.rendezvous.clone()?, wire?, hint.object?);
                Some(Box::pin(async move {
                    let found = dht.find(*name.as_bytes(), None, LIMIT / 2).await;
                    if !found.contains(&wire) {
                        return Finding::Failed(format!("{wire} is not in the DHT under {name:?}"));
                    }
                    recheck::probe(wire, local, rendezvous, None, LIMIT).await
                }))
            }
            _ => Some(Box::pin(recheck::probe(
                wire?,
                local,
                rendezvous,
                Some(hint.object?),
                LIMIT,
            ))),
        }
    }

    /// (Auditors) judges what a re-check saw: confirmed, the accusation is evidence of
    /// our own, and every node that made it counts toward the threshold.
    pub(super) fn on_rechecked(&mut self, hint: Hint, finding: Finding) {
        let confirmed = self.judge(&hint, &finding);
        tracing::info!(
            "re-check of {} against {}: {}",
            hint.reason,
            hint.ip,
            confirmed.as_deref().unwrap_or("not confirmed")
        );
        let hinters = self
            .blacklist
            .rechecked(&hint, confirmed.is_some(), unix_ms());
        if let (Some(detail), Some(hinters)) = (confirmed, hinters) {
            let port = hint.wire_port.or(hint.bt_port).unwrap_or(0);
            self.record_evidence(
                Some(SocketAddr::new(hint.ip, port)),
                hint.object,
                &hint.reason,
                format!("re-checked after hints from {hinters} node(s): {detail}"),
            );
        }
        self.start_rechecks();
    }

    fn judge(&self, hint: &Hint, finding: &Finding) -> Option<String> {
        match (hint.reason.as_str(), finding) {
            ("bad-piece", Finding::Pieces { bad: true }) => {
                Some("a piece it sent this node failed its hash check".into())
            }
            ("dht-false-announce", Finding::NotSwarmsite(r)) => Some(r.to_string()),
            (
                "dht-empty-announce",
                Finding::Node {
                    have: Some(names), ..
                },
            ) => {
                let object = hint.object?;
                let holds = names
                    .iter()
                    .any(|n| n.slot() == object.slot() && n.version() >= object.version());
                (!holds).then(|| format!("its have does not list {object:?}"))
            }
            (
                _,
                Finding::Node {
                    answer: Some(Some(bytes)),
                    ..
                },
            ) => match Record::decode(bytes) {
                Err(e) => Some(format!("answered with a malformed record: {e}")),
                Ok(r) => match self.gossip.acceptor().check(&r, unix_ms() / 1000) {
                    Err(refusal) if refusal.is_forgery() => {
                        Some(format!("answered with a forged record: {refusal}"))
                    }
                    _ => None,
                },
            },
            _ => None,
        }
    }
}
