//! The run summary: one row per scenario (outcome, seconds, the first line of the failure),
//! printed at the end of a run and written beside the artifacts as `summary.md` and
//! `summary.json`, so a long run can be read without scrolling its log and two runs (SQLite and
//! PostgreSQL, or two client versions) can be compared by `cargo xtask integration`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

/// How one scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    Failed,
    /// Not started: `--failfast` after an earlier failure, or the run's `--timeout` expired.
    NotRun,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Self::Passed => "pass",
            Self::Failed => "FAIL",
            Self::NotRun => "not run",
        }
    }
}

/// One scenario's row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
    pub(crate) secs: f64,
    /// Why it failed or was not run (first line only; the full text is in the log).
    pub(crate) reason: String,
}

/// The rows of one run and what it ran against.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) rows: Vec<Row>,
    /// For example `tailscale 1.102.3, sqlite`.
    pub(crate) against: String,
}

impl Summary {
    /// Adds a row; `reason` is cut to its first line.
    pub(crate) fn push(&mut self, name: &str, outcome: Outcome, secs: f64, reason: &str) {
        self.rows.push(Row {
            name: name.to_owned(),
            outcome,
            secs,
            reason: reason.lines().next().unwrap_or_default().to_owned(),
        });
    }

    /// How many rows ended with `outcome`.
    pub(crate) fn count(&self, outcome: Outcome) -> usize {
        self.rows.iter().filter(|r| r.outcome == outcome).count()
    }

    /// The table as markdown: the failures first, then every scenario, slowest first.
    pub(crate) fn markdown(&self, wall_secs: f64) -> String {
        let mut out = format!(
            "# Integration run against {}\n\n{} passed, {} failed, {} not run; wall time {wall_secs:.1}s\n\n",
            self.against,
            self.count(Outcome::Passed),
            self.count(Outcome::Failed),
            self.count(Outcome::NotRun),
        );
        let failures: Vec<_> = self
            .rows
            .iter()
            .filter(|r| r.outcome != Outcome::Passed)
            .collect();
        if !failures.is_empty() {
            out.push_str("## Not passed\n\n| scenario | outcome | reason |\n|---|---|---|\n");
            for r in failures {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    r.name,
                    r.outcome.word(),
                    r.reason.replace('|', "\\|")
                );
            }
            out.push('\n');
        }
        out.push_str("## Every scenario, slowest first\n\n| scenario | outcome | seconds |\n|---|---|---:|\n");
        let mut by_time: Vec<_> = self.rows.iter().collect();
        by_time.sort_by(|a, b| b.secs.total_cmp(&a.secs));
        for r in by_time {
            let _ = writeln!(out, "| {} | {} | {:.1} |", r.name, r.outcome.word(), r.secs);
        }
        out
    }

    /// The rows as JSON, for tools that compare runs.
    pub(crate) fn json(&self, wall_secs: f64) -> serde_json::Value {
        json!({
            "against": self.against,
            "wall_secs": wall_secs,
            "scenarios": self.rows.iter().map(|r| json!({
                "name": r.name,
                "outcome": r.outcome.word(),
                "secs": r.secs,
                "reason": r.reason,
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes `summary.md` and `summary.json` into `dir`; a failure to write is reported, not
    /// fatal, since the run's result is already on the terminal.
    pub(crate) fn write(&self, dir: &Path, wall_secs: f64) {
        let md = dir.join("summary.md");
        if let Err(e) = std::fs::write(&md, self.markdown(wall_secs)) {
            eprintln!("hs-integration: writing {}: {e}", md.display());
        }
        let js = dir.join("summary.json");
        let text = serde_json::to_string_pretty(&self.json(wall_secs)).unwrap_or_default();
        if let Err(e) = std::fs::write(&js, text) {
            eprintln!("hs-integration: writing {}: {e}", js.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut s = Summary {
            against: "tailscale 1.102.3, sqlite".to_owned(),
            ..Summary::default()
        };
        s.push("TestFast", Outcome::Passed, 1.5, "");
        s.push(
            "TestBroken",
            Outcome::Failed,
            9.0,
            "ping timed out | twice\nsecond line",
        );
        s.push("TestSlow", Outcome::Passed, 30.25, "");
        s.push(
            "TestLater",
            Outcome::NotRun,
            0.0,
            "--failfast: an earlier scenario failed",
        );
        s
    }

    #[test]
    fn markdown_lists_failures_first_and_rows_slowest_first() {
        let md = sample().markdown(41.0);
        assert!(
            md.contains("2 passed, 1 failed, 1 not run; wall time 41.0s"),
            "{md}"
        );
        let not_passed = md.find("## Not passed").expect("a failure section");
        let every = md.find("## Every scenario").expect("the full table");
        assert!(not_passed < every);
        // Only the first line of a reason, with the table's separator escaped.
        assert!(
            md.contains("| TestBroken | FAIL | ping timed out \\| twice |"),
            "{md}"
        );
        assert!(!md.contains("second line"));
        let slow = md.find("| TestSlow | pass | 30.2 |").expect("slow row");
        let broken = md.rfind("| TestBroken | FAIL | 9.0 |").expect("broken row");
        let fast = md.find("| TestFast | pass | 1.5 |").expect("fast row");
        assert!(slow < broken && broken < fast, "{md}");
    }

    #[test]
    fn a_clean_run_has_no_failure_section() {
        let mut s = Summary::default();
        s.push("TestFast", Outcome::Passed, 1.0, "");
        assert!(!s.markdown(1.0).contains("Not passed"));
    }

    #[test]
    fn json_keeps_every_row_in_run_order() {
        let js = sample().json(41.0);
        let names: Vec<_> = js["scenarios"]
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect();
        assert_eq!(names, ["TestFast", "TestBroken", "TestSlow", "TestLater"]);
        assert_eq!(js["scenarios"][3]["outcome"], "not run");
    }
}
