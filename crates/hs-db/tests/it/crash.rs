//! Crash atomicity: a child process writes batches of nodes, one transaction per batch, and
//! is killed with SIGKILL at varying moments. Each time, the parent reopens the database and
//! finds every batch either complete or absent, and every batch the child reported
//! committed present.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use hs_db::{Db, NewUser};
use hs_types::model::{Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic};

use crate::support;

const BATCH: usize = 300;
const CHILD_ENV: &str = "HS_DB_CRASH_CHILD_DB";

fn node(batch: u32, i: usize) -> Node {
    let mut mk = [0u8; 32];
    mk[..4].copy_from_slice(&batch.to_be_bytes());
    mk[4..12].copy_from_slice(&(i as u64).to_be_bytes());
    let t = Utc.timestamp_opt(1_700_000_000, 0).single().expect("t");
    Node {
        id: NodeId(0),
        machine_key: MachinePublic::from_bytes(mk),
        node_key: NodePublic::from_bytes(mk),
        disco_key: DiscoPublic::from_bytes([0; 32]),
        endpoints: vec![],
        hostinfo: None,
        ipv4: None,
        ipv6: None,
        hostname: format!("b{batch}"),
        given_name: format!("b{batch}-{i}"),
        user_id: None,
        register_method: RegisterMethod::AuthKey,
        tags: vec!["tag:crash".into()],
        auth_key_id: None,
        expiry: None,
        last_seen: None,
        approved_routes: vec![],
        created_at: t,
        updated_at: t,
    }
}

/// The child side: only does anything when re-executed by [`sigkill_mid_batch`] with the
/// database path in the environment; then it writes batches until it is killed.
#[test]
fn crash_child_entry() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db =
        Db::open(&hs_db::DbConfig::Sqlite(hs_db::SqliteConfig::new(path))).expect("child open");
    let start: u32 = db
        .tx(|c| c.list_users())
        .expect("users")
        .len()
        .try_into()
        .expect("small");
    let mut out = std::io::stdout();
    for batch in start.. {
        db.tx(|c| {
            // Each batch: one user row plus BATCH nodes, all or nothing.
            c.create_user(
                &NewUser {
                    name: format!("batch{batch}"),
                    ..NewUser::default()
                },
                Utc.timestamp_opt(1_700_000_000, 0).single().expect("t"),
            )?;
            for i in 0..BATCH {
                c.create_node(&node(batch, i))?;
            }
            Ok(())
        })
        .expect("batch");
        writeln!(out, "committed {batch}").expect("report");
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_mid_batch() {
    let f = support::sqlite_db();
    drop(support::open(&f.config()));
    let exe = std::env::current_exe().expect("test binary");
    let mut last_reported: Option<u32> = None;
    for round in 0..5u32 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &f.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Let it commit a couple of batches, then kill it at a varying point in the next.
        let mut seen = 0;
        while seen < 2 {
            let line = lines.next().expect("child output").expect("line");
            if let Some(n) = line.strip_prefix("committed ") {
                last_reported = Some(n.trim().parse().expect("batch number"));
                seen += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(u64::from(3 + round * 7)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("committed ") {
                last_reported = Some(n.trim().parse().expect("batch number"));
            }
        }

        let db = support::open(&f.config());
        let users = db.tx(|c| c.list_users()).expect("users");
        let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
        let mut per_batch = std::collections::BTreeMap::<String, usize>::new();
        for n in &nodes {
            *per_batch.entry(n.hostname.clone()).or_default() += 1;
        }
        assert_eq!(per_batch.len(), users.len(), "every batch has its user row");
        for (b, count) in &per_batch {
            assert_eq!(*count, BATCH, "batch {b} is partial after SIGKILL");
        }
        let last = last_reported.expect("child committed something");
        assert!(
            users.len() as u32 > last,
            "batch {last} was reported committed but is missing"
        );
    }
}
