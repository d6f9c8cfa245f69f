//! Writes that the coordinator folds into one batch (while streams are connected) still
//! answer each caller with its own outcome, and the NodeStore ends where the database does.

use hs_types::NodeId;

use crate::harness::{Client, Harness, next_update};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_get_their_own_results() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let _a = Client::registered(&h, "a", &key).await;
    let b = Client::registered(&h, "b", &key).await;
    // A connected stream is what makes the coordinator hold writes for a shared batch.
    let mut stream = b.stream(&h).await;
    let _ = next_update(&mut stream).await;
    let snap = h.st.store().load_full();
    let ids: Vec<NodeId> = snap.nodes().map(|e| e.node.id).collect();
    assert_eq!(ids.len(), 2);
    let missing = NodeId(999_999);

    let t0 = chrono::Utc::now();
    let writes = (0..16u16).map(|i| {
        let st = h.st.clone();
        let target = if i % 2 == 0 {
            ids[usize::from(i / 2) % 2]
        } else {
            missing
        };
        let at = t0 + chrono::Duration::seconds(i64::from(i));
        tokio::spawn(async move { (i, st.logout_node(target, at).await.is_ok()) })
    });
    let outcomes = futures_util::future::join_all(writes).await;
    for o in outcomes {
        let (i, ok) = o.unwrap();
        assert_eq!(ok, i % 2 == 0, "write {i} got another write's outcome");
    }
    // Whichever write came last, the NodeStore holds what the database holds: writes reach
    // both in the same order.
    let snap = h.st.store().load_full();
    for id in &ids {
        let held = snap.node(*id).unwrap();
        let row = h.st.db().tx(|c| c.get_node(*id)).unwrap().unwrap();
        assert!(held.logged_out);
        assert_eq!(held.node.expiry, row.expiry, "node {id:?}");
        let secs = (row.expiry.unwrap() - t0).num_seconds();
        assert_eq!(secs % 2, 0, "an expiry no write set: {secs}");
    }
    assert!(snap.node(missing).is_none());
}
