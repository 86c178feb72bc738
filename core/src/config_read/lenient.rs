//! Reading a parsed config into typed settings, where a string that reads as a number or a
//! boolean is accepted for a numeric or boolean setting.
//!
//! `${env:…}` and `${file:…}` references expand to strings (a secret keeps every character),
//! so without this `max_events: ${env:QUEUE_MAX_EVENTS}` could never work. Strings stay strings
//! everywhere a string is expected; only a setting that asks for a number or a boolean parses
//! one, and a string that does not parse keeps serde's usual error (naming the key).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;

/// A config value deserialized leniently (see the module doc).
pub struct Lenient(pub Value);

/// Forwards `deserialize_*` methods to the inner YAML value unchanged.
macro_rules! forward_to_value {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method(visitor)
            }
        )*
    };
}

/// Parses a string for a numeric or boolean setting, else defers to the YAML value.
macro_rules! parse_from_string {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                match self.0 {
                    Value::String(text) => match text.trim().parse::<$ty>() {
                        Ok(parsed) => visitor.$visit(parsed),
                        Err(_) => Value::String(text).$method(visitor),
                    },
                    other => other.$method(visitor),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = serde_yaml::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Sequence(items) => visitor.visit_seq(Items(items.into_iter())),
            Value::Mapping(map) => visitor.visit_map(Entries::new(map)),
            other => other.deserialize_any(visitor),
        }
    }

    parse_from_string! {
        deserialize_bool => bool, visit_bool;
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_f32 => f32, visit_f32;
        deserialize_f64 => f64, visit_f64;
    }

    forward_to_value! {
        deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Sequence(items) => visitor.visit_seq(Items(items.into_iter())),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Mapping(map) => visitor.visit_map(Entries::new(map)),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Mapping(map) => visitor.visit_map(Entries::new(map)),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }
}

/// The items of a sequence, each read leniently.
struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = serde_yaml::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|item| seed.deserialize(Lenient(item)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of a mapping, values read leniently.
struct Entries {
    entries: serde_yaml::mapping::IntoIter,
    value: Option<Value>,
}

impl Entries {
    fn new(map: serde_yaml::Mapping) -> Entries {
        Entries {
            entries: map.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = serde_yaml::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(Lenient(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <serde_yaml::Error as de::Error>::custom("a value without a key"))?;
        seed.deserialize(Lenient(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        max_events: usize,
        ratio: f64,
        enabled: bool,
        token: String,
        port: Option<u16>,
        nested: Vec<Nested>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Nested {
        count: u32,
    }

    fn read(yaml: &str) -> Result<Settings, String> {
        let value: Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        Settings::deserialize(Lenient(value)).map_err(|e| e.to_string())
    }

    #[test]
    fn strings_feed_numeric_and_boolean_settings_and_stay_strings_elsewhere() {
        let settings = read(
            r#"{ max_events: "5000", ratio: " 0.5 ", enabled: "true", token: "12345",
                 port: "8088", nested: [{ count: "3" }] }"#,
        )
        .unwrap();
        assert_eq!(
            settings,
            Settings {
                max_events: 5000,
                ratio: 0.5,
                enabled: true,
                token: "12345".into(),
                port: Some(8088),
                nested: vec![Nested { count: 3 }],
            }
        );
        let plain =
            read("{ max_events: 1, ratio: 2, enabled: false, token: t, port: null, nested: [] }")
                .unwrap();
        assert_eq!((plain.max_events, plain.port), (1, None));
    }

    #[test]
    fn a_string_that_does_not_parse_keeps_the_usual_errors() {
        let error =
            read(r#"{ max_events: "lots", ratio: 1, enabled: true, token: t, nested: [] }"#)
                .unwrap_err();
        assert!(error.contains("invalid type: string \"lots\""), "{error}");
        let error =
            read("{ max_events: 1, ratio: 1, enabled: true, token: t, nested: [], extra: 1 }")
                .unwrap_err();
        assert!(error.contains("unknown field `extra`"), "{error}");
    }
}
