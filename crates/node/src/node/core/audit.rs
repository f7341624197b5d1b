//! Evidence hints: accusing a peer to the wire peers, and (auditors) re-checking an
//! accused peer before its accusers count (PROTOCOL.md §17).

use super::*;

impl Core {
    /// Tells the wire peers (as a hint) that `addrs` did `reason`, when an auditor can
    /// check that again by itself.
    pub(super) fn accuse(&mut self, addrs: PeerAddrs, reason: &str, object: Option<SystemName>) {
        if let Some(hint) = crate::policy::refusal_hint(
            addrs.remote.ip(),
            addrs.wire.map(|a| a.port()),
            addrs.bt.map(|a| a.port()),
            reason,
            object,
        ) {
            self.hints.local(hint, unix_ms());
        }
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
        const LIMIT: Duration = Duration::from_millis(crate::policy::RECHECK_LIMIT_MS);
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
            // A forgery: ask the accused itself for the record, and for the key set
            // that would come next for its role, so that a record signed by keys this
            // node does not know yet (an honest node a rotation ahead) is told apart
            // from one signed by nobody's.
            _ => {
                let object = hint.object?;
                let mut asks = vec![object];
                if let Some(role) = object.class().governing_role() {
                    let next = self.gossip.acceptor().highest((role.number(), 1)) + 1;
                    asks.push(SystemName::key_set(object.tag(), role, next));
                }
                Some(Box::pin(recheck::probe(
                    wire?, local, rendezvous, asks, LIMIT,
                )))
            }
        }
    }

    /// (Auditors) judges what a re-check saw: confirmed, the accusation becomes one
    /// entry of our own evidence (however many nodes made it; they only triggered it).
    pub(super) fn on_rechecked(&mut self, hint: Hint, finding: Finding) {
        let verdict = self.judge(&hint, &finding);
        match &verdict {
            Ok(detail) => tracing::info!(
                "re-check of {} against {}: confirmed: {detail}",
                hint.reason,
                hint.ip
            ),
            Err(why) => tracing::info!(
                "re-check of {} against {}: not confirmed: {why}",
                hint.reason,
                hint.ip
            ),
        }
        let hinters = self.blacklist.rechecked(&hint, verdict.is_ok(), unix_ms());
        if let (Ok(detail), Some(hinters)) = (verdict, hinters) {
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

    /// What the accused itself sent us, over our own connection, that proves the
    /// accusation (`Ok`, the detail), or why it proves nothing (`Err`). Only a forged
    /// record answered by a swarmsite node at the accused's address, or a bad piece
    /// from its own BitTorrent port, is proof; anything else answering there is not.
    fn judge(&self, hint: &Hint, finding: &Finding) -> Result<String, String> {
        let answers = match (hint.reason.as_str(), finding) {
            ("bad-piece", Finding::Pieces { bad: true }) => {
                return Ok("a piece it sent this node failed its hash check".into());
            }
            ("bad-piece", Finding::Pieces { bad: false }) => {
                return Err("every piece it sent passed".into());
            }
            (_, Finding::Unreachable) => return Err("nothing answered".into()),
            (_, Finding::NotSwarmsite(r)) => {
                return Err(format!("no swarmsite node answered there ({r})"));
            }
            (_, Finding::Failed(e)) => return Err(format!("the check could not run: {e}")),
            (_, Finding::Node { answers }) if hint.reason != "bad-piece" => answers,
            (_, f) => return Err(format!("{f:?} says nothing about {}", hint.reason)),
        };
        let object = hint.object.ok_or("no object to ask for")?;
        let answer = |name: SystemName| {
            answers
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, r)| r.as_deref())
        };
        let bytes = answer(object).ok_or("it did not answer with that record")?;
        let now = unix_ms() / 1000;
        let record = match Record::decode(bytes) {
            Err(e) => return Ok(format!("answered with a malformed record: {e}")),
            Ok(r) => r,
        };
        let refusal = match self.gossip.acceptor().check(&record, now) {
            Ok(_) => return Err("its answer is genuine".into()),
            Err(r) if !r.is_forgery() => return Err(format!("its answer is not a forgery: {r}")),
            Err(r) => r,
        };
        if let crate::trust::Refusal::NotEnoughSignatures { extra, .. } = &refusal
            && extra.contains("unknown keys")
        {
            // Signed by keys we may just not know yet: the next key set it gave us
            // (if any) must not check out before this counts as a forgery.
            let newer = answers
                .iter()
                .filter(|(n, _)| *n != object && matches!(n.class(), ObjectClass::KeySet(_)))
                .filter_map(|(_, r)| r.as_deref())
                .filter_map(|b| Record::decode(b).ok())
                .any(|ks| self.gossip.acceptor().check(&ks, now).is_ok());
            if newer {
                return Err("signed by a key set newer than ours, which it holds".into());
            }
        }
        Ok(format!("answered with a forged record: {refusal}"))
    }
}
