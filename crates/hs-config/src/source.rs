//! Reading typed values out of the parsed YAML tree with `HEADSCALE_*` environment overrides,
//! the way Go Headscale's viper does: a key path `a.b.c` is overridden by `HEADSCALE_A_B_C`,
//! environment beats file, file beats default, keys match case-insensitively, and scalars are
//! coerced (`"true"` is a bool, `8080` is a string where a string is wanted). Every value that
//! cannot be read becomes a [`Problem`] naming its key path; reading carries on so one run
//! reports all of them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::duration::{DurationError, parse_duration, parse_duration_long};
use super::error::Problem;

/// The environment lookup the loader is given (`std::env::var` in the binary, a map in tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The environment variable that overrides `key`: `HEADSCALE_` + upper-cased path with `.`
/// replaced by `_` (`dns.base_domain` → `HEADSCALE_DNS_BASE_DOMAIN`).
pub fn env_var_name(key: &str) -> String {
    format!("HEADSCALE_{}", key.replace('.', "_").to_ascii_uppercase())
}

enum Raw<'a> {
    Yaml(&'a Value),
    Env(String),
}

pub(crate) struct Source<'a> {
    root: &'a Value,
    env: EnvLookup<'a>,
    pub(crate) problems: Vec<Problem>,
}

/// Finds `path` in `root`, comparing keys case-insensitively as viper does.
pub(crate) fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = root;
    for part in path.split('.') {
        let Value::Mapping(map) = cur else {
            return None;
        };
        cur = map.iter().find_map(|(k, v)| {
            key_text(k)
                .filter(|k| k.eq_ignore_ascii_case(part))
                .map(|_| v)
        })?;
    }
    Some(cur)
}

/// A mapping key as text (YAML allows numbers and bools as keys).
pub(crate) fn key_text(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl<'a> Source<'a> {
    pub(crate) fn new(root: &'a Value, env: EnvLookup<'a>) -> Self {
        Self {
            root,
            env,
            problems: Vec::new(),
        }
    }

    fn raw(&self, key: &str) -> Option<Raw<'a>> {
        // An empty variable counts as unset, as with viper's default `AllowEmptyEnv(false)`.
        if let Some(v) = (self.env)(&env_var_name(key)).filter(|v| !v.is_empty()) {
            return Some(Raw::Env(v));
        }
        match lookup(self.root, key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(Raw::Yaml(v)),
        }
    }

    /// Whether the key has a value in the file or the environment.
    pub(crate) fn is_set(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    fn problem(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem::new(key, reason));
    }

    fn origin(raw: &Raw<'_>, key: &str) -> String {
        match raw {
            Raw::Yaml(_) => String::new(),
            Raw::Env(_) => format!(" (from {})", env_var_name(key)),
        }
    }

    pub(crate) fn string(&mut self, key: &str, default: &str) -> String {
        self.opt_string(key).unwrap_or_else(|| default.to_owned())
    }

    pub(crate) fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.raw(key)? {
            Raw::Env(s) => Some(s),
            Raw::Yaml(v) => match scalar_text(v) {
                Some(s) => Some(s),
                None => {
                    self.problem(key, format!("expected a string, found {}", kind(v)));
                    None
                }
            },
        }
    }

    pub(crate) fn bool(&mut self, key: &str, default: bool) -> bool {
        let Some(raw) = self.raw(key) else {
            return default;
        };
        let parsed = match &raw {
            Raw::Yaml(Value::Bool(b)) => Some(*b),
            Raw::Yaml(v) => scalar_text(v).and_then(|s| parse_bool(&s)),
            Raw::Env(s) => parse_bool(s),
        };
        parsed.unwrap_or_else(|| {
            let shown = match &raw {
                Raw::Yaml(v) => scalar_text(v).unwrap_or_else(|| kind(v).to_owned()),
                Raw::Env(s) => s.clone(),
            };
            let origin = Self::origin(&raw, key);
            self.problem(
                key,
                format!("expected true or false, found {shown:?}{origin}"),
            );
            default
        })
    }

    pub(crate) fn int(&mut self, key: &str, default: i64) -> i64 {
        let Some(raw) = self.raw(key) else {
            return default;
        };
        let text = match &raw {
            Raw::Yaml(v) => scalar_text(v),
            Raw::Env(s) => Some(s.clone()),
        };
        match text.as_deref().map(str::trim).map(str::parse::<i64>) {
            Some(Ok(n)) => n,
            _ => {
                let origin = Self::origin(&raw, key);
                let shown = text.unwrap_or_else(|| "a non-scalar value".to_owned());
                self.problem(key, format!("expected an integer, found {shown:?}{origin}"));
                default
            }
        }
    }

    /// A duration in Go syntax. A bare integer counts as nanoseconds and a unit-less string is
    /// read the same way, as viper's `GetDuration` does; `"0"` is zero either way.
    pub(crate) fn duration(&mut self, key: &str, default: Duration) -> Duration {
        self.duration_with(key, default, false)
    }

    /// Like [`Self::duration`], also accepting `d`, `w`, `y`.
    pub(crate) fn duration_long(&mut self, key: &str, default: Duration) -> Duration {
        self.duration_with(key, default, true)
    }

    fn duration_with(&mut self, key: &str, default: Duration, long: bool) -> Duration {
        let Some(raw) = self.raw(key) else {
            return default;
        };
        let text = match &raw {
            Raw::Yaml(Value::Number(n)) => match n.as_u64() {
                Some(ns) => return Duration::from_nanos(ns),
                None => n.to_string(),
            },
            Raw::Yaml(v) => match scalar_text(v) {
                Some(s) => s,
                None => {
                    self.problem(key, format!("expected a duration, found {}", kind(v)));
                    return default;
                }
            },
            Raw::Env(s) => s.clone(),
        };
        if let Ok(ns) = text.trim().parse::<u64>() {
            return Duration::from_nanos(ns);
        }
        let parsed = if long {
            parse_duration_long(&text)
        } else {
            parse_duration(&text)
        };
        match parsed {
            Ok(d) => d,
            Err(e) => {
                let origin = Self::origin(&raw, key);
                let hint = match e {
                    DurationError::UnknownUnit { .. } if !long => " (units: ns, us, ms, s, m, h)",
                    _ => "",
                };
                self.problem(key, format!("{e}{hint}{origin}"));
                default
            }
        }
    }

    /// A list of strings; from the environment it is split on whitespace, like viper.
    pub(crate) fn string_list(&mut self, key: &str) -> Vec<String> {
        match self.raw(key) {
            None => Vec::new(),
            Some(Raw::Env(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Raw::Yaml(Value::Sequence(items))) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match scalar_text(item) {
                        Some(s) => out.push(s),
                        None => self.problem(
                            &format!("{key}[{i}]"),
                            format!("expected a string, found {}", kind(item)),
                        ),
                    }
                }
                out
            }
            Some(Raw::Yaml(v)) => match scalar_text(v) {
                Some(s) => s.split_whitespace().map(str::to_owned).collect(),
                None => {
                    self.problem(key, format!("expected a list, found {}", kind(v)));
                    Vec::new()
                }
            },
        }
    }

    /// A mapping of strings to lists of strings (`dns.nameservers.split`). Not settable from
    /// the environment, as in Go Headscale.
    pub(crate) fn string_list_map(&mut self, key: &str) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let Some(v) = lookup(self.root, key) else {
            return out;
        };
        match v {
            Value::Null => {}
            Value::Mapping(map) => {
                for (k, val) in map {
                    let Some(name) = key_text(k) else {
                        self.problem(key, "mapping keys must be strings");
                        continue;
                    };
                    let list = match val {
                        Value::Sequence(items) => items.iter().filter_map(scalar_text).collect(),
                        other => match scalar_text(other) {
                            Some(s) => vec![s],
                            None => {
                                self.problem(
                                    &format!("{key}.{name}"),
                                    format!("expected a list, found {}", kind(other)),
                                );
                                continue;
                            }
                        },
                    };
                    out.insert(name, list);
                }
            }
            other => self.problem(key, format!("expected a mapping, found {}", kind(other))),
        }
        out
    }

    /// A mapping of strings to strings (`oidc.extra_params`).
    pub(crate) fn string_map(&mut self, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match lookup(self.root, key) {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(map)) => {
                for (k, val) in map {
                    match (key_text(k), scalar_text(val)) {
                        (Some(k), Some(v)) => {
                            out.insert(k, v);
                        }
                        _ => self.problem(key, "expected a mapping of strings to strings"),
                    }
                }
            }
            Some(other) => {
                self.problem(key, format!("expected a mapping, found {}", kind(other)));
            }
        }
        out
    }

    /// A list of mappings with string fields (`dns.extra_records`).
    pub(crate) fn records(&mut self, key: &str, fields: &[&str]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        match lookup(self.root, key) {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let mut row = Vec::with_capacity(fields.len());
                    for field in fields {
                        match lookup(item, field).and_then(scalar_text) {
                            Some(s) => row.push(s),
                            None => {
                                self.problem(
                                    &format!("{key}[{i}].{field}"),
                                    "missing or not a string",
                                );
                                row.push(String::new());
                            }
                        }
                    }
                    out.push(row);
                }
            }
            Some(other) => self.problem(key, format!("expected a list, found {}", kind(other))),
        }
        out
    }
}
