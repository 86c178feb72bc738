//! Verification of signed NDJSON events: the library behind `siemrelay verify`.

use super::canonical::{self, EntryStack, SignedFields};
use super::{ALGORITHM, CHAIN_START, Keyring, chain_hash};
use hmac::Mac;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use siemrelay_core::{Map, Value};
use std::fmt;
use std::io::BufRead;

/// The outcome of verifying a stream of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events whose signature (and chain link, when checked) verified, before any failure.
    pub events_checked: usize,
    /// The first failure; verification stops there. `None` means every event verified.
    pub failure: Option<VerifyFailure>,
    /// Things worth knowing that are not failures, such as chain restarts.
    pub notes: Vec<VerifyNote>,
}

impl VerifyReport {
    /// Whether every event verified.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Where and why verification failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    /// 1-based line number in the input.
    pub line: usize,
    /// What is wrong.
    pub reason: FailureReason,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why an event did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    /// The line is not a JSON object (or has a duplicate key, or is not UTF-8).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The event has no `signature`.
    #[error("missing signature")]
    MissingSignature,
    /// The `signature` member is not of the expected shape.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The signature names an algorithm other than HMAC-SHA256.
    #[error("unsupported signature algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The signature's key id is not in the keys file (unknown or retired).
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The MAC does not match: the event was changed, or signed with another secret.
    #[error("bad signature (the event was modified or signed with a different secret)")]
    BadSignature,
    /// The chain link does not match the previous line.
    #[error("broken chain: {0}")]
    BrokenChain(String),
    /// The input could not be read.
    #[error("cannot read input: {0}")]
    Read(String),
}

/// A remark about a line that is not a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyNote {
    /// 1-based line number in the input.
    pub line: usize,
    /// What was noticed.
    pub message: String,
}

impl fmt::Display for VerifyNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Verifies every line of `input` (one JSON event per line; blank lines are skipped) against
/// `keys`, and with `chain` also each event's `prev` link to the line before it. Stops at the
/// first failure.
pub fn verify_stream(mut input: impl BufRead, keys: &Keyring, chain: bool) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mut verifier = LineVerifier {
        keys,
        chain,
        previous: None,
        canonical: Vec::with_capacity(1024),
    };
    let mut line = Vec::with_capacity(1024);
    let mut number = 0;
    loop {
        line.clear();
        number += 1;
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                report.failure = Some(VerifyFailure {
                    line: number,
                    reason: FailureReason::Read(e.to_string()),
                });
                break;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match verifier.verify(&line, number, &mut report.notes) {
            Ok(()) => report.events_checked += 1,
            Err(reason) => {
                report.failure = Some(VerifyFailure {
                    line: number,
                    reason,
                });
                break;
            }
        }
    }
    report
}

/// Verification state carried from line to line.
struct LineVerifier<'k> {
    keys: &'k Keyring,
    chain: bool,
    /// Line number and full canonical hash of the previous event.
    previous: Option<(usize, [u8; 32])>,
    canonical: Vec<u8>,
}

impl LineVerifier<'_> {
    fn verify(
        &mut self,
        line: &[u8],
        number: usize,
        notes: &mut Vec<VerifyNote>,
    ) -> Result<(), FailureReason> {
        let StrictValue(value) = serde_json::from_slice(line)
            .map_err(|e| FailureReason::MalformedJson(e.to_string()))?;
        let Value::Object(mut event) = value else {
            return Err(FailureReason::MalformedJson(
                "the line is not a JSON object".into(),
            ));
        };
        let signature = event
            .remove("signature")
            .ok_or(FailureReason::MissingSignature)?;
        let signature = SignatureParts::from_value(&signature)?;
        if signature.alg != ALGORITHM {
            return Err(FailureReason::UnsupportedAlgorithm(signature.alg.into()));
        }
        let mac = self
            .keys
            .get(signature.kid)
            .ok_or_else(|| FailureReason::UnknownKey(signature.kid.into()))?;
        let mut expected = [0u8; 32];
        if signature.value.len() != 64
            || !signature
                .value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            || hex::decode_to_slice(signature.value, &mut expected).is_err()
        {
            return Err(FailureReason::MalformedSignature(
                "value is not 64 lowercase hex digits".into(),
            ));
        }
        self.canonical.clear();
        let mut stack: EntryStack<'_> = Vec::new();
        let signed = SignedFields {
            alg: signature.alg,
            kid: signature.kid,
            prev: signature.prev,
        };
        let value_at =
            canonical::write_signing_input(&event, signed, &mut self.canonical, &mut stack);
        let mut mac = mac.clone();
        mac.update(&self.canonical);
        mac.verify_slice(&expected)
            .map_err(|_| FailureReason::BadSignature)?;
        if self.chain {
            self.check_link(signature.prev, number, notes)?;
            let hash = chain_hash(&self.canonical, value_at, signature.value);
            self.previous = Some((number, hash));
        }
        Ok(())
    }

    /// Checks that `prev` links to the previous line (or marks a chain restart).
    fn check_link(
        &self,
        prev: Option<&str>,
        number: usize,
        notes: &mut Vec<VerifyNote>,
    ) -> Result<(), FailureReason> {
        let Some(prev) = prev else {
            return Err(FailureReason::BrokenChain(
                "the event has no prev (it was signed without chain)".into(),
            ));
        };
        match self.previous {
            None if prev == CHAIN_START => {}
            None => notes.push(VerifyNote {
                line: number,
                message: "the chain continues from an event before this input".into(),
            }),
            Some(_) if prev == CHAIN_START => notes.push(VerifyNote {
                line: number,
                message: "chain restart (siemrelay restarted without its saved chain state, \
                          e.g. after a crash); events lost just before it cannot be detected"
                    .into(),
            }),
            Some((line, hash)) => {
                let mut expected = [0u8; 64];
                let _ = hex::encode_to_slice(hash, &mut expected);
                if prev.as_bytes() != expected {
                    return Err(FailureReason::BrokenChain(format!(
                        "prev does not match the event on line {line}; an event was deleted, \
                         inserted or reordered here"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The members of a `signature` object, borrowed.
struct SignatureParts<'a> {
    alg: &'a str,
    kid: &'a str,
    value: &'a str,
    prev: Option<&'a str>,
}

impl<'a> SignatureParts<'a> {
    fn from_value(signature: &'a Value) -> Result<SignatureParts<'a>, FailureReason> {
        let malformed = |what: &str| FailureReason::MalformedSignature(what.to_string());
        let Value::Object(members) = signature else {
            return Err(malformed("signature is not an object"));
        };
        let text = |name: &str| -> Result<Option<&'a str>, FailureReason> {
            match members.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(malformed(&format!("signature.{name} is not a string"))),
            }
        };
        if let Some(extra) = members
            .keys()
            .find(|k| !matches!(k.as_str(), "alg" | "kid" | "value" | "prev"))
        {
            return Err(malformed(&format!("unexpected member signature.{extra}")));
        }
        Ok(SignatureParts {
            alg: text("alg")?.ok_or_else(|| malformed("signature.alg is missing"))?,
            kid: text("kid")?.ok_or_else(|| malformed("signature.kid is missing"))?,
            value: text("value")?.ok_or_else(|| malformed("signature.value is missing"))?,
            prev: text("prev")?,
        })
    }
}

/// A JSON value parsed like `serde_json::Value`, except that an object with a duplicate key is
/// an error: otherwise a line could carry a second, unsigned copy of a member that other
/// parsers would read instead of the signed one.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}
