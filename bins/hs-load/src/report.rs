//! The results of a run: named values per phase, printed as a Markdown table and written
//! as JSON (which `cargo xtask bench-vs-go` reads to put two servers side by side).

use serde::Serialize;

use crate::Policy;

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Percentiles {
    pub(crate) n: usize,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// Nearest-rank p50, p99 and max of `v`.
pub(crate) fn percentiles(v: &[f64]) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    Percentiles {
        n: s.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: s[s.len() - 1],
    }
}

/// One measured value.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) phase: String,
    pub(crate) metric: String,
    pub(crate) value: f64,
}

/// A run's results.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    label: String,
    server: String,
    nodes: usize,
    users: usize,
    policy: String,
    rows: Vec<Row>,
}

impl Report {
    pub(crate) fn new(
        label: &str,
        server: &str,
        nodes: usize,
        users: usize,
        policy: Policy,
    ) -> Self {
        Self {
            label: label.to_owned(),
            server: server.to_owned(),
            nodes,
            users,
            policy: format!("{policy:?}"),
            rows: Vec::new(),
        }
    }

    pub(crate) fn phase(&mut self, phase: &str, metric: &str, value: f64) {
        self.rows.push(Row {
            phase: phase.to_owned(),
            metric: metric.to_owned(),
            value,
        });
    }

    /// p50, p99 and max of `what`, in milliseconds.
    pub(crate) fn latencies(&mut self, phase: &str, what: &str, p: &Percentiles) {
        self.phase(phase, &format!("{what} samples"), p.n as f64);
        self.phase(phase, &format!("{what} p50, ms"), p.p50);
        self.phase(phase, &format!("{what} p99, ms"), p.p99);
        self.phase(phase, &format!("{what} max, ms"), p.max);
    }

    /// The Markdown table.
    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "{}: {} nodes, {} users, {}, {}\n\n| phase | metric | value |\n|---|---|---:|\n",
            self.label, self.nodes, self.users, self.policy, self.server
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.1} |\n",
                r.phase, r.metric, r.value
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = percentiles(&v);
        assert_eq!((p.n, p.p50, p.p99, p.max), (100, 50.0, 99.0, 100.0));
        let one = percentiles(&[7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(percentiles(&[]).n, 0);
    }
}
