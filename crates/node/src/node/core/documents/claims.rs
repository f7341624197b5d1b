//! Telling wire peers what this node keeps (`ss_docs`) and hearing what they keep.

use super::*;

impl Archive {
    /// What this node keeps, for wire peers.
    pub(super) fn doc_claims(&self, ctx: &Ctx<'_>) -> DocClaims {
        let mut held = Vec::new();
        let mut fetching = Vec::new();
        for e in self.docs.values() {
            match e.local {
                Local::Held | Local::Own => held.push(e.doc.meta.ih),
                Local::Fetching => fetching.push(e.doc.meta.ih),
                Local::Absent => {}
            }
        }
        fetching.truncate(MAX_DOC_CLAIMS);
        held.truncate(MAX_DOC_CLAIMS - fetching.len());
        let http = ctx
            .shared
            .status
            .read()
            .expect("status lock")
            .http
            .iter()
            .find(|h| h.bound)
            .and_then(|h| h.addr.parse::<SocketAddr>().ok())
            .map(|a| a.port());
        DocClaims {
            held,
            fetching,
            http,
        }
    }

    /// Tells every wire peer what this node keeps, when that changed.
    pub(super) fn announce_documents(&mut self, ctx: &mut Ctx<'_>) {
        let claims = self.doc_claims(ctx);
        if self.announced.as_ref() == Some(&claims) {
            return;
        }
        for c in ctx.conns.values().filter(|c| c.ready) {
            let _ = c.tx.try_send(Message::Docs(claims.clone()));
        }
        self.announced = Some(claims);
    }

    /// A new wire peer: tell it what this node keeps.
    pub(crate) fn send_to(&self, ctx: &mut Ctx<'_>, key: PeerKey) {
        if ctx.conns.get(&key).is_some() {
            let claims = self.doc_claims(ctx);
            ctx.conns.send(key, Message::Docs(claims));
        }
    }

    pub(crate) fn on_peer_claims(&mut self, ctx: &mut Ctx<'_>, key: PeerKey, claims: DocClaims) {
        if !ctx.conns.get(&key).is_some_and(|c| c.ready) {
            return;
        }
        self.claims.insert(key, claims);
        self.schedule();
        // Rebuilt by the next tick (a quarter second), however many claims arrive
        // meanwhile: a peer repeating `ss_docs` costs a map insert, not a rebuild.
        self.view_stale = true;
    }

    pub(crate) fn peer_gone(&mut self, key: PeerKey) {
        if self.claims.remove(&key).is_some() {
            self.schedule();
            self.view_stale = true;
        }
    }
}
