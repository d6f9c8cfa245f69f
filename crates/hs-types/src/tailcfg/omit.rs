//! Small predicates and deserializers shared by the wire types to mirror Go's `omitempty` /
//! `omitzero` tags and Go's tolerance of `null`.

use serde::{Deserialize, Deserializer};

/// Go's zero-value test for `omitempty`/`omitzero` on scalars (`false`, `0`, `""`).
pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Go's `encoding/json` leaves a slice, map or string at its zero value when it reads `null`;
/// serde would reject `null` for a `Vec`, so fields Go may see as `null` use this.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
