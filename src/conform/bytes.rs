//! Bytes on the wire as a value: what a script sends and expects, what a failure observed.
//! Written in SPEC.md's notation (`"ping"`, `"\\xff"`, `"pong" x 1000`) in JSON and in
//! messages. A leaf: every part of the gate that speaks of bytes uses it, and it uses none of them.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::proto::{quoted, quoted_prefix, PING, PONG};

/// Bytes on the wire, written in SPEC.md's notation in JSON and in messages.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Cow<'static, [u8]>);

impl Bytes {
    /// Bytes known at compile time (the rows of the fixed cases).
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        Bytes(Cow::Borrowed(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Self {
        Bytes(Cow::Owned(bytes.to_vec()))
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes(Cow::Owned(bytes))
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `"ping" x 1000` for long runs of one token, then the rest quoted; a readable transcript
/// matters more than a copy-pasteable one here (the JSON form has every byte).
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &self.0[..];
        for token in [PING, PONG] {
            let run = bytes.chunks(4).take_while(|c| *c == token).count();
            if run >= 4 {
                write!(f, "{} x {run}", quoted(token))?;
                let rest = &bytes[4 * run..];
                return if rest.is_empty() { Ok(()) } else { write!(f, " + {}", Bytes::from(rest)) };
            }
        }
        // A target that floods costs a message of bounded length (the JSON keeps the bytes).
        f.write_str(&quoted_prefix(bytes, MESSAGE_BYTES))
    }
}

/// The most bytes of one observation a message spells out.
const MESSAGE_BYTES: usize = 256;

/// A byte string in a script file that is not in SPEC.md's notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad escape at character {at} of {text:?}: expected \\n, \\r, \\t, \\0, \\\\, \\', \\\" or \\xNN")]
pub(crate) struct EscapeError {
    pub(crate) text: String,
    pub(crate) at: usize,
}

/// Reads SPEC.md's byte-string notation (the inverse of `escape_ascii`).
pub(crate) fn unescape(text: &str) -> Result<Vec<u8>, EscapeError> {
    let error = |at: usize| EscapeError { text: text.to_string(), at };
    let mut out = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let byte = match raw.get(i + 1) {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(&c @ (b'\\' | b'\'' | b'"')) => c,
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or_else(|| error(i))?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| error(i))?;
                i += 2;
                byte
            }
            _ => return Err(error(i)),
        };
        out.push(byte);
        i += 2;
    }
    Ok(out)
}

// By hand, as `Serialize` is: a byte string is one JSON string in SPEC.md's notation.
impl schemars::JsonSchema for Bytes {
    fn schema_name() -> Cow<'static, str> {
        "Bytes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Bytes in SPEC.md's notation: ASCII as is, with \\n, \\r, \\t, \\\\, \\', \\\" and \\xNN for every other byte."
        })
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.escape_ascii().to_string())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        unescape(&text).map(Bytes::from).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_the_spec_notation() {
        let all: Vec<u8> = (0..=255).collect();
        let text = serde_json::to_string(&Bytes::from(all.clone())).unwrap();
        assert_eq!(serde_json::from_str::<Bytes>(&text).unwrap().to_vec(), all);
        assert_eq!(unescape("pi\\x00\\n").unwrap(), b"pi\0\n");
        assert_eq!(unescape("bad\\q").unwrap_err().at, 3);
        assert!(unescape("\\x4").is_err());
    }

    #[test]
    fn long_runs_read_as_repetitions() {
        let bytes = Bytes::from([b"ping".repeat(1000), b"end".to_vec()].concat());
        assert_eq!(bytes.to_string(), "\"ping\" x 1000 + \"end\"");
        assert_eq!(Bytes::from_static(b"pingpin").to_string(), "\"pingpin\"");
    }
}
