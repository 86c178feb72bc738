//! Attributes written straight from the received JSON into their raw form, without a tree.
//!
//! While serde_json reads an object of a request, every member that is not a well-known field
//! is transcoded into one buffer holding exactly what `serde_json::to_vec` writes for the map
//! the tree path would build (see [`crate::attributes`]): members of every object sorted by key
//! (the map is ordered by key), strings escaped as serde_json escapes them, integers as their
//! 64-bit value, floats as serde_json prints the `f64` it parsed. The buffer is charged to the
//! request's [`Limits`] as it grows, like the trees it replaces.
//!
//! While writing, it notes whether every key and float is in its RFC 8785 canonical form as
//! written (see [`crate::Attributes::raw_canonical_json`]), so the signer can copy the bytes.
//!
//! The members of the `attributes` member join the top-level extras, as the tree path merges
//! them. What the raw form cannot hold exactly is left to the tree path: a key repeated in any
//! object or in both places (kept under `_duplicate`, or refused when strict), an `attributes`
//! member that is not an object or is given twice set `Limits::raw_fallback`, and the body is
//! parsed again as trees.

use super::Key;
use super::parse::Limits;
use crate::attributes::{key_is_canonical, plain_decimal_is_canonical};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Buffers reused across the objects of one request: the members of the objects being written
/// (key, start and end of the member in the output) and room to reorder them.
#[derive(Default)]
pub(super) struct RawScratch<'de> {
    entries: Vec<(Cow<'de, str>, usize, usize)>,
    copy: Vec<u8>,
}

/// The raw attributes of one received object, being written.
pub(super) struct RawObject<'a, 'r, 's, 'de> {
    limits: &'a Limits<'r>,
    out: Vec<u8>,
    /// Capacity of `out` and `copy` already charged to `limits`.
    charged: usize,
    scratch: &'s mut RawScratch<'de>,
    /// True once the `attributes` member was merged in.
    merged: bool,
    /// False once a key or a float was written in a form that is not canonical (see
    /// [`crate::Attributes::raw_canonical_json`]).
    canonical: bool,
}

impl<'a, 'r, 's, 'de> RawObject<'a, 'r, 's, 'de> {
    /// Starts the attributes of one object.
    pub(super) fn start(
        limits: &'a Limits<'r>,
        scratch: &'s mut RawScratch<'de>,
    ) -> RawObject<'a, 'r, 's, 'de> {
        scratch.entries.clear();
        // Room for the attributes of a typical event; charged as it grows.
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{");
        RawObject {
            limits,
            out,
            charged: 0,
            scratch,
            merged: false,
            canonical: true,
        }
    }

    /// Writes the top-level member `key` (not a well-known field) with its value, read from
    /// `map`.
    pub(super) fn member<A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        if !self.scratch.entries.is_empty() {
            self.out.push(b',');
        }
        let start = self.out.len();
        self.canonical &= write_key(&key, &mut self.out);
        map.next_value_seed(Transcode(&mut *self))?;
        let end = self.out.len();
        self.scratch.entries.push((key, start, end));
        self.charge()
    }

    /// Writes the members of the object's `attributes` member among the top-level ones: with
    /// no key in both (a clash sends the body down the tree path) the tree path's merge gives
    /// their union. An `attributes` member given twice or that is not an object (a misfit)
    /// takes the tree path too.
    pub(super) fn merge_attributes<A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
    ) -> Result<(), A::Error> {
        if self.merged {
            return Err(self.fallback());
        }
        self.merged = true;
        map.next_value_seed(Merge(self))
    }

    /// The finished attributes (`None` when the object had no other members).
    pub(super) fn finish<E: de::Error>(mut self) -> Result<Option<super::RawAttributes>, E> {
        if self.scratch.entries.is_empty() {
            return Ok(None);
        }
        // Room for two more members: what an enrich adds is then one copy, no reallocation.
        let mut starts = Vec::with_capacity(self.scratch.entries.len() + 2);
        self.close(0, 0, Some(&mut starts))?;
        Ok(Some((self.out, starts, self.canonical)))
    }

    fn charge<E: de::Error>(&mut self) -> Result<(), E> {
        let held = self.out.capacity() + self.scratch.copy.capacity();
        if held > self.charged {
            self.limits.charge_or_stop(held - self.charged)?;
            self.charged = held;
        }
        Ok(())
    }

    fn fallback<E: de::Error>(&self) -> E {
        self.limits.raw_fallback.set(true);
        E::custom("the object is read again as a tree")
    }

    /// Closes the object that starts at `start` (its `{`) and whose members are the entries
    /// from `base`: sorts its members by key, as the map would.
    /// `starts`: receives where each member begins (for the top-level object).
    fn close<E: de::Error>(
        &mut self,
        start: usize,
        base: usize,
        mut starts: Option<&mut Vec<u32>>,
    ) -> Result<(), E> {
        let entries = &mut self.scratch.entries[base..];
        let mut note = |at: usize| {
            if let Some(starts) = starts.as_mut() {
                starts.push(u32::try_from(at).unwrap_or(u32::MAX));
            }
        };
        if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            for (_, from, _) in entries.iter() {
                note(*from);
            }
        } else {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                return Err(self.fallback());
            }
            let copy = &mut self.scratch.copy;
            copy.clear();
            copy.extend_from_slice(&self.out[start + 1..]);
            self.out.truncate(start + 1);
            for (index, (_, from, to)) in entries.iter().enumerate() {
                if index > 0 {
                    self.out.push(b',');
                }
                note(self.out.len());
                self.out
                    .extend_from_slice(&copy[from - start - 1..to - start - 1]);
            }
        }
        self.out.push(b'}');
        self.scratch.entries.truncate(base);
        self.charge()
    }
}

/// `"key":` as serde_json writes it; returns whether the written key is canonical
/// ([`crate::attributes::key_is_canonical`]).
#[allow(clippy::ptr_arg)] // Borrowed or owned tells whether the key had escapes.
fn write_key(key: &Cow<'_, str>, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    match key {
        // Borrowed from the input: it had no escapes, so it holds nothing serde_json escapes
        // (a quote, a backslash or a control character would have had to be escaped).
        Cow::Borrowed(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        // Writing a string into a Vec cannot fail.
        Cow::Owned(text) => {
            let _ = serde_json::to_writer(&mut *out, text.as_str());
        }
    }
    let canonical = key_is_canonical(&out[start..]);
    out.push(b':');
    canonical
}

/// Writes one JSON value as serde_json would write its parsed form.
struct Transcode<'w, 'a, 'r, 's, 'de>(&'w mut RawObject<'a, 'r, 's, 'de>);

impl<'de> DeserializeSeed<'de> for Transcode<'_, '_, '_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Transcode<'_, '_, '_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.0.out.extend_from_slice(text);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        let _ = serde_json::to_writer(&mut self.0.out, &value);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        let _ = serde_json::to_writer(&mut self.0.out, &value);
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.0.limits.note_float(value);
        match serde_json::Number::from_f64(value) {
            Some(number) => {
                let start = self.0.out.len();
                let _ = serde_json::to_writer(&mut self.0.out, &number);
                self.0.canonical &= plain_decimal_is_canonical(&self.0.out[start..]);
            }
            None => self.0.out.extend_from_slice(b"null"),
        }
        Ok(())
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<(), E> {
        // Borrowed: the input had no escapes here, so there is nothing to escape (see
        // `write_key`).
        let out = &mut self.0.out;
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        let _ = serde_json::to_writer(&mut self.0.out, value);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.0.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let object = self.0;
        object.out.push(b'[');
        let mut first = true;
        loop {
            let mark = object.out.len();
            if !first {
                object.out.push(b',');
            }
            if seq.next_element_seed(Transcode(&mut *object))?.is_none() {
                object.out.truncate(mark);
                break;
            }
            first = false;
            object.charge()?;
        }
        object.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let object = self.0;
        let start = object.out.len();
        let base = object.scratch.entries.len();
        object.out.push(b'{');
        while let Some(Key(key)) = map.next_key()? {
            if let Cow::Owned(text) = &key {
                object.limits.charge_or_stop(text.len())?;
            }
            if object.scratch.entries.len() > base {
                object.out.push(b',');
            }
            let from = object.out.len();
            object.canonical &= write_key(&key, &mut object.out);
            map.next_value_seed(Transcode(&mut *object))?;
            let to = object.out.len();
            object.scratch.entries.push((key, from, to));
            object.charge()?;
        }
        object.close(start, base, None)
    }
}

/// The value of the `attributes` member: its members join the top-level ones.
struct Merge<'w, 'a, 'r, 's, 'de>(&'w mut RawObject<'a, 'r, 's, 'de>);

impl<'de> DeserializeSeed<'de> for Merge<'_, '_, '_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Merge<'_, '_, '_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            if let Cow::Owned(text) = &key {
                self.0.limits.charge_or_stop(text.len())?;
            }
            self.0.member(key, &mut map)?;
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(self.0.fallback())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.0.fallback())
    }
}
