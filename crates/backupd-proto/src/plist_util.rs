//! Small helpers over `plist` shared by every layer: typed key access and tolerant parsing.

use std::io::Cursor;

use plist::{Dictionary, Value};

/// Typed reads from a plist dictionary that answer `None` for a missing key or a value of another type.
pub trait DictExt {
    /// A string value.
    fn str_key(&self, key: &str) -> Option<&str>;
    /// An unsigned integer value (negative integers answer `None`).
    fn u64_key(&self, key: &str) -> Option<u64>;
    /// An unsigned integer value that fits in a `u32`.
    fn u32_key(&self, key: &str) -> Option<u32> {
        self.u64_key(key).and_then(|v| u32::try_from(v).ok())
    }
    /// A signed integer value.
    fn i64_key(&self, key: &str) -> Option<i64>;
    /// A boolean value.
    fn bool_key(&self, key: &str) -> Option<bool>;
    /// A data value.
    fn data_key(&self, key: &str) -> Option<&[u8]>;
    /// A dictionary value.
    fn dict_key(&self, key: &str) -> Option<&Dictionary>;
}

impl DictExt for Dictionary {
    fn str_key(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_string)
    }

    fn u64_key(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_unsigned_integer)
    }

    fn i64_key(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_signed_integer)
    }

    fn bool_key(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_boolean)
    }

    fn data_key(&self, key: &str) -> Option<&[u8]> {
        self.get(key).and_then(Value::as_data)
    }

    fn dict_key(&self, key: &str) -> Option<&Dictionary> {
        self.get(key).and_then(Value::as_dictionary)
    }
}

/// Serialises a value as an XML plist.
///
/// XML has no form for a `Uid` (found in NSKeyedArchiver data from binary plists). The XML writer stops at
/// one and would leave a cut-off document, so such a value is written as a binary plist instead; lockdown
/// and its services read both.
pub fn to_xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail; the only error is a value XML cannot carry.
    match value.to_writer_xml(&mut out) {
        Ok(()) => out,
        Err(_) => to_binary(value),
    }
}

/// Serialises a value as a binary plist.
pub fn to_binary(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = value.to_writer_binary(&mut out);
    out
}

/// The deepest nesting of arrays and dictionaries accepted in a plist from a peer.
///
/// The plist crate builds a `Value` without recursion, but dropping, cloning, comparing or printing one
/// recurses once per level. A lockdown frame of nested empty arrays (8 bytes a level in XML, 2 in binary)
/// far below the length caps would overflow a 2 MiB thread stack at some 15 000 levels and abort the
/// process. Real replies nest a handful of levels; 128 leaves room for IORegistry plane dumps.
pub const MAX_DEPTH: usize = 128;

/// Parses an XML or binary plist.
///
/// iOS 4.3 and later can put raw control characters in XML strings, which a strict XML parser rejects. The
/// plist crate reads them and keeps them; should the first parse still fail on XML input, those characters
/// are dropped and the parse is tried once more, as pymobiledevice3 does. A document nested deeper than
/// [`MAX_DEPTH`] is refused, see [`parse_strict`].
pub fn parse(bytes: &[u8]) -> Result<Value, plist::Error> {
    match parse_strict(bytes) {
        Ok(v) => Ok(v),
        Err(e) if !bytes.starts_with(b"bplist") => {
            let cleaned: Vec<u8> = bytes
                .iter()
                .copied()
                .filter(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
                .collect();
            if cleaned.len() == bytes.len() {
                return Err(e);
            }
            parse_strict(&cleaned)
        }
        Err(e) => Err(e),
    }
}

/// Parses a plist of any encoding, without the control-character retry of [`parse`].
///
/// The document is first walked without building anything, and refused when it nests deeper than
/// [`MAX_DEPTH`]; only then is the value built.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, plist::Error> {
    plist::from_bytes::<DepthProbe>(bytes)?;
    Value::from_reader(Cursor::new(bytes))
}

/// Walks a plist through serde and keeps nothing, failing once the nesting exceeds [`MAX_DEPTH`].
///
/// The walk recurses once per level, so it stops one level past the limit and never goes deep itself.
struct DepthProbe;

impl<'de> serde::Deserialize<'de> for DepthProbe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Levels(MAX_DEPTH))?;
        Ok(Self)
    }
}

/// How many more levels of arrays and dictionaries may open below the current value.
#[derive(Clone, Copy)]
struct Levels(usize);

impl Levels {
    fn enter<E: serde::de::Error>(self) -> Result<Self, E> {
        self.0
            .checked_sub(1)
            .map(Levels)
            .ok_or_else(|| E::custom(format_args!("plist nests deeper than {MAX_DEPTH} levels")))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Levels {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Levels {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any plist value")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays_xml(depth: usize) -> Vec<u8> {
        let mut xml = b"<?xml version=\"1.0\"?><plist version=\"1.0\">".to_vec();
        xml.extend(std::iter::repeat_n(&b"<array>"[..], depth).flatten());
        xml.extend(std::iter::repeat_n(&b"</array>"[..], depth).flatten());
        xml.extend_from_slice(b"</plist>");
        xml
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted_and_beyond_it_refused() {
        let v = parse(&nested_arrays_xml(MAX_DEPTH)).expect("at the limit");
        assert_eq!(v, parse(&to_binary(&v)).expect("binary at the limit"));
        assert!(parse(&nested_arrays_xml(MAX_DEPTH + 1)).is_err());
        assert!(parse(&to_binary(&Value::Array(vec![v]))).is_err());
    }

    #[test]
    fn a_value_xml_cannot_carry_is_written_whole_as_binary() {
        let mut d = Dictionary::new();
        d.insert("$top".into(), Value::Uid(plist::Uid::new(1)));
        d.insert("after".into(), "kept".into());
        let v = Value::Dictionary(d);
        let bytes = to_xml(&v);
        assert!(bytes.starts_with(b"bplist00"));
        assert_eq!(parse(&bytes).expect("parse"), v);
    }

    #[test]
    fn control_characters_in_xml_are_tolerated() {
        let xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict><key>Name</key><string>a\x01b</string></dict></plist>";
        let v = parse(xml).expect("tolerant parse");
        let d = v.as_dictionary().expect("dict");
        // The plist crate accepts the raw character, so the first parse succeeds and keeps it.
        assert_eq!(d.str_key("Name"), Some("a\u{1}b"));
    }
}
