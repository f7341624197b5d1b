//! The zone the DNS front serves, read from a small TOML file (docs/DNS.md): the apex,
//! its SOA and NS, the names steered to volunteers, TTLs, static records, and the
//! prober's settings. Everything is checked when read, so the backend never has to
//! answer with something it cannot stand behind.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::prober::ProbeSettings;

/// Why a zone file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// Not TOML of the zone file's shape: bad syntax, an unknown key, a missing or
    /// mistyped value.
    #[error("{0}")]
    Parse(String),
    /// Well-formed but against a rule: a bad name, a name outside the zone, a value out
    /// of range.
    #[error("{0}")]
    Invalid(String),
}

/// The file as written by the publisher. Unknown keys are refused (a typo would
/// otherwise silently fall back to a default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneFile {
    zone: String,
    #[serde(default)]
    steer: Vec<String>,
    #[serde(default = "defaults::answers")]
    answers: usize,
    #[serde(default = "defaults::ttl")]
    ttl: u32,
    #[serde(default = "defaults::fallback_ttl")]
    fallback_ttl: u32,
    #[serde(default)]
    fallback: Vec<IpAddr>,
    soa: SoaFile,
    ns: Vec<String>,
    #[serde(default = "defaults::ns_ttl")]
    ns_ttl: u32,
    #[serde(default, rename = "record")]
    records: Vec<RecordFile>,
    #[serde(default)]
    probe: ProbeFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoaFile {
    primary: String,
    hostmaster: String,
    serial: Option<u32>,
    #[serde(default = "defaults::refresh")]
    refresh: u32,
    #[serde(default = "defaults::retry")]
    retry: u32,
    #[serde(default = "defaults::expire")]
    expire: u32,
    #[serde(default = "defaults::minimum")]
    minimum: u32,
    #[serde(default = "defaults::ns_ttl")]
    ttl: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    name: String,
    #[serde(rename = "type")]
    qtype: String,
    content: String,
    #[serde(default = "defaults::ns_ttl")]
    ttl: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeFile {
    #[serde(default = "defaults::interval")]
    interval: f64,
    #[serde(default = "defaults::timeout")]
    timeout: f64,
    #[serde(default = "defaults::jitter")]
    jitter: f64,
    #[serde(default = "defaults::drop_after")]
    drop_after: u32,
    #[serde(default = "defaults::retry_max")]
    retry_max: f64,
    #[serde(default = "defaults::concurrency")]
    concurrency: usize,
    #[serde(default = "defaults::max_candidates")]
    max_candidates: usize,
    #[serde(default = "defaults::ports")]
    ports: Vec<u16>,
    #[serde(default)]
    seeds: Vec<IpAddr>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default = "defaults::discover_interval")]
    discover_interval: f64,
}

impl Default for ProbeFile {
    fn default() -> Self {
        toml::from_str("").expect("every probe field has a default")
    }
}

mod defaults {
    pub fn answers() -> usize {
        3
    }
    pub fn ttl() -> u32 {
        20
    }
    pub fn fallback_ttl() -> u32 {
        5
    }
    pub fn ns_ttl() -> u32 {
        3600
    }
    pub fn refresh() -> u32 {
        10800
    }
    pub fn retry() -> u32 {
        3600
    }
    pub fn expire() -> u32 {
        604800
    }
    pub fn minimum() -> u32 {
        60
    }
    pub fn interval() -> f64 {
        60.0
    }
    pub fn timeout() -> f64 {
        5.0
    }
    pub fn jitter() -> f64 {
        0.2
    }
    pub fn drop_after() -> u32 {
        1
    }
    pub fn retry_max() -> f64 {
        600.0
    }
    pub fn concurrency() -> usize {
        64
    }
    pub fn max_candidates() -> usize {
        200_000
    }
    pub fn ports() -> Vec<u16> {
        vec![80, 18880]
    }
    pub fn discover_interval() -> f64 {
        60.0
    }
}

/// The SOA fields, names absolute (trailing dot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// The primary name server (MNAME).
    pub primary: String,
    /// The hostmaster's mailbox as a name (RNAME: `hostmaster.site.example.`).
    pub hostmaster: String,
    /// The zone's serial; when the file gives none, the time the zone was read (unix
    /// seconds).
    pub serial: u32,
    /// Seconds before secondaries check the serial again.
    pub refresh: u32,
    /// Seconds before secondaries retry a failed refresh.
    pub retry: u32,
    /// Seconds after which secondaries that cannot refresh stop answering.
    pub expire: u32,
    /// Negative-answer TTL in seconds: how long resolvers remember NXDOMAIN or NODATA.
    pub minimum: u32,
    /// TTL of the SOA record itself, in seconds.
    pub ttl: u32,
}

impl Soa {
    /// The SOA content as PowerDNS reads it.
    pub fn content(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.primary,
            self.hostmaster,
            self.serial,
            self.refresh,
            self.retry,
            self.expire,
            self.minimum
        )
    }
}

/// A record served as written (glue for the name servers, TXT, MX...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRecord {
    /// Owner name, absolute and lowercase, inside the zone.
    pub name: String,
    /// Record type, uppercase: one of A, AAAA, CAA, CNAME, MX, TXT, NS.
    pub qtype: String,
    /// Record data as PowerDNS reads it (trimmed, one line).
    pub content: String,
    /// TTL in seconds.
    pub ttl: u32,
}

/// Where the prober looks and how.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// The prober's schedule: interval, jitter, back-off, concurrency, memory.
    pub settings: ProbeSettings,
    /// How long one probe waits, per port.
    pub timeout: Duration,
    /// Ports tried in order; the first that serves the release record counts.
    pub ports: Vec<u16>,
    /// Addresses probed whatever the DHT says (the publisher's own mirrors).
    pub seeds: Vec<IpAddr>,
    /// Probe and answer loopback/private/link-local addresses too (test networks).
    pub allow_private: bool,
    /// How often candidates are gathered anew (seeds, wire peers, the DHT).
    pub discover_interval: Duration,
}

/// A checked zone: every name lowercase and absolute (`site.example.`).
#[derive(Clone, Debug)]
pub struct Zone {
    /// The zone's apex (`site.example.`).
    pub apex: String,
    /// Names answered with the nearest healthy volunteers.
    pub steer: Vec<String>,
    /// Addresses per steered answer and family, nearest first (1 to 16).
    pub answers: usize,
    /// TTL of steered answers from live-verified volunteers, in seconds.
    pub ttl: u32,
    /// TTL of steered answers when nothing is verified live right now (never longer
    /// than `ttl`), so resolvers come back soon.
    pub fallback_ttl: u32,
    /// Addresses answered when no volunteer was ever seen healthy (the publisher's own
    /// mirror).
    pub fallback: Vec<IpAddr>,
    /// The apex's SOA.
    pub soa: Soa,
    /// The apex's name servers (at least one).
    pub ns: Vec<String>,
    /// TTL of the NS records, in seconds.
    pub ns_ttl: u32,
    /// Records served as written, besides the steered ones.
    pub records: Vec<StaticRecord>,
    /// Where and how the prober looks for healthy volunteers.
    pub probe: ProbeConfig,
}

/// Record types a static record may have: what a site's zone needs besides steering.
const STATIC_TYPES: [&str; 7] = ["A", "AAAA", "CAA", "CNAME", "MX", "TXT", "NS"];

/// `Name.Example` → `name.example.`; refuses what cannot be a host name.
pub fn absolute(name: &str) -> Result<String, ZoneError> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(ZoneError::Invalid(format!("{name:?} is not a domain name")));
    }
    Ok(format!("{n}."))
}

impl Zone {
    /// Parses and checks a zone file; `now` (unix seconds) is the serial when the file
    /// gives none.
    pub fn parse(text: &str, now: u64) -> Result<Zone, ZoneError> {
        let f: ZoneFile = toml::from_str(text).map_err(|e| ZoneError::Parse(e.to_string()))?;
        let invalid = |s: String| Err(ZoneError::Invalid(s));
        let apex = absolute(&f.zone)?;
        let inside = |n: &str| n == apex || n.ends_with(&format!(".{apex}"));
        let mut steer = Vec::new();
        for s in if f.steer.is_empty() {
            vec![f.zone.clone()]
        } else {
            f.steer.clone()
        } {
            let n = absolute(&s)?;
            if !inside(&n) {
                return invalid(format!("steered name {n} is outside the zone {apex}"));
            }
            steer.push(n);
        }
        if !(1..=16).contains(&f.answers) {
            return invalid(format!("answers = {}: between 1 and 16", f.answers));
        }
        if f.ns.is_empty() {
            return invalid("ns: at least one name server".into());
        }
        let ns =
            f.ns.iter()
                .map(|n| absolute(n))
                .collect::<Result<Vec<_>, _>>()?;
        let mut records = Vec::new();
        for r in &f.records {
            let name = absolute(&r.name)?;
            let qtype = r.qtype.to_ascii_uppercase();
            if !inside(&name) {
                return invalid(format!("record {name} is outside the zone {apex}"));
            }
            if !STATIC_TYPES.contains(&qtype.as_str()) {
                return invalid(format!(
                    "record {name}: type {qtype} is not one of {}",
                    STATIC_TYPES.join(", ")
                ));
            }
            let content = r.content.trim().to_string();
            let family_ok = match qtype.as_str() {
                "A" => content.parse::<std::net::Ipv4Addr>().is_ok(),
                "AAAA" => content.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => !content.is_empty() && !content.contains('\n'),
            };
            if !family_ok {
                return invalid(format!("record {name} {qtype}: bad content {content:?}"));
            }
            if steer.contains(&name) && (qtype == "A" || qtype == "AAAA" || qtype == "CNAME") {
                return invalid(format!(
                    "record {name} {qtype}: the name is steered, its addresses come from the prober"
                ));
            }
            records.push(StaticRecord {
                name,
                qtype,
                content,
                ttl: r.ttl,
            });
        }
        let p = &f.probe;
        let secs = |what: &str, v: f64, min: f64, max: f64| {
            if v.is_finite() && (min..=max).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(ZoneError::Invalid(format!(
                    "probe.{what} = {v}: between {min} and {max} seconds"
                )))
            }
        };
        // SPEC §10: each healthy node is probed again at least every 60 s.
        let interval = secs("interval", p.interval, 0.1, 60.0)?;
        let timeout = secs("timeout", p.timeout, 0.1, 60.0)?;
        let retry_max = secs("retry_max", p.retry_max, p.interval, 86_400.0)?;
        let discover_interval = secs("discover_interval", p.discover_interval, 0.1, 3600.0)?;
        if !(0.0..1.0).contains(&p.jitter) {
            return invalid(format!("probe.jitter = {}: from 0 up to 1", p.jitter));
        }
        if p.drop_after == 0 {
            return invalid("probe.drop_after = 0: at least 1 failed probe".into());
        }
        if !(1..=4096).contains(&p.concurrency) {
            return invalid(format!(
                "probe.concurrency = {}: between 1 and 4096",
                p.concurrency
            ));
        }
        if !(1..=10_000_000).contains(&p.max_candidates) {
            return invalid(format!(
                "probe.max_candidates = {}: between 1 and 10000000",
                p.max_candidates
            ));
        }
        if p.ports.is_empty() || p.ports.contains(&0) {
            return invalid("probe.ports: at least one port, none 0".into());
        }
        if f.ttl == 0 || f.fallback_ttl == 0 || f.fallback_ttl > f.ttl {
            return invalid(format!(
                "ttl = {}, fallback_ttl = {}: both above 0, the fallback's no longer",
                f.ttl, f.fallback_ttl
            ));
        }
        Ok(Zone {
            soa: Soa {
                primary: absolute(&f.soa.primary)?,
                hostmaster: absolute(&f.soa.hostmaster)?,
                serial: f.soa.serial.unwrap_or(now as u32),
                refresh: f.soa.refresh,
                retry: f.soa.retry,
                expire: f.soa.expire,
                minimum: f.soa.minimum,
                ttl: f.soa.ttl,
            },
            apex,
            steer,
            answers: f.answers,
            ttl: f.ttl,
            fallback_ttl: f.fallback_ttl,
            fallback: f.fallback,
            ns,
            ns_ttl: f.ns_ttl,
            records,
            probe: ProbeConfig {
                settings: ProbeSettings {
                    interval_ms: interval.as_millis() as u64,
                    jitter: p.jitter,
                    drop_after: p.drop_after,
                    retry_max_ms: retry_max.as_millis() as u64,
                    concurrency: p.concurrency,
                    max_candidates: p.max_candidates,
                },
                timeout,
                ports: p.ports.clone(),
                seeds: p.seeds.clone(),
                allow_private: p.allow_private,
                discover_interval,
            },
        })
    }

    /// Whether `name` (absolute, lowercase) is in this zone.
    pub fn contains(&self, name: &str) -> bool {
        name == self.apex || name.ends_with(&format!(".{}", self.apex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
zone = "Site.Example"
ns = ["ns1.site.example"]
[soa]
primary = "ns1.site.example"
hostmaster = "hostmaster.site.example"
"#;

    #[test]
    fn a_minimal_zone_gets_the_documented_defaults() {
        let z = Zone::parse(MINIMAL, 1_700_000_000).unwrap();
        assert_eq!(z.apex, "site.example.");
        assert_eq!(z.steer, vec!["site.example."]);
        assert_eq!((z.answers, z.ttl, z.fallback_ttl), (3, 20, 5));
        assert_eq!(z.soa.serial, 1_700_000_000);
        assert_eq!(
            z.soa.content(),
            "ns1.site.example. hostmaster.site.example. 1700000000 10800 3600 604800 60"
        );
        assert_eq!(z.probe.ports, vec![80, 18880]);
        assert_eq!(z.probe.settings.interval_ms, 60_000);
        assert_eq!(z.probe.settings.concurrency, 64);
        assert!(!z.probe.allow_private);
        assert!(z.contains("www.site.example."));
        assert!(!z.contains("othersite.example."));
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        // (top-level lines, tables after [soa], what the error says)
        let bad = [
            ("zone = \"a..b\"", "", "not a domain name"),
            ("zone = \"s.example\"\nanswers = 0", "", "between 1 and 16"),
            (
                "zone = \"s.example\"\nsteer = [\"w.other.example\"]",
                "",
                "outside the zone",
            ),
            (
                "zone = \"s.example\"\nttl = 5\nfallback_ttl = 10",
                "",
                "no longer",
            ),
            (
                "zone = \"s.example\"\ncolour = \"blue\"",
                "",
                "unknown field",
            ),
            (
                "zone = \"s.example\"",
                "[probe]\ninterval = 120",
                "probe.interval",
            ),
            (
                "zone = \"s.example\"",
                "[probe]\nconcurrency = 0",
                "probe.concurrency",
            ),
            ("zone = \"s.example\"", "[probe]\nports = []", "probe.ports"),
            (
                "zone = \"s.example\"",
                "[probe]\ndrop_after = 0",
                "probe.drop_after",
            ),
            (
                "zone = \"s.example\"",
                "[[record]]\nname = \"s.example\"\ntype = \"A\"\ncontent = \"192.0.2.1\"",
                "steered",
            ),
            (
                "zone = \"s.example\"",
                "[[record]]\nname = \"x.s.example\"\ntype = \"A\"\ncontent = \"nope\"",
                "bad content",
            ),
            (
                "zone = \"s.example\"",
                "[[record]]\nname = \"x.s.example\"\ntype = \"SRV\"\ncontent = \"1 2 3 x\"",
                "not one of",
            ),
        ];
        for (top, tables, want) in bad {
            let text = format!(
                "{top}\nns = [\"ns1.s.example\"]\n[soa]\nprimary = \"ns1.s.example\"\nhostmaster = \"h.s.example\"\n{tables}\n"
            );
            let err = Zone::parse(&text, 0).unwrap_err().to_string();
            assert!(err.contains(want), "{top} {tables}: {err}");
        }
    }

    #[test]
    fn static_records_are_kept_as_written() {
        let text = format!(
            "{MINIMAL}\n[[record]]\nname = \"ns1.site.example\"\ntype = \"a\"\ncontent = \"192.0.2.53\"\n\n[[record]]\nname = \"site.example\"\ntype = \"TXT\"\ncontent = '\"hello\"'\nttl = 60\n"
        );
        let z = Zone::parse(&text, 0).unwrap();
        assert_eq!(
            z.records,
            vec![
                StaticRecord {
                    name: "ns1.site.example.".into(),
                    qtype: "A".into(),
                    content: "192.0.2.53".into(),
                    ttl: 3600
                },
                StaticRecord {
                    name: "site.example.".into(),
                    qtype: "TXT".into(),
                    content: "\"hello\"".into(),
                    ttl: 60
                }
            ]
        );
    }
}
