//! Go's `opt.Bool`: a tri-state boolean (plus the "explicitly unset" state it keeps after
//! decoding `null`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Go's `types/opt.Bool`. On the wire it is the JSON literal `true`, `false` or `null`; quoted
/// strings are rejected, as Go rejects them.
///
/// Fields of this type are `omitempty`/`omitzero` in Go, so [`OptBool::Empty`] is omitted
/// (`skip_serializing_if = "OptBool::is_empty"`) while [`OptBool::ExplicitlyUnset`] is written
/// as `null`, which is what Go writes back after it read a `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OptBool {
    /// Go's `""`: not set; omitted from JSON.
    #[default]
    Empty,
    /// Go's `"unset"`: read from a JSON `null`; written as `null`.
    ExplicitlyUnset,
    /// `true`.
    True,
    /// `false`.
    False,
}

impl OptBool {
    /// The boolean, if one is set.
    pub fn get(self) -> Option<bool> {
        match self {
            Self::True => Some(true),
            Self::False => Some(false),
            Self::Empty | Self::ExplicitlyUnset => None,
        }
    }

    /// Whether this is the omitted state ([`OptBool::Empty`]).
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }
}

impl From<bool> for OptBool {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

impl From<Option<bool>> for OptBool {
    fn from(b: Option<bool>) -> Self {
        b.map_or(Self::Empty, Self::from)
    }
}

impl Serialize for OptBool {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.get() {
            Some(b) => s.serialize_bool(b),
            None => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for OptBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<bool>::deserialize(d)? {
            Some(b) => b.into(),
            None => Self::ExplicitlyUnset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_literals() {
        assert_eq!(serde_json::to_string(&OptBool::True).unwrap(), "true");
        assert_eq!(serde_json::to_string(&OptBool::False).unwrap(), "false");
        assert_eq!(
            serde_json::to_string(&OptBool::ExplicitlyUnset).unwrap(),
            "null"
        );
        assert_eq!(
            serde_json::from_str::<OptBool>("true").unwrap(),
            OptBool::True
        );
        assert_eq!(
            serde_json::from_str::<OptBool>("false").unwrap(),
            OptBool::False
        );
        assert_eq!(
            serde_json::from_str::<OptBool>("null").unwrap(),
            OptBool::ExplicitlyUnset
        );
        assert!(serde_json::from_str::<OptBool>("\"true\"").is_err());
        assert_eq!(OptBool::from(Some(true)).get(), Some(true));
        assert!(OptBool::from(None).is_empty());
    }
}
