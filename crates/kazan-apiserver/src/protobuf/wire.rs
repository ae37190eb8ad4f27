//! A table-driven protobuf decoder producing the JSON form of Kubernetes objects.
//!
//! The generated tables in `schema.rs` say, for each message, which field number holds which
//! JSON field and of what type; this module walks the protobuf wire format with them. kubectl's
//! Go encoder writes every non-pointer field, zero or not, while the JSON API leaves zero values
//! out, so zero scalars are dropped unless the field is a pointer whose zero means something
//! (`replicas: 0`). Field numbers the table does not know are skipped, as a real server skips
//! fields newer than itself.

use base64::Engine;
use jiff::Timestamp;
use serde_json::{Map, Value};

use super::ProtobufError;

/// The fields of one protobuf message.
#[derive(Debug)]
pub(crate) struct Message {
    /// The message name, for error messages.
    pub name: &'static str,
    /// Its fields, in field-number order.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    number: u32,
    /// The JSON name.
    pub(super) json: &'static str,
    /// What it holds.
    pub(super) kind: Kind,
    /// A JSON array of `kind`.
    pub(super) repeated: bool,
    keep_zero: bool,
}

impl Field {
    /// A singular field whose zero value is left out of the JSON.
    pub(crate) const fn new(number: u32, json: &'static str, kind: Kind) -> Self {
        Field {
            number,
            json,
            kind,
            repeated: false,
            keep_zero: false,
        }
    }

    /// A singular field whose zero value is kept (a Go pointer: present means set).
    pub(crate) const fn keep_zero(number: u32, json: &'static str, kind: Kind) -> Self {
        Field {
            number,
            json,
            kind,
            repeated: false,
            keep_zero: true,
        }
    }

    /// The field number.
    #[cfg(test)]
    pub(crate) fn number(&self) -> u32 {
        self.number
    }

    /// A repeated field: a JSON array.
    pub(crate) const fn repeated(number: u32, json: &'static str, kind: Kind) -> Self {
        Field {
            number,
            json,
            kind,
            repeated: true,
            keep_zero: true,
        }
    }
}

/// What a field holds.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A value with a JSON scalar form.
    Scalar(Scalar),
    /// A nested object.
    Message(&'static Message),
    /// A Go embedded struct (`json:",inline"`): its fields go into the enclosing object.
    Inline(&'static Message),
    /// `map<string, scalar>`.
    ScalarMap(Scalar),
}

/// Values with a JSON scalar form, including the few messages that have one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar {
    /// UTF-8 string.
    Str,
    /// Bytes, base64 in JSON.
    Bytes,
    /// Boolean.
    Bool,
    /// 32-bit integer (negative numbers are ten-byte varints).
    Int32,
    /// 64-bit integer.
    Int64,
    /// `meta.v1.Time`: `{seconds, nanos}`, RFC 3339 to the second in JSON.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `resource.Quantity`: `{string}`, a string in JSON.
    Quantity,
    /// `intstr.IntOrString`: `{type, intVal, strVal}`, a number or a string in JSON.
    IntOrString,
    /// `runtime.RawExtension`, `meta.v1.FieldsV1`: `{raw}` holding JSON.
    RawJson,
}

/// One field as read off the wire.
enum WireValue<'a> {
    Varint(u64),
    /// A fixed-width number; no field of the tables has one, so only its size matters.
    Fixed64,
    /// See `Fixed64`.
    Fixed32,
    Bytes(&'a [u8]),
}

/// A cursor over protobuf bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], message: &'static str) -> Self {
        Reader {
            bytes,
            position: 0,
            message,
        }
    }

    fn malformed(&self, what: &str) -> ProtobufError {
        ProtobufError::Malformed(format!("{what} in {} at byte {}", self.message, self.position))
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.position)
                .ok_or_else(|| self.malformed("truncated varint"))?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint longer than ten bytes"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| self.malformed("truncated field"))?;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or_else(|| self.malformed("truncated field"))?;
        self.position = end;
        Ok(slice)
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        if self.position >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| self.malformed("field number out of range"))?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| self.malformed("length"))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed32
            }
            other => return Err(self.malformed(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((number, value)))
    }
}

/// `runtime.Unknown`, the envelope of every Kubernetes protobuf body (apimachinery's
/// `pkg/runtime/generated.proto`): `typeMeta` (1, itself `apiVersion` 1 and `kind` 2), `raw` (2,
/// the object's own protobuf), `contentEncoding` (3) and `contentType` (4). Empty strings when
/// absent, as Go's zero values.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Unknown<'a> {
    /// `typeMeta.apiVersion`.
    pub api_version: String,
    /// `typeMeta.kind`.
    pub kind: String,
    /// The object, encoded.
    pub raw: &'a [u8],
    /// How `raw` is compressed; empty for none (the only form kubectl sends).
    pub content_encoding: String,
}

/// Decodes the `runtime.Unknown` envelope (what follows the `k8s\0` magic).
pub(crate) fn decode_unknown(bytes: &[u8]) -> Result<Unknown<'_>, ProtobufError> {
    fn text(wire: WireValue<'_>, field: &str) -> Result<String, ProtobufError> {
        let context = || format!("runtime.Unknown {field}");
        utf8(expect_bytes(wire, &context)?, &context)
    }
    let mut reader = Reader::new(bytes, "runtime.Unknown");
    let mut unknown = Unknown::default();
    while let Some((number, wire)) = reader.next_field()? {
        match number {
            1 => {
                let type_meta = expect_bytes(wire, &|| "runtime.Unknown typeMeta".to_string())?;
                let mut reader = Reader::new(type_meta, "runtime.TypeMeta");
                while let Some((number, wire)) = reader.next_field()? {
                    match number {
                        1 => unknown.api_version = text(wire, "apiVersion")?,
                        2 => unknown.kind = text(wire, "kind")?,
                        _ => {}
                    }
                }
            }
            2 => unknown.raw = expect_bytes(wire, &|| "runtime.Unknown raw".to_string())?,
            3 => unknown.content_encoding = text(wire, "contentEncoding")?,
            // contentType (4) says protobuf again; fields newer than this server are skipped.
            _ => {}
        }
    }
    Ok(unknown)
}

/// Decodes `bytes` as `message` into a JSON object.
pub(crate) fn decode(message: &'static Message, bytes: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut object = Map::new();
    decode_into(message, bytes, &mut object)?;
    Ok(object)
}

fn decode_into(
    message: &'static Message,
    bytes: &[u8],
    object: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let mut reader = Reader::new(bytes, message.name);
    while let Some((number, wire)) = reader.next_field()? {
        let Ok(index) = message.fields.binary_search_by_key(&number, |f| f.number) else {
            tracing::debug!(
                message = message.name,
                field = number,
                "skipping unknown protobuf field"
            );
            continue;
        };
        let Some(field) = message.fields.get(index) else {
            continue;
        };
        let context = || format!("{}.{}", message.name, field.json);
        match &field.kind {
            Kind::Inline(inner) => {
                let bytes = expect_bytes(wire, &context)?;
                decode_into(inner, bytes, object)?;
            }
            Kind::Message(inner) => {
                let bytes = expect_bytes(wire, &context)?;
                let value = Value::Object(decode(inner, bytes)?);
                store(object, field, value);
            }
            Kind::ScalarMap(scalar) => {
                let (key, value) = map_entry(expect_bytes(wire, &context)?, &context)?;
                let value = match value {
                    Some(v) => scalar_value(*scalar, v, &context)?,
                    None => scalar_zero(*scalar),
                };
                insert_map(object, field.json, key, value.unwrap_or(Value::Null));
            }
            Kind::Scalar(scalar) => {
                // Repeated integers may come packed: one length-delimited run of varints.
                if field.repeated
                    && matches!(scalar, Scalar::Int32 | Scalar::Int64 | Scalar::Bool)
                    && let WireValue::Bytes(run) = wire
                {
                    let mut packed = Reader::new(run, message.name);
                    while packed.position < run.len() {
                        let v = packed.varint()?;
                        if let Some(value) = scalar_value(*scalar, WireValue::Varint(v), &context)? {
                            store(object, field, value);
                        }
                    }
                    continue;
                }
                match scalar_value(*scalar, wire, &context)? {
                    Some(value) if field.repeated || field.keep_zero || !is_zero(&value) => {
                        store(object, field, value)
                    }
                    Some(_) => {}
                    None if field.repeated => store(object, field, Value::Null),
                    None => {}
                }
            }
        }
    }
    Ok(())
}

fn expect_bytes<'a>(wire: WireValue<'a>, context: &dyn Fn() -> String) -> Result<&'a [u8], ProtobufError> {
    match wire {
        WireValue::Bytes(bytes) => Ok(bytes),
        _ => Err(ProtobufError::Malformed(format!(
            "{} should be length-delimited",
            context()
        ))),
    }
}

fn store(object: &mut Map<String, Value>, field: &Field, value: Value) {
    if field.repeated {
        match object
            .entry(field.json)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items.push(value),
            other => *other = Value::Array(vec![value]),
        }
    } else {
        // A message field seen twice is merged, as protobuf says; anything else: last one wins.
        match (object.get_mut(field.json), value) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (_, value) => {
                object.insert(field.json.to_string(), value);
            }
        }
    }
}

fn insert_map(object: &mut Map<String, Value>, name: &str, key: String, value: Value) {
    match object.entry(name).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(map) => {
            map.insert(key, value);
        }
        other => *other = Value::Object(Map::from_iter([(key, value)])),
    }
}

/// A map entry: `{1: key, 2: value}`.
fn map_entry<'a>(
    bytes: &'a [u8],
    context: &dyn Fn() -> String,
) -> Result<(String, Option<WireValue<'a>>), ProtobufError> {
    let mut reader = Reader::new(bytes, "map entry");
    let (mut key, mut value) = (String::new(), None);
    while let Some((number, wire)) = reader.next_field()? {
        match number {
            1 => key = utf8(expect_bytes(wire, context)?, context)?,
            2 => value = Some(wire),
            _ => {}
        }
    }
    Ok((key, value))
}

fn utf8(bytes: &[u8], context: &dyn Fn() -> String) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ProtobufError::Malformed(format!("{} is not valid UTF-8", context())))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn scalar_zero(scalar: Scalar) -> Option<Value> {
    Some(match scalar {
        Scalar::Str | Scalar::Bytes | Scalar::Quantity => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Int32 | Scalar::Int64 | Scalar::IntOrString => Value::from(0),
        Scalar::Time | Scalar::MicroTime | Scalar::RawJson => return None,
    })
}

/// The JSON form of a scalar; `None` for a value that means "unset" (a zero time).
fn scalar_value(
    scalar: Scalar,
    wire: WireValue<'_>,
    context: &dyn Fn() -> String,
) -> Result<Option<Value>, ProtobufError> {
    let wrong_type = || ProtobufError::Malformed(format!("{} has the wrong wire type", context()));
    let value = match (scalar, wire) {
        (Scalar::Str, WireValue::Bytes(b)) => Value::String(utf8(b, context)?),
        (Scalar::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Scalar::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        // Truncation to 32 bits is how protobuf carries a negative int32.
        (Scalar::Int32, WireValue::Varint(v)) => Value::from(v as u32 as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::Time | Scalar::MicroTime, WireValue::Bytes(b)) => {
            let (seconds, nanos) = time_parts(b)?;
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            let timestamp = Timestamp::new(seconds, nanos)
                .map_err(|e| ProtobufError::Malformed(format!("{}: {e}", context())))?;
            let text = if matches!(scalar, Scalar::Time) {
                timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                timestamp.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
            };
            Value::String(text)
        }
        (Scalar::Quantity, WireValue::Bytes(b)) => {
            let mut reader = Reader::new(b, "Quantity");
            let mut text = String::new();
            while let Some((number, wire)) = reader.next_field()? {
                if number == 1 {
                    text = utf8(expect_bytes(wire, context)?, context)?;
                }
            }
            Value::String(text)
        }
        (Scalar::IntOrString, WireValue::Bytes(b)) => {
            let mut reader = Reader::new(b, "IntOrString");
            let (mut is_string, mut int, mut string) = (false, 0i64, String::new());
            while let Some((number, wire)) = reader.next_field()? {
                match (number, wire) {
                    (1, WireValue::Varint(v)) => is_string = v == 1,
                    (2, WireValue::Varint(v)) => int = i64::from(v as u32 as i32),
                    (3, WireValue::Bytes(s)) => string = utf8(s, context)?,
                    _ => {}
                }
            }
            if is_string {
                Value::String(string)
            } else {
                Value::from(int)
            }
        }
        (Scalar::RawJson, WireValue::Bytes(b)) => {
            let mut reader = Reader::new(b, "RawExtension");
            let mut raw: &[u8] = &[];
            while let Some((number, wire)) = reader.next_field()? {
                if number == 1 {
                    raw = expect_bytes(wire, context)?;
                }
            }
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(raw)
                .map_err(|e| ProtobufError::Malformed(format!("{} does not hold JSON: {e}", context())))?
        }
        _ => return Err(wrong_type()),
    };
    Ok(Some(value))
}

fn time_parts(bytes: &[u8]) -> Result<(i64, i32), ProtobufError> {
    let mut reader = Reader::new(bytes, "Time");
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while let Some((number, wire)) = reader.next_field()? {
        match (number, wire) {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = v as u32 as i32,
            _ => {}
        }
    }
    Ok((seconds, nanos))
}
