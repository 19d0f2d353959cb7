//! serde helpers for protojson's scalar rules, used through
//! `#[serde(with = …)]` / `deserialize_with` on wire fields.
//!
//! grpc-gateway decodes with protojson, which accepts every integer and
//! float as a JSON number or as a string holding one, and encodes 64-bit
//! integers as strings (JavaScript cannot hold them exactly). A
//! `google.protobuf.Duration` is a string such as `"100s"`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// An integer read from a JSON number or a string holding one.
struct FlexInt(i64);

impl<'de> Deserialize<'de> for FlexInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntVisitor).map(FlexInt)
    }
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    /// protojson accepts `1e3` or `2.0` for an integer field as long as
    /// the value is integral.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        integral(v).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        if let Ok(n) = v.parse::<i64>() {
            return Ok(n);
        }
        v.parse::<f64>()
            .ok()
            .and_then(integral)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// `v` as an i64 when it is a whole number in range.
fn integral(v: f64) -> Option<i64> {
    // 2^63 as f64 is exact; anything at or above it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v)).then_some(v as i64)
}

/// A float read from a JSON number or a string holding one.
struct FlexFloat(f64);

impl<'de> Deserialize<'de> for FlexFloat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FloatVisitor).map(FlexFloat)
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.parse::<f64>()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// A duration in whole seconds, read from `"100s"`, `"100"` or `100`.
struct FlexSeconds(i64);

impl<'de> Deserialize<'de> for FlexSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(SecondsVisitor)
            .map(FlexSeconds)
    }
}

struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration in whole seconds such as \"100s\", or a number of seconds")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        IntVisitor.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        integral(v).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    /// The engine keeps whole seconds, so `"1.5s"` is refused rather than
    /// rounded behind the user's back.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        let number = v.strip_suffix('s').unwrap_or(v);
        IntVisitor
            .visit_str::<E>(number)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// An integer field read from a number or a string, in i64's range: the
/// int64 fields of requests that are never written back.
pub mod int {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        FlexInt::deserialize(deserializer).map(|n| n.0)
    }

    /// For `Option` fields; pair with `#[serde(default)]`.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<FlexInt>::deserialize(deserializer)?.map(|n| n.0))
    }
}

/// An `int32` field: read from a number or a string, written as a number,
/// and refused outside int32's range as protojson refuses it (a value that
/// does not fit the proto's field would otherwise be kept and written back).
pub mod int32 {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        in_range(FlexInt::deserialize(deserializer)?.0)
    }

    /// For `Option` fields; pair with `#[serde(default)]`.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Option::<FlexInt>::deserialize(deserializer)?
            .map(|n| in_range(n.0))
            .transpose()
    }

    fn in_range<E: de::Error>(value: i64) -> Result<i64, E> {
        if i32::try_from(value).is_ok() {
            Ok(value)
        } else {
            Err(E::custom(format!(
                "integer {value} is out of range for int32"
            )))
        }
    }
}

/// An `int64` field: read from a number or a string, written as a string.
pub mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        super::int::deserialize(deserializer)
    }
}

/// A `float`/`double` field: read from a number or a string, written as a number.
pub mod float {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        FlexFloat::deserialize(deserializer).map(|n| n.0)
    }

    /// For `Option` fields; pair with `#[serde(default)]`.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<FlexFloat>::deserialize(deserializer)?.map(|n| n.0))
    }
}

/// A `google.protobuf.Duration` of whole seconds, written as `"100s"`.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(secs: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{secs}s"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        FlexSeconds::deserialize(deserializer).map(|n| n.0)
    }

    /// For `Option` fields; pair with `#[serde(default)]`.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<FlexSeconds>::deserialize(deserializer)?.map(|n| n.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "super::int::option")]
        int: Option<i64>,
        #[serde(default, deserialize_with = "super::float::option")]
        float: Option<f64>,
        #[serde(default, deserialize_with = "super::int32::option")]
        int32: Option<i64>,
        #[serde(default, deserialize_with = "super::duration::option")]
        secs: Option<i64>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integers_from_numbers_and_strings() {
        for (json, want) in [
            (r#"{"int": 7}"#, Some(7)),
            (r#"{"int": "7"}"#, Some(7)),
            (r#"{"int": -3}"#, Some(-3)),
            (r#"{"int": 2.0}"#, Some(2)),
            (r#"{"int": "1e3"}"#, Some(1000)),
            (r#"{"int": null}"#, None),
            (r#"{}"#, None),
        ] {
            assert_eq!(probe(json).unwrap().int, want, "{json}");
        }
        for json in [
            r#"{"int": 1.5}"#,
            r#"{"int": "x"}"#,
            r#"{"int": true}"#,
            r#"{"int": 18446744073709551615}"#,
        ] {
            assert!(probe(json).is_err(), "{json}");
        }
    }

    #[test]
    fn int32_fields_refuse_what_int32_cannot_hold() {
        for (json, want) in [
            (r#"{"int32": 2147483647}"#, 2_147_483_647),
            (r#"{"int32": "-2147483648"}"#, -2_147_483_648),
        ] {
            assert_eq!(probe(json).unwrap().int32, Some(want), "{json}");
        }
        for json in [r#"{"int32": 2147483648}"#, r#"{"int32": "-2147483649"}"#] {
            let error = probe(json).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("out of range for int32"), "{json}: {error}");
        }
    }

    #[test]
    fn floats_and_durations() {
        assert_eq!(probe(r#"{"float": "0.5"}"#).unwrap().float, Some(0.5));
        assert_eq!(probe(r#"{"float": 1}"#).unwrap().float, Some(1.0));
        assert!(probe(r#"{"float": "half"}"#).is_err());
        for (json, want) in [
            (r#"{"secs": "100s"}"#, 100),
            (r#"{"secs": "100"}"#, 100),
            (r#"{"secs": 100}"#, 100),
            (r#"{"secs": "100.0s"}"#, 100),
            (r#"{"secs": "-5s"}"#, -5),
        ] {
            assert_eq!(probe(json).unwrap().secs, Some(want), "{json}");
        }
        for json in [
            r#"{"secs": "1.5s"}"#,
            r#"{"secs": "5m"}"#,
            r#"{"secs": "s"}"#,
        ] {
            assert!(probe(json).is_err(), "{json}");
        }
    }
}
