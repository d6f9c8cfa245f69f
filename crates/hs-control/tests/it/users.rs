//! User commands reach connected clients without a restart: a rename shows in every map's
//! user profiles, and a user's nodes leaving takes them out of every peer list. Deleting a
//! user who still owns nodes is refused with Go Headscale's words and changes nothing.
//!
//! The clients are Tailscale's Rust client (`ts_control`: its keys, Noise session and map
//! stream). It does not surface `UserProfiles`, so the rename is read from the raw map
//! frames its session receives.

use hs_db::NewUser;
use hs_types::UserId;

use crate::harness::{Harness, open_map, read_frame};
use crate::view::until;

fn profile_names(frame: &serde_json::Value) -> Vec<String> {
    frame["UserProfiles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["LoginName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_user_reaches_connected_clients() {
    let h = Harness::start().await;
    let bob =
        h.st.create_user(NewUser {
            name: "bob".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let (watcher, _) = h.join_as("watcher", h.user).await;
    let (_b, _) = h.join_as("bobs-laptop", bob.id).await;
    let mut read = open_map(&watcher, &h, None).await;
    let first = read_frame(&mut read).await.unwrap();
    assert!(profile_names(&first).contains(&"bob".to_owned()), "{first}");

    h.st.rename_user(bob.id, "robert".into()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let f = read_frame(&mut read).await.unwrap();
        seen = profile_names(&f);
        if seen.contains(&"robert".to_owned()) {
            break;
        }
    }
    assert!(
        seen.contains(&"robert".to_owned()),
        "the renamed user never reached the client: {seen:?}"
    );
    // Both the database and the control plane hold the new name.
    let row = h.db.tx(|c| c.get_user(bob.id)).unwrap().unwrap();
    assert_eq!(row.name, "robert");
    assert_eq!(h.st.store().load().user(bob.id).unwrap().name, "robert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_owns_nodes_is_not_deleted_and_one_who_does_not_is() {
    let h = Harness::start().await;
    let bob =
        h.st.create_user(NewUser {
            name: "bob".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let (watcher, _) = h.join_as("watcher", h.user).await;
    let (_b, bobs) = h.join_as("bobs-laptop", bob.id).await;
    let mut stream = watcher.stream(&h).await;
    let mut view = crate::view::View::default();
    until(&mut stream, &mut view, "bob's node as a peer", |v| {
        v.peers.len() == 1
    })
    .await;

    let refused = h.st.delete_user(bob.id).await.unwrap_err();
    assert_eq!(refused.to_string(), hs_control::USER_HAS_NODES);
    assert!(h.db.tx(|c| c.get_user(bob.id)).unwrap().is_some());
    assert_eq!(h.node_count(), 2, "no node was deleted");
    assert!(h.st.store().load().user(bob.id).is_some());

    // Once bob's node is gone the watcher loses the peer, and bob can go.
    h.st.delete_node(bobs.id).await.unwrap();
    until(&mut stream, &mut view, "bob's node gone", |v| {
        v.peers.is_empty()
    })
    .await;
    h.st.delete_user(bob.id).await.unwrap();
    assert!(h.db.tx(|c| c.get_user(bob.id)).unwrap().is_none());
    assert!(h.st.store().load().user(bob.id).is_none());
    let again = h.st.delete_user(bob.id).await.unwrap_err();
    assert!(matches!(again, hs_control::Error::NotFound(_)), "{again}");
    let unknown = UserId(bob.id.get() + 100);
    assert!(h.st.rename_user(unknown, "x".into()).await.is_err());
}
