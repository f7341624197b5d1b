//! The dashboard's TypeScript shapes (`ui/src/api.ts`) against what the node really sends:
//! every field an interface names must be in the JSON of the Rust type it mirrors, nested
//! inline objects included, so a field renamed or removed on one side fails here instead
//! of leaving the window blank. (TypeScript may leave out fields the UI does not read.)
//! Read: `ui/src/api.ts` and the upload page's `UploadList` (`ui/src/pages/uploads.ts`).

use std::collections::BTreeMap;

use serde_json::Value;

/// An inline object type's fields: name → the nested object's fields, when its type is
/// an inline `{ … }` (otherwise empty).
#[derive(Debug, Default)]
struct Fields(BTreeMap<String, Fields>);

/// Parses the body of an interface or inline object type starting just after its `{`;
/// returns the fields and the rest after the matching `}`.
fn parse_object(mut text: &str) -> (Fields, &str) {
    let mut fields = BTreeMap::new();
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("/**") {
            text = &rest[rest.find("*/").expect("comment closed") + 2..];
            continue;
        }
        if let Some(rest) = text.strip_prefix("//") {
            text = rest.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        if let Some(rest) = text.strip_prefix('}') {
            return (Fields(fields), rest);
        }
        let colon = text.find(':').expect("a field");
        let name = text[..colon].trim().trim_end_matches('?').to_string();
        text = text[colon + 1..].trim_start();
        let mut nested = Fields::default();
        if let Some(rest) = text.strip_prefix('{') {
            let (inner, rest) = parse_object(rest);
            nested = inner;
            text = rest;
        }
        // The rest of the type: up to the `;` at this depth (arrays of inline objects
        // and unions are skipped whole).
        let mut depth = 0i32;
        let mut end = text.len();
        for (i, c) in text.char_indices() {
            match c {
                '{' | '[' | '(' | '<' => depth += 1,
                '}' | ']' | ')' | '>' if depth > 0 => depth -= 1,
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                '}' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        text = &text[end..];
        fields.insert(name, nested);
    }
}

fn interfaces(ts: &str) -> BTreeMap<String, Fields> {
    let mut out = BTreeMap::new();
    let mut rest = ts;
    while let Some(i) = rest.find("export interface ") {
        rest = &rest[i + "export interface ".len()..];
        let brace = rest.find('{').expect("interface body");
        let name = rest[..brace].trim().to_string();
        let (fields, after) = parse_object(&rest[brace + 1..]);
        out.insert(name, fields);
        rest = after;
    }
    out
}

/// Fields of `ts` that `json` lacks, as paths.
fn missing(ts: &Fields, json: &Value, path: &str, out: &mut Vec<String>) {
    let map = match json {
        Value::Object(map) => map,
        // A list of inline objects (`{ … }[]`): each element.
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                missing(ts, item, &format!("{path}[{i}]"), out);
            }
            return;
        }
        _ => return, // null (an absent Option) or a plain value: nothing inside
    };
    for (name, nested) in &ts.0 {
        let here = format!("{path}.{name}");
        match map.get(name) {
            None => out.push(here),
            Some(v) => missing(nested, v, &here, out),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialisable")
}

#[test]
fn the_dashboard_reads_only_fields_the_node_sends() {
    let ui = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/src/");
    let mut ts = String::new();
    for file in ["api.ts", "pages/uploads.ts"] {
        ts += &std::fs::read_to_string(format!("{ui}{file}")).expect("ui/src/ file");
    }
    let shapes = interfaces(&ts);
    let sync = crate::node::SyncStatus {
        version: 1,
        have_bytes: 0,
        total_bytes: 0,
        peers: 0,
        bytes_per_sec: 0,
        fetched_bytes: 0,
        error: None,
    };
    let mut status = crate::node::Status {
        sync: Some(sync.clone()),
        blacklist: Some(Default::default()),
        ..Default::default()
    };
    status.update.progress = Some(Default::default());
    status.update.package = Some(Default::default());
    let pairs: Vec<(&str, Value)> = vec![
        ("Status", json(&status)),
        ("SyncStatus", json(&sync)),
        (
            "BlacklistStatus",
            json(&crate::node::BlacklistStatus::default()),
        ),
        ("UpdateStatus", json(&status.update)),
        ("Settings", json(&crate::settings::Settings::default())),
        (
            "PeerStatus",
            json(&crate::node::PeerStatus {
                addr: String::new(),
                client: None,
                outgoing: true,
            }),
        ),
        (
            "HttpPortStatus",
            json(&crate::node::HttpPortStatus {
                addr: String::new(),
                bound: true,
                error: None,
            }),
        ),
        (
            "Evidence",
            json(&crate::evidence::Evidence {
                time: 1,
                peer: Some("192.0.2.1:1".into()),
                node_id: Some(String::new()),
                object: Some(String::new()),
                reason: String::new(),
                detail: String::new(),
            }),
        ),
        ("UploadList", json(&upload_list())),
    ];
    let mut gaps = Vec::new();
    for (name, value) in &pairs {
        let shape = shapes
            .get(*name)
            .unwrap_or_else(|| panic!("ui/src has no interface {name}"));
        assert!(shape.0.len() >= 3, "{name}: parsed {:?}", shape.0.keys());
        missing(shape, value, name, &mut gaps);
    }
    assert!(
        gaps.is_empty(),
        "ui/src names fields the node does not send: {gaps:?}"
    );
}

/// An upload queue with one of everything, as `GET /api/uploads` sends it.
fn upload_list() -> crate::node::UploadList {
    crate::node::UploadList {
        quota_bytes: 1,
        used_bytes: 0,
        max_size: 1,
        refused: 0,
        last_refusal: Some(String::new()),
        packing: vec![crate::node::PackingView {
            token: String::new(),
            label: String::new(),
            input_bytes: 0,
            packed_bytes: 0,
            error: Some(String::new()),
        }],
        entries: vec![crate::node::EntryView {
            ih: String::new(),
            size: 0,
            state: crate::upload::queue::UploadState::Waiting,
            added_ms: 0,
            next_hop_ms: Some(0),
            receipted_ms: Some(0),
            have_bytes: Some(0),
            originated: true,
            token: Some(String::new()),
            label: Some(String::new()),
        }],
    }
}
