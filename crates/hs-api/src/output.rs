//! Output formatting for the CLI's `-o` flag: `json` (indented), `json-line`, `yaml`, or the
//! default table that fits 80 columns where the data allows.

use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

/// The `-o/--output` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A human table (`""`, the default).
    #[default]
    Table,
    /// Indented JSON.
    Json,
    /// One JSON document per line.
    JsonLine,
    /// YAML.
    Yaml,
}

impl FromStr for OutputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "json-line" => Ok(Self::JsonLine),
            "yaml" => Ok(Self::Yaml),
            other => Err(Error::Output(format!(
                "unknown output format {other:?} (expected json, json-line or yaml)"
            ))),
        }
    }
}

/// Renders `value` as machine-readable output; `None` for [`OutputFormat::Table`], where the
/// caller prints its own table.
pub fn render<T: Serialize>(value: &T, format: OutputFormat) -> Result<Option<String>, Error> {
    let out = match format {
        OutputFormat::Table => return Ok(None),
        OutputFormat::Json => serde_json::to_string_pretty(value),
        OutputFormat::JsonLine => serde_json::to_string(value),
        OutputFormat::Yaml => {
            return serde_yaml_ng::to_string(value)
                .map(Some)
                .map_err(|e| Error::Output(e.to_string()));
        }
    };
    out.map(Some).map_err(|e| Error::Output(e.to_string()))
}

/// Lays out rows under headers, columns separated by ` | ` and padded to the widest cell.
/// Cells are truncated with `…` so a row fits `max_width` columns when that is possible.
pub fn table(headers: &[&str], rows: &[Vec<String>], max_width: usize) -> String {
    let cols = headers.len();
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().take(cols).enumerate() {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let sep = 3 * cols.saturating_sub(1);
    // Shrink the widest column first until the row fits, never below the header width.
    while widths.iter().sum::<usize>() + sep > max_width {
        let Some((i, _)) = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > width(headers[*i]).max(4))
            .max_by_key(|(_, w)| **w)
        else {
            break;
        };
        widths[i] -= 1;
    }
    let fit = |s: &str, w: usize| -> String {
        if width(s) <= w {
            format!("{s:<w$}")
        } else {
            let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
            t.push('…');
            t
        }
    };
    let line = |cells: Vec<String>| -> String {
        let s: Vec<String> = (0..cols)
            .map(|i| fit(cells.get(i).map(String::as_str).unwrap_or(""), widths[i]))
            .collect();
        s.join(" | ").trim_end().to_owned()
    };
    let mut out = line(headers.iter().map(|h| (*h).to_owned()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_like_headscale() {
        assert_eq!("".parse::<OutputFormat>().unwrap(), OutputFormat::Table);
        assert_eq!(
            "json-line".parse::<OutputFormat>().unwrap(),
            OutputFormat::JsonLine
        );
        assert!("xml".parse::<OutputFormat>().is_err());
    }

    #[test]
    fn render_json_line_is_one_line_and_yaml_has_keys() {
        let v = serde_json::json!({"users": [{"id": "1", "name": "alice"}]});
        let jl = render(&v, OutputFormat::JsonLine).unwrap().unwrap();
        assert!(!jl.contains('\n'));
        let y = render(&v, OutputFormat::Yaml).unwrap().unwrap();
        assert!(y.contains("name: alice"), "{y}");
        assert!(render(&v, OutputFormat::Table).unwrap().is_none());
    }

    #[test]
    fn table_fits_eighty_columns() {
        let rows = vec![vec!["1".into(), "a".repeat(100), "b".repeat(50)]];
        let t = table(&["ID", "Name", "Key"], &rows, 80);
        for l in t.lines() {
            assert!(l.chars().count() <= 80, "{l:?}");
        }
        assert!(t.starts_with("ID | Name"));
        assert!(t.contains('…'));
    }
}
