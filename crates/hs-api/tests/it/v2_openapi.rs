//! `/api/v2/openapi.yaml` cannot drift from the router: it is served publicly, every operation
//! it documents is routed (and answers only statuses it documents), every route the v2
//! sources declare is documented, and no method it leaves out is answered.
//!
//! The router's own routes come from the `.route(...)` calls in `src/v2/`: axum cannot list
//! a router's routes, and a hand-kept list here would drift just as the document could.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::support::{Fixture, later};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// `(METHOD, path template)`, the form both sides are compared in.
type Op = (String, String);

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    body: Option<(&str, &str)>,
) -> Answer {
    let mut req = http::Request::builder().method(method).uri(uri);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let payload = match body {
        Some((ctype, text)) => {
            req = req.header("content-type", ctype);
            text.to_owned()
        }
        None => String::new(),
    };
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(payload)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// A tailnet with user alice (id 1), her node (device 1, registered with pre-auth key 1),
/// DNS settings and an admin API key, behind the main listener's API router.
async fn server() -> (Fixture, axum::Router, String) {
    let f = Fixture::new().await;
    let alice = f.user("alice");
    f.live_node(1, "laptop", &alice, &[]).await;
    f.state
        .reload_dns(&hs_config::DnsConfig {
            magic_dns: true,
            base_domain: "example.com".to_owned(),
            override_local_dns: false,
            nameservers_global: vec!["1.1.1.1".to_owned()],
            nameservers_split: BTreeMap::default(),
            search_domains: vec![],
            extra_records: vec![],
            extra_records_path: None,
        })
        .await
        .unwrap();
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let router = hs_api::serve::http_router(f.admin.clone());
    (f, router, key)
}

/// The document as the server serves it, without credentials.
async fn served_document(router: &axum::Router) -> Value {
    let a = send(router, "GET", "/api/v2/openapi.yaml", None, None).await;
    assert_eq!(a.status, 200, "the document is public");
    assert_eq!(a.content_type, "application/yaml");
    let doc: Value = serde_yaml_ng::from_slice(&a.body).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    doc
}

fn documented(doc: &Value) -> BTreeMap<Op, &Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = method.to_ascii_uppercase();
            if METHODS.contains(&m.as_str()) {
                ops.insert((m, path.clone()), op);
            } else {
                assert!(
                    ["parameters", "summary", "description"].contains(&method.as_str()),
                    "{path}: {method} is neither a method this test probes nor path metadata"
                );
            }
        }
    }
    ops
}

/// Every `.route("path", get(..).post(..))` in `src/v2/`, as `(METHOD, path)`.
fn declared() -> BTreeSet<Op> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/v2");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut ops = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        for other in [".nest(", ".nest_service(", ".route_service(", ".fallback("] {
            assert!(
                !code.contains(other),
                "{}: {other} adds routes this test does not read; teach it",
                file.display()
            );
        }
        for (at, _) in code.match_indices(".route(") {
            ops.extend(route_call(&code[at + ".route(".len()..], &file));
        }
    }
    ops
}

/// One `.route(` call's path and methods, from the text after its opening parenthesis.
fn route_call(rest: &str, file: &std::path::Path) -> Vec<Op> {
    let rest = rest.trim_start();
    let Some(lit) = rest.strip_prefix('"') else {
        panic!(
            "{}: a .route( whose path is not a string literal: {}",
            file.display(),
            &rest[..rest.len().min(60)]
        );
    };
    let end = lit.find('"').unwrap();
    let path = lit[..end].to_owned();
    assert!(path.starts_with("/api/v2/"), "{}: {path}", file.display());
    // The method router: names called at the call's own depth (`get(a).post(b)`); anything
    // nested (handlers, closures) is deeper.
    let mut methods = Vec::new();
    let mut depth = 0usize;
    let mut ident = String::new();
    let mut in_str = false;
    for c in lit[end + 1..].chars() {
        if in_str {
            in_str = c != '"';
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' => {
                if depth == 0 && !ident.is_empty() {
                    let m = ident.to_ascii_uppercase();
                    assert!(
                        METHODS.contains(&m.as_str()),
                        "{}: {path}: routing function {ident}( is not one this test knows",
                        file.display()
                    );
                    methods.push((m, path.clone()));
                }
                depth += 1;
            }
            ')' if depth == 0 => return methods,
            ')' => depth -= 1,
            _ => {}
        }
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else {
            ident.clear();
        }
    }
    panic!("{}: unterminated .route( for {path}", file.display());
}

/// The operation's security requirements: its own, else the document's.
fn public(doc: &Value, op: &Value) -> bool {
    let sec = op.get("security").unwrap_or(&doc["security"]);
    sec.as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_object().unwrap().is_empty())
        || sec.as_array().unwrap().is_empty()
}

fn concrete(template: &str) -> String {
    template.replace("{tailnet}", "-").replace("{id}", "1")
}

/// A minimal body for an operation that takes one: JSON when the operation accepts it.
fn body_for(op: &Value) -> Option<(&'static str, &'static str)> {
    let content = op.get("requestBody")?["content"].as_object().unwrap();
    for probe in [
        ("application/json", "{}"),
        ("application/x-www-form-urlencoded", ""),
    ] {
        if content.contains_key(probe.0) {
            return Some(probe);
        }
    }
    panic!("no probe body for {:?}", content.keys().collect::<Vec<_>>());
}

#[tokio::test]
async fn document_and_router_agree() {
    let (_f, router, key) = server().await;
    let doc = served_document(&router).await;
    let ops = documented(&doc);

    let declared = declared();
    let documented: BTreeSet<Op> = ops.keys().cloned().collect();
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes in src/v2 missing from openapi.yaml: {undocumented:?}; \
         operations in openapi.yaml no .route( declares: {unrouted:?}"
    );

    // Without credentials: the auth layer runs only on routes that matched, so a 401 shows
    // the operation is routed, and public operations must not need credentials.
    for ((method, path), op) in &ops {
        let a = send(&router, method, &concrete(path), None, body_for(op)).await;
        if public(&doc, op) {
            assert!(
                ![401, 404, 405].contains(&a.status),
                "{method} {path} is documented as public: {}",
                a.status
            );
        } else {
            assert_eq!(a.status, 401, "{method} {path} without credentials");
        }
    }

    // With the admin key, over existing ids: routed (no 404 or 405) and answered only with
    // statuses the document lists. Deletions go last so the others find device, key and
    // user 1.
    let mut order: Vec<_> = ops.iter().collect();
    order.sort_by_key(|((m, _), _)| m == "DELETE");
    for ((method, path), op) in order {
        let a = send(&router, method, &concrete(path), Some(&key), body_for(op)).await;
        let status = a.status.to_string();
        assert!(
            ![404, 405].contains(&a.status),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            op["responses"].get(&status).is_some(),
            "{method} {path} answered {status}, which the document does not list: {}",
            String::from_utf8_lossy(&a.body)
        );
    }

    // No method the document leaves out is answered on a documented path (HEAD, which axum
    // answers on every GET route, is not an operation of its own).
    let paths: BTreeSet<&String> = ops.keys().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS {
            if ops.contains_key(&(method.to_owned(), path.clone())) {
                continue;
            }
            let a = send(&router, method, &concrete(path), Some(&key), None).await;
            assert_eq!(a.status, 405, "{method} {path} is undocumented");
        }
    }

    // And near misses of documented paths are not routes.
    for path in [
        "/api/v2",
        "/api/v2/tailnet/-",
        "/api/v2/tailnet/-/dns",
        "/api/v2/tailnet/-/devices/1",
        "/api/v2/device/1/ip",
        "/api/v2/users",
    ] {
        let a = send(&router, "GET", path, Some(&key), None).await;
        assert_eq!(a.status, 404, "GET {path}");
    }
}

/// Every `$ref` in `v` names something `doc` has.
fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref") {
                let pointer = r.as_str().unwrap().strip_prefix('#').unwrap();
                assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
            }
            m.values().for_each(|x| check_refs(doc, x));
        }
        Value::Array(a) => a.iter().for_each(|x| check_refs(doc, x)),
        _ => {}
    }
}

#[tokio::test]
async fn document_refs_and_links_resolve() {
    let (_f, router, _) = server().await;
    let doc = served_document(&router).await;
    check_refs(&doc, &doc);
    let ids: BTreeSet<&str> = documented(&doc)
        .values()
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), documented(&doc).len(), "operationIds are unique");
    for op in documented(&doc).values() {
        for resp in op["responses"].as_object().unwrap().values() {
            for link in resp
                .get("links")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|l| l.values())
            {
                let target = link["operationId"].as_str().unwrap();
                assert!(ids.contains(target), "link to unknown operation {target}");
            }
        }
    }
}
