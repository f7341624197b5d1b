//! The PowerDNS remote backend protocol (HTTP connector with `post_json=1`, or the
//! unix-socket connector: the same JSON), pure: a request body and the current view
//! in, a status code and a JSON answer out.
//!
//! PowerDNS 4.7 calls `getAllDomains` (its zone cache: answering false there makes it
//! refuse every query), `getAllDomainMetadata`, and `lookup` with qtype `ANY` for real
//! queries (every record at the name must come back; PowerDNS picks). `initialize` is
//! called by the unix connector only. Whatever we do not implement, or cannot read,
//! gets `{"result": false, "log": [why]}` — the protocol's way to say no — and the
//! backend goes on serving.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::select::{Client, Sorted, nearest_v4, nearest_v6};
use super::zone::{Zone, absolute};

/// Largest request read (PowerDNS sends a few hundred bytes).
pub const MAX_REQUEST: usize = 64 * 1024;

/// The zone's one domain id.
const DOMAIN_ID: u64 = 1;

/// The addresses the backend answers with right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The addresses steered names are answered from: each client gets the nearest few.
    pub addrs: Sorted,
    /// True when these are not live-verified now (the last known good set, or the
    /// zone's fixed fallback): answered with the shorter `fallback_ttl`.
    pub fallback: bool,
}

/// One answer of the backend: HTTP status and JSON body.
#[derive(Debug, PartialEq)]
pub struct Reply {
    /// HTTP status code (200 also for the protocol's "no" to an unknown method).
    pub status: u16,
    /// The JSON answer: `{"result": …}`, with a `"log"` of why when the answer is no.
    pub body: Value,
}

fn no(status: u16, why: String) -> Reply {
    Reply {
        status,
        body: json!({ "result": false, "log": [why] }),
    }
}

fn yes(result: Value) -> Reply {
    Reply {
        status: 200,
        body: json!({ "result": result }),
    }
}

/// The answer to a request body over [`MAX_REQUEST`] bytes.
pub fn too_large() -> Reply {
    no(413, format!("request over {MAX_REQUEST} bytes"))
}

/// Answers one request body.
pub fn answer(body: &[u8], zone: &Zone, view: &View) -> Reply {
    if body.len() > MAX_REQUEST {
        return too_large();
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return no(400, format!("malformed JSON: {e}")),
    };
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return no(400, "no \"method\" string in the request".into());
    };
    let empty = json!({});
    let params = req.get("parameters").unwrap_or(&empty);
    let param = |k: &str| params.get(k).and_then(Value::as_str);
    match method {
        "initialize" => yes(json!(true)),
        "lookup" => {
            let (Some(qtype), Some(qname)) = (param("qtype"), param("qname")) else {
                return no(400, "lookup needs qtype and qname".into());
            };
            let client = param("real-remote")
                .and_then(Client::parse)
                .or_else(|| param("remote").and_then(Client::parse));
            lookup(zone, view, qtype, qname, client)
        }
        "list" => {
            let Some(name) = param("zonename") else {
                return no(400, "list needs zonename".into());
            };
            match absolute(name) {
                Ok(n) if n == zone.apex => yes(Value::Array(listing(zone, view))),
                _ => yes(json!(false)),
            }
        }
        "getAllDomains" => yes(json!([domain_info(zone)])),
        "getDomainInfo" => match param("name").map(absolute) {
            Some(Ok(n)) if n == zone.apex => yes(domain_info(zone)),
            _ => yes(json!(false)),
        },
        "getAllDomainMetadata" => yes(json!({})),
        "getDomainMetadata" => yes(json!([])),
        // No DNSSEC, no TSIG, no secondaries: "no" is the right answer, not an error.
        "getDomainKeys"
        | "getTSIGKey"
        | "getTSIGKeys"
        | "getUpdatedMasters"
        | "getUnfreshSlaveInfos"
        | "getBeforeAndAfterNamesAbsolute" => yes(json!(false)),
        other => no(200, format!("unknown method {other:?}")),
    }
}

fn domain_info(zone: &Zone) -> Value {
    json!({
        "id": DOMAIN_ID,
        "zone": zone.apex,
        "kind": "native",
        "serial": zone.soa.serial,
        "notified_serial": zone.soa.serial,
        "last_check": 0,
        "masters": [],
    })
}

fn rr(qtype: &str, qname: &str, content: String, ttl: u32) -> Value {
    json!({
        "qtype": qtype,
        "qname": qname,
        "content": content,
        "ttl": ttl,
        "auth": true,
        "domain_id": DOMAIN_ID,
    })
}

fn lookup(zone: &Zone, view: &View, qtype: &str, qname: &str, client: Option<Client>) -> Reply {
    let Ok(name) = absolute(qname) else {
        return yes(json!(false));
    };
    if !zone.contains(&name) {
        return yes(json!(false));
    }
    let qtype = qtype.to_ascii_uppercase();
    let want = |t: &str| qtype == "ANY" || qtype == t;
    let mut out = Vec::new();
    if name == zone.apex {
        if want("SOA") {
            out.push(rr("SOA", qname, zone.soa.content(), zone.soa.ttl));
        }
        if want("NS") {
            for ns in &zone.ns {
                out.push(rr("NS", qname, ns.clone(), zone.ns_ttl));
            }
        }
    }
    if zone.steer.contains(&name) {
        let ttl = if view.fallback {
            zone.fallback_ttl
        } else {
            zone.ttl
        };
        // Without a client address everyone gets the same, lowest, addresses.
        let client = client.unwrap_or(Client {
            addr: IpAddr::from([0, 0, 0, 0]),
            prefix: 0,
        });
        let mut steered = Vec::new();
        if want("A") {
            steered.extend(
                nearest_v4(&view.addrs.v4, client, zone.answers)
                    .into_iter()
                    .map(|a| ("A", a)),
            );
        }
        if want("AAAA") {
            steered.extend(
                nearest_v6(&view.addrs.v6, client, zone.answers)
                    .into_iter()
                    .map(|a| ("AAAA", a)),
            );
        }
        for (t, a) in steered {
            let mut r = rr(t, qname, a.to_string(), ttl);
            // The answer depends on the whole prefix the resolver gave.
            r["scopeMask"] = json!(client.prefix);
            out.push(r);
        }
    }
    for r in zone
        .records
        .iter()
        .filter(|r| r.name == name && want(&r.qtype))
    {
        out.push(rr(&r.qtype, qname, r.content.clone(), r.ttl));
    }
    if out.is_empty() {
        // A name with nothing at it (or not that type): PowerDNS makes NXDOMAIN or
        // NODATA from the ANY lookup it also does.
        return yes(json!(false));
    }
    yes(Value::Array(out))
}

/// The whole zone (AXFR), steered names with the view's first addresses.
fn listing(zone: &Zone, view: &View) -> Vec<Value> {
    let mut out = Vec::new();
    let mut names: Vec<&String> = vec![&zone.apex];
    names.extend(zone.steer.iter().filter(|n| **n != zone.apex));
    names.extend(zone.records.iter().map(|r| &r.name));
    names.dedup();
    for n in names {
        if let Reply { body, .. } = lookup(zone, view, "ANY", n, None)
            && let Some(rs) = body["result"].as_array()
        {
            for r in rs {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone::parse(
            r#"
zone = "site.example"
steer = ["site.example", "www.site.example"]
ns = ["ns1.site.example", "ns2.site.example"]
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
        .unwrap()
    }

    fn view(addrs: &[&str]) -> View {
        View {
            addrs: Sorted::new(addrs.iter().map(|a| a.parse().unwrap())),
            fallback: false,
        }
    }

    fn call(body: Value, v: &View) -> Reply {
        answer(body.to_string().as_bytes(), &zone(), v)
    }

    fn lookup_req(qtype: &str, qname: &str, real: &str) -> Value {
        json!({"method": "lookup", "parameters": {
            "qtype": qtype, "qname": qname, "remote": "127.0.0.1",
            "local": "127.0.0.1", "real-remote": real, "zone-id": -1}})
    }

    fn contents(r: &Reply, t: &str) -> Vec<String> {
        r.body["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["qtype"] == t)
            .map(|x| x["content"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn an_any_lookup_at_the_apex_returns_soa_ns_and_the_nearest_nodes() {
        let v = view(&[
            "10.0.0.1",
            "10.0.0.2",
            "10.0.0.3",
            "10.0.0.4",
            "2001:db8::1",
        ]);
        let r = call(lookup_req("ANY", "Site.Example.", "10.0.0.4/32"), &v);
        assert_eq!(r.status, 200);
        assert_eq!(
            contents(&r, "SOA"),
            ["ns1.site.example. hostmaster.site.example. 7 10800 3600 604800 60"]
        );
        assert_eq!(
            contents(&r, "NS"),
            ["ns1.site.example.", "ns2.site.example."]
        );
        assert_eq!(contents(&r, "A"), ["10.0.0.4", "10.0.0.3", "10.0.0.2"]);
        assert_eq!(contents(&r, "AAAA"), ["2001:db8::1"]);
        let a = &r.body["result"].as_array().unwrap()[3];
        assert_eq!(
            (a["ttl"].as_u64(), a["scopeMask"].as_u64()),
            (Some(20), Some(32))
        );
        assert_eq!(a["qname"], "Site.Example.", "the name as asked");
    }

    #[test]
    fn specific_types_other_names_and_the_fallback_ttl() {
        let mut v = view(&["10.0.0.1"]);
        let r = call(lookup_req("A", "www.site.example.", "192.0.2.9"), &v);
        assert_eq!(contents(&r, "A"), ["10.0.0.1"]);
        assert_eq!(r.body["result"].as_array().unwrap().len(), 1);
        let r = call(lookup_req("SOA", "site.example.", "192.0.2.9"), &v);
        assert_eq!(r.body["result"].as_array().unwrap().len(), 1);
        let r = call(lookup_req("ANY", "ns1.site.example.", "192.0.2.9"), &v);
        assert_eq!(contents(&r, "A"), ["192.0.2.53"]);
        for name in ["nothing.site.example.", "other.example.", "bad..name."] {
            let r = call(lookup_req("ANY", name, "192.0.2.9"), &v);
            assert_eq!(r.body, json!({"result": false}), "{name}");
        }
        v.fallback = true;
        let r = call(lookup_req("A", "site.example.", "192.0.2.9"), &v);
        assert_eq!(r.body["result"][0]["ttl"], 5);
        // No healthy node at all: NODATA for A, the SOA still there.
        let r = call(lookup_req("ANY", "site.example.", "192.0.2.9"), &view(&[]));
        assert!(contents(&r, "A").is_empty());
        assert_eq!(contents(&r, "SOA").len(), 1);
    }

    #[test]
    fn the_zone_cache_and_metadata_calls_are_answered() {
        let v = view(&[]);
        let r = call(
            json!({"method": "getAllDomains", "parameters": {"include_disabled": false}}),
            &v,
        );
        assert_eq!(r.body["result"][0]["zone"], "site.example.");
        assert_eq!(r.body["result"][0]["serial"], 7);
        let r = call(
            json!({"method": "getAllDomainMetadata", "parameters": {"name": "site.example."}}),
            &v,
        );
        assert_eq!(r.body, json!({"result": {}}));
        let r = call(
            json!({"method": "getDomainMetadata", "parameters": {"name": "site.example.", "kind": "PRESIGNED"}}),
            &v,
        );
        assert_eq!(r.body, json!({"result": []}));
        let r = call(
            json!({"method": "getDomainInfo", "parameters": {"name": "site.example."}}),
            &v,
        );
        assert_eq!(r.body["result"]["id"], 1);
        let r = call(
            json!({"method": "initialize", "parameters": {"path": "/dns"}}),
            &v,
        );
        assert_eq!(r.body, json!({"result": true}));
        let r = call(
            json!({"method": "getDomainKeys", "parameters": {"name": "site.example."}}),
            &v,
        );
        assert_eq!(r.body, json!({"result": false}));
        let r = call(
            json!({"method": "list", "parameters": {"zonename": "site.example.", "domain_id": 1}}),
            &view(&["10.0.0.1"]),
        );
        let all = r.body["result"].as_array().unwrap();
        assert_eq!(all.len(), 1 + 2 + 2 + 1, "{all:?}");
    }

    #[test]
    fn bad_requests_get_a_proper_no() {
        let v = view(&[]);
        let z = zone();
        for (body, status, why) in [
            (&b"{not json"[..], 400, "malformed JSON"),
            (b"[]", 400, "method"),
            (br#"{"method": 5}"#, 400, "method"),
            (br#"{"method": "lookup", "parameters": {}}"#, 400, "qtype"),
            (
                br#"{"method": "feedEnts", "parameters": {}}"#,
                200,
                "unknown method",
            ),
        ] {
            let r = answer(body, &z, &v);
            assert_eq!(r.status, status, "{}", String::from_utf8_lossy(body));
            assert_eq!(r.body["result"], false);
            assert!(
                r.body["log"][0].as_str().unwrap().contains(why),
                "{:?}",
                r.body
            );
        }
        let big = vec![b' '; MAX_REQUEST + 1];
        assert_eq!(answer(&big, &z, &v).status, 413);
    }
}
