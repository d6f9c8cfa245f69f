//! `CapMap`: Go's `NodeCapMap`/`PeerCapMap`, capability name → list of JSON values.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize};

/// Go's `tailcfg.RawMessage`: a JSON value embedded verbatim (capability values). Kept as a
/// parsed value so the policy engine can build and compare them; object keys are written in
/// sorted order, which no client depends on.
pub type RawMessage = serde_json::Value;

/// Go's `NodeCapMap`/`PeerCapMap`: capability name → values. What counts is the presence of
/// the key: a capability with no values is still granted.
///
/// Go distinguishes a nil value list (`null`, what the hosted control plane sends for most
/// capabilities) from an empty one (`[]`, what Headscale sends); clients treat both the same,
/// so both read as an empty `Vec` and are written as `[]`. A `null` map reads as empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct CapMap(pub BTreeMap<String, Vec<RawMessage>>);

impl CapMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is no capability (what Go's `omitempty` tests).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `cap` is present, with or without values (Go `HasCapability`).
    pub fn has(&self, cap: &str) -> bool {
        self.0.contains_key(cap)
    }
}

impl Deref for CapMap {
    type Target = BTreeMap<String, Vec<RawMessage>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for CapMap {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<BTreeMap<String, Vec<RawMessage>>> for CapMap {
    fn from(m: BTreeMap<String, Vec<RawMessage>>) -> Self {
        Self(m)
    }
}

impl<K: Into<String>, const N: usize> From<[(K, Vec<RawMessage>); N]> for CapMap {
    fn from(entries: [(K, Vec<RawMessage>); N]) -> Self {
        entries.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }
}

impl FromIterator<(String, Vec<RawMessage>)> for CapMap {
    fn from_iter<I: IntoIterator<Item = (String, Vec<RawMessage>)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for CapMap {
    type Item = (String, Vec<RawMessage>);
    type IntoIter = std::collections::btree_map::IntoIter<String, Vec<RawMessage>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a CapMap {
    type Item = (&'a String, &'a Vec<RawMessage>);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Vec<RawMessage>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for CapMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Option::<BTreeMap<String, Option<Vec<RawMessage>>>>::deserialize(d)?;
        Ok(m.unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    }
}
