//! Property tests of the disk queue's record decoder (issue 20 §6): whatever bytes a segment
//! file holds after a crash, a disk error or tampering, `check`, `summarize_data`,
//! `decode_data` and `decode_ack` never panic; a record they accept decodes to exactly the
//! events that were encoded, with hostile text in every field.

use proptest::prelude::*;
use siemrelay_core::{Event, Severity, Timestamp, Value};
use siemrelay_exporters::delivery::disk_queue::record::{
    AckReason, HEADER_LEN, Kind, check, decode_ack, decode_data, encode_ack, encode_data,
    events_in_damaged, summarize_data,
};

/// Text with what breaks line-based formats: newlines, quotes, backslashes, control
/// characters, escapes, non-ASCII and astral characters.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[\\n\\r\\t\"\\\\\u{0}\u{1b}\u{7f}\u{2028}\u{2029}a-z😀]{0,24}",
        Just(String::from("{\"event_id\":\"x\"}\n{")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(hostile_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        hostile_text(),
        proptest::option::of(hostile_text()),
        proptest::option::of(hostile_text()),
        0u8..=24,
        proptest::collection::btree_map(hostile_text(), json_value(), 0..6),
        any::<i64>(),
    )
        .prop_map(
            |(event_type, source, summary, severity, attributes, nanos)| {
                let mut event = Event::new(if event_type.is_empty() {
                    "t".into()
                } else {
                    event_type
                });
                event.source = source;
                event.summary = summary;
                event.severity = Severity::from_number(i64::from(severity)).unwrap_or_default();
                *event.attributes = attributes.into_iter().collect();
                event.timestamp = Timestamp(nanos);
                event
            },
        )
}

fn sealed_data(events: &[Event]) -> Vec<u8> {
    let sizes: Vec<u32> = events.iter().map(|e| e.estimated_size() as u32).collect();
    let mut record = encode_data(Timestamp(1_700_000_000_000_000_000), events, &sizes);
    record.seal(7, 1_000);
    record.bytes
}

/// Every decoder over `bytes`, for their panics; returns whether the record was accepted.
fn decode_everything(bytes: &[u8]) -> bool {
    let Ok(header) = check(bytes) else {
        // The decoders are only given checked payloads, but must survive any anyway.
        for counted in [false, true] {
            let _ = summarize_data(bytes, counted);
            let _ = decode_data(bytes, counted);
        }
        let _ = decode_ack(bytes);
        let _ = events_in_damaged(bytes);
        return false;
    };
    let payload = &bytes[HEADER_LEN..header.total_len()];
    match header.kind {
        Kind::Data => {
            let summary = summarize_data(payload, header.counted);
            let decoded = decode_data(payload, header.counted);
            if let (Some(summary), Ok((events, sizes))) = (summary, &decoded) {
                assert_eq!(events.len(), summary.events as usize);
                assert_eq!(sizes.len(), events.len());
            }
        }
        Kind::Ack => {
            let _ = decode_ack(payload);
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoded_events_decode_to_themselves(events in proptest::collection::vec(event(), 0..8)) {
        let bytes = sealed_data(&events);
        let header = check(&bytes).expect("a sealed record checks");
        prop_assert_eq!(header.kind, Kind::Data);
        let (decoded, _) = decode_data(&bytes[HEADER_LEN..], header.counted).expect("decodes");
        prop_assert_eq!(decoded.len(), events.len());
        for (sent, got) in events.iter().zip(&decoded) {
            prop_assert_eq!(sent.to_json_value(), got.to_json_value());
        }
    }

    #[test]
    fn damaged_records_never_panic_and_never_decode_as_other_events(
        events in proptest::collection::vec(event(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = sealed_data(&events);
        let mut damaged = bytes.clone();
        for (at, mask) in &flips {
            let at = at.index(damaged.len());
            damaged[at] ^= mask;
        }
        // A flipped bit anywhere fails the checksum (crc32c catches every 1-3 bit error here).
        if damaged != bytes && flips.len() == 1 {
            prop_assert!(check(&damaged).is_err());
        }
        decode_everything(&damaged);
        let torn = &bytes[..cut.index(bytes.len())];
        prop_assert!(check(torn).is_err(), "a torn record is never accepted");
        decode_everything(torn);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
        // Also as a payload with a plausible data layout in front.
        let mut payload = 1u64.to_le_bytes().to_vec();
        payload.extend_from_slice(&(bytes.len() as u32 % 8).to_le_bytes());
        payload.extend_from_slice(&bytes);
        for counted in [false, true] {
            let _ = summarize_data(&payload, counted);
            let _ = decode_data(&payload, counted);
        }
        let _ = events_in_damaged(&bytes);
    }

    #[test]
    fn ack_records_round_trip(seqs in proptest::collection::vec(any::<u64>(), 0..64), dropped in any::<bool>()) {
        let reason = if dropped { AckReason::Dropped } else { AckReason::Completed };
        let mut record = encode_ack(reason, &seqs);
        record.seal(3, 0);
        let header = check(&record.bytes).expect("checks");
        prop_assert_eq!(header.kind, Kind::Ack);
        let (got_reason, got) = decode_ack(&record.bytes[HEADER_LEN..]).expect("decodes");
        prop_assert_eq!(got_reason, reason);
        prop_assert_eq!(got, seqs);
    }
}
