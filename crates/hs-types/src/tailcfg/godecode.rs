//! Reading client JSON with Go's `encoding/json` key rules: a key names the struct field it
//! equals exactly, else the first field (in declaration order) it equals under case folding,
//! and when several keys of one object land on the same field the last one wins.
//!
//! Tailscale's Rust client writes `HostInfo`, `RoutableIps`, `Os`, `PreferredDerp`, ... and
//! Go Headscale reads them because of those rules; serde matches keys exactly and would drop
//! them. [`from_slice`] wraps serde_json's deserializer and intercepts every
//! `deserialize_struct` (at any depth: inside options, sequences, maps and enums): the object
//! is split into raw values by key, each key is resolved to a field name, and each value is
//! then decoded on its own (with the same rules), so a struct's bytes are scanned once per
//! enclosing struct. Keys that match no field pass through unchanged (ignored, or kept by a
//! `#[serde(flatten)]` catch-all). Types with a flattened catch-all must call
//! [`deserialize_fields`] themselves, since serde gives no field list for them.
//!
//! Errors name the path of the value at fault (`Hostinfo.NetInfo.PreferredDERP: invalid
//! type: ...`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_json::value::RawValue;

/// Decodes one JSON value from `bytes` into `T`, matching object keys to fields as Go does.
/// Trailing non-whitespace is an error, as with `serde_json::from_slice`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(GoDe(&mut de))?;
    de.end()?;
    Ok(value)
}

/// A type whose derived `Deserialize` cannot list its fields because it has a
/// `#[serde(flatten)]` member. Its `Deserialize` impl calls [`deserialize_fields`], which asks
/// for a struct with [`GoFields::FIELDS`] (so that [`from_slice`] resolves keys against them)
/// and hands the entries to [`GoFields::from_map`], normally the type's own derive obtained
/// with `#[serde(remote = "Self")]`. Other deserializers treat a struct request as a map
/// request, so this changes nothing for them.
pub trait GoFields: Sized {
    /// The struct name given to the deserializer.
    const NAME: &'static str;
    /// Every JSON key the type reads, in declaration order (Go's tie-break for folding).
    const FIELDS: &'static [&'static str];
    /// Builds the value from the object's entries.
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// `Deserialize::deserialize` for a [`GoFields`] type.
pub fn deserialize_fields<'de, D: Deserializer<'de>, T: GoFields>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_struct(T::NAME, T::FIELDS, ViaMap(PhantomData))
}

struct ViaMap<T>(PhantomData<T>);

impl<'de, T: GoFields> Visitor<'de> for ViaMap<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", T::NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// Resolves `key` among `fields` with Go's precedence: exact, then first case-folded match.
fn resolve(fields: &'static [&'static str], key: &str) -> Option<&'static str> {
    if let Some(f) = fields.iter().find(|f| **f == key) {
        return Some(f);
    }
    fields.iter().copied().find(|f| equal_fold(f, key))
}

/// Case-insensitive equality under simple Unicode folding, as Go's `strings.EqualFold`
/// (ASCII fast path; e.g. the Kelvin sign equals `k`).
fn equal_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let mut x = a.chars();
    let mut y = b.chars();
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(c), Some(d)) => {
                if c != d
                    && !c.to_lowercase().eq(d.to_lowercase())
                    && !c.to_uppercase().eq(d.to_uppercase())
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The wrapping deserializer: forwards everything, wrapping visitors so nested values keep
/// the rules, and takes over `deserialize_struct`.
struct GoDe<D>(D);

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for GoDe<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_ignored_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, StructVisitor { fields, visitor })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Wraps a visitor so that whatever it is handed next (an option's content, a sequence, a
/// map, an enum) is read through [`GoDe`] too.
struct Wrap<V>(V);

macro_rules! forward_visit {
    ($($method:ident: $ty:ty,)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool: bool, visit_i8: i8, visit_i16: i16, visit_i32: i32, visit_i64: i64,
        visit_i128: i128, visit_u8: u8, visit_u16: u16, visit_u32: u32, visit_u64: u64,
        visit_u128: u128, visit_f32: f32, visit_f64: f64, visit_char: char,
        visit_str: &str, visit_borrowed_str: &'de str, visit_string: String,
        visit_bytes: &[u8], visit_borrowed_bytes: &'de [u8], visit_byte_buf: Vec<u8>,
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(GoDe(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(GoDe(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Map(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Enum(data))
    }
}

/// A seed whose value is read through [`GoDe`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(GoDe(d))
    }
}

struct Seq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A plain map (not a struct): keys are data and stay as they are; values keep the rules.
struct Map<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct Enum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
    type Error = A::Error;
    type Variant = Variant<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (v, rest) = self.0.variant_seed(seed)?;
        Ok((v, Variant(rest)))
    }
}

struct Variant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0
            .struct_variant(fields, StructVisitor { fields, visitor })
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One object entry: the key as the struct will see it, and the value still as raw JSON.
struct Entry<'de> {
    key: Cow<'de, str>,
    /// Whether `key` is one of the struct's fields (only those are de-duplicated).
    field: bool,
    value: &'de RawValue,
}

/// Reads a struct's object: resolves keys, keeps the last value per field, then replays the
/// entries to the struct's own visitor.
struct StructVisitor<V> {
    fields: &'static [&'static str],
    visitor: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StructVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        let mut entries: Vec<Entry<'de>> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            match resolve(self.fields, &key) {
                Some(name) => {
                    // Go decodes each key in turn into its field, so the last one counts.
                    if let Some(e) = entries.iter_mut().find(|e| e.field && e.key == name) {
                        e.value = value;
                    } else {
                        entries.push(Entry {
                            key: Cow::Borrowed(name),
                            field: true,
                            value,
                        });
                    }
                }
                None => entries.push(Entry {
                    key,
                    field: false,
                    value,
                }),
            }
        }
        self.visitor.visit_map(Replay {
            entries: entries.into_iter(),
            pending: None,
            _error: PhantomData,
        })
    }

    // A struct may also be written as a JSON array (serde accepts that); no keys to resolve.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Seq(seq))
    }
}

struct Replay<'de, E> {
    entries: std::vec::IntoIter<Entry<'de>>,
    pending: Option<(Cow<'de, str>, &'de RawValue)>,
    _error: PhantomData<E>,
}

impl<'de, E: de::Error> MapAccess<'de> for Replay<'de, E> {
    type Error = E;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, E> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let key = match &entry.key {
            Cow::Borrowed(s) => seed.deserialize(BorrowedStrDeserializer::<E>::new(s))?,
            Cow::Owned(s) => seed.deserialize(StringDeserializer::<E>::new(s.clone()))?,
        };
        self.pending = Some((entry.key, entry.value));
        Ok(Some(key))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, E> {
        let Some((key, raw)) = self.pending.take() else {
            return Err(E::custom("value requested before its key"));
        };
        let mut de = serde_json::Deserializer::from_str(raw.get());
        seed.deserialize(GoDe(&mut de))
            .map_err(|e| E::custom(PathError(&key, &e)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// `Key.Inner: message`: the error of a field's value, prefixed by the field. The position
/// serde_json adds would be relative to the field's value, not the body, so it is dropped
/// in favour of the path (the outer deserializer adds the body position).
struct PathError<'a>(&'a str, &'a serde_json::Error);

impl fmt::Display for PathError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = self.1.to_string();
        let msg = match (self.1.line(), msg.rfind(" at line ")) {
            (l, Some(i)) if l != 0 => &msg[..i],
            _ => &msg,
        };
        // Nested paths join with '.' rather than ': '.
        if msg.starts_with(|c: char| c.is_ascii_alphabetic())
            && let Some((head, _)) = msg.split_once(": ")
            && !head.contains(' ')
        {
            return write!(f, "{}.{msg}", self.0);
        }
        write!(f, "{}: {msg}", self.0)
    }
}
