//! The `sign` processor: an HMAC-SHA256 signature on every event, optionally chained so that
//! deleted or reordered events are detected; and the verification behind `siemrelay verify`.
//!
//! ```yaml
//! processors:
//!   sign:
//!     keys:
//!       - { id: k2, secret: "${env:SIGN_KEY_K2}" }
//!       - { id: k1, secret_file: /run/secrets/k1 }
//!     active: k2        # the key that signs; may be left out when only one key is listed
//!     chain: true       # default false
//! ```
//!
//! # What is signed
//!
//! Each event gets `"signature": {"alg":"HMAC-SHA256","kid":"<active id>","value":"<hex>"}`,
//! plus `"prev":"<hex>"` when chaining; an existing signature is replaced. Put `sign` last in
//! a pipeline: any later change to the event breaks its signature.
//!
//! The HMAC key is the secret's bytes as written (a `secret_file` loses one trailing newline).
//! The MAC input is the **canonical form** (see [`canonical`]: RFC 8785 JCS, with integers
//! written exactly) of the event's JSON form in which `signature` holds every member except
//! `value`:
//!
//! ```text
//! value = lowercase hex( HMAC-SHA256( key, JCS( event with signature = {"alg","kid"[,"prev"]} ) ) )
//! ```
//!
//! To check one line by hand: delete `signature.value`, canonicalize, and MAC the bytes
//! (no trailing newline). With `jq` (exact for events whose numbers are integers up to 2^53 or
//! plain decimals and whose keys are ASCII):
//!
//! ```sh
//! jq -cS 'del(.signature.value)' line.json | tr -d '\n' |
//!   openssl dgst -sha256 -hmac "$SECRET" -hex
//! ```
//!
//! # Chain
//!
//! With `chain: true`, each event's `prev` is the lowercase hex SHA-256 of the **full**
//! canonical form of the previous signed event of the same pipeline, signature (with `value`)
//! included. Because `prev` is inside the MAC input, it cannot be changed without the key.
//! `prev` is 64 zeros (`"000…0"`) for the first event ever and after a restart that lost the
//! chain state: a **chain restart**.
//!
//! The chain head is kept in memory and written to `<storage_dir>/chain-state` (write,
//! fsync, rename, fsync the directory) when the processor is dropped at a clean shutdown. At
//! start the file is read and removed (the removal fsynced too), so:
//! - after a clean restart the chain continues where it stopped;
//! - after a crash (or kill) the first event carries a restart marker. Events signed just
//!   before a crash may never have reached a queue, so continuing from the last signed event
//!   would look exactly like a deleted event; a restart marker is an honest, signed "the
//!   chain was interrupted here".
//!
//! `siemrelay verify --chain` checks that every event's `prev` is the hash of the line before
//! it. A restart marker is reported as a note, not a failure. A deleted, inserted or reordered
//! event fails at the first line whose `prev` does not match. Not detected: events removed from
//! the end of a file, or removed immediately before a genuine restart marker.
//!
//! The chain is per pipeline: events must reach the output in the order they were signed.

use crate::filter::counters::BatchCounters;
use hmac::Mac;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use siemrelay_core::atomic_file::{Access, sync_dir, write_atomically};
use siemrelay_core::event::SignatureText;
use siemrelay_core::{Batch, ConfigIssue, Event, Processor, ProcessorContext, Signature};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub mod canonical;
pub mod canonical_json;
pub mod factory;
mod keys;
mod verify;

pub use keys::{KeyConfig, Keyring, KeysFile};
pub use verify::{FailureReason, VerifyFailure, VerifyNote, VerifyReport, verify_stream};

use canonical::{EntryStack, SignedFields};
use keys::HmacSha256;

/// The algorithm name written into signatures.
pub const ALGORITHM: &str = "HMAC-SHA256";

/// `prev` of the first event of a chain, and after a restart that lost the chain state.
pub const CHAIN_START: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// File in the processor's storage directory that holds the chain head across clean restarts.
pub const CHAIN_STATE_FILE: &str = "chain-state";

/// Config of the `sign` processor.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    /// Keys by id; retired keys may stay listed (only `active` signs).
    pub keys: Vec<KeyConfig>,
    /// Id of the key that signs. Default: the only key, when exactly one is listed.
    #[serde(default)]
    pub active: Option<String>,
    /// Chain each event to the previous one with `prev`. Default: false.
    #[serde(default)]
    pub chain: bool,
}

impl SignConfig {
    /// Checks the keys (reading `secret_file`s) and `active`, without building anything.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        self.prepare().err().unwrap_or_default()
    }

    /// The active key's id and prepared MAC.
    fn prepare(&self) -> Result<(String, HmacSha256), Vec<ConfigIssue>> {
        let ring = Keyring::from_keys(&self.keys, "keys");
        let active = match (&self.active, self.keys.as_slice()) {
            (Some(id), _) => Ok(id.clone()),
            (None, [only]) => Ok(only.id.clone()),
            (None, _) => Err(ConfigIssue::new(
                "active",
                "name the key that signs; required when more than one key is listed",
            )),
        };
        let mut issues = ring.as_ref().err().cloned().unwrap_or_default();
        if let Ok(id) = &active
            && !self.keys.iter().any(|k| &k.id == id)
        {
            issues.push(ConfigIssue::new(
                "active",
                format!("{id:?} is not one of the listed key ids"),
            ));
        }
        if let Err(issue) = &active {
            issues.push(issue.clone());
        }
        match (ring, active) {
            (Ok(ring), Ok(id)) if issues.is_empty() => match ring.get(&id) {
                Some(mac) => Ok((id, mac.clone())),
                None => Err(vec![ConfigIssue::new("active", "unknown key id")]),
            },
            _ => Err(issues),
        }
    }
}

/// The running `sign` processor.
pub struct Sign {
    /// The active key's id, shared with every signature it writes.
    kid: Arc<str>,
    mac: HmacSha256,
    chain: Option<Mutex<ChainHead>>,
    state_path: PathBuf,
    counters: BatchCounters,
}

impl std::fmt::Debug for Sign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sign")
            .field("kid", &self.kid)
            .field("chain", &self.chain.is_some())
            .finish_non_exhaustive()
    }
}

/// The hash of the last signed event, and buffers reused across batches.
struct ChainHead {
    last: [u8; 32],
    work: Scratch,
}

/// Buffers reused across events.
#[derive(Default)]
struct Scratch {
    canonical: Vec<u8>,
    stack: EntryStack<'static>,
    /// The canonical writer's buffers for attributes held as JSON bytes.
    json: canonical_json::CanonicalJsonScratch,
}

/// Builds a `sign` processor. With `chain`, reads and removes `chain-state` in
/// `ctx.storage_dir` (see the module doc).
pub fn build(config: SignConfig, ctx: &ProcessorContext) -> Result<Sign, Vec<ConfigIssue>> {
    let (kid, mac) = config.prepare()?;
    let state_path = ctx.storage_dir.join(CHAIN_STATE_FILE);
    let chain = config.chain.then(|| {
        Mutex::new(ChainHead {
            last: take_chain_state(&state_path, &ctx.id).unwrap_or([0; 32]),
            work: Scratch::default(),
        })
    });
    Ok(Sign {
        kid: Arc::from(kid),
        mac,
        chain,
        state_path,
        counters: BatchCounters::new(ctx),
    })
}

/// Reads the chain head saved at the last clean shutdown and removes the file, so that a
/// crash before the next clean shutdown starts a new chain.
fn take_chain_state(path: &std::path::Path, id: &str) -> Option<[u8; 32]> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(
                processor = %id,
                "no saved signature chain; starting a new chain"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(processor = %id, path = %path.display(), error = %e,
                "cannot read the signature chain state; starting a new chain");
            return None;
        }
    };
    // The removal is made durable too, or a crash could bring the old head back.
    let removed = std::fs::remove_file(path)
        .and_then(|()| sync_dir(path.parent().unwrap_or(std::path::Path::new("."))));
    if let Err(e) = removed {
        tracing::warn!(processor = %id, path = %path.display(), error = %e,
            "cannot remove the signature chain state; a crash would reuse it");
    }
    let mut last = [0u8; 32];
    match hex::decode_to_slice(text.trim(), &mut last) {
        Ok(()) => Some(last),
        Err(_) => {
            tracing::warn!(processor = %id, path = %path.display(),
                "signature chain state is not a SHA-256 hex digest; starting a new chain");
            None
        }
    }
}

impl Sign {
    /// Signs one event; returns the SHA-256 of its full canonical form when `prev` is given.
    fn sign_event(&self, event: &mut Event, prev: Option<&str>, work: &mut Scratch) -> [u8; 32] {
        // Changing a field drops any kept JSON form.
        event.signature = None;
        let mut stack = canonical::recycle(std::mem::take(&mut work.stack));
        // The MAC input is written into one buffer reused for every event; what an event keeps
        // is a copy of exactly its size (see `full_form`).
        let mut form = std::mem::take(&mut work.canonical);
        form.clear();
        let signed = SignedFields {
            alg: ALGORITHM,
            kid: &self.kid,
            prev,
        };
        let input = canonical::write_event_signing_input(
            event,
            signed,
            &mut form,
            &mut stack,
            &mut work.json,
        );
        work.stack = canonical::recycle(stack);
        let mut mac = self.mac.clone();
        mac.update(&form);
        let hex_digits = hex_lower(&mac.finalize().into_bytes().into());
        let value = hex_str(&hex_digits);
        let hash = if prev.is_some() {
            chain_hash(&form, input.value_at, value)
        } else {
            [0; 32]
        };
        // Set before the form is kept: a change to the fields drops a kept form. No string is
        // allocated: the name is a constant, the key id shared, the hex digits inline.
        event.signature = Some(Box::new(Signature {
            alg: SignatureText::from_static(ALGORITHM),
            kid: SignatureText::from(Arc::clone(&self.kid)),
            value: SignatureText::from(value),
            prev: prev.map(SignatureText::from),
        }));
        if input.sendable {
            // Sign the bytes you send: the full canonical form is the event's JSON form.
            event.keep_written_json(full_form(&form, input.value_at, &hex_digits));
        }
        work.canonical = form;
        hash
    }
}

/// The full canonical form: the MAC input with `,"value":"<hex>"` at `value_at`, in a buffer
/// of exactly its length. The form waits in exporter queues for as long as the event does, so
/// room left over in it (a buffer grown while writing, or sized for a typical event) would be
/// memory held per queued event: about a tenth of a queue's bytes with the reference event.
fn full_form(signing_input: &[u8], value_at: usize, value_hex: &[u8]) -> Vec<u8> {
    const VALUE_MEMBER: &[u8] = br#","value":""#;
    let (head, tail) = signing_input.split_at(value_at.min(signing_input.len()));
    let mut form =
        Vec::with_capacity(signing_input.len() + VALUE_MEMBER.len() + value_hex.len() + 1);
    form.extend_from_slice(head);
    form.extend_from_slice(VALUE_MEMBER);
    form.extend_from_slice(value_hex);
    form.push(b'"');
    form.extend_from_slice(tail);
    form
}

/// Two lowercase hex digits for every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// Lowercase hex of a MAC or digest: one table lookup per byte (this runs once or twice for
/// every signed event).
fn hex_lower(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    out
}

/// The text of [`hex_lower`]'s digits.
fn hex_str(digits: &[u8; 64]) -> &str {
    // Hex digits are ASCII: always valid UTF-8 (the fallback is never taken).
    std::str::from_utf8(digits).unwrap_or(CHAIN_START)
}

/// SHA-256 of the full canonical form: the MAC input with `,"value":"<hex>"` at `value_at`.
pub(crate) fn chain_hash(signing_input: &[u8], value_at: usize, value_hex: &str) -> [u8; 32] {
    let (head, tail) = signing_input.split_at(value_at.min(signing_input.len()));
    let mut hasher = Sha256::new();
    hasher.update(head);
    hasher.update(br#","value":""#);
    hasher.update(value_hex.as_bytes());
    hasher.update(b"\"");
    hasher.update(tail);
    hasher.finalize().into()
}

impl Processor for Sign {
    fn requires_ordering(&self) -> bool {
        self.chain.is_some()
    }

    fn process(&self, batch: &mut Batch) {
        match &self.chain {
            None => {
                let mut work = Scratch::default();
                for event in batch.iter_mut() {
                    self.sign_event(event, None, &mut work);
                }
            }
            Some(head) => {
                let mut head = head.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let ChainHead { last, work } = &mut *head;
                for event in batch.iter_mut() {
                    // Hex digits are ASCII, so the text is always valid UTF-8.
                    let prev = hex_lower(last);
                    let prev = hex_str(&prev);
                    *last = self.sign_event(event, Some(prev), work);
                }
            }
        }
        self.counters.record(batch.len(), batch.len());
    }
}

impl Drop for Sign {
    /// Saves the chain head so a clean restart continues the chain.
    fn drop(&mut self) {
        let Some(head) = &self.chain else { return };
        let last = head.lock().map_or_else(|p| p.into_inner().last, |h| h.last);
        // Durable once written: a crash (or power loss) right after a clean stop must not
        // leave an empty or torn head that the next start would read as a chain restart.
        let state = format!("{}\n", hex::encode(last));
        let result = write_atomically(&self.state_path, state.as_bytes(), Access::Default);
        if let Err(e) = result {
            tracing::warn!(path = %self.state_path.display(), error = %e,
                "cannot save the signature chain state; the next start begins a new chain");
        }
    }
}

#[cfg(test)]
mod tests;
