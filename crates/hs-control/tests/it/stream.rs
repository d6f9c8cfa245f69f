//! The map stream at the byte level: zstd frames, DNS pushed on reload, a second stream
//! replacing the first, and streams ended cleanly on shutdown.

use hs_config::DnsConfig;
use tokio::io::AsyncReadExt as _;

use crate::harness::{Client, Harness, open_map, post_map, read_frame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_stream_dns_reload_replacement_and_shutdown() {
    let h = Harness::start().await;
    let c = Client::registered(&h, "z", &h.key(false, false)).await;

    let mut s1 = open_map(&c, &h, None).await;
    let first = read_frame(&mut s1).await.unwrap();
    assert_eq!(first["Node"]["Name"], "z.example.com.");
    assert!(first["DERPMap"]["Regions"]["999"].is_object());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extra.json");
    std::fs::write(
        &path,
        r#"[{"name":"db.example.com","type":"A","value":"100.64.0.99"}]"#,
    )
    .unwrap();
    let dns = DnsConfig {
        magic_dns: true,
        base_domain: "example.com".into(),
        override_local_dns: false,
        nameservers_global: vec!["1.1.1.1".into()],
        nameservers_split: Default::default(),
        search_domains: Vec::new(),
        extra_records: Vec::new(),
        extra_records_path: Some(path.clone()),
    };
    h.st.reload_dns(&dns).await.unwrap();
    let mut pushed = read_frame(&mut s1).await.unwrap();
    while pushed.get("DNSConfig").is_none() {
        pushed = read_frame(&mut s1).await.unwrap();
    }
    let records = pushed["DNSConfig"]["ExtraRecords"].as_array().unwrap();
    assert_eq!(records[0]["Name"], "db.example.com");
    assert_eq!(records[0]["Value"], "100.64.0.99");

    // A broken file is refused and changes nothing.
    std::fs::write(&path, "not json").unwrap();
    let err = h.st.reload_dns(&dns).await.unwrap_err().to_string();
    assert!(err.contains("extra_records_path"), "{err}");

    // A second stream for the node replaces the first, which ends cleanly.
    let mut s2 = open_map(&c, &h, None).await;
    assert!(read_frame(&mut s2).await.unwrap().get("Node").is_some());
    loop {
        match read_frame(&mut s1).await {
            None => break,
            Some(v) => assert!(v.get("Node").is_none() || v.get("Peers").is_none()),
        }
    }
    // A one-shot poll is answered beside the stream, which keeps running.
    let mut body = Vec::new();
    post_map(&c, &h, serde_json::json!({"Stream": false}))
        .await
        .read_to_end(&mut body)
        .await
        .unwrap();
    let (json, rest) = hs_mapper::decode_frame(&body).unwrap();
    assert!(rest.is_empty(), "exactly one frame");
    let one: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(one["Node"]["Name"], "z.example.com.");
    std::fs::write(
        &path,
        r#"[{"name":"db2.example.com","type":"A","value":"100.64.0.98"}]"#,
    )
    .unwrap();
    h.st.reload_dns(&dns).await.unwrap();
    let mut next = read_frame(&mut s2)
        .await
        .expect("the stream survived the one-shot poll");
    while next.get("DNSConfig").is_none() {
        next = read_frame(&mut s2)
            .await
            .expect("the stream survived the one-shot poll");
    }
    assert_eq!(
        next["DNSConfig"]["ExtraRecords"][0]["Name"],
        "db2.example.com"
    );

    // Shutdown ends the remaining stream.
    h.st.close_all_streams();
    while read_frame(&mut s2).await.is_some() {}
}

/// DNS edits made through the API lie over the config file's `dns` section: every stream
/// gets them at once, a SIGHUP reload keeps them, and a server started without a DNS
/// section refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_dns_edits_reach_streams_and_survive_a_reload() {
    let h = Harness::start().await;
    let c = Client::registered(&h, "d", &h.key(false, false)).await;
    let mut s = open_map(&c, &h, None).await;
    read_frame(&mut s).await.unwrap();

    let edits = hs_control::DnsOverrides {
        nameservers: Some(vec!["9.9.9.9".into()]),
        split: Some([("corp.example".to_owned(), vec!["10.9.0.53".to_owned()])].into()),
        ..Default::default()
    };
    let err = h.st.set_dns_overrides(edits.clone()).await.unwrap_err();
    assert!(err.to_string().contains("without DNS settings"), "{err}");

    let dns = DnsConfig {
        magic_dns: true,
        base_domain: "example.com".into(),
        override_local_dns: true,
        nameservers_global: vec!["1.1.1.1".into()],
        nameservers_split: Default::default(),
        search_domains: vec!["search.example".into()],
        extra_records: Vec::new(),
        extra_records_path: None,
    };
    h.st.reload_dns(&dns).await.unwrap();
    h.st.set_dns_overrides(edits).await.unwrap();
    let mut pushed = read_frame(&mut s).await.unwrap();
    while pushed["DNSConfig"]["Resolvers"][0]["Addr"] != "9.9.9.9" {
        pushed = read_frame(&mut s)
            .await
            .expect("the edited DNS config is pushed");
    }
    let cfg = &pushed["DNSConfig"];
    assert_eq!(cfg["Routes"]["corp.example"][0]["Addr"], "10.9.0.53");
    assert_eq!(
        cfg["Domains"],
        serde_json::json!(["example.com", "search.example"]),
        "what the API did not edit stays as the config file says"
    );

    // SIGHUP re-reads the config file's section; the API's edits stay over it.
    h.st.reload_dns(&dns).await.unwrap();
    let now = h.st.dns_settings().unwrap();
    assert_eq!(now.nameservers_global, ["9.9.9.9"]);
    assert_eq!(now.search_domains, ["search.example"]);
    let edited =
        h.st.edit_dns_overrides(|cur| {
            let mut next = cur.clone();
            next.magic_dns = Some(false);
            Ok(next)
        })
        .await
        .unwrap();
    assert_eq!(
        edited.nameservers.as_deref(),
        Some(&["9.9.9.9".to_owned()][..])
    );
    assert!(!h.st.dns_settings().unwrap().magic_dns);
    let refused =
        h.st.edit_dns_overrides(|_| Err("no".to_owned()))
            .await
            .unwrap_err();
    assert!(refused.to_string().contains("no"));
    assert!(
        !h.st.dns_settings().unwrap().magic_dns,
        "a refused edit changes nothing"
    );
}
