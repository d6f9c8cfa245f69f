//! Headscale's DERP, DNS, transport and dynamic-ACL scenarios (`embedded_derp_test.go`,
//! `derp_verify_endpoint_test.go`, `dns_test.go`, `ts2021_websocket_test.go`, `general_test.go`,
//! `acl_test.go`, `auth_web_flow_test.go`).
//!
//! Three need more than the `tailscale` clients, all built on demand with the local Go
//! toolchain, as the clients are: `tailscaled` with the `ts_debug_websockets` build tag (the
//! only way Tailscale's client speaks DERP over WebSocket outside a browser) in
//! `~/.cache/hs-integration/<version>-wsderp/`; Tailscale's `derper` in the clients' own
//! directory; and `transport-probe`, a small Go program kept in this file that checks the
//! server with Tailscale's client libraries (`controlbase` over a WebSocket, `derphttp`), as
//! Headscale's tests do from the test process. It runs inside the scenario's namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::client::Client;
use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, Scenario, WAIT, by_ip, cli_json, two_users};
use crate::scenarios_auth::{id_str, list_nodes, web_login};
use crate::server::{CONTROL_ADDR, KeyOpts};
use crate::tcp::{MARKER, nc_get};

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestTS2021WebSocketGET", ts2021_websocket_get),
    (
        "TestResolveMagicDNSExtraRecordsPath",
        resolve_magic_dns_extra_records_path,
    ),
    ("TestDERPVerifyEndpoint", derp_verify_endpoint),
    ("TestDERPServerWebsocketScenario", derp_server_websocket),
    ("TestPingAllByIPManyUpDown", ping_all_by_ip_many_up_down),
    (
        "TestACLDynamicUnknownUserAddition",
        acl_dynamic_unknown_user_addition,
    ),
    (
        "TestACLDynamicUnknownUserRemoval",
        acl_dynamic_unknown_user_removal,
    ),
    (
        "TestACLGroupDeletionExactReproduction",
        acl_group_deletion_exact_reproduction,
    ),
    (
        "TestAuthWebFlowLogoutAndReloginNewUser",
        web_flow_logout_relogin_new_user,
    ),
];

/// The Go program behind `transport-probe` (see the module documentation).
const PROBE_MAIN_GO: &str = r#"// transport-probe: the Go side of hs-integration's transport scenarios, run inside a
// scenario's network namespace. It uses Tailscale's own client libraries, as Headscale's
// tests do, so the server is checked against the implementations real clients run.
//
//	transport-probe ts2021ws CONTROL_URL
//	    opens /ts2021 as a WebSocket GET (what the js/wasm client does) and completes the
//	    Noise handshake; prints TS2021_WS_OK.
//	transport-probe derpverify DERP_URL
//	    connects to the relay with the node key of the tailscaled state file named by
//	    HSIT_STATE_FILE (a fresh random key when unset) and waits for the server's info,
//	    which a relay verifying clients only sends to admitted nodes; prints DERP_ADMITTED
//	    (exit 0) or DERP_REFUSED (exit 3).
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"tailscale.com/control/controlbase"
	"tailscale.com/control/controlhttp/controlhttpcommon"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/net/wsconn"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

var errRefused = errors.New("refused")

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: transport-probe ts2021ws CONTROL_URL | derpverify DERP_URL")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "ts2021ws":
		err = ts2021WebSocket(os.Args[2])
	case "derpverify":
		err = derpVerify(os.Args[2], os.Getenv("HSIT_STATE_FILE"))
	default:
		err = fmt.Errorf("unknown check %q", os.Args[1])
	}
	if errors.Is(err, errRefused) {
		fmt.Println("DERP_REFUSED:", err)
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "transport-probe:", err)
		os.Exit(1)
	}
}

func ts2021WebSocket(control string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(control)
	if err != nil {
		return err
	}
	capVer := tailcfg.CurrentCapabilityVersion
	resp, err := http.Get(control + "/key?v=" + strconv.Itoa(int(capVer)))
	if err != nil {
		return fmt.Errorf("GET /key: %w", err)
	}
	var keyResp tailcfg.OverTLSPublicKeyResponse
	err = json.NewDecoder(resp.Body).Decode(&keyResp)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("GET /key: %s: %w", resp.Status, err)
	}
	if keyResp.PublicKey.IsZero() {
		return errors.New("GET /key: no Noise public key")
	}
	init, cont, err := controlbase.ClientDeferred(key.NewMachine(), keyResp.PublicKey, uint16(capVer))
	if err != nil {
		return err
	}
	scheme := "ws"
	if u.Scheme == "https" {
		scheme = "wss"
	}
	q := url.Values{controlhttpcommon.HandshakeHeaderName: {base64.StdEncoding.EncodeToString(init)}}
	wsURL := scheme + "://" + u.Host + "/ts2021?" + q.Encode()
	ws, wsResp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		Subprotocols: []string{controlhttpcommon.UpgradeHeaderValue},
	})
	if err != nil {
		status := "no response"
		if wsResp != nil {
			status = wsResp.Status
		}
		return fmt.Errorf("WebSocket GET /ts2021 (%s): %w", status, err)
	}
	if got := ws.Subprotocol(); got != controlhttpcommon.UpgradeHeaderValue {
		return fmt.Errorf("WebSocket GET /ts2021: subprotocol %q, want %q", got, controlhttpcommon.UpgradeHeaderValue)
	}
	conn, err := cont(ctx, wsconn.NetConn(ctx, ws, websocket.MessageBinary, wsURL))
	if err != nil {
		return fmt.Errorf("Noise handshake over the WebSocket: %w", err)
	}
	defer conn.Close()
	if conn.Peer() != keyResp.PublicKey {
		return fmt.Errorf("handshake completed with %v, but /key announced %v", conn.Peer(), keyResp.PublicKey)
	}
	fmt.Printf("TS2021_WS_OK protocol_version=%d\n", conn.ProtocolVersion())
	return nil
}

// nodeKey reads the current profile's node private key from a tailscaled state file.
func nodeKey(stateFile string) (key.NodePrivate, error) {
	var zero key.NodePrivate
	b, err := os.ReadFile(stateFile)
	if err != nil {
		return zero, err
	}
	var state map[string][]byte
	if err := json.Unmarshal(b, &state); err != nil {
		return zero, fmt.Errorf("%s: %w", stateFile, err)
	}
	profile := state["_current-profile"]
	var prefs struct {
		Config struct {
			PrivateNodeKey key.NodePrivate
		}
	}
	if err := json.Unmarshal(state[string(profile)], &prefs); err != nil {
		return zero, fmt.Errorf("%s: profile %q: %w", stateFile, profile, err)
	}
	if prefs.Config.PrivateNodeKey.IsZero() {
		return zero, fmt.Errorf("%s: profile %q holds no node key", stateFile, profile)
	}
	return prefs.Config.PrivateNodeKey, nil
}

func derpVerify(derpURL, stateFile string) error {
	priv := key.NewNode()
	if stateFile != "" {
		var err error
		if priv, err = nodeKey(stateFile); err != nil {
			return err
		}
	}
	c, err := derphttp.NewClient(priv, derpURL, func(string, ...any) {}, netmon.NewStatic())
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("%w: connect: %v", errRefused, err)
	}
	m, err := c.Recv()
	if err != nil {
		return fmt.Errorf("%w: no server info: %v", errRefused, err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		return fmt.Errorf("%w: first message is %T, not the server info", errRefused, m)
	}
	fmt.Println("DERP_ADMITTED", priv.Public().ShortString())
	return nil
}
"#;

/// Its module file; `go build -mod=mod` completes the requirements and `go.sum`.
const PROBE_GO_MOD: &str =
    "module hsit/transportprobe\n\ngo 1.26\n\nrequire tailscale.com v1.102.3\n";

/// `~/.cache/hs-integration`.
fn cache_root() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/hs-integration"))
}

/// The Tailscale version of the clients under test (`v1.102.3`): the name of their directory.
fn client_version(ctx: &Ctx) -> anyhow::Result<(PathBuf, String)> {
    let dir = ctx
        .clients
        .tailscaled
        .parent()
        .context("tailscaled has no directory")?
        .to_owned();
    let v = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with('v'))
        .with_context(|| {
            format!(
                "{}: the clients' directory is not named after a Tailscale version",
                dir.display()
            )
        })?
        .to_owned();
    Ok((dir, v))
}

/// Runs a Go build step on the host (it needs the module proxy the first time).
fn go(args: &[&str], gobin: Option<&Path>, cwd: Option<&Path>, what: &str) -> anyhow::Result<()> {
    println!("  building {what} with go {} (once; cached after)", args[0]);
    let mut cmd = Command::new("go");
    cmd.args(args).env("GOTOOLCHAIN", "local");
    if let Some(b) = gobin {
        cmd.env("GOBIN", b);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d).env("GOFLAGS", "-mod=mod");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running go to build {what} (is Go installed?)"))?;
    ensure!(
        out.status.success(),
        "building {what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `tailscaled` of the clients' version built with `ts_debug_websockets`, which lets
/// `TS_DEBUG_DERP_WS_CLIENT` make it dial DERP over WebSocket (Headscale's `WithWebsocketDERP`
/// builds its client image with the same tag).
fn websocket_tailscaled(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let (_, v) = client_version(ctx)?;
    let dir = cache_root()?.join(format!("{v}-wsderp"));
    let bin = dir.join("tailscaled");
    if !bin.is_file() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        go(
            &[
                "install",
                "-tags",
                "ts_debug_websockets",
                &format!("tailscale.com/cmd/tailscaled@{v}"),
            ],
            Some(&dir),
            None,
            "tailscaled with WebSocket DERP",
        )?;
    }
    Ok(bin)
}

/// Tailscale's `derper` of the clients' version, next to the clients.
fn derper(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let (dir, v) = client_version(ctx)?;
    let bin = dir.join("derper");
    if !bin.is_file() {
        go(
            &["install", &format!("tailscale.com/cmd/derper@{v}")],
            Some(&dir),
            None,
            "derper",
        )?;
    }
    Ok(bin)
}

/// `transport-probe`, built once per version of its source.
fn probe() -> anyhow::Result<PathBuf> {
    let hash = [PROBE_MAIN_GO, PROBE_GO_MOD]
        .iter()
        .flat_map(|s| s.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let dir = cache_root()?.join(format!("transport-probe-{hash:016x}"));
    let bin = dir.join("transport-probe");
    if !bin.is_file() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("main.go"), PROBE_MAIN_GO).context("writing main.go")?;
        std::fs::write(dir.join("go.mod"), PROBE_GO_MOD).context("writing go.mod")?;
        go(
            &["build", "-o", "transport-probe", "."],
            None,
            Some(&dir),
            "transport-probe",
        )?;
    }
    Ok(bin)
}

/// Runs `transport-probe <args>` in the scenario's namespace; returns exit code and output.
fn run_probe(e: &Env, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(i32, String)> {
    let bin = probe()?;
    let out =
        e.ns.command(&bin.display().to_string())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .context("running transport-probe")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text.trim().to_owned()))
}

/// Users `users` with `per_user` clients each (`u1-n1`, … for `userN`), logged in with one
/// reusable key per user, all Running. `before_start` runs on the prepared environment (TLS,
/// server environment, a policy). Peers are waited for when `all_peers`.
fn users_env(
    ctx: &Ctx,
    name: &str,
    users: &[&str],
    per_user: usize,
    client_env: &[(&str, &str)],
    all_peers: bool,
    before_start: &dyn Fn(&mut Env) -> anyhow::Result<()>,
) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    let mut keys = Vec::new();
    for u in users {
        let id = e.server.create_user(u)?;
        keys.push(e.server.create_key(
            id,
            KeyOpts {
                reusable: true,
                ..KeyOpts::default()
            },
        )?);
    }
    before_start(&mut e)?;
    e.start_server(ctx)?;
    for (ui, key) in keys.iter().enumerate() {
        for n in 0..per_user {
            e.add_client(&format!("u{}-n{}", ui + 1, n + 1), client_env)?;
            e.clients.last().context("just added")?.up(key)?;
        }
    }
    e.wait_running()?;
    if all_peers {
        e.wait_all_peers_online()?;
    }
    Ok(e)
}

/// `TestTS2021WebSocketGET`: `/ts2021` opened as a WebSocket GET (subprotocol
/// `tailscale-control-protocol`, the handshake in `X-Tailscale-Handshake`), as the js/wasm
/// client does, completes the Noise handshake with the key `/key` announced. Beside a normal
/// client that logged in over the POST upgrade. Plain HTTP, as in Headscale's wasm test.
fn ts2021_websocket_get(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = users_env(ctx, name, &["user1"], 1, &[], false, &|_| Ok(()))?;
    let (code, out) = run_probe(&e, &["ts2021ws", &format!("http://{CONTROL_ADDR}")], &[])?;
    e.alive()?;
    ensure!(
        code == 0 && out.contains("TS2021_WS_OK"),
        "a WebSocket GET to /ts2021 must reach the Noise handshake (a router taking only POST \
         answers 405): transport-probe exited {code}: {out}"
    );
    println!("  {name}: {out}");
    Ok(())
}

/// One DNS query through the client's resolver (100.100.100.100): `name` must answer `want`.
fn resolves(c: &Client, name: &str, want: &str) -> anyhow::Result<()> {
    let out = c.cli_ok(&["dns", "query", "--json", name, "A"])?;
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("`dns query --json` is not JSON: {out}"))?;
    ensure!(
        v["ResponseCode"] == "RCodeSuccess" && out.contains(want),
        "{}: A {name} answered {} {}, want {want}",
        c.name,
        v["ResponseCode"],
        v["Answers"]
    );
    Ok(())
}

/// Every client eventually resolves each `(name, ip)`.
fn all_resolve(e: &mut Env, records: &[(&str, &str)], why: &str) -> anyhow::Result<()> {
    for i in 0..e.clients.len() {
        let what = format!("{} resolves {records:?} ({why})", e.clients[i].name);
        eventually(&what, WAIT, || {
            e.alive()?;
            for (n, ip) in records {
                resolves(&e.clients[i], n, ip)?;
            }
            Ok(())
        })?;
    }
    println!("  {why}: {records:?} resolve on every client");
    Ok(())
}

/// `[{"Name": …, "Type": "A", "Value": …}, …]`.
fn records_json(records: &[(&str, &str)]) -> String {
    let v: Vec<Value> = records
        .iter()
        .map(|(n, ip)| serde_json::json!({"Name": n, "Type": "A", "Value": ip}))
        .collect();
    Value::Array(v).to_string()
}

/// `TestResolveMagicDNSExtraRecordsPath`: `dns.extra_records_path` names a JSON file the
/// server watches. Every client resolves its records through 100.100.100.100 after each
/// change made while the server runs, without SIGHUP: written in place, a file renamed over
/// it, one copied over it, an in-place write with a trailing newline (as `echo … >` makes),
/// then the file deleted (the records stay) and written again.
fn resolve_magic_dns_extra_records_path(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let path = ctx.artifacts.join(name).join("extra_records.json");
    let p = path.clone();
    let mut e = users_env(ctx, name, &["user1", "user2"], 1, &[], true, &move |e| {
        std::fs::write(&p, records_json(&[("test.myvpn.example.com", "6.6.6.6")]))
            .context("writing the records file")?;
        e.server.env.push((
            "HEADSCALE_DNS_EXTRA_RECORDS_PATH".into(),
            p.display().to_string(),
        ));
        e.server
            .env
            .push(("HEADSCALE_DNS_NAMESERVERS_GLOBAL".into(), String::new()));
        Ok(())
    })?;
    all_resolve(&mut e, &[("test.myvpn.example.com", "6.6.6.6")], "at start")?;

    let write = |text: String| {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(records_json(&[("docker.myvpn.example.com", "2.2.2.2")]))?;
    all_resolve(
        &mut e,
        &[("docker.myvpn.example.com", "2.2.2.2")],
        "written in place",
    )?;

    let two = [
        ("test.myvpn.example.com", "6.6.6.6"),
        ("otherrecord.myvpn.example.com", "7.7.7.7"),
    ];
    let moved = path.with_extension("json2");
    std::fs::write(&moved, records_json(&two)).context("writing the second file")?;
    std::fs::rename(&moved, &path).context("renaming the second file into place")?;
    all_resolve(&mut e, &two, "renamed into place")?;

    let copy = [("copy.myvpn.example.com", "8.8.8.8")];
    let copied = path.with_extension("json3");
    std::fs::write(&copied, records_json(&copy)).context("writing the third file")?;
    std::fs::copy(&copied, &path).context("copying the third file into place")?;
    all_resolve(&mut e, &copy, "copied into place")?;

    let piped = [("docker.myvpn.example.com", "9.9.9.9")];
    write(format!("{}\n", records_json(&piped)))?;
    all_resolve(&mut e, &piped, "written in place by a shell redirect")?;

    std::fs::remove_file(&path).context("deleting the records file")?;
    // The records stay when the file goes: they hold for several seconds after the delete.
    for round in 0..5 {
        std::thread::sleep(Duration::from_secs(2));
        e.alive()?;
        for c in &e.clients {
            resolves(c, piped[0].0, piped[0].1).with_context(|| {
                format!(
                    "{}s after the records file was deleted, its records must still be in force",
                    2 * (round + 1)
                )
            })?;
        }
    }

    write(records_json(&copy))?;
    all_resolve(&mut e, &copy, "written again after the delete")?;
    Ok(())
}

/// The port Tailscale's `derper` listens on in the DERP verify scenario.
const DERPER_PORT: u16 = 3341;
/// Its STUN port.
const DERPER_STUN_PORT: u16 = 3479;

/// Turns the embedded relay off and points `derp.paths` at a map whose only region is the
/// external `derper` (plain HTTP, as the clients dial with `TS_DEBUG_USE_DERP_HTTP=1`).
fn use_external_derper(e: &Env) -> anyhow::Result<()> {
    let sdir = e.dir.join("server");
    let map = sdir.join("derper-map.yaml");
    std::fs::write(
        &map,
        format!(
            "regions:\n  900:\n    regionid: 900\n    regioncode: derpverify\n    regionname: TestDerpVerify\n    \
             nodes:\n      - name: TestDerpVerify\n        regionid: 900\n        hostname: 127.0.0.1\n        \
             ipv4: 127.0.0.1\n        ipv6: none\n        stunport: {DERPER_STUN_PORT}\n        derpport: {DERPER_PORT}\n"
        ),
    )
    .context("writing the derper's DERP map")?;
    let cfg_path = sdir.join("config.yaml");
    let cfg = std::fs::read_to_string(&cfg_path).context("reading the server config")?;
    let start = cfg
        .find("derp:\n")
        .context("no derp section in the config")?;
    let end_marker = "  auto_update_enabled: false\n";
    let end = cfg[start..]
        .find(end_marker)
        .map(|i| start + i + end_marker.len())
        .context("the derp section does not end as expected")?;
    let derp = format!(
        "derp:\n  server:\n    enabled: false\n  urls: []\n  paths:\n    - {}\n{end_marker}",
        map.display()
    );
    std::fs::write(&cfg_path, format!("{}{derp}{}", &cfg[..start], &cfg[end..]))
        .context("writing the server config")
}

/// Starts `derper` in the namespace, admitting only the nodes this server's `/verify`
/// admits (and none when it cannot ask: fail-open off).
fn start_derper(ctx: &Ctx, name: &str, e: &Env) -> anyhow::Result<Proc> {
    let bin = derper(ctx)?;
    let mut cmd = e.ns.command(&bin.display().to_string());
    cmd.args([
        "-c",
        // Its private key stays out of the artifacts, in the scenario's state directory.
        &format!(
            "/tmp/hsit-{}-{}/derper.json",
            ctx.run_id,
            crate::scenarios::short(name)
        ),
        "-a",
        &format!("127.0.0.1:{DERPER_PORT}"),
        "-http-port",
        "-1",
        "-stun-port",
        &DERPER_STUN_PORT.to_string(),
        "-hostname",
        "127.0.0.1",
        "-verify-client-url",
        &format!("http://{CONTROL_ADDR}/verify"),
        "-verify-client-url-fail-open=false",
    ]);
    let mut p = Proc::spawn("derper", cmd, &e.dir.join("derper"))?;
    let log = e.dir.join("derper.stderr");
    eventually("derper serves", Duration::from_secs(30), || {
        if let Some(st) = p.exited() {
            bail!("derper exited ({st}): {}", crate::server::tail(&log, 10));
        }
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        ensure!(t.contains("derper: serving on"), "no serving line yet");
        Ok(())
    })?;
    Ok(p)
}

/// Whether the derper admits the node key of `state_file` (a fresh key when `None`): the
/// probe's exit code 0 (admitted) or 3 (refused); anything else is an error.
fn derper_admits(e: &Env, state_file: Option<&Path>) -> anyhow::Result<bool> {
    let url = format!("http://127.0.0.1:{DERPER_PORT}/derp");
    let sf = state_file.map(|p| p.display().to_string());
    let env: Vec<(&str, &str)> = sf
        .as_deref()
        .map(|s| vec![("HSIT_STATE_FILE", s)])
        .unwrap_or_default();
    let (code, out) = run_probe(e, &["derpverify", &url], &env)?;
    match code {
        0 if out.contains("DERP_ADMITTED") => Ok(true),
        3 if out.contains("DERP_REFUSED") => Ok(false),
        _ => bail!("transport-probe derpverify exited {code}: {out}"),
    }
}

/// `TestDERPVerifyEndpoint`: Tailscale's `derper` with `--verify-client-url` pointing at this
/// server's `/verify` (the embedded relay is off, so `/verify` must be served without it).
/// A fresh node key is refused; every client's own node key (from its state file) is
/// admitted, as Headscale's test checks with `derphttp`. Beyond it: the clients relay their
/// pings through the derper, and a node deleted from the tailnet is refused afterwards.
/// Plain HTTP for both the server and the derper (Headscale's test uses TLS for both).
fn derp_verify_endpoint(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let env = [("TS_DEBUG_ALWAYS_USE_DERP", "1")];
    let mut e = users_env(ctx, name, &["user1"], 2, &env, false, &|e| {
        use_external_derper(e)
    })?;
    let _derper = start_derper(ctx, name, &e)?;
    e.wait_all_peers_online()?;
    ensure!(
        !derper_admits(&e, None)?,
        "the derper admitted a random node key: /verify must refuse keys outside the tailnet"
    );
    let state_root = PathBuf::from(format!(
        "/tmp/hsit-{}-{}",
        ctx.run_id,
        crate::scenarios::short(name)
    ));
    let states: Vec<(String, PathBuf)> = e
        .clients
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                state_root.join(&c.name).join("tailscaled.state"),
            )
        })
        .collect();
    for (client, state) in &states {
        ensure!(
            derper_admits(&e, Some(state))?,
            "the derper refused {client}'s node key, which belongs to the tailnet"
        );
    }
    let n = e.ping_all(&by_ip, Some("via DERP(derpverify)"))?;
    println!("  {name}: {n} pings relayed through the verifying derper");
    let nodes = list_nodes(&e, ctx, None)?;
    let victim = nodes
        .iter()
        .find(|n| n["name"] == states[1].0.as_str())
        .and_then(|n| id_str(&n["id"]))
        .with_context(|| format!("{} not in nodes list", states[1].0))?;
    e.server.cli(
        &ctx.server_bin,
        &["nodes", "delete", "--identifier", &victim, "--force"],
    )?;
    ensure!(
        !derper_admits(&e, Some(&states[1].1))?,
        "the derper admitted {}'s node key after the node was deleted",
        states[1].0
    );
    ensure!(
        derper_admits(&e, Some(&states[0].1))?,
        "the derper refused {}'s node key after another node was deleted",
        states[0].0
    );
    Ok(())
}

/// The health warnings that say a client has no relay.
fn relay_health(c: &Client) -> anyhow::Result<()> {
    let st = c.status()?;
    for h in st["Health"].as_array().into_iter().flatten() {
        let h = h.as_str().unwrap_or_default();
        ensure!(
            !h.contains("could not connect to any relay server")
                && !h.contains("could not connect to the 'Headscale Embedded DERP' relay server"),
            "{}: health warning {h:?}",
            c.name
        );
    }
    Ok(())
}

/// Every client eventually reports no relay problem.
fn all_relay_healthy(e: &mut Env, when: &str) -> anyhow::Result<()> {
    for i in 0..e.clients.len() {
        let what = format!("{} is connected to its relay ({when})", e.clients[i].name);
        eventually(&what, WAIT, || {
            e.alive()?;
            relay_health(&e.clients[i])
        })?;
    }
    Ok(())
}

/// Whether the client's log says it dialled DERP over WebSocket.
fn used_websocket(c: &Client) -> bool {
    ["tailscaled.stderr", "tailscaled.stdout"].iter().any(|f| {
        std::fs::read_to_string(c.log_dir().join(f))
            .is_ok_and(|t| t.contains("websocket: connected to "))
    })
}

/// `TestDERPServerWebsocketScenario`: three users with a client each, built with WebSocket
/// DERP and told to use it (`TS_DEBUG_DERP_WS_CLIENT`), always relaying through the embedded
/// relay, which verifies clients (`derp.server.verify_clients`) and is served over TLS, with
/// the DERP map refreshed every 10 s. No relay health warning, every client pings every
/// other by FQDN via `DERP(headscale)`; again after 30 s of map refreshes; and each client's
/// log shows the WebSocket connection.
fn derp_server_websocket(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut wctx = ctx.clone();
    wctx.clients.tailscaled = websocket_tailscaled(ctx)?;
    let env = [
        ("TS_DEBUG_DERP_WS_CLIENT", "true"),
        ("TS_DEBUG_ALWAYS_USE_DERP", "1"),
    ];
    let users = ["user1", "user2", "user3"];
    let mut e = users_env(&wctx, name, &users, 1, &env, true, &|e| {
        e.server.enable_tls()?;
        for (k, v) in [
            ("HEADSCALE_DERP_AUTO_UPDATE_ENABLED", "true"),
            ("HEADSCALE_DERP_UPDATE_FREQUENCY", "10s"),
            ("HEADSCALE_DERP_SERVER_VERIFY_CLIENTS", "true"),
        ] {
            e.server.env.push((k.into(), v.into()));
        }
        Ok(())
    })?;
    let fqdn = |c: &Client| Ok(vec![c.fqdn()?]);
    all_relay_healthy(&mut e, "before the first pings")?;
    let n = e.ping_all(&fqdn, Some("via DERP(headscale)"))?;
    ensure!(n == 6, "expected 6 pings via DERP, got {n}");
    all_relay_healthy(&mut e, "after the first pings")?;
    // Headscale's test waits for the DERP map updater to run a few times.
    std::thread::sleep(Duration::from_secs(30));
    let n = e.ping_all(&fqdn, Some("via DERP(headscale)"))?;
    ensure!(
        n == 6,
        "expected 6 pings via DERP after the map refreshes, got {n}"
    );
    all_relay_healthy(&mut e, "after the map refreshes")?;
    for c in &e.clients {
        ensure!(
            used_websocket(c),
            "{} never logged `websocket: connected to`: it did not reach DERP over WebSocket",
            c.name
        );
    }
    println!("  {name}: every client relayed over a WebSocket DERP connection");
    Ok(())
}

/// Node ids as `status --json` reports them (`Self.ID`).
fn self_ids(e: &Env) -> anyhow::Result<Vec<String>> {
    e.clients
        .iter()
        .map(|c| {
            let st = c.status()?;
            st["Self"]["ID"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: no Self.ID", c.name))
        })
        .collect()
}

/// The server eventually lists every node in `ids` as `online == want`.
fn server_sees_online(
    e: &mut Env,
    ctx: &Ctx,
    ids: &[String],
    want: bool,
    why: &str,
) -> anyhow::Result<()> {
    let what = format!(
        "the server lists nodes {ids:?} as {} ({why})",
        if want { "online" } else { "offline" }
    );
    eventually(&what, WAIT, || {
        e.alive()?;
        let nodes = list_nodes(e, ctx, None)?;
        let mut wrong = Vec::new();
        for id in ids {
            let n = nodes
                .iter()
                .find(|n| id_str(&n["id"]).as_deref() == Some(id.as_str()))
                .with_context(|| format!("node {id} is not listed"))?;
            if n["online"].as_bool().unwrap_or(false) != want {
                wrong.push(format!("{} (online={})", n["name"], n["online"]));
            }
        }
        ensure!(wrong.is_empty(), "not yet: {}", wrong.join(", "));
        Ok(())
    })
}

/// `tailscale up` again for a client that ran `tailscale down` (its node key is kept).
fn up_again(c: &Client) -> anyhow::Result<()> {
    c.cli_ok(&[
        "up",
        &format!("--login-server={}", c.login_server),
        &format!("--hostname={}", c.name),
        "--accept-dns=false",
        "--accept-routes=false",
        "--timeout=90s",
    ])
    .map(|_| ())
}

/// Runs `f` for every client at once and fails with every client's error.
fn on_all(e: &Env, what: &str, f: fn(&Client) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let errs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = e.clients.iter().map(|c| s.spawn(move || f(c))).collect();
        hs.into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(format!("{err:#}")),
                Err(_) => Some("thread panicked".to_owned()),
            })
            .collect()
    });
    ensure!(errs.is_empty(), "{what}: {}", errs.join("; "));
    Ok(())
}

/// `TestPingAllByIPManyUpDown`: two users with two clients each; all online in the server's
/// list and pinging. Three times: every client runs `tailscale down` at once, the server
/// lists all four offline; every client runs `tailscale up` at once, the server lists them
/// online, the clients see each other online again and all 24 pings succeed.
fn ping_all_by_ip_many_up_down(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    let ids = self_ids(&e)?;
    server_sees_online(&mut e, ctx, &ids, true, "after login")?;
    let n = e.ping_all(&by_ip, None)?;
    ensure!(n == 24, "expected 24 pings, got {n}");
    for run in 1..=3 {
        on_all(&e, "tailscale down", |c| c.cli_ok(&["down"]).map(|_| ()))?;
        server_sees_online(&mut e, ctx, &ids, false, &format!("run {run}: after down"))?;
        on_all(&e, "tailscale up", up_again)?;
        server_sees_online(&mut e, ctx, &ids, true, &format!("run {run}: after up"))?;
        e.wait_running()?;
        e.wait_all_peers_online()?;
        let n = e.ping_all(&by_ip, None)?;
        ensure!(n == 24, "run {run}: expected 24 pings, got {n}");
        println!("  {name}: run {run}: down, up, {n} pings");
    }
    Ok(())
}

/// How long an HTTP probe waits for an answer before it counts as refused.
const DIAL_LIMIT: Duration = Duration::from_secs(5);

/// For each `(from, to)`: client `from` eventually reaches client `to` at its IPv4 address on
/// port 80 (the harness's HTTP responder behind `to`'s tailscaled).
fn expect_reach(e: &mut Env, pairs: &[(usize, usize)], why: &str) -> anyhow::Result<()> {
    for &(from, to) in pairs {
        let (fname, tname) = (e.clients[from].name.clone(), e.clients[to].name.clone());
        let addr = e.clients[to]
            .ips()?
            .into_iter()
            .find(|a| a.contains('.'))
            .with_context(|| format!("{tname} has no IPv4 address"))?;
        let what = format!("{fname} reaches {tname} at {addr}:80 ({why})");
        eventually(&what, WAIT, || {
            e.alive()?;
            let out = nc_get(&e.clients[from], &addr, 80, DIAL_LIMIT)?;
            ensure!(
                out.contains(MARKER),
                "no answer although the policy allows it (got {:?})",
                out.trim()
            );
            Ok(())
        })?;
    }
    println!("  {why}: {} connections answered", pairs.len());
    Ok(())
}

/// Stores `policy` with `headscale policy set` (database mode).
fn set_policy(e: &Env, ctx: &Ctx, policy: &str, tag: &str) -> anyhow::Result<()> {
    let path = e.dir.join(format!("policy-{tag}.hujson"));
    std::fs::write(&path, policy).with_context(|| format!("writing {}", path.display()))?;
    e.server
        .cli(
            &ctx.server_bin,
            &["policy", "set", "-f", &path.display().to_string()],
        )
        .with_context(|| format!("storing the policy {policy}"))?;
    Ok(())
}

/// `group:test` of `members` may reach everything.
fn group_test_policy(members: &[&str]) -> String {
    let m: Vec<String> = members.iter().map(|u| format!("\"{u}@\"")).collect();
    format!(
        r#"{{"groups": {{"group:test": [{}]}}, "acls": [{{"action": "accept", "src": ["group:test"], "dst": ["*:*"]}}]}}"#,
        m.join(", ")
    )
}

/// Users with one client each, the policy kept in the database and `initial` stored before
/// anyone joins, and the HTTP responder on port 80.
fn acl_db_env(ctx: &Ctx, name: &str, users: &[&str], initial: &str) -> anyhow::Result<(Env, Proc)> {
    let mut e = Env::new(ctx, name, true)?;
    let mut keys = Vec::new();
    for u in users {
        let id = e.server.create_user(u)?;
        keys.push(e.server.create_key(id, KeyOpts::default())?);
    }
    e.server.set_policy_database_mode()?;
    e.start_server(ctx)?;
    set_policy(&e, ctx, initial, "initial")?;
    let http = crate::scenarios_policy::start_http(ctx, &e, 80)?;
    for (ui, key) in keys.iter().enumerate() {
        e.add_client(&format!("u{}-n1", ui + 1), &[])?;
        e.clients.last().context("just added")?.up(key)?;
    }
    e.wait_running()?;
    e.wait_all_peers_online()?;
    Ok((e, http))
}

/// `TestACLDynamicUnknownUserAddition`: `group:test` (user1, user2) may reach `*`; they reach
/// each other. `nonexistent@` is added to the group while the clients run: they still do.
fn acl_dynamic_unknown_user_addition(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _http) = acl_db_env(
        ctx,
        name,
        &["user1", "user2"],
        &group_test_policy(&["user1", "user2"]),
    )?;
    expect_reach(&mut e, &[(0, 1), (1, 0)], "valid group")?;
    set_policy(
        &e,
        ctx,
        &group_test_policy(&["user1", "user2", "nonexistent"]),
        "with-unknown",
    )?;
    e.wait_all_peers_online()?;
    expect_reach(
        &mut e,
        &[(0, 1), (1, 0)],
        "after nonexistent@ joined the group",
    )
}

/// `TestACLDynamicUnknownUserRemoval`: the group starts with `invaliduser@` beside user1 and
/// user2, who reach each other; the unknown user is removed while the clients run: they
/// still do.
fn acl_dynamic_unknown_user_removal(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _http) = acl_db_env(
        ctx,
        name,
        &["user1", "user2"],
        &group_test_policy(&["user1", "user2", "invaliduser"]),
    )?;
    expect_reach(&mut e, &[(0, 1), (1, 0)], "with invaliduser@ in the group")?;
    set_policy(&e, ctx, &group_test_policy(&["user1", "user2"]), "clean")?;
    e.wait_all_peers_online()?;
    expect_reach(
        &mut e,
        &[(0, 1), (1, 0)],
        "after invaliduser@ left the group",
    )
}

/// `TestACLGroupDeletionExactReproduction` (issue 2967): `group:admin` of user1, user2 and
/// user3 may reach `*`. user1 and user3 reach each other; user2's node and then user2 are
/// deleted (the policy still names `user2@`); they still do; user4 is created; they still
/// do, and the server's compiled filter (`/debug/filter`) is not empty.
fn acl_group_deletion_exact_reproduction(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{"groups": {"group:admin": ["user1@", "user2@", "user3@"]},
  "acls": [{"action": "accept", "src": ["group:admin"], "dst": ["*:*"]}]}"#;
    let (mut e, _http) = acl_db_env(ctx, name, &["user1", "user2", "user3"], policy)?;
    expect_reach(&mut e, &[(0, 2), (2, 0)], "initially")?;
    let nodes = list_nodes(&e, ctx, Some("user2"))?;
    ensure!(nodes.len() == 1, "user2 should have one node: {nodes:?}");
    let id = id_str(&nodes[0]["id"]).context("user2's node has no id")?;
    e.server.cli(
        &ctx.server_bin,
        &["nodes", "delete", "--identifier", &id, "--force"],
    )?;
    e.server.cli(
        &ctx.server_bin,
        &["users", "destroy", "--name", "user2", "--force"],
    )?;
    let users = cli_json(&e, ctx, &["users", "list"])?;
    ensure!(
        !users
            .as_array()
            .into_iter()
            .flatten()
            .any(|u| u["name"] == "user2"),
        "user2 is still listed after users destroy: {users}"
    );
    expect_reach(&mut e, &[(0, 2), (2, 0)], "after deleting user2")?;
    e.server
        .cli(&ctx.server_bin, &["users", "create", "user4"])?;
    expect_reach(&mut e, &[(0, 2), (2, 0)], "after creating user4")?;
    let out =
        e.ns.command("curl")
            .args(["-sS", "--max-time", "10", "--noproxy", "*"])
            .arg(format!(
                "http://{}/debug/filter",
                crate::server::METRICS_ADDR
            ))
            .output()
            .context("running curl for /debug/filter")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let filter: Value = serde_json::from_str(&text)
        .with_context(|| format!("/debug/filter is not JSON: {text}"))?;
    // Headscale answers with the global rule list; this server with each node's rules by
    // node id. Either way the remaining nodes must have rules.
    let ids = ids_of(&list_nodes(&e, ctx, None)?);
    let has_rules = match &filter {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => ids.iter().all(|id| {
            m.get(id)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        }),
        _ => false,
    };
    ensure!(
        has_rules,
        "the server's filter has no rules for nodes {ids:?} after the user changes: {filter}"
    );
    Ok(())
}

/// The login name of the user the client is logged in as (`status.User[Self.UserID]`).
fn logged_in_as(c: &Client) -> anyhow::Result<String> {
    let st = c.status()?;
    let uid = st["Self"]["UserID"].to_string();
    Ok(st["User"][uid.as_str()]["LoginName"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Ids of the nodes `nodes list` shows.
fn ids_of(nodes: &[Value]) -> Vec<String> {
    nodes.iter().filter_map(|n| id_str(&n["id"])).collect()
}

/// `TestAuthWebFlowLogoutAndReloginNewUser`: two users with two clients each log in through
/// the interactive flow (4 nodes, online); all log out (the server lists them offline); all
/// log in again, each approved for user1 with `auth register`. user1 then has 4 nodes, all
/// online, user2 keeps its 2 old ones, every client is logged in as user1, and all ping.
fn web_flow_logout_relogin_new_user(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    for u in ["user1", "user2"] {
        e.server.create_user(u)?;
    }
    e.start_server(ctx)?;
    let owners = ["user1", "user1", "user2", "user2"];
    for (i, _) in owners.iter().enumerate() {
        e.add_client(&format!("u{}-n{}", i / 2 + 1, i % 2 + 1), &[])?;
    }
    for (i, u) in owners.iter().enumerate() {
        web_login(&mut e, ctx, i, u)?;
    }
    e.wait_all_peers_online()?;
    let all = list_nodes(&e, ctx, None)?;
    ensure!(
        all.len() == 4,
        "expected 4 nodes after the web logins, found {}",
        all.len()
    );
    let first_ids = ids_of(&all);
    server_sees_online(&mut e, ctx, &first_ids, true, "after the web logins")?;
    e.logout_all()?;
    server_sees_online(&mut e, ctx, &first_ids, false, "after logout")?;
    for i in 0..owners.len() {
        web_login(&mut e, ctx, i, "user1")?;
    }
    let user1 = eventually("user1 owns a node for every client", WAIT, || {
        e.alive()?;
        let n = list_nodes(&e, ctx, Some("user1"))?;
        ensure!(n.len() == 4, "user1 has {} nodes, want 4", n.len());
        Ok(n)
    })?;
    server_sees_online(
        &mut e,
        ctx,
        &ids_of(&user1),
        true,
        "user1's nodes after re-login",
    )?;
    let user2 = list_nodes(&e, ctx, Some("user2"))?;
    ensure!(
        user2.len() == 2,
        "user2 must keep its 2 old nodes after its machines logged in as user1, has {}",
        user2.len()
    );
    for i in 0..e.clients.len() {
        let what = format!("{} is logged in as user1", e.clients[i].name);
        eventually(&what, WAIT, || {
            let who = logged_in_as(&e.clients[i])?;
            ensure!(who.starts_with("user1"), "logged in as {who:?}");
            Ok(())
        })?;
    }
    e.wait_all_peers_online()?;
    let n = e.ping_all(&by_ip, None)?;
    ensure!(
        n == 24,
        "expected 24 pings after the re-login as user1, got {n}"
    );
    Ok(())
}
