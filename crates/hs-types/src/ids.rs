//! Identifier newtypes. Raw integers never cross a crate boundary as ids, so a user id can
//! not be passed where a node id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number, for storage and the wire.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

id_newtype!(
    /// A node's database id; also the `ID` of `tailcfg.Node` on the wire.
    NodeId
);
id_newtype!(
    /// A user's database id; also the `ID` of `tailcfg.UserProfile` on the wire.
    UserId
);

impl NodeId {
    /// The `StableID` Headscale derives from the node id: the decimal id as a string.
    pub fn stable_id(self) -> String {
        self.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_transparent_numbers_on_the_wire() {
        assert_eq!(serde_json::to_string(&NodeId(7)).unwrap(), "7");
        let u: UserId = serde_json::from_str("42").unwrap();
        assert_eq!(u, UserId(42));
        assert_eq!(format!("{u:?}"), "UserId(42)");
        assert_eq!(NodeId(9).stable_id(), "9");
    }
}
