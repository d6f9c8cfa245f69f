//! `-o json|json-line|yaml` exactly as Go Headscale 0.29.3's CLI prints them. Go marshals the
//! generated protobuf structs with `encoding/json` (field tags are the proto names with
//! `omitempty`, timestamps are `{"seconds","nanos"}`, enums are numbers, `<>&` are escaped)
//! and with `gopkg.in/yaml.v3` (keys are the lower-cased Go field names, nothing is
//! omitted, nil is `null`, 4-space indentation with compact sequence items). Scripts parse
//! those bytes, so [`GoValue`] models the Go value and renders both encodings.

/// A Go value as the CLI marshals it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GoValue {
    /// An unsigned integer (ids).
    Uint(u64),
    /// A signed integer (seconds, nanos, enum numbers).
    Int(i64),
    /// A bool.
    Bool(bool),
    /// A string.
    Str(String),
    /// A nil pointer or slice element.
    Null,
    /// A slice.
    List(Vec<GoValue>),
    /// A nil slice: what a repeated field decoded from an empty gRPC answer is. JSON `null`
    /// at the top, YAML `[]`.
    NilList,
    /// A generated protobuf struct: fields in declaration order, named by their proto name
    /// (`created_at`), every one `omitempty` in JSON.
    Struct(Vec<(&'static str, GoValue)>),
    /// A `map[string]string` (keys sorted, never omitted).
    Map(Vec<(String, String)>),
    /// A struct with one field tagged without `omitempty` (Go's `errOutput`).
    Plain(&'static str, String),
}

impl GoValue {
    /// A `*timestamppb.Timestamp`.
    pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> Self {
        t.map_or(Self::Null, |t| {
            Self::Struct(vec![
                ("seconds", Self::Int(t.seconds)),
                ("nanos", Self::Int(i64::from(t.nanos))),
            ])
        })
    }

    /// A repeated field as gRPC decoded it: nil when empty.
    pub(crate) fn repeated(v: Vec<GoValue>) -> Self {
        if v.is_empty() {
            Self::NilList
        } else {
            Self::List(v)
        }
    }

    /// A `[]string`.
    pub(crate) fn strings(v: &[String]) -> Self {
        Self::List(v.iter().cloned().map(Self::Str).collect())
    }

    /// Whether `encoding/json`'s `omitempty` drops it.
    fn is_empty(&self) -> bool {
        match self {
            Self::Uint(0) | Self::Int(0) | Self::Bool(false) | Self::Null | Self::NilList => true,
            Self::Str(s) => s.is_empty(),
            Self::List(v) => v.is_empty(),
            _ => false,
        }
    }

    /// `json.MarshalIndent(v, "", "\t")` (`indent`) or `json.Marshal(v)`.
    pub(crate) fn to_json(&self, indent: bool) -> String {
        let mut out = String::new();
        self.json(&mut out, indent.then_some(0));
        out
    }

    fn json(&self, out: &mut String, level: Option<usize>) {
        match self {
            Self::Uint(n) => out.push_str(&n.to_string()),
            Self::Int(n) => out.push_str(&n.to_string()),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Str(s) => json_string(out, s),
            Self::Null | Self::NilList => out.push_str("null"),
            Self::List(items) => {
                let items: Vec<(Option<String>, &GoValue)> =
                    items.iter().map(|v| (None, v)).collect();
                json_compound(out, level, '[', ']', &items);
            }
            Self::Struct(fields) => {
                let items: Vec<(Option<String>, &GoValue)> = fields
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (Some((*k).to_owned()), v))
                    .collect();
                json_compound(out, level, '{', '}', &items);
            }
            Self::Map(entries) => {
                let values: Vec<GoValue> =
                    entries.iter().map(|(_, v)| Self::Str(v.clone())).collect();
                let items: Vec<(Option<String>, &GoValue)> = entries
                    .iter()
                    .zip(&values)
                    .map(|((k, _), v)| (Some(k.clone()), v))
                    .collect();
                json_compound(out, level, '{', '}', &items);
            }
            Self::Plain(k, v) => {
                let value = Self::Str(v.clone());
                json_compound(out, level, '{', '}', &[(Some((*k).to_owned()), &value)]);
            }
        }
    }

    /// `yaml.Marshal(v)` of gopkg.in/yaml.v3 (ending in a newline, to which Go's CLI adds
    /// another when it prints it).
    pub(crate) fn to_yaml(&self) -> String {
        let mut out = String::new();
        match self {
            Self::NilList => out.push_str("[]\n"),
            Self::List(items) if items.is_empty() => out.push_str("[]\n"),
            Self::List(items) => yaml_seq(&mut out, items, 0),
            Self::Struct(fields) if fields.is_empty() => out.push_str("{}\n"),
            Self::Struct(_) | Self::Map(_) | Self::Plain(..) => {
                yaml_map(&mut out, &self.yaml_entries(), 0, 0, false);
            }
            scalar => {
                out.push_str(&yaml_scalar_inline(scalar, 0));
                out.push('\n');
            }
        }
        out
    }

    /// A mapping's keys (Go field names lower-cased, or map keys) and values.
    fn yaml_entries(&self) -> Vec<(String, GoValue)> {
        match self {
            Self::Struct(fields) => fields
                .iter()
                .map(|(k, v)| (k.replace('_', ""), v.clone()))
                .collect(),
            Self::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), Self::Str(v.clone())))
                .collect(),
            Self::Plain(k, v) => vec![((*k).to_owned(), Self::Str(v.clone()))],
            _ => Vec::new(),
        }
    }
}

fn json_compound(
    out: &mut String,
    level: Option<usize>,
    open: char,
    close: char,
    items: &[(Option<String>, &GoValue)],
) {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return;
    }
    for (i, (key, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(l) = level {
            out.push('\n');
            out.push_str(&"\t".repeat(l + 1));
        }
        if let Some(k) = key {
            json_string(out, k);
            out.push(':');
            if level.is_some() {
                out.push(' ');
            }
        }
        v.json(out, level.map(|l| l + 1));
    }
    if let Some(l) = level {
        out.push('\n');
        out.push_str(&"\t".repeat(l));
    }
    out.push(close);
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escaping of `<`, `>`, `&`).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A block sequence whose dashes stand at column `indent`.
fn yaml_seq(out: &mut String, items: &[GoValue], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            GoValue::Struct(_) | GoValue::Map(_) | GoValue::Plain(..) => {
                out.push_str(&pad);
                out.push_str("- ");
                // yaml.v3 writes an item's mapping compactly after the dash, while the
                // blocks nested in it indent from the sequence's column.
                yaml_map(out, &item.yaml_entries(), indent, indent + 2, true);
            }
            scalar => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&yaml_scalar_inline(scalar, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// A block mapping: nested blocks indent 4 from `logical`; keys stand at `column` (the
/// first one already placed after a dash when `after_dash`).
fn yaml_map(
    out: &mut String,
    entries: &[(String, GoValue)],
    logical: usize,
    column: usize,
    after_dash: bool,
) {
    let pad = " ".repeat(column);
    for (i, (k, v)) in entries.iter().enumerate() {
        if !(after_dash && i == 0) {
            out.push_str(&pad);
        }
        out.push_str(k);
        out.push(':');
        match v {
            GoValue::Struct(f) if f.is_empty() => out.push_str(" {}\n"),
            GoValue::Struct(_) | GoValue::Map(_) | GoValue::Plain(..) => {
                out.push('\n');
                yaml_map(out, &v.yaml_entries(), logical + 4, logical + 4, false);
            }
            GoValue::NilList => out.push_str(" []\n"),
            GoValue::List(items) if items.is_empty() => out.push_str(" []\n"),
            GoValue::List(items) => {
                out.push('\n');
                yaml_seq(out, items, logical + 4);
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar_inline(scalar, logical + 4));
                out.push('\n');
            }
        }
    }
}

/// A scalar after `key: ` or `- `; multi-line strings become literal blocks whose lines
/// stand at `block_indent`.
fn yaml_scalar_inline(v: &GoValue, block_indent: usize) -> String {
    match v {
        GoValue::Uint(n) => n.to_string(),
        GoValue::Int(n) => n.to_string(),
        GoValue::Bool(b) => b.to_string(),
        GoValue::Null => "null".to_owned(),
        GoValue::Str(s) if s.contains('\n') && !s.contains(['\t', '\r']) => {
            literal_block(s, block_indent)
        }
        GoValue::Str(s) => yaml_string(s),
        _ => String::new(),
    }
}

fn literal_block(s: &str, indent: usize) -> String {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    let chomp = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let pad = " ".repeat(indent);
    let mut out = chomp.to_owned();
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

/// A one-line string: plain when YAML would read it back as this string, double-quoted when
/// it would read as another type (or holds control characters), single-quoted when its
/// characters are not allowed plain.
fn yaml_string(s: &str) -> String {
    if s.chars().any(char::is_control) || resolves_to_non_string(s) {
        let mut out = String::new();
        json_string(&mut out, s);
        // yaml.v3 does not escape `<>&` the way Go's JSON encoder does.
        return out
            .replace("\\u003c", "<")
            .replace("\\u003e", ">")
            .replace("\\u0026", "&");
    }
    if plain_allowed(s) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y",
        "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
        ".nan", ".NaN", ".NAN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let is_int = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let radix = |t: &str, p: &str, ok: fn(u8) -> bool| {
        t.strip_prefix(p)
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| ok(b) || b == b'_'))
    };
    if is_int(unsigned)
        || radix(unsigned, "0x", |b| b.is_ascii_hexdigit())
        || radix(unsigned, "0o", |b| (b'0'..=b'7').contains(&b))
        || radix(unsigned, "0b", |b| b == b'0' || b == b'1')
    {
        return true;
    }
    // Floats: digits with at most one dot and an optional exponent.
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let mantissa_ok = {
        let (a, b) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        (!a.is_empty() || !b.is_empty())
            && a.bytes().all(|c| c.is_ascii_digit() || c == b'_')
            && b.bytes().all(|c| c.is_ascii_digit())
    };
    let exponent_ok = exponent.is_none_or(|e| is_int(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if mantissa_ok && exponent_ok && unsigned.bytes().any(|b| b.is_ascii_digit()) {
        return true;
    }
    // Sexagesimal numbers and timestamps (YAML 1.1), which yaml.v3 quotes too.
    let sexagesimal = unsigned.contains(':')
        && unsigned
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let date = s.len() >= 10
        && s.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    sexagesimal || date
}

fn plain_allowed(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if ",[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) {
        let second = s.chars().nth(1);
        if second.is_none_or(|c| c == ' ') {
            return false;
        }
    }
    !(s.contains(": ") || s.contains(" #"))
}

#[cfg(test)]
#[path = "goformat_tests.rs"]
mod tests;
