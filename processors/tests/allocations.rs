//! Heap allocations per event on the reference pipeline's hot path (issue 24), counted by a
//! global allocator on the test's own thread: enrich's two upserts into raw attributes
//! allocate nothing (each member was serialized when the processor was built), and sign
//! allocates two blocks per event (the signature's box and the kept JSON form), no string
//! per signature member.

use siemrelay_core::ingest::{
    BodyFormat, FieldMapping, IngestOptions, Limits, event_from_received, parse_body_raw,
};
use siemrelay_core::{Event, Processor, ProcessorContext, Timestamp};
use siemrelay_processors::{enrich, sign};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting allocations made on each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const EVENTS: usize = 200;

/// The reference event of bench/, as the webhook's raw ingest makes it.
fn reference_events() -> Vec<Event> {
    let body: Vec<String> = (0..EVENTS)
        .map(|n| {
            format!(
                r#"{{"event_id":"0192f0c4-5e6b-7a8c-9d0e-1f2a3b{n:06x}","timestamp":"2026-11-20T09:00:00.123456Z","event_type":"policy_violation","severity":"high","source":"toktra","summary":"User exceeded the daily token policy eng-default: 1200 of 1000 requests #{n:08}","user_email":"user{n}@acme.example","attributes":{{"policy":"eng","model":"gpt-x","requests":1200,"limit":1000,"ratio":1.2,"blocked":true,"tags":{{"team":"sec","env":"prod"}}}}}}"#
            )
        })
        .collect();
    let body = body.join("\n");
    let options = IngestOptions::for_receiver("webhook/alloc", FieldMapping::default(), false);
    let limits = Limits::new(10_000);
    parse_body_raw(
        body.as_bytes(),
        BodyFormat::Ndjson,
        &limits,
        &options.mapping,
    )
    .expect("the reference body parses")
    .into_iter()
    .map(|object| {
        let event = event_from_received(object, &options, Timestamp(1_700_000_000_000_000_000))
            .expect("an event")
            .event;
        assert!(event.attributes.raw_canonical_json().is_some());
        event
    })
    .collect()
}

fn ctx(dir: &std::path::Path) -> ProcessorContext {
    ProcessorContext {
        id: "alloc".into(),
        pipeline: "security".into(),
        storage_dir: dir.to_path_buf(),
    }
}

#[test]
fn enrich_upserts_into_raw_attributes_allocate_nothing_and_sign_two_blocks_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_yaml::from_str(
        "actions: [{ action: upsert, key: deployment.env, value: prod }, \
         { action: upsert, key: relay.region, value: eu-west-1 }]",
    )
    .unwrap();
    let enrich = enrich::build(config, &ctx(dir.path())).unwrap();
    // A batch's metrics allocate a few times whatever its size: compared with one event.
    let mut one = reference_events();
    one.truncate(1);
    let mut batch = reference_events();
    let per_batch = allocations(|| enrich.process(&mut one));
    let enriching = allocations(|| enrich.process(&mut batch));
    assert_eq!(enriching, per_batch, "enrich allocated per event");
    for event in &batch {
        let attributes = event
            .attributes
            .raw_canonical_json()
            .expect("still raw, canonical");
        let text = std::str::from_utf8(attributes).unwrap();
        assert!(text.contains(r#""deployment":{"env":"prod"}"#), "{text}");
        assert!(text.contains(r#""relay":{"region":"eu-west-1"}"#), "{text}");
    }

    for chain in [false, true] {
        let config = serde_yaml::from_str(&format!(
            "{{ keys: [{{ id: k1, secret: s }}], chain: {chain} }}"
        ))
        .unwrap();
        let sign = sign::build(config, &ctx(dir.path())).unwrap();
        let mut first = one.clone();
        let mut signed = batch.clone();
        let per_batch = allocations(|| sign.process(&mut first));
        let signing = allocations(|| sign.process(&mut signed));
        // Two blocks per event; a reused buffer may grow once or twice more for a longer event.
        let per_event = 2 * (EVENTS - 1);
        assert!(
            signing <= per_batch + per_event + 2,
            "sign allocated {signing} times for {EVENTS} events, {per_batch} for one (chain {chain})"
        );
        assert!(signed.iter().all(|event| event.written_json().is_some()));
    }
}
