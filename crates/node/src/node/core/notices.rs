//! Signed notices (kind `0x1111`, id ≥ 2): what the node shows of them. Only records
//! the trust store accepted get here, so a node never shows an unsigned notice.

use super::*;
use crate::node::status::NoticeStatus;

/// Longest notice kept in the status, in characters (the record allows 4096 bytes).
fn shown(text: &str) -> String {
    // Control characters could rewrite a terminal's screen: shown as spaces.
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

impl Core {
    /// Shows the notices held at start, without announcing them again.
    pub(super) fn restore_notices(&mut self) {
        let records: Vec<Record> = self
            .gossip
            .held_names()
            .into_iter()
            .filter(|n| n.class() == ObjectClass::Notice)
            .filter_map(|n| self.gossip.held(n.slot()).map(|(r, _)| r.clone()))
            .collect();
        for r in records {
            self.on_notice(&r, false);
        }
    }

    /// A newer notice of its channel: shown in the status, and (`announce`) sent as an
    /// event.
    pub(super) fn on_notice(&mut self, record: &Record, announce: bool) {
        let notice = match record.body().map(Notice::from_body) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.record_evidence(None, Some(record.name), "bad-notice", e.to_string());
                return;
            }
            None => {
                self.record_evidence(
                    None,
                    Some(record.name),
                    "bad-notice",
                    "a notice must be inline".into(),
                );
                return;
            }
        };
        let n = NoticeStatus {
            id: record.name.id(),
            version: record.name.version(),
            time: record.time,
            severity: notice.severity.as_str().into(),
            text: shown(&notice.text),
        };
        self.update_status(|s| {
            s.notices.retain(|o| o.id != n.id);
            s.notices.push(n.clone());
            s.notices
                .sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
            s.notice = s
                .notices
                .first()
                .map(|n| format!("[{}] {}", n.severity, n.text));
        });
        if announce {
            tracing::info!("notice [{}]: {}", n.severity, n.text);
            self.emit(NodeEvent::Notice(n));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_not_shown() {
        assert_eq!(super::shown("a\x1b[2Jb\nc\r"), "a [2Jb\nc ");
    }
}
