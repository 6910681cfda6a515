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
pub fn to_xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail and every Value is representable.
    let _ = value.to_writer_xml(&mut out);
    out
}

/// Serialises a value as a binary plist.
pub fn to_binary(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = value.to_writer_binary(&mut out);
    out
}

/// Parses an XML or binary plist.
///
/// iOS 4.3 and later can put raw control characters in XML strings, which a strict XML parser rejects; when
/// the first parse fails on XML input, those characters are dropped and the parse is tried once more, as
/// pymobiledevice3 does.
pub fn parse(bytes: &[u8]) -> Result<Value, plist::Error> {
    match Value::from_reader(Cursor::new(bytes)) {
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
            Value::from_reader(Cursor::new(&cleaned))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_xml_are_tolerated() {
        let xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict><key>Name</key><string>a\x01b</string></dict></plist>";
        let v = parse(xml).expect("tolerant parse");
        let d = v.as_dictionary().expect("dict");
        assert_eq!(d.str_key("Name"), Some("ab"));
    }
}
