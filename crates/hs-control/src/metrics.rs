//! Prometheus metrics under Go Headscale's names (`headscale_mapresponse_*`,
//! `headscale_nodestore_*`) plus what a dashboard needs (connected nodes, registrations,
//! map bytes sent), rendered in the text exposition format for `metrics_listen_addr`.
//!
//! Plain atomics: counters are bumped on hot paths (every frame) and read only on scrape.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;

use crate::error::Error;

/// Prometheus' default histogram buckets (`prometheus.DefBuckets`), in seconds.
const DEF_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Headscale's `nodestore_batch_size` buckets.
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// A histogram with fixed buckets: per-bucket counts (made cumulative when rendered), the
/// count and the sum (kept in millionths so it fits an atomic integer).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int cast: negative or NaN observations count as 0.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let micros = (v * 1e6).round() as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    fn render(&self, s: &mut String, name: &str, labels: &str) {
        let join = |extra: &str| match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        };
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(s, "{name}_bucket{} {cum}", join(&format!("le=\"{b}\"")));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(s, "{name}_bucket{} {count}", join("le=\"+Inf\""));
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "{name}_sum{} {sum}", join(""));
        let _ = writeln!(s, "{name}_count{} {count}", join(""));
    }
}

/// NodeStore write operations, as Headscale labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOp {
    Put,
    Update,
    Delete,
    SetName,
}

impl StoreOp {
    const ALL: [Self; 4] = [Self::Put, Self::Update, Self::Delete, Self::SetName];

    fn label(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::SetName => "set_name",
        }
    }

    /// The operation an [`hs_nodestore::Op`] counts as; user and policy writes are not
    /// node operations.
    pub(crate) fn of(op: &hs_nodestore::Op) -> Option<Self> {
        use hs_nodestore::Op;
        match op {
            Op::Upsert(_) => Some(Self::Put),
            Op::Patch(..) => Some(Self::Update),
            Op::Remove(_) => Some(Self::Delete),
            Op::Rename(..) => Some(Self::SetName),
            _ => None,
        }
    }
}

/// How a registration request authenticated (the `method` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegMethod {
    /// A pre-auth key.
    AuthKey,
    /// Interactive login: the start, or the follow-up poll that completes it.
    Interactive,
    /// A known node asking again without credentials (a client restart).
    Refresh,
    /// A logout (past expiry).
    Logout,
}

impl RegMethod {
    const ALL: [Self; 4] = [
        Self::AuthKey,
        Self::Interactive,
        Self::Refresh,
        Self::Logout,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::AuthKey => "authkey",
            Self::Interactive => "interactive",
            Self::Refresh => "refresh",
            Self::Logout => "logout",
        }
    }
}

/// How a registration ended (the `status` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegStatus {
    /// Answered without an error.
    Ok,
    /// Refused: a bad or spent key, a forged node key, a malformed request.
    Refused,
    /// A server-side failure.
    Error,
}

impl RegStatus {
    const ALL: [Self; 3] = [Self::Ok, Self::Refused, Self::Error];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

/// The server's counters, gauges and histograms.
#[derive(Debug)]
pub struct Metrics {
    pub(crate) nodestore_nodes: AtomicUsize,
    pub(crate) connected: AtomicUsize,
    /// Writes sent to the coordinator and not yet taken up (`nodestore_queue_depth`).
    pub(crate) queue_depth: AtomicUsize,
    generated_full: AtomicU64,
    generated_change: AtomicU64,
    keepalives: AtomicU64,
    bytes_sent: AtomicU64,
    endpoint_updates_ok: AtomicU64,
    endpoint_updates_err: AtomicU64,
    ended_done: AtomicU64,
    /// Bytes queued for map streams and not yet taken by their readers, across streams.
    pub(crate) stream_queued_bytes: Arc<AtomicUsize>,
    closed_behind: AtomicU64,
    registrations: [[AtomicU64; 3]; 4],
    store_ops: [AtomicU64; 4],
    store_op_duration: [Histogram; 4],
    pub(crate) batch_size: Histogram,
    pub(crate) batch_duration: Histogram,
    pub(crate) snapshot_build: Histogram,
    pub(crate) peers_calculation: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            nodestore_nodes: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            queue_depth: AtomicUsize::new(0),
            generated_full: AtomicU64::new(0),
            generated_change: AtomicU64::new(0),
            keepalives: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            endpoint_updates_ok: AtomicU64::new(0),
            endpoint_updates_err: AtomicU64::new(0),
            ended_done: AtomicU64::new(0),
            stream_queued_bytes: Arc::new(AtomicUsize::new(0)),
            closed_behind: AtomicU64::new(0),
            registrations: Default::default(),
            store_ops: Default::default(),
            store_op_duration: StoreOp::ALL.map(|_| Histogram::new(&DEF_BUCKETS)),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            batch_duration: Histogram::new(&DEF_BUCKETS),
            snapshot_build: Histogram::new(&DEF_BUCKETS),
            peers_calculation: Histogram::new(&DEF_BUCKETS),
        }
    }
}

impl Metrics {
    pub(crate) fn count_generated(&self, kind: &'static str) {
        let c = if kind == "full" {
            &self.generated_full
        } else {
            &self.generated_change
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes(&self, n: usize) {
        self.bytes_sent
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn keepalive(&self) {
        self.keepalives.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn endpoint_update(&self, ok: bool) {
        let c = if ok {
            &self.endpoint_updates_ok
        } else {
            &self.endpoint_updates_err
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A map stream closed because its reader fell behind.
    pub(crate) fn stream_closed_behind(&self) {
        self.closed_behind.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes queued for map streams right now.
    pub fn stream_queued_bytes(&self) -> usize {
        self.stream_queued_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn stream_ended(&self) {
        self.ended_done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn registration(&self, method: RegMethod, status: RegStatus) {
        self.registrations[method as usize][status as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One NodeStore write of kind `op` that took `d` from request to reply.
    pub(crate) fn store_op(&self, op: StoreOp, d: std::time::Duration) {
        self.store_ops[op as usize].fetch_add(1, Ordering::Relaxed);
        self.store_op_duration[op as usize].observe_duration(d);
    }

    /// Nodes holding a map stream right now.
    pub fn connected_nodes(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Successful registrations since start (every method).
    pub fn registrations(&self) -> u64 {
        self.registrations
            .iter()
            .map(|m| m[RegStatus::Ok as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        metric(
            "headscale_mapresponse_sent_total",
            "counter",
            "total count of mapresponses sent to clients",
            &[(r#"{status="ok",type="keepalive"}"#, l(&self.keepalives))],
        );
        metric(
            "headscale_mapresponse_generated_total",
            "counter",
            "total count of map responses generated by response type",
            &[
                (r#"{response_type="full"}"#, l(&self.generated_full)),
                (r#"{response_type="change"}"#, l(&self.generated_change)),
            ],
        );
        metric(
            "headscale_mapresponse_endpoint_updates_total",
            "counter",
            "total count of endpoint updates received",
            &[
                (r#"{status="ok"}"#, l(&self.endpoint_updates_ok)),
                (r#"{status="error"}"#, l(&self.endpoint_updates_err)),
            ],
        );
        metric(
            "headscale_mapresponse_ended_total",
            "counter",
            "total count of map response streams ended",
            &[(r#"{reason="done"}"#, l(&self.ended_done))],
        );
        metric(
            "headscale_mapresponse_streams_closed_behind_total",
            "counter",
            "map streams closed because the client fell behind (it redials for a full map)",
            &[("", l(&self.closed_behind))],
        );
        metric(
            "headscale_mapresponse_queued_bytes",
            "gauge",
            "bytes of map frames queued for clients and not yet written, across streams",
            &[(
                "",
                u64::try_from(self.stream_queued_bytes.load(Ordering::Relaxed)).unwrap_or(0),
            )],
        );
        metric(
            "headscale_mapresponse_bytes_sent_total",
            "counter",
            "bytes of map frames queued to clients",
            &[("", l(&self.bytes_sent))],
        );
        metric(
            "headscale_nodestore_nodes",
            "gauge",
            "number of nodes in the NodeStore",
            &[(
                "",
                u64::try_from(self.nodestore_nodes.load(Ordering::Relaxed)).unwrap_or(0),
            )],
        );
        metric(
            "headscale_nodestore_queue_depth",
            "gauge",
            "Current depth of NodeStore write queue",
            &[(
                "",
                u64::try_from(self.queue_depth.load(Ordering::Relaxed)).unwrap_or(0),
            )],
        );
        let ops: Vec<(String, u64)> = StoreOp::ALL
            .iter()
            .map(|o| {
                (
                    format!("{{operation=\"{}\"}}", o.label()),
                    l(&self.store_ops[*o as usize]),
                )
            })
            .collect();
        let ops: Vec<(&str, u64)> = ops.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        metric(
            "headscale_nodestore_operations_total",
            "counter",
            "Total number of NodeStore operations",
            &ops,
        );
        metric(
            "headscale_connected_nodes",
            "gauge",
            "nodes holding a map stream",
            &[("", u64::try_from(self.connected_nodes()).unwrap_or(0))],
        );
        let regs: Vec<(String, u64)> = RegMethod::ALL
            .iter()
            .flat_map(|m| {
                RegStatus::ALL.iter().map(move |st| {
                    (
                        format!("{{method=\"{}\",status=\"{}\"}}", m.label(), st.label()),
                        l(&self.registrations[*m as usize][*st as usize]),
                    )
                })
            })
            .collect();
        let regs: Vec<(&str, u64)> = regs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        metric(
            "headscale_registrations_total",
            "counter",
            "node registration requests by method and outcome",
            &regs,
        );
        let mut hist = |name: &str, help: &str, rows: &[(&str, &Histogram)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (labels, h) in rows {
                h.render(&mut s, name, labels);
            }
        };
        let op_labels: Vec<String> = StoreOp::ALL
            .iter()
            .map(|o| format!("operation=\"{}\"", o.label()))
            .collect();
        let op_rows: Vec<(&str, &Histogram)> = StoreOp::ALL
            .iter()
            .zip(&op_labels)
            .map(|(o, l)| (l.as_str(), &self.store_op_duration[*o as usize]))
            .collect();
        hist(
            "headscale_nodestore_operation_duration_seconds",
            "Duration of NodeStore operations",
            &op_rows,
        );
        hist(
            "headscale_nodestore_batch_size",
            "Size of NodeStore write batches",
            &[("", &self.batch_size)],
        );
        hist(
            "headscale_nodestore_batch_duration_seconds",
            "Duration of NodeStore batch processing",
            &[("", &self.batch_duration)],
        );
        hist(
            "headscale_nodestore_snapshot_build_duration_seconds",
            "Duration of NodeStore snapshot building from nodes",
            &[("", &self.snapshot_build)],
        );
        hist(
            "headscale_nodestore_peers_calculation_duration_seconds",
            "Duration of peers calculation in NodeStore",
            &[("", &self.peers_calculation)],
        );
        s
    }
}

/// Serves `GET /metrics` and `extra` (the [`crate::debug`] routes) on `addr`
/// (`metrics_listen_addr`) until `shutdown` completes.
pub async fn serve_metrics<F>(
    addr: &str,
    metrics: Arc<Metrics>,
    extra: Router,
    shutdown: F,
) -> Result<(), Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    let target = match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_owned(),
    };
    let listener = tokio::net::TcpListener::bind(&target)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    tracing::info!(addr = %target, "serving metrics");
    serve_metrics_on(listener, metrics, extra, shutdown).await
}

/// As [`serve_metrics`], on an already bound listener.
pub async fn serve_metrics_on<F>(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    extra: Router,
    shutdown: F,
) -> Result<(), Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&metrics);
                async move {
                    let mut body = m.render();
                    if let Some(p) = crate::process_metrics::read() {
                        crate::process_metrics::render(&p, &mut body);
                    }
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .merge(extra);
    // The debug routes check the peer's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(Error::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headscale_metric_names_with_counts() {
        let m = Metrics::default();
        m.keepalive();
        m.keepalive();
        m.registration(RegMethod::AuthKey, RegStatus::Ok);
        m.registration(RegMethod::AuthKey, RegStatus::Refused);
        m.batch_size.observe(3.0);
        m.batch_size.observe(200.0);
        m.add_bytes(10);
        let t = m.render();
        assert!(
            t.contains("headscale_mapresponse_sent_total{status=\"ok\",type=\"keepalive\"} 2\n")
        );
        assert!(t.contains("headscale_registrations_total{method=\"authkey\",status=\"ok\"} 1\n"));
        assert!(
            t.contains("headscale_registrations_total{method=\"authkey\",status=\"refused\"} 1\n")
        );
        assert!(
            t.contains("headscale_nodestore_batch_size_bucket{le=\"2\"} 0\n"),
            "{t}"
        );
        assert!(t.contains("headscale_nodestore_batch_size_bucket{le=\"5\"} 1\n"));
        assert!(t.contains("headscale_nodestore_batch_size_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("headscale_nodestore_batch_size_sum 203\n"));
        assert!(t.contains("headscale_nodestore_batch_size_count 2\n"));
        assert!(t.contains("headscale_mapresponse_bytes_sent_total 10\n"));
        assert!(t.contains("# TYPE headscale_nodestore_nodes gauge\n"));
    }
}
