//! A refused policy write changes nothing: hundreds of seeded mutations of a valid policy
//! (most of them broken, some still valid) are written with `policy set`'s path
//! (`store_policy`), and after each refusal the stored text, the policy in force and every
//! node's packet filter are what they were before it.

use std::sync::Arc;

use hs_policy::synth::Rng;
use hs_types::model::Node;

use crate::harness::{Client, Harness};

/// The valid policy the mutations start from: groups, tag owners, hosts, acls, a grant and
/// SSH, so a mutation can break any section.
const BASE: &str = r#"{
  "groups": {"group:ops": ["alice@"]},
  "tagOwners": {"tag:web": ["group:ops"]},
  "hosts": {"lan": "10.1.0.0/24"},
  "acls": [
    {"action": "accept", "src": ["group:ops"], "dst": ["tag:web:80,443", "lan:22"]},
    {"action": "accept", "src": ["alice@"], "dst": ["alice@:*"]},
  ],
  "grants": [{"src": ["tag:web"], "dst": ["alice@"], "ip": ["tcp:8080"]}],
  "ssh": [{"action": "accept", "src": ["group:ops"], "dst": ["tag:web"], "users": ["root"]}],
}"#;

/// Tokens a mutation may put in place of another: names nothing defines, malformed ports,
/// protocols and actions, and valid names, so some mutations stay valid.
const SWAPS: &[&str] = &[
    "group:nope",
    "tag:nope",
    "nobody@",
    "tag:web:99999",
    "alice@:0-",
    "lan:22-1",
    "udp:8080",
    "tcp:80",
    "allow-ish",
    "10.1.0.300/24",
    "autogroup:self",
    "autogroup:member",
    "*",
    "tag:web",
    "alice@",
];

/// One mutation of `text`, chosen by `rng`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if text.is_empty() || lines.is_empty() {
        return "{".to_owned();
    }
    match rng.below(5) {
        // Cut the document short.
        0 => text[..rng.below(text.len())].to_owned(),
        // Drop a line.
        1 => {
            let i = rng.below(lines.len());
            lines
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join("\n")
        }
        // Repeat a line (a duplicate key or rule).
        2 => {
            let i = rng.below(lines.len());
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            out.join("\n")
        }
        // Put a stray character somewhere.
        3 => {
            let at = rng.below(text.len());
            let at = (0..=at)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let c = ["}", "\"", ",", ":", "x"][rng.below(5)];
            format!("{}{c}{}", &text[..at], &text[at..])
        }
        // Swap one quoted string for another token.
        _ => {
            let quoted: Vec<(usize, usize)> = text
                .match_indices('"')
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0] + 1, p[1]))
                .collect();
            if quoted.is_empty() {
                return format!("{text}\"");
            }
            let (a, b) = quoted[rng.below(quoted.len())];
            format!(
                "{}{}{}",
                &text[..a],
                SWAPS[rng.below(SWAPS.len())],
                &text[b..]
            )
        }
    }
}

/// What is in force, as the database, the control state and the nodes see it.
#[derive(Debug, PartialEq)]
struct InForce {
    stored: Option<String>,
    policy: Option<Arc<hs_policy::Policy>>,
    filters: Vec<Arc<str>>,
}

async fn in_force(h: &Harness, nodes: &[Node]) -> InForce {
    let snap = h.st.store().load_full();
    InForce {
        stored: h.db.tx(|c| c.get_policy()).unwrap().map(|r| r.data),
        policy: h.st.policy().await.unwrap(),
        filters: nodes
            .iter()
            .map(|n| snap.policy().packet_filter(n))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_policy_write_never_changes_what_is_in_force() {
    let h = Harness::start().await;
    let (_ca, a) = h.join_as("a", h.user).await;
    let web_key = h.key_with(hs_db::NewPreAuthKey {
        tags: vec!["tag:web".into()],
        ..hs_db::NewPreAuthKey::default()
    });
    let _cw = Client::registered(&h, "web", &web_key).await;
    let nodes = h.db.tx(|c| c.list_nodes()).unwrap();
    assert_eq!(nodes.len(), 2, "a and web joined: {nodes:?}");
    assert!(nodes.iter().any(|n| n.id == a.id));
    h.st.store_policy(BASE.to_owned()).await.unwrap();

    let mut rng = Rng::new(0x5eed_2026);
    let mut current = BASE.to_owned();
    let (mut refused, mut accepted) = (0, 0);
    for round in 0..300 {
        // Mostly one step from the policy in force; now and then two, to reach further.
        let mut text = mutate(&current, &mut rng);
        if rng.below(4) == 0 {
            text = mutate(&text, &mut rng);
        }
        let before = in_force(&h, &nodes).await;
        match h.st.store_policy(text.clone()).await {
            Err(e) => {
                refused += 1;
                assert!(
                    !e.to_string().is_empty(),
                    "round {round}: a refusal says why"
                );
                let after = in_force(&h, &nodes).await;
                assert!(
                    after == before,
                    "round {round}: the refused write ({e}) changed what is in force\n\
                     text:\n{text}\nbefore: {before:?}\nafter: {after:?}"
                );
            }
            Ok(row) => {
                accepted += 1;
                assert_eq!(
                    row.data, text,
                    "round {round}: the stored row is the text written"
                );
                let after = in_force(&h, &nodes).await;
                assert_eq!(
                    after.stored.as_deref(),
                    Some(text.as_str()),
                    "round {round}"
                );
                assert_eq!(
                    after.policy.as_deref(),
                    Some(&hs_policy::Policy::parse(&text).unwrap()),
                    "round {round}: the accepted text is the policy in force"
                );
                current = text;
            }
        }
    }
    // The generator must exercise both paths, or the test proves nothing.
    assert!(
        refused >= 100 && accepted >= 10,
        "refused {refused}, accepted {accepted}"
    );
}
