//! A JSON value to deserialize a request type from, strictly: a struct is read only
//! from a JSON object. serde reads a struct from an array too (its fields in order),
//! so `["alice"]` would pass for `{"username": "alice"}`; Rocket.Chat's `check()`
//! refuses it, and so does every route here. Everything else is serde_json's own
//! reading of a `Value`, with its error texts (which `extract::match_error` words as
//! Match errors).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Error, Map, Value};

pub struct Strict(pub Value);

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Unexpected::Signed(i),
            (_, Some(u), _) => Unexpected::Unsigned(u),
            (_, _, f) => Unexpected::Float(f.unwrap_or_default()),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            Value::Array(items) => visitor.visit_seq(Items(items.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The members of an object, each value read strictly.
struct Fields {
    members: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Fields {
    fn new(map: Map<String, Value>) -> Fields {
        Fields {
            members: map.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.members.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(Value::String(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Strict(self.value.take().unwrap_or(Value::Null)))
    }
}

/// The items of an array, each read strictly.
struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: String,
        b: Option<bool>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        any: Value,
    }

    fn read(v: Value) -> Result<Outer, String> {
        Outer::deserialize(Strict(v)).map_err(|e| e.to_string())
    }

    #[test]
    fn structs_only_from_objects() {
        let ok = read(serde_json::json!({
            "inner": {"a": "x", "b": null}, "list": [{"a": "y", "b": true}], "any": [1, {"k": null}]
        }))
        .unwrap();
        assert_eq!(
            ok.inner,
            Inner {
                a: "x".into(),
                b: None
            }
        );
        assert_eq!(ok.list[0].b, Some(true));
        assert_eq!(ok.any, serde_json::json!([1, {"k": null}]));
        for bad in [
            serde_json::json!(["x", null]),
            serde_json::json!({"inner": ["x", null], "list": [], "any": 1}),
            serde_json::json!({"inner": {"a": "x"}, "list": [["y"]], "any": 1}),
        ] {
            let e = read(bad.clone()).unwrap_err();
            assert!(
                e.starts_with("invalid type: sequence, expected struct"),
                "{bad}: {e}"
            );
        }
        let e = read(serde_json::json!({"inner": {"a": 5}, "list": [], "any": 1})).unwrap_err();
        assert_eq!(e, "invalid type: integer `5`, expected a string");
    }
}
