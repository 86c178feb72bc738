//! The C ABI, version [`ABI_VERSION`]: `#[repr(C)]` mirrors of `include/siemrelay_plugin.h`.
//!
//! The header is the definition; these types must match it field for field (a test compiles a C
//! program against the header and compares every size and offset). See the header for the
//! ownership rules: inputs belong to siemrelay for the duration of a call, outputs are filled
//! by the plugin and stay valid until siemrelay calls `release(owner)`.

use std::ffi::{c_char, c_void};

/// The ABI version this crate speaks. Bumped on any incompatible change of the table or of a
/// struct it references (see the README's versioning rules).
pub const ABI_VERSION: u32 = 1;

/// The one symbol siemrelay looks up in a plugin library.
pub const ENTRY_SYMBOL: &str = "siemrelay_plugin_entry";

/// `validate`, `create` and `deliver` succeeded (their output was filled).
pub const STATUS_OK: i32 = 0;
/// `validate`, `create` or `deliver` failed.
pub const STATUS_ERROR: i32 = 1;

/// The SIEM accepted the event.
pub const OUTCOME_DELIVERED: u32 = 0;
/// A temporary failure: send again later.
pub const OUTCOME_RETRY: u32 = 1;
/// A failure resending will not fix: dead-letter the event.
pub const OUTCOME_PERMANENT: u32 = 2;

/// A UTF-8 string given as pointer + length (not NUL-terminated). `ptr` may be null if `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawStr {
    /// First byte.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

impl RawStr {
    /// The empty string.
    pub const EMPTY: RawStr = RawStr {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Borrows `text` (valid as long as `text` is).
    pub fn borrow(text: &str) -> RawStr {
        RawStr {
            ptr: text.as_ptr().cast(),
            len: text.len(),
        }
    }

    /// The bytes, lossily decoded as UTF-8.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or be null with `len` 0).
    pub unsafe fn to_string_lossy(&self) -> String {
        if self.ptr.is_null() || self.len == 0 {
            return String::new();
        }
        // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// One configuration problem, with a dotted key path inside the plugin's `config:` block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawConfigIssue {
    /// `endpoint`, `headers.Authorization`, `` for the block itself.
    pub key: RawStr,
    /// What is wrong.
    pub message: RawStr,
}

/// Configuration problems filled by `validate` and `create`.
#[repr(C)]
#[derive(Debug)]
pub struct RawIssues {
    /// `count` entries, or null when `count` is 0.
    pub items: *const RawConfigIssue,
    /// Number of issues.
    pub count: usize,
    /// Passed to `release` once siemrelay is done; null = nothing to release.
    pub owner: *mut c_void,
}

impl RawIssues {
    /// An empty value for the plugin to fill.
    pub const EMPTY: RawIssues = RawIssues {
        items: std::ptr::null(),
        count: 0,
        owner: std::ptr::null_mut(),
    };
}

/// The outcome of one event or of a whole batch.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawOutcome {
    /// One of the `OUTCOME_*` constants.
    pub kind: u32,
    /// Retry only: a delay the SIEM asked for in milliseconds; 0 = none.
    pub retry_after_ms: u32,
    /// Retry and permanent: why.
    pub reason: RawStr,
}

/// What one request to the SIEM did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawRequest {
    /// Events in the request.
    pub events: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// HTTP status; 0 = no HTTP reply.
    pub http_status: u32,
    /// Time from sending to the reply.
    pub latency_ms: u32,
    /// The SIEM's reply (truncated) or the transport error.
    pub reply: RawStr,
}

/// The result of `deliver`.
#[repr(C)]
#[derive(Debug)]
pub struct RawDelivery {
    /// Applies to every event when `outcomes` is null.
    pub batch: RawOutcome,
    /// Null, or one outcome per event in batch order.
    pub outcomes: *const RawOutcome,
    /// Must equal the batch's event count when `outcomes` is not null.
    pub outcome_count: usize,
    /// Null, or `request_count` records.
    pub requests: *const RawRequest,
    /// Number of request records.
    pub request_count: usize,
    /// Passed to `release` once siemrelay is done; null = nothing to release.
    pub owner: *mut c_void,
}

impl RawDelivery {
    /// An empty value for the plugin to fill.
    pub const EMPTY: RawDelivery = RawDelivery {
        batch: RawOutcome {
            kind: OUTCOME_DELIVERED,
            retry_after_ms: 0,
            reason: RawStr::EMPTY,
        },
        outcomes: std::ptr::null(),
        outcome_count: 0,
        requests: std::ptr::null(),
        request_count: 0,
        owner: std::ptr::null_mut(),
    };
}

/// `validate(config, config_len, issues) -> status`.
pub type ValidateFn = unsafe extern "C" fn(*const u8, usize, *mut RawIssues) -> i32;
/// `create(exporter_id, config, config_len, instance, issues) -> status`.
pub type CreateFn =
    unsafe extern "C" fn(RawStr, *const u8, usize, *mut *mut c_void, *mut RawIssues) -> i32;
/// `deliver(instance, batch, batch_len, event_count, result) -> status`.
pub type DeliverFn =
    unsafe extern "C" fn(*mut c_void, *const u8, usize, usize, *mut RawDelivery) -> i32;
/// `release(owner)`.
pub type ReleaseFn = unsafe extern "C" fn(*mut c_void);
/// `destroy(instance)`.
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);

/// The function table of ABI version 1 (`siemrelay_plugin_v1`). The functions are `Option`s
/// (same layout as a nullable C function pointer) so a table from C with a NULL entry is
/// refused instead of called.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1 {
    /// Never moves: the ABI version the plugin was built for.
    pub abi_version: u32,
    /// Never moves: `size_of::<PluginV1>()` as the plugin saw it.
    pub table_size: u32,
    /// Static NUL-terminated plugin name.
    pub name: *const c_char,
    /// Static NUL-terminated plugin version.
    pub version: *const c_char,
    /// Most `deliver` calls one instance takes at once; 0 = no limit, 1 = serialized.
    pub max_concurrency: u32,
    /// Zero.
    pub reserved: u32,
    /// Checks a config without side effects.
    pub validate: Option<ValidateFn>,
    /// Creates an instance.
    pub create: Option<CreateFn>,
    /// Delivers a batch.
    pub deliver: Option<DeliverFn>,
    /// Frees what an output struct pointed to.
    pub release: Option<ReleaseFn>,
    /// Destroys an instance.
    pub destroy: Option<DestroyFn>,
}

// SAFETY: the table is immutable static data (function pointers and pointers to static strings).
unsafe impl Sync for PluginV1 {}

/// The entry point's type: `const siemrelay_plugin_v1 *siemrelay_plugin_entry(uint32_t)`.
pub type EntryFn = unsafe extern "C" fn(u32) -> *const PluginV1;

/// The leading fields every ABI version keeps, read before trusting the rest of a table.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TableHeader {
    /// The plugin's ABI version.
    pub abi_version: u32,
    /// The plugin's table size.
    pub table_size: u32,
}
