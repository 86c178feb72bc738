//! The canonical form of event attributes for signing, written from their JSON bytes
//! (`canonical_json`, issue 24) against parsing them into a `serde_json::Value` and writing
//! the tree (`canonical::write_canonical`), on the attributes of the product samples in
//! `tests/fixtures/samples/`. Also prints heap allocations per call of each path.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use siemrelay_processors::sign::canonical::write_canonical;
use siemrelay_processors::sign::canonical_json::{CanonicalJsonScratch, write_canonical_json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting allocations (and reallocations).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Fields that become an event's well-known fields rather than attributes.
const WELL_KNOWN: &[&str] = &[
    "event_id",
    "id",
    "timestamp",
    "created_at",
    "event_type",
    "type",
    "severity",
    "level",
    "summary",
    "source",
];

/// The attributes of each sample event, as the compact bytes serde_json writes for them.
fn attributes(name: &str, text: &str) -> Vec<Vec<u8>> {
    let objects: Vec<Value> = if name.ends_with(".ndjson") {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("sample line"))
            .collect()
    } else {
        serde_json::from_str(text).expect("sample array")
    };
    objects
        .into_iter()
        .map(|object| {
            let mut map = object.as_object().cloned().expect("sample object");
            map.retain(|key, _| !WELL_KNOWN.contains(&key.as_str()));
            serde_json::to_vec(&map).expect("attributes")
        })
        .collect()
}

fn samples() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let files = [
        (
            "keeptrusts.ndjson",
            include_str!("../../tests/fixtures/samples/keeptrusts.ndjson"),
        ),
        (
            "toktra.ndjson",
            include_str!("../../tests/fixtures/samples/toktra.ndjson"),
        ),
        (
            "neuraltrust.json",
            include_str!("../../tests/fixtures/samples/neuraltrust.json"),
        ),
        (
            "truthlocks.json",
            include_str!("../../tests/fixtures/samples/truthlocks.json"),
        ),
    ];
    let mut samples: Vec<_> = files
        .into_iter()
        .map(|(name, text)| (name, attributes(name, text)))
        .collect();
    // The same members in reverse order (as a sender's own order may be): every object
    // takes the sorting path.
    let reversed = samples[0].1.iter().map(|json| reversed(json)).collect();
    samples.push(("keeptrusts-reversed", reversed));
    samples
}

/// The JSON text of an object with its members (at every level) in reverse order.
fn reversed(json: &[u8]) -> Vec<u8> {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().rev().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(key.as_str()).to_string());
                    out.push(':');
                    write(value, out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&serde_json::from_slice(json).expect("attributes"), &mut out);
    out.into_bytes()
}

/// One call of the raw path. Not inlined, so that callgrind counts its calls and their
/// instructions (`valgrind --tool=callgrind <bench binary> --bench raw --profile-time 1`).
#[inline(never)]
fn raw_path(json: &[u8], out: &mut Vec<u8>, scratch: &mut CanonicalJsonScratch) -> bool {
    out.clear();
    write_canonical_json(json, out, scratch)
}

/// One call of the tree path: parse, write, drop the tree.
#[inline(never)]
fn tree_path(json: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let value: Value = serde_json::from_slice(json).expect("attributes");
    write_canonical(black_box(&value), out);
}

/// One call of the writer on a tree that exists already.
#[inline(never)]
fn tree_only_path(value: &Value, out: &mut Vec<u8>) {
    out.clear();
    write_canonical(value, out);
}

/// Heap allocations per call of `write` over all of `inputs`, after one warm-up pass.
fn allocations_per_call(inputs: &[Vec<u8>], mut write: impl FnMut(&[u8])) -> f64 {
    inputs.iter().for_each(|json| write(json));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    inputs.iter().for_each(|json| write(json));
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / inputs.len() as f64
}

fn canonical_json(c: &mut Criterion) {
    for (name, inputs) in samples() {
        let bytes: usize = inputs.iter().map(Vec::len).sum();
        let trees: Vec<Value> = inputs
            .iter()
            .map(|json| serde_json::from_slice(json).expect("attributes"))
            .collect();
        let mut scratch = CanonicalJsonScratch::default();
        let mut out = Vec::new();

        let raw = allocations_per_call(&inputs, |json| {
            raw_path(json, &mut out, &mut scratch);
        });
        let parsed = allocations_per_call(&inputs, |json| tree_path(json, &mut out));
        println!(
            "{name}: {} events, {} attribute bytes each on average; allocations per call: \
             raw {raw:.1}, parse + tree {parsed:.1}",
            inputs.len(),
            bytes / inputs.len()
        );

        let mut group = c.benchmark_group(format!("canonical_json/{name}"));
        group.throughput(Throughput::Elements(inputs.len() as u64));
        group.bench_function("raw", |b| {
            b.iter(|| {
                for json in &inputs {
                    black_box(raw_path(json, &mut out, &mut scratch));
                }
            })
        });
        group.bench_function("parse_and_tree", |b| {
            b.iter(|| {
                for json in &inputs {
                    tree_path(json, &mut out);
                }
            })
        });
        group.bench_function("tree_only", |b| {
            b.iter(|| {
                for value in &trees {
                    tree_only_path(value, &mut out);
                }
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = canonical_json
}
criterion_main!(benches);
