//! Go's `float64` JSON form: an integral value is written without a fraction (`3`, not
//! `3.0`). Readers decode both alike, but a `serde_json::Value` built from our output must
//! equal one built from Go's (golden tests compare values), and `3` and `3.0` differ there.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Integral floats below this magnitude are exactly representable as `i64` and are written
/// in integer form, as Go's `strconv.FormatFloat(f, 'f', -1, 64)` does.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < EXACT_INT {
        // Truncation cannot happen: the value is integral and within 2^53.
        #[allow(clippy::cast_possible_truncation)]
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// A map whose float values use Go's form.
pub(crate) fn serialize_map<K: Serialize, S: Serializer>(
    m: &BTreeMap<K, f64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    struct GoFloat(f64);
    impl Serialize for GoFloat {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &GoFloat(*v))?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct F(#[serde(serialize_with = "serialize")] f64);

    #[test]
    fn integral_floats_have_no_fraction() {
        let out = |v| serde_json::to_string(&F(v)).unwrap();
        assert_eq!(out(3.0), "3");
        assert_eq!(out(-2.0), "-2");
        assert_eq!(out(0.0), "0");
        assert_eq!(out(0.5), "0.5");
        assert_eq!(out(0.000731), "0.000731");
        assert_eq!(out(1e300), "1e+300");
    }
}
