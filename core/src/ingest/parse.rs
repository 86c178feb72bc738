//! Parsing what a sender posted under limits that are checked while parsing, not after:
//!
//! - at most `max_events` objects per request (the parser stops at the first one over);
//! - the memory the parsed values take (strings, arrays, maps, as allocated, not their wire
//!   size) is charged to the request's admission [`Reservation`] as it grows, so a small body
//!   that expands into millions of values stops when the budget is spent;
//! - a key repeated in an object loses nothing: the first value keeps the key and every later
//!   one is appended to `_duplicate.<key>` (a list) of the same object, or the request is
//!   refused in strict mode;
//! - an integer literal that fits neither `i64` nor `u64` is refused, naming its field, instead
//!   of being rounded to a float (serde_json reads such literals as `f64`; only then is the
//!   text scanned again to tell `1e20` from `100000000000000000000`).

use super::raw::{RawObject, RawScratch};
use super::{BodyError, BodyErrorKind, BodyFormat, Members, Object};
use crate::admission::{OverBudget, Reservation};
use crate::event::{Map, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

/// Key, inside the object where a key repeated, of the list of that key's later values.
pub const DUPLICATE_KEY: &str = "_duplicate";

/// Memory of one JSON value slot (in an array, or as a map entry's value).
pub(super) const VALUE_SIZE: usize = size_of::<Value>();
/// Memory of one map entry besides its key's text: key `String`, value, hash and index slot.
pub(super) const ENTRY_SIZE: usize = size_of::<String>() + VALUE_SIZE + 3 * size_of::<usize>();
/// Memory of one member of a received object (key and value).
pub(super) const MEMBER_SIZE: usize = size_of::<(Cow<'static, str>, Value)>();
/// Memory of one parsed object in a request's list.
pub(super) const OBJECT_SIZE: usize = size_of::<Object<'static>>();
/// The reservation grows in steps of at least this, so the budget is touched rarely.
const GROW_STEP: usize = 256 * 1024;

/// Why a parse stopped before the end of a well-formed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// More objects than `max_events` (the request's events limit).
    TooManyEvents {
        /// The configured limit.
        limit: usize,
    },
    /// The parsed values would take more memory than the admission budget grants.
    Memory(OverBudget),
    /// A value that must be an object is not (with a message saying which and what it is).
    Shape(String),
    /// A key repeats in an object and repeated keys are refused (strict mode).
    RepeatedKey(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::TooManyEvents { limit } => write!(
                f,
                "the request holds more than max_events_per_request ({limit}) events"
            ),
            Stop::Memory(over) => write!(f, "{over}"),
            Stop::Shape(message) => f.write_str(message),
            Stop::RepeatedKey(key) => write!(
                f,
                "key {key:?} repeats in an object; strict mode refuses repeated keys"
            ),
        }
    }
}

/// The limits one request is parsed under, and what it has used of them so far.
pub struct Limits<'r> {
    max_events: usize,
    strict: bool,
    reservation: Option<&'r Reservation>,
    counted_keys: &'static [&'static str],
    events: Cell<usize>,
    charged: Cell<usize>,
    allowed: Cell<usize>,
    pub(super) float_beyond_64_bits: Cell<bool>,
    stop: RefCell<Option<Stop>>,
    /// Set when an object cannot be held raw: [`parse_body_raw`] parses the tree way instead.
    pub(super) raw_fallback: Cell<bool>,
}

impl fmt::Debug for Limits<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("max_events", &self.max_events)
            .field("events", &self.events.get())
            .field("charged", &self.charged.get())
            .finish_non_exhaustive()
    }
}

impl<'r> Limits<'r> {
    /// At most `max_events` objects, memory not charged anywhere, repeated keys kept.
    pub fn new(max_events: usize) -> Limits<'r> {
        Limits {
            max_events,
            strict: false,
            reservation: None,
            counted_keys: &[],
            events: Cell::new(0),
            charged: Cell::new(0),
            allowed: Cell::new(usize::MAX),
            float_beyond_64_bits: Cell::new(false),
            stop: RefCell::new(None),
            raw_fallback: Cell::new(false),
        }
    }

    /// No events limit and no memory charged (objects siemrelay wrote itself, tests).
    pub fn unlimited() -> Limits<'r> {
        Limits::new(usize::MAX)
    }

    /// Charges the memory of parsed values to `reservation`, growing it in steps.
    pub fn charging(mut self, reservation: &'r Reservation) -> Limits<'r> {
        self.reservation = Some(reservation);
        self.allowed.set(0);
        self
    }

    /// Refuses a key repeated in an object instead of keeping its later values.
    pub fn strict(mut self, strict: bool) -> Limits<'r> {
        self.strict = strict;
        self
    }

    /// Counts the elements of arrays under these keys as the request's events (OTLP/JSON's
    /// `logRecords`), so the events limit holds inside a nested document.
    pub fn counting_arrays_under(mut self, keys: &'static [&'static str]) -> Limits<'r> {
        self.counted_keys = keys;
        self
    }

    /// Objects (events) counted so far.
    pub fn events(&self) -> usize {
        self.events.get()
    }

    /// Bytes of memory charged so far.
    pub fn charged(&self) -> usize {
        self.charged.get()
    }

    /// Charges `bytes` more (memory the caller allocates for the request's events).
    #[inline]
    pub fn charge(&self, bytes: usize) -> Result<(), Stop> {
        let total = self.charged.get().saturating_add(bytes);
        self.charged.set(total);
        if total <= self.allowed.get() {
            return Ok(());
        }
        self.grow_to(total)
    }

    /// Grows the reservation so that `total` bytes are allowed (the rare part of
    /// [`Limits::charge`], kept out of line so that the common part inlines).
    fn grow_to(&self, total: usize) -> Result<(), Stop> {
        let Some(reservation) = self.reservation else {
            self.allowed.set(usize::MAX);
            return Ok(());
        };
        let step = (total - self.allowed.get()).max(GROW_STEP);
        match reservation.try_grow(step) {
            Ok(()) => {
                self.allowed.set(self.allowed.get().saturating_add(step));
                Ok(())
            }
            // A full step may not fit where the exact amount still does.
            Err(_) if reservation.try_grow(total - self.allowed.get()).is_ok() => {
                self.allowed.set(total);
                Ok(())
            }
            Err(over) => Err(Stop::Memory(over)),
        }
    }

    /// The stop that ended the parse, if a limit (not the syntax) ended it.
    pub fn take_stop(&self) -> Option<Stop> {
        self.stop.borrow_mut().take()
    }

    pub(super) fn charge_or_stop<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.charge(bytes).map_err(|stop| self.stopped(stop))
    }

    /// An integer literal wider than 64 bits arrives as a rounded float; the text tells.
    pub(super) fn note_float(&self, value: f64) {
        if value.fract() == 0.0
            && (value >= 18_446_744_073_709_551_616.0 || value <= -9_223_372_036_854_775_808.0)
        {
            self.float_beyond_64_bits.set(true);
        }
    }

    /// Counts one more event for the scanner ([`super::scan`]); `false` when that is over
    /// `max_events` (no stop is recorded: the current path runs again and stops there).
    pub(super) fn count_scanned_event(&self) -> bool {
        let count = self.events.get() + 1;
        self.events.set(count);
        count <= self.max_events
    }

    fn count_event<E: de::Error>(&self) -> Result<(), E> {
        let count = self.events.get() + 1;
        self.events.set(count);
        if count > self.max_events {
            return Err(self.stopped(Stop::TooManyEvents {
                limit: self.max_events,
            }));
        }
        Ok(())
    }

    fn stopped<E: de::Error>(&self, stop: Stop) -> E {
        let error = E::custom(&stop);
        *self.stop.borrow_mut() = Some(stop);
        error
    }

    fn counts(&self, key: &str) -> bool {
        !self.counted_keys.is_empty() && self.counted_keys.contains(&key)
    }
}

/// Puts `value`, a later value of the repeated `key`, under `object._duplicate.<key>` (a list),
/// so nothing is lost. A `_duplicate` the sender sent that is not an object, or a non-list
/// under it, is kept as the first element of the list that replaces it.
pub fn keep_duplicate(object: &mut Map, key: String, value: Value) {
    let slot = object
        .entry(DUPLICATE_KEY)
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        let sender = std::mem::take(slot);
        let mut wrapped = Map::new();
        wrapped.insert(DUPLICATE_KEY.to_string(), Value::Array(vec![sender]));
        *slot = Value::Object(wrapped);
    }
    let Value::Object(duplicates) = slot else {
        return;
    };
    let list = duplicates
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        let earlier = std::mem::take(list);
        *list = Value::Array(vec![earlier]);
    }
    if let Value::Array(items) = list {
        items.push(value);
    }
}

/// Where an object sits in a request, for "… is a number, expected a JSON object".
#[derive(Clone, Copy)]
enum Place {
    Body,
    Element(usize),
    Line(usize),
    /// One object on its own (a file line, a record).
    Object,
}

fn shape_error(place: Place, found: &str) -> Stop {
    Stop::Shape(match place {
        Place::Body => {
            format!("body is {found}, expected a JSON object or an array of objects")
        }
        Place::Element(index) => {
            format!("array element {index} is {found}, expected a JSON object")
        }
        Place::Line(line) => format!("line {line} is {found}, expected a JSON object"),
        Place::Object => format!("line is {found}, expected a JSON object"),
    })
}

/// Any JSON value, charged and with repeated keys kept.
struct ValueSeed<'a, 'r>(&'a Limits<'r>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor(self.0))
    }
}

struct ValueVisitor<'a, 'r>(&'a Limits<'r>);

impl<'de> Visitor<'de> for ValueVisitor<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        self.0.note_float(value);
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.0.charge_or_stop(value.len())?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.0.charge_or_stop(value.len())?;
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let limits = self.0;
        let mut items: Vec<Value> = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed(limits))? {
            let capacity = items.capacity();
            items.push(item);
            if items.capacity() != capacity {
                limits.charge_or_stop((items.capacity() - capacity) * VALUE_SIZE)?;
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let limits = self.0;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            limits.charge_or_stop(key.len() + ENTRY_SIZE)?;
            let value = if limits.counts(&key) {
                map.next_value_seed(CountedSeed(limits))?
            } else {
                map.next_value_seed(ValueSeed(limits))?
            };
            match object.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let key = slot.key().clone();
                    if limits.strict {
                        return Err(limits.stopped(Stop::RepeatedKey(key)));
                    }
                    keep_duplicate(&mut object, key, value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// An array whose elements count as events (see [`Limits::counting_arrays_under`]); any other
/// value is parsed as it is, for the caller to judge.
struct CountedSeed<'a, 'r>(&'a Limits<'r>);

impl<'de> DeserializeSeed<'de> for CountedSeed<'_, '_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(CountedVisitor(self.0))
    }
}

struct CountedVisitor<'a, 'r>(&'a Limits<'r>);

impl<'de> Visitor<'de> for CountedVisitor<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let limits = self.0;
        let mut items: Vec<Value> = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed(limits))? {
            limits.count_event()?;
            let capacity = items.capacity();
            items.push(item);
            if items.capacity() != capacity {
                limits.charge_or_stop((items.capacity() - capacity) * VALUE_SIZE)?;
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        ValueVisitor(self.0).visit_bool(value)
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        ValueVisitor(self.0).visit_i64(value)
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        ValueVisitor(self.0).visit_u64(value)
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        ValueVisitor(self.0).visit_f64(value)
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        ValueVisitor(self.0).visit_str(value)
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        ValueVisitor(self.0).visit_string(value)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        ValueVisitor(self.0).visit_map(map)
    }
}

/// One received object: its members in arrival order (repeated keys kept for ingest); with
/// `raw`, the members that are not well-known fields are transcoded into the object's raw
/// attributes instead (see [`super::raw`]).
struct MembersSeed<'a, 'r, 's, 'de> {
    limits: &'a Limits<'r>,
    place: Place,
    raw: Option<&'s mut RawScratch<'de>>,
}

impl<'de> DeserializeSeed<'de> for MembersSeed<'_, '_, '_, 'de> {
    type Value = Object<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Object<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_, '_, '_, 'de> {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let limits = self.limits;
        let mut members: Vec<(Cow<'de, str>, Value)> = Vec::with_capacity(12);
        limits.charge_or_stop(12 * MEMBER_SIZE)?;
        let mut raw = self.raw.map(|scratch| RawObject::start(limits, scratch));
        while let Some(super::Key(key)) = map.next_key()? {
            if let Cow::Owned(text) = &key {
                limits.charge_or_stop(text.len())?;
            }
            if let Some(raw) = &mut raw {
                match super::WellKnown::from_key(&key) {
                    None => {
                        raw.member(key, &mut map)?;
                        continue;
                    }
                    Some(super::WellKnown::Attributes) => {
                        raw.merge_attributes(&mut map)?;
                        continue;
                    }
                    Some(_) => {}
                }
            }
            let value = map.next_value_seed(ValueSeed(limits))?;
            let capacity = members.capacity();
            members.push((key, value));
            if members.capacity() != capacity {
                limits.charge_or_stop((members.capacity() - capacity) * MEMBER_SIZE)?;
            }
        }
        let raw_attributes = match raw {
            Some(raw) => raw.finish()?,
            None => None,
        };
        Ok(Object {
            members: Members(members),
            raw_attributes,
            parsed: super::ParsedFields::default(),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Object<'de>, A::Error> {
        Err(self.wrong("an array"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Object<'de>, E> {
        Err(self.wrong("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Object<'de>, E> {
        Err(self.wrong("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Object<'de>, E> {
        Err(self.wrong("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Object<'de>, E> {
        Err(self.wrong("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Object<'de>, E> {
        Err(self.wrong("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Object<'de>, E> {
        Err(self.wrong("null"))
    }
}

impl MembersSeed<'_, '_, '_, '_> {
    fn wrong<E: de::Error>(&self, found: &str) -> E {
        self.limits.stopped(shape_error(self.place, found))
    }
}

/// A JSON body: one object, or an array whose elements are objects (each one event).
struct BodySeed<'a, 'r> {
    limits: &'a Limits<'r>,
    raw: bool,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = Vec<Object<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = Vec<Object<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.limits.count_event()?;
        let mut scratch = RawScratch::default();
        let object = MembersSeed {
            limits: self.limits,
            place: Place::Body,
            raw: self.raw.then_some(&mut scratch),
        }
        .visit_map(map)?;
        Ok(vec![object])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let limits = self.limits;
        let mut objects = Vec::new();
        let mut scratch = RawScratch::default();
        loop {
            let place = Place::Element(objects.len());
            let raw = self.raw.then_some(&mut scratch);
            let Some(object) = seq.next_element_seed(MembersSeed { limits, place, raw })? else {
                break;
            };
            limits.count_event()?;
            let capacity = objects.capacity();
            objects.push(object);
            if objects.capacity() != capacity {
                limits.charge_or_stop((objects.capacity() - capacity) * OBJECT_SIZE)?;
            }
        }
        Ok(objects)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.wrong("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(self.wrong("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(self.wrong("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(self.wrong("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(self.wrong("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.wrong("null"))
    }
}

impl BodySeed<'_, '_> {
    fn wrong<E: de::Error>(&self, found: &str) -> E {
        self.limits.stopped(shape_error(Place::Body, found))
    }
}

/// Runs `seed` over one JSON text (which must end after the value) under `limits`.
fn parse_text<'de, T>(
    text: &'de [u8],
    utf8: Option<&'de str>,
    limits: &Limits<'_>,
    seed: impl DeserializeSeed<'de, Value = T>,
) -> Result<T, BodyError> {
    let result = match utf8 {
        Some(text) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            seed.deserialize(&mut deserializer)
                .and_then(|value| deserializer.end().map(|()| value))
        }
        None => {
            let mut deserializer = serde_json::Deserializer::from_slice(text);
            seed.deserialize(&mut deserializer)
                .and_then(|value| deserializer.end().map(|()| value))
        }
    };
    result.map_err(|e| match limits.take_stop() {
        Some(stop) => BodyError::stopped(stop),
        None => {
            let text = e.to_string();
            let reason = text.split(" at line ").next().unwrap_or(&text).to_string();
            BodyError {
                message: format!(
                    "malformed JSON at line {}, column {}: {text}",
                    e.line(),
                    e.column()
                ),
                kind: BodyErrorKind::Malformed {
                    line: e.line(),
                    column: e.column(),
                    reason,
                },
            }
        }
    })
}

/// Refuses `text` when it holds an integer wider than 64 bits (only looked for when the parse
/// saw a float that could be one). `place` prefixes the message (`line 3: `).
fn check_wide_integers(text: &[u8], limits: &Limits<'_>, place: &str) -> Result<(), BodyError> {
    if !limits.float_beyond_64_bits.replace(false) {
        return Ok(());
    }
    match find_wide_integer(text) {
        Some((path, literal)) => Err(BodyError {
            kind: BodyErrorKind::WideInteger,
            message: format!(
                "{place}field {path}: the integer {literal} does not fit in 64 bits; siemrelay \
                 refuses it rather than round it (send it as a string)"
            ),
        }),
        None => Ok(()),
    }
}

/// Splits a request body into JSON objects under `limits`. The whole body fails if any part is
/// malformed or a limit is reached.
pub fn parse_body<'b>(
    body: &'b [u8],
    format: BodyFormat,
    limits: &Limits<'_>,
) -> Result<Vec<Members<'b>>, BodyError> {
    let objects = parse_objects(body, format, limits, false)?;
    Ok(objects.into_iter().map(|object| object.members).collect())
}

/// Like [`parse_body`], but each object's members that are not well-known fields, and those of
/// its `attributes` member, are written straight into its raw attributes (`serde_json::to_vec`
/// of the map the tree path makes of them) instead of trees, for
/// [`super::event_from_received`] with options that have this `mapping`. An object the raw
/// form cannot hold exactly (a key repeated at any depth or given both at the top level and in
/// `attributes`, an `attributes` member that is not one object), and a body that fails, are
/// parsed again the tree way, so results and errors are those of [`parse_body`]. With a mapping (which
/// reads the members as sent) every body is parsed the tree way.
///
/// A body of the common shape is read by a hand-written single-pass scanner (`ingest::scan`)
/// instead of serde_json's reader, with the same results and the same charges; any other body
/// (or one it stops on) is parsed as described above, from the start.
pub fn parse_body_raw<'b>(
    body: &'b [u8],
    format: BodyFormat,
    limits: &Limits<'_>,
    mapping: &super::FieldMapping,
) -> Result<Vec<Object<'b>>, BodyError> {
    if !limits.counted_keys.is_empty() || !mapping.is_empty() {
        return parse_objects(body, format, limits, false);
    }
    // The common bodies first, with the hand-written scanner; whatever it does not take is
    // parsed from the start as before, with what it counted and charged taken back.
    if let Ok(text) = simdutf8::basic::from_utf8(body) {
        let (events, charged) = (limits.events.get(), limits.charged.get());
        if let Some(scanned) = super::scan::scan_body(text, format, limits) {
            return Ok(scanned.objects);
        }
        limits.events.set(events);
        limits.charged.set(charged);
    }
    parse_body_raw_serde(body, format, limits)
}

/// [`parse_body_raw`] without the scanner: serde_json's reader with the raw visitors, then
/// the tree path for a body they do not take.
pub(super) fn parse_body_raw_serde<'b>(
    body: &'b [u8],
    format: BodyFormat,
    limits: &Limits<'_>,
) -> Result<Vec<Object<'b>>, BodyError> {
    let (events, charged) = (limits.events.get(), limits.charged.get());
    let first = parse_objects(body, format, limits, true);
    // A failed body is read again the tree way too, so that its error is the tree path's (a
    // key repeated at the top level is only seen at the object's end, after a later error).
    if !limits.raw_fallback.replace(false) && first.is_ok() {
        return first;
    }
    drop(first);
    limits.events.set(events);
    limits.charged.set(charged);
    limits.float_beyond_64_bits.set(false);
    limits.stop.borrow_mut().take();
    parse_objects(body, format, limits, false)
}

/// The non-blank lines of an NDJSON body: their 1-based number and byte range, without the
/// line end (`\n` or `\r\n`). Line ends are ASCII, so the ranges fall on character
/// boundaries.
pub(super) fn ndjson_lines(body: &[u8]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .chain(std::iter::once(body.len()))
        .enumerate()
        .filter_map(move |(index, end)| {
            let (from, mut to) = (start, end);
            start = end + 1;
            if to > from && body[to - 1] == b'\r' {
                to -= 1;
            }
            let blank = body[from..to].iter().all(u8::is_ascii_whitespace);
            (!blank).then_some((index + 1, from, to))
        })
}

fn parse_objects<'b>(
    body: &'b [u8],
    format: BodyFormat,
    limits: &Limits<'_>,
    raw: bool,
) -> Result<Vec<Object<'b>>, BodyError> {
    // One UTF-8 check of the whole body costs far less than one per JSON string; a valid body
    // is then parsed as text, which serde_json does not check again.
    let text = simdutf8::basic::from_utf8(body).ok();
    match format {
        BodyFormat::Json => {
            let objects = parse_text(body, text, limits, BodySeed { limits, raw })?;
            check_wide_integers(body, limits, "")?;
            Ok(objects)
        }
        BodyFormat::Ndjson => {
            let mut objects: Vec<Object<'b>> = Vec::new();
            let mut scratch = RawScratch::default();
            for (line_number, from, to) in ndjson_lines(body) {
                let line = &body[from..to];
                // Line ends are ASCII, so `from..to` falls on character boundaries.
                let line_text = text.map(|text| &text[from..to]);
                let place = Place::Line(line_number);
                let seed = MembersSeed {
                    limits,
                    place,
                    raw: raw.then_some(&mut scratch),
                };
                let object = parse_text(line, line_text, limits, seed).map_err(|mut error| {
                    if let BodyErrorKind::Malformed { .. } = error.kind {
                        error.message = error.message.replacen(
                            "at line 1, column",
                            &format!("at line {line_number}, column"),
                            1,
                        );
                    } else if !matches!(error.kind, BodyErrorKind::Shape) {
                        error.message = format!("line {line_number}: {}", error.message);
                    }
                    error
                })?;
                check_wide_integers(line, limits, &format!("line {line_number}: "))?;
                limits
                    .count_event::<serde_json::Error>()
                    .map_err(|_| stop_error(limits))?;
                let capacity = objects.capacity();
                objects.push(object);
                if objects.capacity() != capacity {
                    limits
                        .charge_or_stop::<serde_json::Error>(
                            (objects.capacity() - capacity) * OBJECT_SIZE,
                        )
                        .map_err(|_| stop_error(limits))?;
                }
            }
            Ok(objects)
        }
    }
}

fn stop_error(limits: &Limits<'_>) -> BodyError {
    match limits.take_stop() {
        Some(stop) => BodyError::stopped(stop),
        None => BodyError {
            kind: BodyErrorKind::Shape,
            message: "the request could not be read".into(),
        },
    }
}

/// Parses one JSON object (a file line, a Kafka record) under `limits`.
pub fn parse_object<'b>(text: &'b [u8], limits: &Limits<'_>) -> Result<Members<'b>, BodyError> {
    let utf8 = std::str::from_utf8(text).ok();
    let object = parse_text(
        text,
        utf8,
        limits,
        MembersSeed {
            limits,
            place: Place::Object,
            raw: None,
        },
    )?;
    check_wide_integers(text, limits, "")?;
    Ok(object.members)
}

/// Parses any JSON document under `limits` (a protocol's JSON body, such as OTLP/JSON).
pub fn parse_value(text: &[u8], limits: &Limits<'_>) -> Result<Value, BodyError> {
    parse_text(text, None, limits, ValueSeed(limits))
}

impl BodyError {
    fn stopped(stop: Stop) -> BodyError {
        let message = stop.to_string();
        let kind = match stop {
            Stop::TooManyEvents { limit } => BodyErrorKind::TooManyEvents { limit },
            Stop::Memory(over) => BodyErrorKind::Memory(over),
            Stop::Shape(_) => BodyErrorKind::Shape,
            Stop::RepeatedKey(_) => BodyErrorKind::RepeatedKey,
        };
        BodyError { kind, message }
    }
}

/// The path (`[3].attributes.n`) and text of the first integer literal in `json` that fits
/// neither `i64` nor `u64`. `json` has been parsed already, so the scan only tracks where it is.
pub fn find_wide_integer(json: &[u8]) -> Option<(String, String)> {
    enum Frame {
        Object(String),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'{' => {
                stack.push(Frame::Object(String::new()));
                expect_key = true;
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array(index)) => *index += 1,
                    Some(Frame::Object(_)) => expect_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(json, i + 1);
                if expect_key {
                    if let Some(Frame::Object(key)) = stack.last_mut() {
                        *key = String::from_utf8_lossy(&json[i + 1..end]).into_owned();
                    }
                    expect_key = false;
                }
                i = end + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < json.len()
                    && matches!(json[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let literal = String::from_utf8_lossy(&json[start..i]);
                if is_wide_integer(&literal) {
                    let mut path = String::new();
                    for frame in &stack {
                        match frame {
                            Frame::Object(key) => {
                                if !path.is_empty() {
                                    path.push('.');
                                }
                                path.push_str(key);
                            }
                            Frame::Array(index) => path.push_str(&format!("[{index}]")),
                        }
                    }
                    return Some((path, literal.into_owned()));
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Index of the closing quote of the string whose text starts at `from` (`json.len()` when
/// there is none). Keys and most values are short: a plain loop beats a vectorized search's
/// setup here.
pub(crate) fn string_end(json: &[u8], mut from: usize) -> usize {
    while from < json.len() {
        match json[from] {
            b'\\' => from += 2,
            b'"' => return from,
            _ => from += 1,
        }
    }
    json.len()
}

/// Index of the first byte from `at` that ends a string's plain run in JSON text: `"`, `\` or
/// a control character (`bytes.len()` when there is none). Eight bytes at a time, then one by
/// one. The webhook's scanner reads strings with it, and `sign`'s canonical writer finds what
/// it must escape with it.
#[inline(always)]
pub fn first_special_byte(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const SPACES: u64 = ONES * 0x20;
    // The lowest flag of each test marks its first real match (a false flag only ever sits
    // above a real one), so the lowest flag of all three marks the first special byte.
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let flags = zero_byte(word ^ QUOTES)
            | zero_byte(word ^ BACKSLASHES)
            | (word.wrapping_sub(SPACES) & !word & HIGHS);
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

fn is_wide_integer(literal: &str) -> bool {
    if literal.contains(['.', 'e', 'E']) {
        return false;
    }
    let digits = literal.trim_start_matches('-');
    if digits.len() > 20 {
        return true;
    }
    match literal.parse::<i128>() {
        Ok(n) => n < i128::from(i64::MIN) || n > i128::from(u64::MAX),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::MemoryBudget;
    use serde_json::json;

    fn value(members: &Members<'_>) -> Value {
        Value::Object(
            members
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn the_events_limit_stops_the_parse() {
        let body = format!("[{}{{}}]", "{},".repeat(20));
        let limits = Limits::new(10);
        let error = parse_body(body.as_bytes(), BodyFormat::Json, &limits).unwrap_err();
        assert_eq!(error.kind, BodyErrorKind::TooManyEvents { limit: 10 });
        assert_eq!(
            limits.events(),
            11,
            "stopped at the first object over the limit"
        );
        assert!(
            error.message.contains("max_events_per_request (10)"),
            "{}",
            error.message
        );
        let ndjson = "{}\n".repeat(20);
        let limits = Limits::new(10);
        let error = parse_body(ndjson.as_bytes(), BodyFormat::Ndjson, &limits).unwrap_err();
        assert_eq!(error.kind, BodyErrorKind::TooManyEvents { limit: 10 });
        assert_eq!(limits.events(), 11);
        assert_eq!(
            parse_body(ndjson.as_bytes(), BodyFormat::Ndjson, &Limits::new(20))
                .unwrap()
                .len(),
            20
        );
    }

    #[test]
    fn memory_is_charged_while_parsing_and_stops_at_the_budget() {
        let budget = MemoryBudget::new(4 * 1024 * 1024);
        let reservation = budget.empty_reservation();
        // 2 MB of `0,` is a million numbers: 32 MB as values, far more than its wire size.
        let body = format!("{{\"a\":[{}0]}}", "0,".repeat(1_000_000));
        let limits = Limits::new(10).charging(&reservation);
        let error = parse_body(body.as_bytes(), BodyFormat::Json, &limits).unwrap_err();
        assert!(
            matches!(
                error.kind,
                BodyErrorKind::Memory(OverBudget::NeverFits { .. })
            ),
            "{error:?}"
        );
        assert!(reservation.bytes() <= 4 * 1024 * 1024);
        drop(reservation);
        assert_eq!(budget.used(), 0);

        let reservation = budget.empty_reservation();
        let limits = Limits::new(10).charging(&reservation);
        let objects = parse_body(br#"{"a":"xyz","b":[1,2,3]}"#, BodyFormat::Json, &limits).unwrap();
        assert_eq!(objects.len(), 1);
        assert!(
            limits.charged() >= 3 + 3 * VALUE_SIZE,
            "{}",
            limits.charged()
        );
        assert!(reservation.bytes() >= limits.charged());
    }

    #[test]
    fn repeated_keys_lose_nothing_or_are_refused_when_strict() {
        let body =
            br#"{"tags":{"env":"a","env":"b","env":"c"},"n":{"_duplicate":1,"_duplicate":2}}"#;
        let objects = parse_body(body, BodyFormat::Json, &Limits::unlimited()).unwrap();
        assert_eq!(
            value(&objects[0]),
            json!({"tags": {"env": "a", "_duplicate": {"env": ["b", "c"]}},
                   "n": {"_duplicate": {"_duplicate": [1, 2]}}})
        );
        let error =
            parse_body(body, BodyFormat::Json, &Limits::unlimited().strict(true)).unwrap_err();
        assert_eq!(error.kind, BodyErrorKind::RepeatedKey);
        assert!(error.message.contains("\"env\""), "{}", error.message);
    }

    #[test]
    fn integers_wider_than_64_bits_are_refused_naming_the_field() {
        let body = br#"[{"a":1},{"x":{"big":[1,123456789012345678901234567890]},"f":1e30}]"#;
        let error = parse_body(body, BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        assert_eq!(error.kind, BodyErrorKind::WideInteger);
        assert!(
            error.message.contains("[1].x.big[1]")
                && error.message.contains("123456789012345678901234567890"),
            "{}",
            error.message
        );
        let body = b"{\"ok\":1}\n{\"n\":-9223372036854775809}\n";
        let error = parse_body(body, BodyFormat::Ndjson, &Limits::unlimited()).unwrap_err();
        assert!(
            error.message.starts_with("line 2: field n:"),
            "{}",
            error.message
        );
        // Floats, and integers up to u64::MAX and down to i64::MIN, are fine.
        let fine = br#"{"f":1e30,"g":1.5e19,"u":18446744073709551615,"i":-9223372036854775808}"#;
        let objects = parse_body(fine, BodyFormat::Json, &Limits::unlimited()).unwrap();
        assert_eq!(value(&objects[0])["u"], json!(u64::MAX));
        assert_eq!(value(&objects[0])["f"], json!(1e30));
    }

    #[test]
    fn counted_arrays_hold_the_events_limit_in_nested_documents() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{}]}]}]}"#;
        let limits = Limits::new(2).counting_arrays_under(&["logRecords"]);
        let error = parse_value(body, &limits).unwrap_err();
        assert_eq!(error.kind, BodyErrorKind::TooManyEvents { limit: 2 });
        let limits = Limits::new(3).counting_arrays_under(&["logRecords"]);
        assert!(parse_value(body, &limits).is_ok());
        assert_eq!(limits.events(), 3);
    }

    #[test]
    fn shapes_and_syntax_errors_say_where() {
        let error = parse_body(b"[{}, 3]", BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        assert_eq!(
            error.message,
            "array element 1 is a number, expected a JSON object"
        );
        let error = parse_body(b"\"x\"", BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        assert!(
            error.message.starts_with("body is a string"),
            "{}",
            error.message
        );
        let error = parse_body(b"{}\n[1]\n", BodyFormat::Ndjson, &Limits::unlimited()).unwrap_err();
        assert_eq!(error.message, "line 2 is an array, expected a JSON object");
        let error =
            parse_body(b"{}\n{\"a\":}\n", BodyFormat::Ndjson, &Limits::unlimited()).unwrap_err();
        assert!(
            error
                .message
                .starts_with("malformed JSON at line 2, column"),
            "{}",
            error.message
        );
        let error = parse_body(b"{} x", BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        assert!(
            matches!(
                error.kind,
                BodyErrorKind::Malformed {
                    line: 1,
                    column: 4,
                    ..
                }
            ),
            "{error:?}"
        );
        let error = parse_object(b"{not json", &Limits::unlimited()).unwrap_err();
        assert_eq!(
            error.kind,
            BodyErrorKind::Malformed {
                line: 1,
                column: 2,
                reason: "key must be a string".into()
            }
        );
        let error = parse_object(b"[1]", &Limits::unlimited()).unwrap_err();
        assert_eq!(error.message, "line is an array, expected a JSON object");
    }
}
