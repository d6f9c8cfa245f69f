//! DERP map loading from a URL (injected fetcher) and a YAML file on disk, and the refresh
//! loop's keep-previous-on-failure, backoff and change-only publishing, on paused time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hs_derp::refresh::{Backoff, DerpMapLoader, UrlFetcher, refresh_loop};
use tokio::sync::watch;

type Script = Vec<Result<&'static str, &'static str>>;

/// A fetcher answering from `script` in order (repeating the last answer), counting calls.
fn scripted(script: Script) -> (UrlFetcher, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(Mutex::new(script));
    let c = calls.clone();
    let f: UrlFetcher = Arc::new(move |_url: &str| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let s = script.lock().expect("script lock");
        let answer = s[n.min(s.len() - 1)];
        Box::pin(async move { answer.map(|b| b.as_bytes().to_vec()).map_err(str::to_owned) })
    });
    (f, calls)
}

const MAP_A: &str =
    r#"{"Regions":{"1":{"RegionCode":"a","Nodes":[{"Name":"1a","HostName":"a"}]}}}"#;
const MAP_B: &str =
    r#"{"Regions":{"1":{"RegionCode":"b","Nodes":[{"Name":"1a","HostName":"b"}]}}}"#;
const MAP_C: &str =
    r#"{"Regions":{"1":{"RegionCode":"c","Nodes":[{"Name":"1a","HostName":"c"}]}}}"#;

fn loader(fetch: UrlFetcher, paths: Vec<std::path::PathBuf>) -> DerpMapLoader {
    DerpMapLoader {
        urls: vec!["https://maps.invalid/derp".into()],
        paths,
        embedded: None,
        seed: 0,
        fetch,
    }
}

fn code(m: &hs_types::tailcfg::DERPMap, id: i64) -> String {
    m.regions.as_ref().expect("regions")[&id]
        .region_code
        .clone()
}

#[tokio::test]
async fn urls_then_paths_merge_and_a_missing_file_fails_the_whole_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("derp.yaml");
    std::fs::write(&path, "regions:\n  1:\n    regioncode: from-file\n    nodes:\n      - name: f\n  900:\n    regioncode: own\n").unwrap();
    let (fetch, _) = scripted(vec![Ok(MAP_A)]);
    let m = loader(fetch.clone(), vec![path.clone()])
        .load()
        .await
        .unwrap();
    assert_eq!(code(&m, 1), "from-file", "paths come after URLs and win");
    assert_eq!(code(&m, 900), "own");

    let missing = dir.path().join("nope.yaml");
    let err = loader(fetch, vec![path, missing.clone()])
        .load()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let (failing, _) = scripted(vec![Err("503 Service Unavailable")]);
    let err = loader(failing, vec![]).load().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("https://maps.invalid/derp") && msg.contains("503"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_keeps_the_old_map_backs_off_and_publishes_only_changes() {
    // Initial load, then: two failures, a new map, the same map again, another new map.
    let (fetch, calls) = scripted(vec![
        Ok(MAP_A),
        Err("down"),
        Err("still down"),
        Ok(MAP_B),
        Ok(MAP_B),
        Ok(MAP_C),
    ]);
    let l = loader(fetch, vec![]);
    let initial = l.load().await.unwrap();
    assert_eq!(code(&initial, 1), "a");
    let (tx, mut rx) = watch::channel(Arc::new(initial));
    let every = Duration::from_secs(3 * 3600);
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let start = tokio::time::Instant::now();
    tokio::spawn(refresh_loop(l, every, backoff, tx));

    rx.changed().await.unwrap();
    assert_eq!(code(&rx.borrow_and_update(), 1), "b");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // One period, then retries after 1 s and 2 s rather than after whole periods.
    assert_eq!(start.elapsed(), every + Duration::from_secs(3));

    // The next refresh returns the same map: nobody is woken.
    while calls.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    tokio::task::yield_now().await;
    assert!(!rx.has_changed().unwrap());

    rx.changed().await.unwrap();
    assert_eq!(code(&rx.borrow_and_update(), 1), "c");
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn refresh_stops_when_nobody_listens() {
    let (fetch, calls) = scripted(vec![Ok(MAP_A)]);
    let (tx, rx) = watch::channel(Arc::new(hs_types::tailcfg::DERPMap::default()));
    let task = tokio::spawn(refresh_loop(
        loader(fetch, vec![]),
        Duration::from_secs(10),
        Backoff::default(),
        tx,
    ));
    drop(rx);
    task.await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
