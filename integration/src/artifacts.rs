//! Post-processing of a scenario's artifacts. The MapResponses the server sent are recovered
//! from the clients: tailscaled started with `TS_DEBUG_MAP=1` logs every MapResponse it
//! decoded (`MapResponse: {…}`, indented JSON); this pulls them out of its log into
//! `mapresponses.jsonl`, one response per line, in the order received.

use std::path::Path;

use serde_json::Value;

/// Every `MapResponse: {…}` JSON document in `log`, in order.
pub(crate) fn map_responses(log: &str) -> Vec<Value> {
    const TAG: &str = "MapResponse: ";
    let mut out = Vec::new();
    let mut rest = log;
    while let Some(i) = rest.find(TAG) {
        rest = &rest[i + TAG.len()..];
        if !rest.starts_with('{') {
            continue;
        }
        let mut it = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        if let Some(Ok(v)) = it.next() {
            out.push(v);
            rest = &rest[it.byte_offset()..];
        }
    }
    out
}

/// Writes the MapResponses found in `log` to `dest` as JSON lines; returns how many.
pub(crate) fn extract_map_responses(log: &Path, dest: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(log) else {
        return 0;
    };
    let all = map_responses(&text);
    let mut lines = String::new();
    for v in &all {
        lines.push_str(&v.to_string());
        lines.push('\n');
    }
    if !all.is_empty() {
        let _ = std::fs::write(dest, lines);
    }
    all.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_indented_responses_between_log_lines() {
        let log = "2026/11/21 23:43:17 control: x\n2026/11/21 23:43:17 MapResponse: {\n    \"Node\": {\"Name\": \"a}\"},\n    \"Peers\": []\n}\n2026/11/21 23:43:18 other\n2026/11/21 23:43:19 MapResponse: {\n    \"KeepAlive\": true\n}\n";
        let got = map_responses(log);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["Node"]["Name"], "a}");
        assert_eq!(got[1]["KeepAlive"], true);
    }

    #[test]
    fn ignores_a_truncated_response() {
        assert!(map_responses("MapResponse: {\"Node\": ").is_empty());
    }
}
