//! Property tests of the network receivers' decoders (issue 20 §6) with adversarial inputs:
//! the webhook's JSON, NDJSON and gzip bodies through its request intake, and OTLP protobuf
//! (generated requests, then truncated and bit-flipped) and OTLP/JSON. They never panic and
//! always hold the events limit and the memory budget.

use axum::http::{HeaderMap, HeaderValue};
use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Kind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;
use siemrelay_core::Timestamp;
use siemrelay_core::admission::MemoryBudget;
use siemrelay_core::ingest::{BodyErrorKind, Limits, parse_value};
use siemrelay_receivers::otlp::{CensusError, census, json};
use siemrelay_receivers::webhook::{Intake, Rejection, WebhookConfig};
use std::io::Write;

const NOW: Timestamp = Timestamp(1_763_629_200_000_000_000);

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn intake(max_events: usize, strict: bool) -> Intake {
    let config: WebhookConfig = serde_json::from_value(serde_json::json!({
        "max_events_per_request": max_events, "max_body_size": 1_000_000, "strict": strict,
        "mapping": {"event_id": "id"}
    }))
    .unwrap();
    Intake::new("webhook/prop", &config).unwrap()
}

fn headers(content_type: &str, gzipped: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
    if gzipped {
        headers.insert("content-encoding", HeaderValue::from_static("gzip"));
    }
    headers
}

/// JSON text of an object with hostile members.
fn object() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("[[[[[[[[[[[]]]]]]]]]]]".to_string()),
        Just("123456789012345678901234".to_string()),
        Just("-0".to_string()),
        Just("1e308".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[ -~]{0,16}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("\"\\ud800\"".to_string()),
    ];
    let key = prop::sample::select(vec![
        "id",
        "event_id",
        "event_type",
        "severity",
        "severity_number",
        "timestamp",
        "observed_timestamp",
        "attributes",
        "resource",
        "signature",
        "_duplicate",
        "x",
        "x",
    ]);
    proptest::collection::vec((key, value), 0..8).prop_map(|members| {
        let members: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

fn check_outcome(
    outcome: Result<siemrelay_receivers::webhook::Admitted, Rejection>,
    max_events: usize,
    sent: usize,
) -> Result<(), TestCaseError> {
    match outcome {
        Ok(admitted) => {
            prop_assert!(admitted.batch.len() <= max_events);
            prop_assert_eq!(admitted.batch.len(), sent);
        }
        Err(Rejection::TooManyEvents { limit }) => {
            prop_assert_eq!(limit, max_events);
            prop_assert!(sent > max_events);
        }
        Err(rejection) => prop_assert!(
            rejection.status().is_client_error() || rejection.status().as_u16() == 503,
            "{rejection}"
        ),
    }
    Ok(())
}

/// A generated OTLP request: records with nested attribute values and a resource.
fn request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Kind::IntValue),
        any::<bool>().prop_map(Kind::BoolValue),
        "\\PC{0,8}".prop_map(Kind::StringValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Kind::BytesValue),
    ];
    let value = leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| Kind::ArrayValue(
                ArrayValue {
                    values: items
                        .into_iter()
                        .map(|v| AnyValue { value: Some(v) })
                        .collect(),
                }
            )),
            proptest::collection::vec(("[a-c]{1,2}", inner), 0..4).prop_map(|items| {
                Kind::KvlistValue(KeyValueList {
                    values: items.into_iter().map(|(k, v)| kv(k, v)).collect(),
                })
            }),
        ]
    });
    let record = (
        proptest::collection::vec(("[a-c]{1,2}", value.clone()), 0..4),
        0i32..30,
    )
        .prop_map(|(attributes, severity)| LogRecord {
            attributes: attributes.into_iter().map(|(k, v)| kv(k, v)).collect(),
            severity_number: severity,
            ..LogRecord::default()
        });
    (
        proptest::collection::vec(record, 0..40),
        proptest::collection::vec(("[a-c]{1,2}", value), 0..3),
    )
        .prop_map(|(records, resource)| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource.into_iter().map(|(k, v)| kv(k, v)).collect(),
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        })
}

fn kv(key: String, value: Kind) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn records_in(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn webhook_bodies_in_every_framing_hold_the_events_limit(
        objects in proptest::collection::vec(object(), 0..25),
        max_events in 1usize..20,
        strict in any::<bool>(),
    ) {
        let intake = intake(max_events, strict);
        let array = format!("[{}]", objects.join(","));
        let ndjson = objects.join("\r\n");
        for (body, content_type) in [(array.as_bytes(), "application/json"), (ndjson.as_bytes(), "application/x-ndjson")] {
            check_outcome(intake.handle(&headers(content_type, false), body, NOW), max_events, objects.len())?;
            check_outcome(intake.handle(&headers(content_type, true), &gzip(body), NOW), max_events, objects.len())?;
        }
    }

    #[test]
    fn webhook_gzip_of_anything_and_truncated_gzip_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cut in any::<prop::sample::Index>(),
        repeat in 1usize..2000,
    ) {
        let intake = intake(10, false);
        let compressed = gzip(&data.repeat(repeat.min(50_000 / (data.len() + 1) + 1)));
        let truncated = &compressed[..cut.index(compressed.len() + 1).min(compressed.len())];
        for body in [&compressed[..], truncated, &data[..]] {
            for content_type in ["application/json", "application/x-ndjson"] {
                if let Err(rejection) = intake.handle(&headers(content_type, true), body, NOW) {
                    prop_assert!(rejection.status().is_client_error(), "{rejection}");
                }
            }
        }
    }

    #[test]
    fn webhook_parsing_never_holds_more_than_the_budget(
        objects in proptest::collection::vec(object(), 1..25),
        budget_kib in 4usize..128,
    ) {
        let intake = intake(10_000, false);
        let budget = MemoryBudget::new(budget_kib * 1024);
        let body = format!("[{}]", objects.join(","));
        {
            let reservation = budget.empty_reservation();
            let outcome = intake.admit(&headers("application/json", false)).and_then(|framing| {
                reservation.try_grow(body.len()).map_err(Rejection::Memory)?;
                intake.process(framing, &HeaderMap::new(), body.as_bytes(), NOW, &reservation)
            });
            prop_assert!(budget.used() <= budget_kib * 1024);
            if let Err(rejection) = outcome {
                prop_assert!(matches!(rejection, Rejection::Memory(_) | Rejection::Malformed(_) | Rejection::Invalid { .. }), "{rejection}");
            }
        }
        prop_assert_eq!(budget.used(), 0);
    }

    #[test]
    fn otlp_protobuf_census_agrees_with_prost_and_holds_the_limit(
        request in request(),
        max in 0usize..60,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = request.encode_to_vec();
        let records = records_in(&request);
        match census(&bytes, max) {
            Ok(found) => {
                prop_assert!(records <= max);
                prop_assert_eq!(found.records, records);
                prop_assert!(found.event_bytes >= records * 100, "{found:?}");
            }
            Err(CensusError::TooManyRecords { limit }) => {
                prop_assert_eq!(limit, max);
                prop_assert!(records > max);
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
        // Damaged bytes: never a panic; whatever prost decodes, the census counts the same.
        let mut damaged = bytes.clone();
        for (at, mask) in flips {
            if !damaged.is_empty() {
                let at = at.index(damaged.len());
                damaged[at] ^= mask;
            }
        }
        let truncated = &bytes[..cut.index(bytes.len() + 1).min(bytes.len())];
        for body in [&damaged[..], truncated] {
            let counted = census(body, usize::MAX);
            if let Ok(decoded) = ExportLogsServiceRequest::decode(body) {
                prop_assert_eq!(counted.map(|c| c.records).ok(), Some(records_in(&decoded)));
            }
        }
    }

    #[test]
    fn otlp_json_documents_hold_the_limit_and_never_panic(
        records in proptest::collection::vec(object(), 0..30),
        max in 1usize..20,
        noise in "\\PC{0,40}",
    ) {
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"k","value":{{"stringValue":"v"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            records.join(",")
        );
        let limits = Limits::new(max).counting_arrays_under(&["logRecords", "log_records"]);
        match parse_value(body.as_bytes(), &limits) {
            Ok(value) => {
                prop_assert!(records.len() <= max);
                let _ = json::to_protobuf(value);
            }
            Err(error) => match error.kind {
                BodyErrorKind::TooManyEvents { limit } => {
                    prop_assert_eq!(limit, max);
                    prop_assert!(records.len() > max);
                }
                // A lone surrogate escape is not valid JSON.
                _ => prop_assert!(records.iter().any(|r| r.contains("\\ud800")), "{error}"),
            },
        }
        for text in [noise.as_bytes(), &body.as_bytes()[..body.len() / 2]] {
            if let Ok(value) = parse_value(text, &Limits::new(max).counting_arrays_under(&["logRecords"])) {
                let _ = json::to_protobuf(value);
            }
        }
    }
}
