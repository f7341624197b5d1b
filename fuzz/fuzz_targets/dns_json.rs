//! Request bodies for the PowerDNS remote backend (HTTP or unix-socket connector): any
//! bytes a local process or a confused PowerDNS may send. Never panics; every answer is
//! the protocol's JSON (a `result`), with a status the connectors know, and bounded.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarmsite_node::dns::backend::{View, answer};
use swarmsite_node::dns::select::Sorted;
use swarmsite_node::dns::zone::Zone;

fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        Zone::parse(
            r#"
zone = "site.example"
steer = ["site.example", "www.site.example"]
ns = ["ns1.site.example"]
[soa]
primary = "ns1.site.example"
hostmaster = "hostmaster.site.example"
serial = 7
[[record]]
name = "ns1.site.example"
type = "A"
content = "192.0.2.53"
"#,
            0,
        )
        .expect("zone")
    })
}

fuzz_target!(|data: &[u8]| {
    let view = View {
        addrs: Sorted::new(
            ["192.0.2.1", "198.51.100.7", "2001:db8::1", "2001:db8:1::2"]
                .iter()
                .map(|a| a.parse().unwrap()),
        ),
        fallback: data.first().is_some_and(|b| b & 1 == 1),
    };
    let reply = answer(data, zone(), &view);
    assert!(matches!(reply.status, 200 | 400 | 413), "{}", reply.status);
    assert!(reply.body.get("result").is_some());
    assert!(reply.body.to_string().len() < 64 * 1024);
});
