//! Writes that the coordinator folds into one batch (while streams are connected) still
//! answer each caller with its own outcome, and every one of them is applied.

use std::net::SocketAddr;

use hs_nodestore::{NodePatch, Op};
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

    let writes = (0..16u16).map(|i| {
        let st = h.st.clone();
        let (target, ep) = if i % 2 == 0 {
            (
                ids[usize::from(i / 2) % 2],
                SocketAddr::from(([192, 0, 2, 1], 40000 + i)),
            )
        } else {
            (missing, SocketAddr::from(([192, 0, 2, 2], 40000 + i)))
        };
        tokio::spawn(async move {
            let patch = NodePatch {
                endpoints: Some(vec![ep]),
                ..NodePatch::default()
            };
            let a = st.apply(vec![Op::Patch(target, patch)]).await.unwrap();
            (i, a.results.len(), a.results[0].is_ok())
        })
    });
    let outcomes = futures_util::future::join_all(writes).await;
    for o in outcomes {
        let (i, n, ok) = o.unwrap();
        assert_eq!(n, 1, "write {i} got the results of other writes");
        assert_eq!(ok, i % 2 == 0, "write {i} got another write's outcome");
    }
    // Each node holds the endpoint of one of the writes aimed at it.
    let snap = h.st.store().load_full();
    for (k, id) in ids.iter().enumerate() {
        let eps = &snap.node(*id).unwrap().node.endpoints;
        assert_eq!(eps.len(), 1);
        let port = eps[0].port() - 40000;
        assert_eq!(port % 2, 0);
        assert_eq!(usize::from(port / 2) % 2, k);
    }
    assert!(snap.node(missing).is_none());
}
