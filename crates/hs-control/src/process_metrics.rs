//! The `process_*` metrics Go Headscale exports through the Prometheus Go client, under the
//! same names, help texts and units, so dashboards built on Go Headscale keep working. Read
//! from `/proc` at each scrape (Linux; elsewhere nothing is exported).
//!
//! Go's runtime metrics (`go_*`) and the scrape handler's own (`promhttp_*`) have no
//! counterpart in a Rust process and are not imitated.

use std::fmt::Write as _;

/// Linux's `USER_HZ`: the unit of the CPU times and start time in `/proc/<pid>/stat`. It is
/// 100 on every architecture Linux supports for user space.
const USER_HZ: f64 = 100.0;

/// One reading of the process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<f64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: f64,
    /// The soft limit on the address space, bytes (`unlimited` as 2^64 - 1, as Go reports).
    pub virtual_max_bytes: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: f64,
    /// Start time, seconds since the Unix epoch; unknown when `/proc/stat` is hidden (systemd's
    /// `ProcSubset=pid`, which the packaged unit sets).
    pub start_time_seconds: Option<f64>,
    /// Bytes received on every interface of the process's network namespace.
    pub network_receive_bytes: f64,
    /// Bytes sent on every interface of the process's network namespace.
    pub network_transmit_bytes: f64,
}

/// The `/proc` files one reading is made of.
#[derive(Debug, Clone, Copy)]
pub struct ProcFiles<'a> {
    /// `/proc/self/stat`.
    pub stat: &'a str,
    /// `/proc/self/status`.
    pub status: &'a str,
    /// `/proc/self/limits`.
    pub limits: &'a str,
    /// `/proc/self/net/dev`.
    pub net_dev: &'a str,
    /// `/proc/stat` (for `btime`), when readable.
    pub system_stat: Option<&'a str>,
    /// Entries in `/proc/self/fd`.
    pub open_fds: u64,
}

/// Parses a reading; `None` when `stat` is not a process stat line.
pub fn parse(f: ProcFiles<'_>) -> Option<ProcessStats> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = f.stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 (index 0 here); utime 14, stime 15, starttime 22, vsize 23.
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let btime: Option<f64> = f
        .system_stat
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("btime ")))
        .and_then(|v| v.trim().parse().ok());
    let rss_kb: f64 = f
        .status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let (rx, tx) = f
        .net_dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(_, v)| {
            let cols: Vec<f64> = v
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect();
            Some((*cols.first()?, *cols.get(8)?))
        })
        .fold((0.0, 0.0), |(a, b), (r, t)| (a + r, b + t));
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        open_fds: f.open_fds,
        max_fds: soft_limit(f.limits, "Max open files"),
        virtual_bytes: field(23)?,
        virtual_max_bytes: soft_limit(f.limits, "Max address space"),
        resident_bytes: rss_kb * 1024.0,
        start_time_seconds: btime.map(|b| b + field(22).unwrap_or(0.0) / USER_HZ),
        network_receive_bytes: rx,
        network_transmit_bytes: tx,
    })
}

fn soft_limit(limits: &str, name: &str) -> Option<f64> {
    let rest = limits.lines().find_map(|l| l.strip_prefix(name))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(u64::MAX as f64),
        n => n.parse().ok(),
    }
}

/// Reads this process from `/proc`; `None` where there is no `/proc`.
pub fn read() -> Option<ProcessStats> {
    let r = |p: &str| std::fs::read_to_string(p).ok();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let (stat, status, limits) = (
        r("/proc/self/stat")?,
        r("/proc/self/status")?,
        r("/proc/self/limits")?,
    );
    let system_stat = r("/proc/stat");
    let net_dev = r("/proc/self/net/dev").unwrap_or_default();
    parse(ProcFiles {
        stat: &stat,
        status: &status,
        limits: &limits,
        net_dev: &net_dev,
        system_stat: system_stat.as_deref(),
        open_fds,
    })
}

/// Appends the Prometheus text for `p`, in the Go client's words.
pub fn render(p: &ProcessStats, s: &mut String) {
    let mut one = |name: &str, kind: &str, help: &str, v: f64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        p.cpu_seconds,
    );
    if let Some(m) = p.max_fds {
        one(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            m,
        );
    }
    one(
        "process_network_receive_bytes_total",
        "counter",
        "Number of bytes received by the process over the network.",
        p.network_receive_bytes,
    );
    one(
        "process_network_transmit_bytes_total",
        "counter",
        "Number of bytes sent by the process over the network.",
        p.network_transmit_bytes,
    );
    one(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        p.open_fds as f64,
    );
    one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_bytes,
    );
    if let Some(t) = p.start_time_seconds {
        one(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            t,
        );
    }
    one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        p.virtual_bytes,
    );
    if let Some(m) = p.virtual_max_bytes {
        one(
            "process_virtual_memory_max_bytes",
            "gauge",
            "Maximum amount of virtual memory available in bytes.",
            m,
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // A process named with a space and a parenthesis, as /proc shows it.
    const STAT: &str = "4242 (head scale)) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 8 0 123400 1799192576 11322 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \nMax address space         unlimited            unlimited            bytes     \nMax open files            20000                20000                files     \n";
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  eth0: 5000 50 0 0 0 0 0 0 7000 70 0 0 0 0 0 0\n";

    #[test]
    fn a_reading_is_parsed_into_go_units() {
        let p = parse(ProcFiles {
            stat: STAT,
            status: "Name:\thead\nVmRSS:\t   45288 kB\n",
            limits: LIMITS,
            net_dev: NET_DEV,
            system_stat: Some("cpu 1 2 3\nbtime 1796360000\n"),
            open_fds: 20,
        })
        .unwrap();
        assert_eq!(p.cpu_seconds, 4.0);
        assert_eq!(p.virtual_bytes, 1_799_192_576.0);
        assert_eq!(p.resident_bytes, 45_288.0 * 1024.0);
        assert_eq!(p.start_time_seconds, Some(1_796_360_000.0 + 1234.0));
        assert_eq!(p.max_fds, Some(20_000.0));
        assert_eq!(p.virtual_max_bytes, Some(u64::MAX as f64));
        assert_eq!(
            (p.network_receive_bytes, p.network_transmit_bytes),
            (6000.0, 8000.0)
        );
    }

    #[test]
    fn this_process_reads_and_renders_every_go_name() {
        let p = read().unwrap();
        assert!(p.resident_bytes > 0.0 && p.open_fds > 0);
        assert!(p.start_time_seconds.is_some_and(|t| t > 1.0e9));
        let mut s = String::new();
        render(&p, &mut s);
        // What Go Headscale 0.29.3's /metrics lists under process_ (scraped from its binary).
        for name in [
            "process_cpu_seconds_total",
            "process_max_fds",
            "process_network_receive_bytes_total",
            "process_network_transmit_bytes_total",
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
            "process_virtual_memory_max_bytes",
        ] {
            assert!(s.contains(&format!("\n{name} ")), "{name} missing:\n{s}");
        }
    }
}
