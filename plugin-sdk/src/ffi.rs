//! The C entry points [`crate::export_plugin!`] instantiates for an [`Exporter`]. Not for direct
//! use: every function here upholds the ABI's rules (no unwinding across the boundary, outputs
//! owned until `release`).

use crate::abi::{
    OUTCOME_DELIVERED, OUTCOME_PERMANENT, OUTCOME_RETRY, RawConfigIssue, RawDelivery, RawIssues,
    RawOutcome, RawRequest, RawStr, STATUS_ERROR, STATUS_OK,
};
use crate::{Batch, Delivery, Exporter, Issue, Outcome, Outcomes, Request};
use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Parses a config and runs the exporter's own checks.
pub fn parse_config<E: Exporter>(config: &[u8]) -> Result<E::Config, Vec<Issue>> {
    let mut de = serde_json::Deserializer::from_slice(config);
    let parsed: E::Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { String::new() } else { path };
        vec![Issue::new(key, e.into_inner().to_string())]
    })?;
    let issues = E::validate(&parsed);
    if issues.is_empty() {
        Ok(parsed)
    } else {
        Err(issues)
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Borrows input bytes from siemrelay.
///
/// # Safety
/// `ptr` must point to `len` readable bytes, or be null with `len` 0.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller (siemrelay keeps the input alive during the call).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Turns a boxed value into an `owner` pointer that [`release`] frees.
fn into_owner<T: Any + Send>(value: T) -> *mut c_void {
    let boxed: Box<Box<dyn Any + Send>> = Box::new(Box::new(value));
    Box::into_raw(boxed).cast()
}

/// Owned storage behind a [`RawIssues`].
struct IssuesStorage {
    _strings: Vec<String>,
    _items: Vec<RawConfigIssue>,
}

// SAFETY: the raw pointers in `_items` point into `_strings`, owned by the same value.
unsafe impl Send for IssuesStorage {}

fn fill_issues(issues: Vec<Issue>, out: *mut RawIssues) {
    if out.is_null() {
        return;
    }
    let mut strings = Vec::with_capacity(issues.len() * 2);
    let mut items = Vec::with_capacity(issues.len());
    for issue in issues {
        // A String's heap buffer does not move when the String moves into the Vec.
        let key = RawStr::borrow(&issue.key);
        let message = RawStr::borrow(&issue.message);
        items.push(RawConfigIssue { key, message });
        strings.push(issue.key);
        strings.push(issue.message);
    }
    let raw = RawIssues {
        items: if items.is_empty() {
            std::ptr::null()
        } else {
            items.as_ptr()
        },
        count: items.len(),
        owner: std::ptr::null_mut(),
    };
    let owner = into_owner(IssuesStorage {
        _strings: strings,
        _items: items,
    });
    // SAFETY: siemrelay passes a valid, writable RawIssues.
    unsafe {
        *out = RawIssues { owner, ..raw };
    }
}

/// `validate`: parses the config and runs [`Exporter::validate`].
///
/// # Safety
/// Called by siemrelay per the ABI.
pub unsafe extern "C" fn validate<E: Exporter>(
    config: *const u8,
    config_len: usize,
    issues: *mut RawIssues,
) -> i32 {
    // SAFETY: per the ABI.
    let config = unsafe { input(config, config_len) };
    let found = match catch_unwind(|| parse_config::<E>(config)) {
        Ok(Ok(_)) => Vec::new(),
        Ok(Err(found)) => found,
        Err(payload) => vec![Issue::new(
            "",
            format!("plugin panicked: {}", panic_message(&*payload)),
        )],
    };
    fill_issues(found, issues);
    STATUS_OK
}

/// `create`: parses the config and runs [`Exporter::configure`].
///
/// # Safety
/// Called by siemrelay per the ABI.
pub unsafe extern "C" fn create<E: Exporter>(
    exporter_id: RawStr,
    config: *const u8,
    config_len: usize,
    instance: *mut *mut c_void,
    issues: *mut RawIssues,
) -> i32 {
    // SAFETY: per the ABI.
    let config = unsafe { input(config, config_len) };
    // SAFETY: per the ABI.
    let id = unsafe { exporter_id.to_string_lossy() };
    let built = catch_unwind(|| {
        let parsed = parse_config::<E>(config)?;
        E::configure(&id, parsed)
    });
    let failure = match built {
        Ok(Ok(exporter)) if !instance.is_null() => {
            // SAFETY: siemrelay passes a valid, writable instance pointer.
            unsafe {
                *instance = Box::into_raw(Box::new(exporter)).cast();
            }
            return STATUS_OK;
        }
        Ok(Ok(_)) => vec![Issue::new("", "siemrelay passed no instance pointer")],
        Ok(Err(found)) => found,
        Err(payload) => vec![Issue::new(
            "",
            format!("plugin panicked: {}", panic_message(&*payload)),
        )],
    };
    fill_issues(failure, issues);
    STATUS_ERROR
}

/// Owned storage behind a [`RawDelivery`].
struct DeliveryStorage {
    _strings: Vec<String>,
    _outcomes: Vec<RawOutcome>,
    _requests: Vec<RawRequest>,
}

// SAFETY: the raw pointers point into the storage's own Vecs and Strings.
unsafe impl Send for DeliveryStorage {}

fn raw_outcome(outcome: Outcome, strings: &mut Vec<String>) -> RawOutcome {
    let (kind, after, reason) = match outcome {
        Outcome::Delivered => (OUTCOME_DELIVERED, 0, None),
        Outcome::Retry { reason, after } => (
            OUTCOME_RETRY,
            after.map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            Some(reason),
        ),
        Outcome::Permanent { reason } => (OUTCOME_PERMANENT, 0, Some(reason)),
    };
    let reason = match reason {
        Some(text) => {
            let raw = RawStr::borrow(&text);
            strings.push(text);
            raw
        }
        None => RawStr::EMPTY,
    };
    RawOutcome {
        kind,
        retry_after_ms: after,
        reason,
    }
}

fn raw_request(request: Request, strings: &mut Vec<String>) -> RawRequest {
    let reply = match request.reply {
        Some(text) => {
            let raw = RawStr::borrow(&text);
            strings.push(text);
            raw
        }
        None => RawStr::EMPTY,
    };
    RawRequest {
        events: request.events,
        bytes: request.bytes,
        http_status: request.http_status.map_or(0, u32::from),
        latency_ms: u32::try_from(request.latency.as_millis()).unwrap_or(u32::MAX),
        reply,
    }
}

fn fill_delivery(delivery: Delivery, out: *mut RawDelivery) {
    let mut strings = Vec::new();
    let (batch, outcomes) = match delivery.outcomes {
        Outcomes::All(outcome) => (raw_outcome(outcome, &mut strings), Vec::new()),
        Outcomes::PerEvent(list) => (
            RawDelivery::EMPTY.batch,
            list.into_iter()
                .map(|o| raw_outcome(o, &mut strings))
                .collect(),
        ),
    };
    let per_event = !outcomes.is_empty();
    let requests: Vec<RawRequest> = delivery
        .requests
        .into_iter()
        .map(|r| raw_request(r, &mut strings))
        .collect();
    let raw = RawDelivery {
        batch,
        outcomes: if per_event {
            outcomes.as_ptr()
        } else {
            std::ptr::null()
        },
        outcome_count: outcomes.len(),
        requests: if requests.is_empty() {
            std::ptr::null()
        } else {
            requests.as_ptr()
        },
        request_count: requests.len(),
        owner: std::ptr::null_mut(),
    };
    let owner = into_owner(DeliveryStorage {
        _strings: strings,
        _outcomes: outcomes,
        _requests: requests,
    });
    // SAFETY: siemrelay passes a valid, writable RawDelivery.
    unsafe {
        *out = RawDelivery { owner, ..raw };
    }
}

/// `deliver`: runs [`Exporter::deliver`]; a panic becomes a retryable outcome.
///
/// # Safety
/// Called by siemrelay per the ABI, with an instance from [`create`].
pub unsafe extern "C" fn deliver<E: Exporter>(
    instance: *mut c_void,
    batch: *const u8,
    batch_len: usize,
    event_count: usize,
    result: *mut RawDelivery,
) -> i32 {
    if instance.is_null() || result.is_null() {
        return STATUS_ERROR;
    }
    // SAFETY: `instance` came from `create::<E>` and is not destroyed while calls run.
    let exporter = unsafe { &*instance.cast::<E>() };
    // SAFETY: per the ABI.
    let bytes = unsafe { input(batch, batch_len) };
    let batch = Batch::new(bytes, event_count);
    let delivery =
        catch_unwind(AssertUnwindSafe(|| exporter.deliver(&batch))).unwrap_or_else(|payload| {
            Delivery::all(Outcome::retry(format!(
                "plugin panicked: {}",
                panic_message(&*payload)
            )))
        });
    let delivery = match &delivery.outcomes {
        Outcomes::PerEvent(list) if list.len() != event_count => {
            Delivery::all(Outcome::retry(format!(
                "plugin bug: {} outcomes for a batch of {event_count} events",
                list.len()
            )))
        }
        _ => delivery,
    };
    fill_delivery(delivery, result);
    STATUS_OK
}

/// `release`: frees an output's storage.
///
/// # Safety
/// `owner` must come from an output of this plugin and be released once.
pub unsafe extern "C" fn release(owner: *mut c_void) {
    if owner.is_null() {
        return;
    }
    // SAFETY: `owner` was made by `into_owner` and is released once.
    let boxed = unsafe { Box::from_raw(owner.cast::<Box<dyn Any + Send>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// `destroy`: drops an instance.
///
/// # Safety
/// `instance` must come from [`create`] for the same `E` and be destroyed once.
pub unsafe extern "C" fn destroy<E: Exporter>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: `instance` came from `create::<E>`; siemrelay destroys it once, after the last call.
    let exporter = unsafe { Box::from_raw(instance.cast::<E>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(exporter)));
}
