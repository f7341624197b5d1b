//! Metainfo as a wire peer hands it over: the first 20 bytes name the info hash, the
//! rest is cut into `ss_meta` payloads and fed to the fetch machine, whose assembled
//! bytes go through the same check as any metainfo (`torrents::metainfo::check`), and
//! the whole input is checked as a `.torrent` too. Never panics; never finds metainfo
//! that does not hash to the info hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmsite_node::metainfo::{Metainfo, MetainfoAction, MetainfoConfig};
use swarmsite_node::torrents::metainfo::check;
use swarmsite_node::wire::Message;

/// `ss_meta`'s index in `wire::message::EXTENSIONS`.
const META: usize = 9;

fuzz_target!(|data: &[u8]| {
    let Some((ih, rest)) = data.split_first_chunk::<20>() else {
        return;
    };
    let _ = check(ih, rest);
    let mut m = Metainfo::new(MetainfoConfig::default(), |ih, b| check(ih, b).is_ok());
    m.want(*ih, &[1u32, 2, 3], 0);
    let mut now = 0;
    for chunk in rest.chunks(257) {
        now += 10;
        if let Ok(Message::Meta(part)) = Message::decode_payload(META, chunk) {
            m.on_part(1 + (now as u32 / 10) % 3, part, now);
        }
        m.handle_timeout(now);
        while let Some(a) = m.poll_action() {
            if let MetainfoAction::Found { ih, bytes } = a {
                assert!(check(&ih, &bytes).is_ok());
            }
        }
    }
});
