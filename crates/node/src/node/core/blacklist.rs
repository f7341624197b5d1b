//! The blacklist in force: applying a signed list (inline or as a torrent), putting it
//! into librqbit, and (with `--auto-blacklist`) turning evidence into new versions.

use super::ctx::Ctx;
use super::*;
use crate::policy::BlacklistIn;

/// The blacklist driver: the signed lists as they arrive (fetched when they travel as a
/// torrent) put in force in the `Enforcement` the core lends every driver, and with
/// `--auto-blacklist` the next version signed. Driven through a [`Ctx`].
#[derive(Default)]
pub(super) struct BlacklistFeed {
    /// A torrent-form blacklist being fetched: its version.
    fetch: Option<(u32, CancellationToken)>,
    /// The torrent of the blacklist in force, when it came as one.
    ih: Option<[u8; 20]>,
}

impl BlacklistFeed {
    /// Puts the blacklist of `record` in force, fetching it first when it travels as a
    /// torrent; an older version than the one in force changes nothing.
    pub(super) fn apply(&mut self, ctx: &mut Ctx<'_>, record: &Record) {
        match crate::policy::blacklist_in(record, ctx.blacklist.version()) {
            BlacklistIn::Stale => {}
            BlacklistIn::InForce(list) => self.put_in_force(ctx, record.name.version(), list, None),
            BlacklistIn::Fetch { ih, size } => self.fetch_list(ctx, record.name, ih, size),
            BlacklistIn::Refused(why) => {
                ctx.evidence(None, Some(record.name), "bad-blacklist", why)
            }
        }
    }

    /// A blacklist too long for a record travels as a torrent of one file: fetch it
    /// (and seed it, so it spreads), then put it in force.
    fn fetch_list(&mut self, ctx: &mut Ctx<'_>, name: SystemName, ih: [u8; 20], size: u64) {
        if let Some((_, old)) = self.fetch.take() {
            old.cancel();
        }
        let cancel = ctx.shared.cancel.child_token();
        self.fetch = Some((name.version(), cancel.clone()));
        let fetch = ctx.fetch_single_file(ih, size, blacklists_dir(ctx.cfg).join(hex::encode(ih)));
        let commands = ctx.shared.commands.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                r = fetch => r,
                _ = cancel.cancelled() => return,
            };
            let list = result.and_then(|bytes| {
                crate::content::Blacklist::decode(&bytes, bytes.len()).map_err(|e| e.to_string())
            });
            let _ = commands
                .send(Command::BlacklistFetched { name, ih, list })
                .await;
        });
    }

    pub(super) fn on_fetched(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: SystemName,
        ih: [u8; 20],
        list: Result<crate::content::Blacklist, String>,
    ) {
        if self.fetch.as_ref().map(|(v, _)| *v) != Some(name.version()) {
            return; // a newer one is on its way
        }
        self.fetch = None;
        match list {
            Ok(list) => self.put_in_force(ctx, name.version(), list, Some(ih)),
            Err(e) => ctx.evidence(
                None,
                Some(name),
                "bad-blacklist",
                format!("signed blacklist does not parse: {e}"),
            ),
        }
    }

    /// Puts blacklist `version` in force: closes connections to listed addresses,
    /// forgets them as peers, and restarts librqbit with it.
    fn put_in_force(
        &mut self,
        ctx: &mut Ctx<'_>,
        version: u32,
        list: crate::content::Blacklist,
        ih: Option<[u8; 20]>,
    ) {
        if !ctx.blacklist.put_in_force(version, list) {
            return;
        }
        // The previous torrent-form list is no longer needed.
        if let Some(old) = std::mem::replace(&mut self.ih, ih)
            && Some(old) != ih
        {
            self.remove_torrent(ctx, old);
        }
        let peers = ctx.conns.iter().map(|(k, c)| (*k, c.remote.ip()));
        let listed: Vec<PeerKey> = crate::policy::cut_off(ctx.blacklist, peers);
        let mut closed_addrs = Vec::new();
        for key in &listed {
            if let Some(remote) = ctx.conns.get(key).map(|c| c.remote) {
                closed_addrs.push(remote);
                ctx.conns.close(*key);
            }
        }
        let list = ctx.blacklist.list();
        let entries: Vec<crate::node::BlacklistEntryStatus> = list
            .entries
            .iter()
            .map(|e| crate::node::BlacklistEntryStatus {
                addr: e.addr.to_string(),
                reason: e.reason.clone(),
                since: e.since,
            })
            .collect();
        let count = entries.len();
        // librqbit too: no connection to or from listed addresses, whoever names them.
        let nets: Vec<ipnet::IpNet> = list.entries.iter().map(|e| e.addr).collect();
        let torrents = Arc::clone(&ctx.shared.torrents);
        let commands = ctx.shared.commands.clone();
        tokio::spawn(async move {
            match torrents.set_blocklist(version, &nets).await {
                Ok(n) => {
                    tracing::info!(
                        "BitTorrent runs with blacklist v{version} ({n} torrents added again)"
                    );
                    let _ = commands.send(Command::BlocklistApplied { version }).await;
                }
                Err(e) => tracing::error!("putting the blacklist into the BitTorrent session: {e}"),
            }
        });
        ctx.shared
            .blacklist_view
            .send_replace(Arc::new(list.clone()));
        ctx.update_status(|s| {
            let mut status = crate::node::BlacklistStatus {
                version,
                entries,
                refused: 0,
                in_bittorrent: false,
                closed: Vec::new(),
            };
            if let Some(old) = s.blacklist.take() {
                (status.refused, status.closed) = (old.refused, old.closed);
            }
            for addr in &closed_addrs {
                status.note_closed(*addr);
            }
            s.blacklist = Some(status);
        });
        ctx.refresh_peers();
        tracing::info!(
            "blacklist v{version} in force: {count} entries, {} connections closed",
            listed.len()
        );
        ctx.emit(NodeEvent::Blacklist {
            version,
            entries: count,
            closed: listed.len(),
        });
    }

    /// Stops seeding a torrent-form list and removes its files (unless this node
    /// published it: the publisher's folder is theirs).
    fn remove_torrent(&self, ctx: &mut Ctx<'_>, ih: [u8; 20]) {
        if ctx.local_payloads.contains_key(&ih) {
            return;
        }
        let torrents = Arc::clone(&ctx.shared.torrents);
        let dir = blacklists_dir(ctx.cfg).join(hex::encode(ih));
        tokio::spawn(async move {
            let _ = torrents.remove(&ih).await;
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    /// The list in force was dropped (a rotation does not vouch for it): nothing is in
    /// force, in the wire layer and in BitTorrent, until the current list arrives.
    pub(super) fn withdraw(&mut self, ctx: &mut Ctx<'_>) {
        ctx.blacklist.withdraw();
        if let Some(old) = self.ih.take() {
            self.remove_torrent(ctx, old);
        }
        if let Some((_, cancel)) = self.fetch.take() {
            cancel.cancel();
        }
        let torrents = Arc::clone(&ctx.shared.torrents);
        tokio::spawn(async move {
            if let Err(e) = torrents.set_blocklist(0, &[]).await {
                tracing::error!("taking the blacklist out of the BitTorrent session: {e}");
            }
        });
        ctx.shared
            .blacklist_view
            .send_replace(Arc::new(crate::content::Blacklist::default()));
        ctx.update_status(|s| s.blacklist = None);
        ctx.refresh_peers();
    }

    /// With `--auto-blacklist`: lists every address with at least `threshold` evidence
    /// entries in a new, signed blacklist version, and sends it like any record.
    pub(super) fn auto_blacklist(&mut self, ctx: &mut Ctx<'_>, own_ip: IpAddr) {
        let Some(auto) = ctx.cfg.auto_blacklist.clone() else {
            return;
        };
        let now = unix_ms();
        let Some(list) = ctx.blacklist.next_list(own_ip, now) else {
            return;
        };
        let slot = (kind::AUTHORIZED_FILE, crate::name::file_id::BLACKLIST);
        let version = ctx.gossip.acceptor().highest(slot) + 1;
        let name = SystemName::new(ctx.cfg.bundle.network(), slot.0, slot.1, version);
        let body = list.encode();
        if body.len() <= crate::record::MAX_BODY_LEN {
            let record = Record::new(name, now / 1000, Payload::Body(body)).map(|mut r| {
                r.sign(&auto.key);
                r
            });
            match record
                .map_err(|e| e.to_string())
                .and_then(|r| r.encode().map_err(|e| e.to_string()))
            {
                Ok(bytes) => match ctx.gossip.submit(bytes.into(), now) {
                    Ok(v) => tracing::info!("auto-blacklist: {v}"),
                    Err(e) => tracing::error!("auto-blacklist v{version} refused: {e}"),
                },
                Err(e) => tracing::error!("auto-blacklist v{version}: {e}"),
            }
            return;
        }
        // Too long for a record: a torrent of one file, seeded here before it is sent.
        match self.prepare_torrent(ctx, version, &body) {
            Ok((dir, ih, size)) => {
                let record = Record::new(name, now / 1000, Payload::Torrent { ih, size })
                    .map(|mut r| {
                        r.sign(&auto.key);
                        r
                    })
                    .and_then(|r| r.encode());
                let bytes = match record {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!("auto-blacklist v{version}: {e}");
                        return;
                    }
                };
                ctx.blacklist.publishing(version, now);
                ctx.submit_own(bytes, dir, format!("auto-blacklist v{version}"));
            }
            Err(e) => tracing::error!("auto-blacklist v{version}: {e}"),
        }
    }

    /// Lays out a torrent-form blacklist like a publication: `payload/blacklist.bencode`
    /// and `payload.torrent`; returns the folder, info hash and size.
    fn prepare_torrent(
        &self,
        ctx: &mut Ctx<'_>,
        version: u32,
        body: &[u8],
    ) -> Result<(PathBuf, [u8; 20], u64), String> {
        let dir = blacklists_dir(ctx.cfg).join(format!("auto-v{version}"));
        let (ih, size) = sync::prepare_single_file(&dir, "blacklist.bencode", body)?;
        Ok((dir, ih, size))
    }
}

/// Where torrent-form blacklists are kept (fetched ones, and the auto-blacklist's own).
fn blacklists_dir(cfg: &NodeConfig) -> PathBuf {
    cfg.data_dir
        .join("networks")
        .join(cfg.bundle.network().as_str())
        .join("blacklists")
}
