//! Loading a plugin library and calling its ABI table.
//!
//! Libraries are loaded once per file and never unloaded (unloading code that may still have
//! threads, TLS destructors or a stuck call in it is unsafe), so the table lives as long as the
//! process.

use siemrelay_plugin_sdk::abi::{
    ABI_VERSION, ENTRY_SYMBOL, EntryFn, OUTCOME_DELIVERED, OUTCOME_PERMANENT, OUTCOME_RETRY,
    PluginV1, RawDelivery, RawIssues, RawOutcome, RawStr, STATUS_OK, TableHeader,
};
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::delivery::{Outcome, Outcomes, RequestRecord, SendReport};

/// Why a plugin library cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not exist or cannot be resolved.
    NotFound(String),
    /// Outside the plugins directory, or others than root and siemrelay's user could change it.
    Untrusted(String),
    /// The dynamic loader refused it (not a shared library, wrong architecture, missing deps).
    Open(String),
    /// It has no `siemrelay_plugin_entry` symbol: not a siemrelay plugin.
    NoEntry(String),
    /// The entry point returned a null table.
    NullTable,
    /// Built for another ABI version.
    AbiMismatch {
        /// The plugin's version.
        found: u32,
    },
    /// The table is malformed (too small, a missing function).
    BadTable(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotFound(e) => write!(f, "plugin library not found: {e}"),
            LoadError::Untrusted(e) => write!(f, "refused to load the plugin library: {e}"),
            LoadError::Open(e) => write!(f, "cannot load the plugin library: {e}"),
            LoadError::NoEntry(e) => write!(
                f,
                "not a siemrelay plugin: it exports no `{ENTRY_SYMBOL}` symbol ({e}); build it with siemrelay-plugin-sdk's export_plugin! or the C header"
            ),
            LoadError::NullTable => write!(f, "the plugin's `{ENTRY_SYMBOL}` returned no table"),
            LoadError::AbiMismatch { found } => write!(
                f,
                "incompatible plugin: built for plugin ABI version {found}, this siemrelay speaks version {ABI_VERSION}; rebuild the plugin against a siemrelay-plugin-sdk for ABI {ABI_VERSION}"
            ),
            LoadError::BadTable(e) => write!(f, "malformed plugin table: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A configuration problem reported by a plugin, keyed inside its `config:` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginIssue {
    /// Dotted key inside `config:` ("" for the block itself).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A loaded plugin library and its ABI table.
pub struct PluginLibrary {
    path: PathBuf,
    table: *const PluginV1,
    name: String,
    version: String,
    _library: libloading::Library,
}

// SAFETY: the table is immutable static data of a library that is never unloaded; the ABI
// requires its functions to be callable from any thread.
unsafe impl Send for PluginLibrary {}
// SAFETY: as above.
unsafe impl Sync for PluginLibrary {}

type Loaded = Mutex<HashMap<PathBuf, Arc<PluginLibrary>>>;

fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads (or returns the already loaded) plugin at `path` (relative: inside the plugins
/// directory) and checks its ABI version. The file is checked first (see [`super::trust`]):
/// nothing outside the plugins directory, nothing others could change, and nothing whose ELF
/// file lacks the entry symbol is ever opened.
pub fn load(path: &Path) -> Result<Arc<PluginLibrary>, LoadError> {
    let canonical = super::trust::check(path)?;
    let mut cache = loaded().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(library) = cache.get(&canonical) {
        return Ok(library.clone());
    }
    let library = Arc::new(open(&canonical)?);
    cache.insert(canonical, library.clone());
    Ok(library)
}

fn open(path: &Path) -> Result<PluginLibrary, LoadError> {
    // SAFETY: loading a library runs its initializers: the file is in the plugins directory the
    // operator trusts and defines the entry symbol (checked by `trust::check`; see the plugin
    // README's safety model).
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| LoadError::Open(e.to_string()))?;
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry: EntryFn = unsafe {
        *library
            .get::<EntryFn>(ENTRY_SYMBOL.as_bytes())
            .map_err(|e| LoadError::NoEntry(e.to_string()))?
    };
    // SAFETY: calling the ABI entry point.
    let table = unsafe { entry(ABI_VERSION) };
    if table.is_null() {
        return Err(LoadError::NullTable);
    }
    // SAFETY: every ABI version starts with this header; read it before anything else.
    let header = unsafe { table.cast::<TableHeader>().read() };
    if header.abi_version != ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            found: header.abi_version,
        });
    }
    if (header.table_size as usize) < std::mem::size_of::<PluginV1>() {
        return Err(LoadError::BadTable(format!(
            "table_size {} is smaller than the {} bytes of ABI {ABI_VERSION}",
            header.table_size,
            std::mem::size_of::<PluginV1>()
        )));
    }
    // SAFETY: the version matches, so the table has the v1 layout.
    let t = unsafe { &*table };
    let missing: Vec<&str> = [
        ("validate", t.validate.is_none()),
        ("create", t.create.is_none()),
        ("deliver", t.deliver.is_none()),
        ("release", t.release.is_none()),
        ("destroy", t.destroy.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, missing)| missing.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(LoadError::BadTable(format!(
            "missing functions: {}",
            missing.join(", ")
        )));
    }
    Ok(PluginLibrary {
        path: path.to_path_buf(),
        table,
        // SAFETY: static NUL-terminated strings per the ABI (or null).
        name: unsafe { c_text(t.name) }.unwrap_or_else(|| "unnamed".into()),
        // SAFETY: as above.
        version: unsafe { c_text(t.version) }.unwrap_or_else(|| "?".into()),
        _library: library,
    })
}

/// # Safety
/// `ptr` must be null or a NUL-terminated string.
unsafe fn c_text(ptr: *const c_char) -> Option<String> {
    // SAFETY: guaranteed by the caller.
    (!ptr.is_null()).then(|| {
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Copies a plugin's issues and releases them.
///
/// # Safety
/// `issues` must have been filled by `table`'s plugin per the ABI.
unsafe fn take_issues(table: &PluginV1, issues: RawIssues) -> Vec<PluginIssue> {
    let mut out = Vec::with_capacity(issues.count);
    if !issues.items.is_null() {
        // SAFETY: `count` items at `items`, valid until release.
        let items = unsafe { std::slice::from_raw_parts(issues.items, issues.count) };
        for item in items {
            out.push(PluginIssue {
                // SAFETY: strings valid until release.
                key: unsafe { item.key.to_string_lossy() },
                // SAFETY: as above.
                message: unsafe { item.message.to_string_lossy() },
            });
        }
    }
    if let (Some(release), false) = (table.release, issues.owner.is_null()) {
        // SAFETY: releasing the plugin's own output once.
        unsafe { release(issues.owner) };
    }
    out
}

impl PluginLibrary {
    fn table(&self) -> &PluginV1 {
        // SAFETY: checked at load; the library is never unloaded.
        unsafe { &*self.table }
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's name (its package name for Rust SDK plugins).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Most concurrent deliveries per instance (0 = no limit).
    pub fn max_concurrency(&self) -> u32 {
        self.table().max_concurrency
    }

    /// Runs the plugin's config validation on a JSON object.
    pub fn validate(&self, config_json: &[u8]) -> Vec<PluginIssue> {
        let table = self.table();
        let Some(validate) = table.validate else {
            return vec![PluginIssue {
                key: String::new(),
                message: "plugin has no validate function".into(),
            }];
        };
        let mut issues = RawIssues::EMPTY;
        // SAFETY: per the ABI: the input outlives the call, `issues` is writable.
        let status = unsafe { validate(config_json.as_ptr(), config_json.len(), &mut issues) };
        // SAFETY: filled (or left empty) by this plugin.
        let mut found = unsafe { take_issues(table, issues) };
        if status != STATUS_OK && found.is_empty() {
            found.push(PluginIssue {
                key: String::new(),
                message: format!("the plugin's validation failed with status {status}"),
            });
        }
        found
    }

    /// Creates an instance for exporter `exporter_id`.
    pub fn create(
        self: &Arc<Self>,
        exporter_id: &str,
        config_json: &[u8],
    ) -> Result<PluginInstance, Vec<PluginIssue>> {
        let table = self.table();
        let Some(create) = table.create else {
            return Err(vec![PluginIssue {
                key: String::new(),
                message: "plugin has no create function".into(),
            }]);
        };
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut issues = RawIssues::EMPTY;
        // SAFETY: per the ABI.
        let status = unsafe {
            create(
                RawStr::borrow(exporter_id),
                config_json.as_ptr(),
                config_json.len(),
                &mut instance,
                &mut issues,
            )
        };
        // SAFETY: filled (or left empty) by this plugin.
        let mut found = unsafe { take_issues(table, issues) };
        if status == STATUS_OK && !instance.is_null() {
            return Ok(PluginInstance {
                library: self.clone(),
                instance,
            });
        }
        if found.is_empty() {
            found.push(PluginIssue {
                key: String::new(),
                message: format!("the plugin could not create an instance (status {status})"),
            });
        }
        Err(found)
    }
}

/// A plugin instance (one per exporter). Destroyed on drop, which happens only after its last
/// delivery call has returned (every caller holds it in an `Arc`).
pub struct PluginInstance {
    library: Arc<PluginLibrary>,
    instance: *mut c_void,
}

// SAFETY: the ABI requires instances to be usable from any thread; concurrent `deliver` calls are
// limited to the plugin's `max_concurrency` by the sink.
unsafe impl Send for PluginInstance {}
// SAFETY: as above.
unsafe impl Sync for PluginInstance {}

impl PluginInstance {
    /// The library.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// Delivers NDJSON holding `count` events (blocking) and copies the plugin's result.
    pub fn deliver(&self, batch: &[u8], count: usize) -> SendReport {
        let table = self.library.table();
        let Some(deliver) = table.deliver else {
            return SendReport::uniform(
                Outcome::retry("plugin has no deliver function"),
                Vec::new(),
            );
        };
        let mut raw = RawDelivery::EMPTY;
        // SAFETY: per the ABI: the batch outlives the call, `raw` is writable.
        let status =
            unsafe { deliver(self.instance, batch.as_ptr(), batch.len(), count, &mut raw) };
        if status != STATUS_OK {
            return SendReport::uniform(
                Outcome::retry(format!(
                    "plugin {} failed to deliver (status {status})",
                    self.library.name
                )),
                vec![RequestRecord {
                    events: count,
                    bytes: batch.len(),
                    ..Default::default()
                }],
            );
        }
        // SAFETY: filled by this plugin; copied before release.
        let report = unsafe { copy_delivery(&raw, count, batch.len()) };
        if let (Some(release), false) = (table.release, raw.owner.is_null()) {
            // SAFETY: releasing the plugin's own output once.
            unsafe { release(raw.owner) };
        }
        report
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        if let Some(destroy) = self.library.table().destroy {
            // SAFETY: created by this library; no call is in flight (we are the last owner).
            unsafe { destroy(self.instance) };
        }
    }
}

/// Converts outcomes, sharing one `Arc<str>` among consecutive equal reasons.
struct OutcomeReader {
    last: Option<(String, Arc<str>)>,
}

impl OutcomeReader {
    /// # Safety
    /// `raw.reason` must be valid.
    unsafe fn read(&mut self, raw: &RawOutcome) -> Outcome {
        if raw.kind == OUTCOME_DELIVERED {
            return Outcome::Delivered;
        }
        // SAFETY: guaranteed by the caller.
        let text = unsafe { raw.reason.to_string_lossy() };
        let reason = match &self.last {
            Some((last, shared)) if *last == text => shared.clone(),
            _ => {
                let shared: Arc<str> = Arc::from(if text.is_empty() {
                    "no reason given"
                } else {
                    text.as_str()
                });
                self.last = Some((text, shared.clone()));
                shared
            }
        };
        match raw.kind {
            OUTCOME_RETRY => Outcome::Retry {
                reason,
                after: (raw.retry_after_ms > 0)
                    .then(|| Duration::from_millis(u64::from(raw.retry_after_ms))),
            },
            OUTCOME_PERMANENT => Outcome::Permanent { reason },
            other => Outcome::retry(format!(
                "plugin returned an unknown outcome kind {other}: {reason}"
            )),
        }
    }
}

/// # Safety
/// `raw` must have been filled by a plugin per the ABI and not released yet.
unsafe fn copy_delivery(raw: &RawDelivery, count: usize, bytes: usize) -> SendReport {
    let mut reader = OutcomeReader { last: None };
    let outcomes = if raw.outcomes.is_null() {
        // SAFETY: guaranteed by the caller.
        Outcomes::Uniform(unsafe { reader.read(&raw.batch) })
    } else if raw.outcome_count != count {
        Outcomes::Uniform(Outcome::retry(format!(
            "plugin bug: {} outcomes for a batch of {count} events",
            raw.outcome_count
        )))
    } else {
        // SAFETY: `count` outcomes at `outcomes`.
        let list = unsafe { std::slice::from_raw_parts(raw.outcomes, count) };
        // SAFETY: each reason is valid until release.
        Outcomes::PerEvent(list.iter().map(|o| unsafe { reader.read(o) }).collect())
    };
    let requests = if raw.requests.is_null() || raw.request_count == 0 {
        vec![RequestRecord {
            events: count,
            bytes,
            ..Default::default()
        }]
    } else {
        // SAFETY: `request_count` records at `requests`.
        let list = unsafe { std::slice::from_raw_parts(raw.requests, raw.request_count) };
        list.iter()
            .map(|r| RequestRecord {
                events: usize::try_from(r.events).unwrap_or(usize::MAX),
                bytes: usize::try_from(r.bytes).unwrap_or(usize::MAX),
                http_status: u16::try_from(r.http_status).ok().filter(|s| *s != 0),
                // SAFETY: valid until release.
                reply: Some(unsafe { r.reply.to_string_lossy() }).filter(|s| !s.is_empty()),
                latency: Duration::from_millis(u64::from(r.latency_ms)),
                ..Default::default()
            })
            .collect()
    };
    SendReport { outcomes, requests }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        super::super::trust::set_directory(dir.path());
        let error = load(Path::new("libnothing.so")).err();
        assert!(matches!(error, Some(LoadError::NotFound(_))), "{error:?}");
    }

    #[test]
    fn a_file_that_is_no_library_cannot_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libfake.so");
        std::fs::write(&path, b"not an ELF file").unwrap();
        super::super::trust::set_directory(dir.path());
        let error = load(&path).err().unwrap();
        assert!(matches!(error, LoadError::Open(_)), "{error:?}");
        assert!(error.to_string().contains("cannot load"));
    }

    #[test]
    fn abi_mismatch_message_names_both_versions() {
        let text = LoadError::AbiMismatch { found: 7 }.to_string();
        assert!(
            text.contains("version 7") && text.contains(&format!("version {ABI_VERSION}")),
            "{text}"
        );
    }
}
