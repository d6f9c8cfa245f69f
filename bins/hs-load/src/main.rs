//! `hs-load`: load for any Tailscale control server, from thousands of lean simulated
//! clients that speak the real protocol (Noise, HTTP/2, zstd map streams, deltas), cheap
//! enough that 10,000 of them run beside the server on one small machine.
//!
//! Phases, on one server, in order: **join** (every client registers with a pre-auth key,
//! at most `--concurrency` at a time, and opens its map stream; until every client's map
//! lists every peer the policy lets it see), **steady** (nothing happens; the server's CPU
//! over the window), **change** (one node at a time announces new endpoints; the time until
//! each viewer's stream carries it), **storm** (the server is restarted, or every client
//! drops its session, and all redial at once; the time until everyone has a full map again,
//! and the server's memory before, at the peak and after).
//!
//! The server is either started here from a binary (`--server-bin`, this project's or Go
//! Headscale's, on the same generated config), or given by `--url`, `--key` and optionally
//! `--pid` for its CPU and memory. Results are printed as a table and written as JSON with
//! `--json`. Only loopback addresses are used.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "a measuring tool: it prints its results and reads the clock"
)]

mod client;
mod conn;
mod netmap;
mod report;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::client::{Cmd, Shared, Slot, Watch, marker};
use crate::report::{Report, percentiles};
use crate::server::{ProcStat, Spawned, clock_ticks, proc_stat};

/// The policy the spawned server runs, and so what each client should see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Policy {
    /// Every node reaches every node.
    AllowAll,
    /// `autogroup:member` → `autogroup:self`: nodes see only their own user's nodes.
    PerUser,
}

/// How the storm is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Storm {
    /// SIGTERM the spawned server and start it again.
    Restart,
    /// Every client drops its session and dials again at once.
    Redial,
    /// No storm.
    None,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Load for Tailscale control servers from lean simulated clients"
)]
struct Args {
    /// Start this headscale binary (ours or Go Headscale's) on a generated configuration.
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<PathBuf>,
    /// An already running server (loopback, plain HTTP), instead of --server-bin.
    #[arg(long, requires = "key")]
    url: Option<String>,
    /// A reusable pre-auth key for --url.
    #[arg(long)]
    key: Option<String>,
    /// The --url server's PID, for its CPU time and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// The spawned server's policy (--url assumes allow-all).
    #[arg(long, value_enum, default_value_t = Policy::AllowAll)]
    policy: Policy,
    /// Users the nodes are spread over (node i belongs to user i mod users).
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Registrations in flight at once during the join.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of steady state.
    #[arg(long, default_value_t = 10)]
    steady_secs: u64,
    /// Endpoint changes to time.
    #[arg(long, default_value_t = 10)]
    changes: u32,
    /// The storm (restart needs --server-bin).
    #[arg(long, value_enum, default_value_t = Storm::Restart)]
    storm: Storm,
    /// Seconds to wait after the storm before reading the server's memory again.
    #[arg(long, default_value_t = 15)]
    settle_secs: u64,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Name of this run in the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nodes < 2 || args.users == 0 || args.users > args.nodes {
        bail!("--nodes must be at least 2 and --users between 1 and --nodes");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// The server's PID and a 100 ms sampler of its RSS, tracking the peak since the last reset.
struct Sampler {
    pid: AtomicU32,
    peak: AtomicU64,
    ticks: f64,
}

impl Sampler {
    fn stat(&self) -> Option<ProcStat> {
        match self.pid.load(Ordering::Relaxed) {
            0 => None,
            pid => proc_stat(pid, self.ticks),
        }
    }

    fn reset_peak(&self) {
        self.peak
            .store(self.stat().map_or(0, |s| s.rss), Ordering::Relaxed);
    }
}

/// Which clients see which: node i belongs to user i mod `users`.
struct Expect {
    nodes: usize,
    users: usize,
    policy: Policy,
}

impl Expect {
    fn sees(&self, viewer: usize, peer: usize) -> bool {
        viewer != peer
            && (self.policy == Policy::AllowAll || viewer % self.users == peer % self.users)
    }

    fn peers(&self, viewer: usize) -> u32 {
        (0..self.nodes).filter(|p| self.sees(viewer, *p)).count() as u32
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut spawned = None;
    let (addr, keys, pid, target) = match (&args.server_bin, &args.url) {
        (Some(bin), _) => {
            let s = Spawned::start(bin, args.policy).await?;
            let mut keys = Vec::new();
            for u in 0..args.users {
                keys.push(s.user_key(&format!("load{u}")).await?);
            }
            let (addr, pid) = (s.addr, s.pid()?);
            spawned = Some(s);
            (addr, keys, Some(pid), bin.display().to_string())
        }
        (None, Some(url)) => {
            let hostport = url.trim_start_matches("http://").trim_end_matches('/');
            let addr: SocketAddr = hostport
                .parse()
                .with_context(|| format!("--url {url}: want http://127.0.0.1:PORT"))?;
            if !addr.ip().is_loopback() {
                bail!("--url {url}: only loopback servers are load-tested");
            }
            let key = args.key.clone().context("--key")?;
            (addr, vec![key], args.pid, url.clone())
        }
        (None, None) => bail!("give --server-bin or --url"),
    };
    if args.url.is_some() && args.policy != Policy::AllowAll {
        bail!("--url runs assume an allow-all policy");
    }
    if args.storm == Storm::Restart && spawned.is_none() {
        bail!("--storm restart needs --server-bin (use --storm redial with --url)");
    }
    let expect = Expect {
        nodes: args.nodes,
        users: keys.len(),
        policy: args.policy,
    };
    // Each client's expected peer count, worked out once (polled every 20 ms).
    let want: Vec<u32> = (0..args.nodes).map(|i| expect.peers(i)).collect();
    let sampler = Arc::new(Sampler {
        pid: AtomicU32::new(pid.unwrap_or(0)),
        peak: AtomicU64::new(0),
        ticks: clock_ticks(),
    });
    {
        let s = sampler.clone();
        tokio::spawn(async move {
            loop {
                if let Some(st) = s.stat() {
                    s.peak.fetch_max(st.rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let sh = Arc::new(Shared {
        addr,
        server_key: conn::server_key(addr).await?,
        slots: (0..args.nodes).map(|_| Slot::default()).collect(),
        stop: Default::default(),
        errors: AtomicU64::new(0),
        last_error: Mutex::new(None),
        registrations: Mutex::new(Vec::new()),
        first_maps: Mutex::new(Vec::new()),
        watch: Watch::default(),
    });
    let mut rep = Report::new(&args.label, &target, args.nodes, keys.len(), args.policy);
    let timeout = Duration::from_secs(args.timeout_secs);
    let self_cpu = || proc_stat(std::process::id(), sampler.ticks).map_or(0.0, |s| s.cpu_s);

    // Join.
    println!(
        "join: {} nodes, {} users, {:?}",
        args.nodes,
        keys.len(),
        args.policy
    );
    let cpu0 = sampler.stat();
    let me_join = self_cpu();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut cmds = Vec::new();
    for i in 0..args.nodes {
        let (tx, rx) = mpsc::channel(4);
        cmds.push(tx);
        tokio::spawn(client::run(
            sh.clone(),
            i,
            keys[i % keys.len()].clone(),
            gate.clone(),
            rx,
        ));
    }
    let registered = wait(&sh, timeout, "registration", |sh| {
        lock(&sh.registrations).len()
    })
    .await;
    let mesh = wait(&sh, timeout, "full mesh", |sh| converged(sh, &want, None)).await;
    let reg = percentiles(&lock(&sh.registrations));
    record(&mut rep, "join", "registered, s", registered, timeout);
    rep.phase(
        "join",
        "registrations per second",
        lock(&sh.registrations).len() as f64 / registered.unwrap_or(timeout).as_secs_f64(),
    );
    rep.latencies("join", "registration", &reg);
    rep.latencies("join", "first map", &percentiles(&lock(&sh.first_maps)));
    record(&mut rep, "join", "every map complete, s", mesh, timeout);
    if mesh.is_none() {
        let short: Vec<i64> = sh
            .slots
            .iter()
            .zip(&want)
            .map(|(s, w)| i64::from(*w) - i64::from(s.peers.load(Ordering::Relaxed)))
            .filter(|d| *d != 0)
            .collect();
        println!(
            "  {} clients list the wrong number of peers: {} missing at most, {} extra at most",
            short.len(),
            short.iter().copied().max().unwrap_or(0).max(0),
            -short.iter().copied().min().unwrap_or(0).min(0)
        );
    }
    rep.phase(
        "join",
        "client errors",
        sh.errors.load(Ordering::Relaxed) as f64,
    );
    if let (Some(a), Some(b)) = (cpu0, sampler.stat()) {
        rep.phase("join", "server CPU, s", b.cpu_s - a.cpu_s);
        rep.phase("join", "load tool CPU, s", self_cpu() - me_join);
        rep.phase("join", "server RSS after, MB", mb(b.rss));
    }
    rep.phase(
        "join",
        "server peak RSS, MB",
        mb(sampler.peak.load(Ordering::Relaxed)),
    );

    // Steady state.
    println!("steady: {} s", args.steady_secs);
    let a = sampler.stat();
    let me0 = self_cpu();
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    if let (Some(a), Some(b)) = (a, sampler.stat()) {
        rep.phase("steady", "server CPU, s", b.cpu_s - a.cpu_s);
        rep.phase("steady", "server RSS, MB", mb(b.rss));
        rep.phase("steady", "server threads", b.threads as f64);
    }
    rep.phase("steady", "load tool CPU, s", self_cpu() - me0);

    // Changes.
    if args.changes > 0 {
        println!("change: {} rounds", args.changes);
        change_rounds(&sh, &expect, &cmds, args.changes, &mut rep).await;
    }

    // Storm.
    if args.storm != Storm::None {
        println!("storm: {:?}", args.storm);
        let before = sampler.stat();
        let errors0 = sh.errors.load(Ordering::Relaxed);
        lock(&sh.first_maps).clear();
        let maps0: Vec<u32> = sh
            .slots
            .iter()
            .map(|s| s.maps.load(Ordering::Acquire))
            .collect();
        let t = Instant::now();
        match args.storm {
            Storm::Restart => {
                let s = spawned.as_mut().context("spawned server")?;
                sampler.pid.store(0, Ordering::Relaxed);
                s.restart().await?;
                sampler.pid.store(s.pid()?, Ordering::Relaxed);
            }
            Storm::Redial => {
                for c in &cmds {
                    let _ = c.send(Cmd::Redial).await;
                }
            }
            Storm::None => {}
        }
        let restart = t.elapsed();
        sampler.reset_peak();
        let cpu_start = sampler.stat().map(|s| s.cpu_s);
        let me_start = self_cpu();
        let back = wait(&sh, timeout, "everyone back", |sh| {
            converged(sh, &want, Some(&maps0))
        })
        .await;
        let peak = sampler.peak.load(Ordering::Relaxed);
        let cpu_back = sampler.stat().map(|s| s.cpu_s);
        let me_back = self_cpu();
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let after = sampler.stat();
        rep.phase(
            "storm",
            "server stopped and listening again, s",
            restart.as_secs_f64(),
        );
        record(
            &mut rep,
            "storm",
            "everyone back (from listening), s",
            back,
            timeout,
        );
        rep.latencies("storm", "first map", &percentiles(&lock(&sh.first_maps)));
        rep.phase(
            "storm",
            "client errors (refused dials included)",
            (sh.errors.load(Ordering::Relaxed) - errors0) as f64,
        );
        if let (Some(a), Some(b)) = (cpu_start, cpu_back) {
            rep.phase("storm", "server CPU until back, s", b - a);
        }
        // The clients share the machine: what they spent bounds how fast "back" can be.
        rep.phase("storm", "load tool CPU until back, s", me_back - me_start);
        if let Some(b) = before {
            rep.phase("storm", "server RSS before, MB", mb(b.rss));
        }
        rep.phase("storm", "server peak RSS, MB", mb(peak));
        if let Some(a) = after {
            rep.phase(
                "storm",
                &format!("server RSS {} s after, MB", args.settle_secs),
                mb(a.rss),
            );
            rep.phase("storm", "server threads after", a.threads as f64);
        }
    }
    if let Some(e) = lock(&sh.last_error).clone() {
        println!("last client error: {e}");
    }
    sh.stop.store(true, Ordering::Relaxed);
    println!("{}", rep.table());
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&rep)?)?;
    }
    drop(spawned);
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many clients list exactly the peers they should (`want`) in a map that is newer than
/// `since` (a count of full maps per client), or in any map.
fn converged(sh: &Shared, want: &[u32], since: Option<&[u32]>) -> usize {
    sh.slots
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            let maps = s.maps.load(Ordering::Acquire);
            maps > since.map_or(0, |m| m[*i]) && s.peers.load(Ordering::Relaxed) == want[*i]
        })
        .count()
}

/// Polls `progress` (clients done) every 20 ms until every client is done; the time it
/// took, or `None` after `timeout` (the run goes on: a server that never gets there is a
/// result too). Prints progress every 10 s.
async fn wait(
    sh: &Shared,
    timeout: Duration,
    what: &str,
    progress: impl Fn(&Shared) -> usize,
) -> Option<Duration> {
    let t = Instant::now();
    let mut last_print = t;
    loop {
        let done = progress(sh);
        if done == sh.slots.len() {
            return Some(t.elapsed());
        }
        if t.elapsed() > timeout {
            println!(
                "  {what}: only {done} of {} clients after {timeout:?} ({} client errors, last: {})",
                sh.slots.len(),
                sh.errors.load(Ordering::Relaxed),
                lock(&sh.last_error).clone().unwrap_or_default()
            );
            return None;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            last_print = Instant::now();
            let connected = sh
                .slots
                .iter()
                .filter(|s| s.connected.load(Ordering::Relaxed))
                .count();
            println!(
                "  {what}: {:.0} s, {done} of {} done, {connected} streams open, {} registered, {} client errors",
                t.elapsed().as_secs_f64(),
                sh.slots.len(),
                lock(&sh.registrations).len(),
                sh.errors.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A phase's duration in seconds, or the timeout when it was not reached, noted as such.
fn record(rep: &mut Report, phase: &str, metric: &str, took: Option<Duration>, timeout: Duration) {
    rep.phase(phase, metric, took.unwrap_or(timeout).as_secs_f64());
    if took.is_none() {
        rep.phase(phase, &format!("{metric}: NOT REACHED (timed out)"), 1.0);
    }
}

/// `rounds` endpoint changes, one node at a time, each timed until every viewer has it.
async fn change_rounds(
    sh: &Shared,
    expect: &Expect,
    cmds: &[mpsc::Sender<Cmd>],
    rounds: u32,
    rep: &mut Report,
) {
    let n = sh.slots.len();
    let mut all = Vec::new();
    let mut complete = Vec::new();
    let mut missing = 0usize;
    for round in 1..=rounds {
        let c = (round as usize * 7919) % n;
        let viewers = (0..n).filter(|v| expect.sees(*v, c)).count();
        let node = sh.slots[c].node_id.load(Ordering::Relaxed);
        lock(&sh.watch.deliveries).clear();
        *lock(&sh.watch.start) = Some(Instant::now());
        sh.watch.round.store(round, Ordering::Release);
        sh.watch.node.store(node, Ordering::Release);
        let _ = cmds[c].send(Cmd::Endpoints(vec![marker(round)])).await;
        let t = Instant::now();
        while lock(&sh.watch.deliveries).len() < viewers && t.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sh.watch.node.store(0, Ordering::Release);
        let got: Vec<f64> = lock(&sh.watch.deliveries)
            .iter()
            .filter(|(r, _)| *r == round)
            .map(|(_, ms)| *ms)
            .collect();
        missing += viewers.saturating_sub(got.len());
        if got.len() >= viewers
            && let Some(max) = got.iter().copied().reduce(f64::max)
        {
            complete.push(max);
        }
        all.extend(got);
        // Let the round's traffic drain before the next one.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rep.latencies("change", "one viewer", &percentiles(&all));
    rep.latencies("change", "every viewer", &percentiles(&complete));
    rep.phase("change", "deliveries missing after 30 s", missing as f64);
}
