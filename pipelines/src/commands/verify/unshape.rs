//! `siemrelay verify --schema`: turning reshaped signed events back into the native lines their
//! signatures cover.
//!
//! A reshaped signed event carries its native JSON form, as signed, in `signed_json`
//! (`siemrelay.signed_json` in ECS, `unmapped.signed_json` in OCSF). Each line becomes that
//! native line (whose signature and chain link `verify_stream` then checks), after checking
//! that the line's own fields are exactly the native form reshaped: so a changed visible field
//! fails even though the carried form still verifies.

use siemrelay_core::Timestamp;
use siemrelay_core::ingest::{IngestOptions, event_from_object};
use siemrelay_exporters::delivery::Schema;
use siemrelay_exporters::delivery::schema::{SIGNED_JSON, carried_native_json};
use std::cell::RefCell;
use std::io::{BufRead, Read};
use std::rc::Rc;

/// The first line whose shape does not match its signed form, and why.
pub type ShapeFailure = Rc<RefCell<Option<(usize, String)>>>;

/// A reader of reshaped NDJSON that yields the native lines; it ends before the first line
/// that fails (recorded in the shared [`ShapeFailure`]).
pub struct Unshaped<R> {
    input: R,
    schema: Schema,
    line: usize,
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
    failure: ShapeFailure,
}

impl<R: BufRead> Unshaped<R> {
    /// Reads `input`, shaped as `schema`.
    pub fn new(input: R, schema: Schema, failure: ShapeFailure) -> Unshaped<R> {
        Unshaped {
            input,
            schema,
            line: 0,
            raw: Vec::with_capacity(1024),
            out: Vec::with_capacity(1024),
            pos: 0,
            done: false,
            failure,
        }
    }

    /// Reads the next input line into `out` as a native line.
    fn next_line(&mut self) -> std::io::Result<()> {
        self.raw.clear();
        self.out.clear();
        self.pos = 0;
        if self.input.read_until(b'\n', &mut self.raw)? == 0 {
            self.done = true;
            return Ok(());
        }
        self.line += 1;
        match native_line(&self.raw, self.schema) {
            Ok(Some(native)) => {
                self.out.extend_from_slice(native.as_bytes());
                self.out.push(b'\n');
            }
            // Blank or not JSON: passed on for `verify_stream` to skip or report.
            Ok(None) => self.out.extend_from_slice(&self.raw),
            Err(reason) => {
                *self.failure.borrow_mut() = Some((self.line, reason));
                self.done = true;
            }
        }
        Ok(())
    }
}

/// The native line a reshaped line carries, checked against the line's fields; `None` for a
/// blank line or one that is not a JSON object.
fn native_line(raw: &[u8], schema: Schema) -> Result<Option<String>, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Ok(serde_json::Value::Object(mut shaped)) = serde_json::from_slice(raw) else {
        return Ok(None);
    };
    let shaped_value = serde_json::Value::Object(shaped.clone());
    let native = carried_native_json(schema, &shaped_value)
        .ok_or_else(|| {
            format!(
                "no {} field: the event was not signed, or not written with `schema: {}`",
                carrier_path(schema),
                schema.name()
            )
        })?
        .to_string();
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str(&native) else {
        return Err(format!(
            "{} is not a JSON object (altered)",
            carrier_path(schema)
        ));
    };
    let event = event_from_object(object, &IngestOptions::default(), Timestamp::now())
        .map_err(|e| format!("{} is not an event: {e}", carrier_path(schema)))?
        .event;
    let mut expected = Vec::with_capacity(raw.len());
    schema.write_event(&event, &mut expected);
    let serde_json::Value::Object(mut expected) = serde_json::from_slice(&expected)
        .map_err(|e| format!("cannot reshape the signed form: {e}"))?
    else {
        return Err("cannot reshape the signed form".into());
    };
    remove_carrier(schema, &mut shaped);
    remove_carrier(schema, &mut expected);
    if let Some(field) = first_difference(&shaped, &expected, "") {
        return Err(format!(
            "field {field} differs from the signed event's (the {} event was altered after signing)",
            schema.name()
        ));
    }
    Ok(Some(native))
}

fn carrier_path(schema: Schema) -> String {
    match schema {
        Schema::Ecs => format!("siemrelay.{SIGNED_JSON}"),
        Schema::Ocsf => format!("unmapped.{SIGNED_JSON}"),
        _ => SIGNED_JSON.to_string(),
    }
}

fn remove_carrier(schema: Schema, object: &mut serde_json::Map<String, serde_json::Value>) {
    let holder = match schema {
        Schema::Ecs => object.get_mut("siemrelay").and_then(|v| v.as_object_mut()),
        Schema::Ocsf => object.get_mut("unmapped").and_then(|v| v.as_object_mut()),
        _ => Some(object),
    };
    if let Some(holder) = holder {
        holder.remove(SIGNED_JSON);
    }
}

/// The dotted path of the first member that differs (present in one, absent or different in
/// the other).
fn first_difference(
    got: &serde_json::Map<String, serde_json::Value>,
    want: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> Option<String> {
    let keys = got.keys().chain(want.keys());
    for key in keys {
        let path = format!("{prefix}{key}");
        match (got.get(key), want.get(key)) {
            (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) => {
                if let Some(inner) = first_difference(a, b, &format!("{path}.")) {
                    return Some(inner);
                }
            }
            (a, b) if a != b => return Some(path),
            _ => {}
        }
    }
    None
}

impl<R: BufRead> Read for Unshaped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Unshaped<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.out.len() && !self.done {
            self.next_line()?;
        }
        if self.pos >= self.out.len() {
            return Ok(&[]);
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.out.len());
    }
}
