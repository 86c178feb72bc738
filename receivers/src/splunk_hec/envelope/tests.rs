use super::*;
use serde_json::json;
use siemrelay_core::ingest::FieldMapping;

const NOW: Timestamp = Timestamp(1_795_000_000_000_000_000);

fn options() -> IngestOptions {
    IngestOptions::for_receiver("splunk_hec", FieldMapping::default(), false)
}

fn parse_with(body: &str, token: &TokenDefaults, options: &IngestOptions) -> Parsed {
    let ctx = RequestContext {
        options,
        token,
        observed: NOW,
        max_events: 100,
    };
    parse_events(body.as_bytes(), &ctx, &Limits::unlimited()).unwrap()
}

fn parse(body: &str) -> Parsed {
    parse_with(body, &TokenDefaults::default(), &options())
}

fn fault_of(body: &str) -> (usize, Option<(usize, u16)>) {
    let parsed = parse(body);
    (
        parsed.batch.len(),
        parsed.fault.map(|f| (f.event, f.status.code)),
    )
}

#[test]
fn envelopes_back_to_back_map_every_field() {
    let body = concat!(
        r#"{"time":1718000000.123456,"host":"sensor-1","source":"acme","sourcetype":"acme:alert","index":"security","event":{"rule":"x","severity":"high"},"fields":{"tenant":"t1","tags":["a","b"]}}"#,
        r#"{"time":"1718000001.5","event":"plain text"}"#,
        "\n  \r\n",
        r#"{"event":[1,2],"extra":{"k":1}}"#,
    );
    let parsed = parse(body);
    assert!(parsed.fault.is_none(), "{:?}", parsed.fault);
    let [first, second, third] = &parsed.batch[..] else {
        panic!("three events: {:?}", parsed.batch)
    };
    assert_eq!(first.timestamp.to_rfc3339(), "2024-06-10T06:13:20.123456Z");
    assert_eq!(first.observed_timestamp, NOW);
    assert_eq!(first.severity.text, "high");
    assert_eq!(first.source.as_deref(), Some("acme"));
    assert_eq!(first.attributes["rule"], "x");
    assert_eq!(first.attributes["tenant"], "t1");
    assert_eq!(first.attributes["tags"], json!(["a", "b"]));
    assert_eq!(
        Value::Object(first.resource.clone()),
        json!({"host.name": "sensor-1", "com.splunk.source": "acme",
               "com.splunk.sourcetype": "acme:alert", "com.splunk.index": "security",
               "com.splunk.time": 1718000000.123456})
    );
    assert_eq!(second.summary.as_deref(), Some("plain text"));
    assert_eq!(second.timestamp.to_rfc3339(), "2024-06-10T06:13:21.500Z");
    assert_eq!(second.resource["com.splunk.time"], "1718000001.5");
    assert_eq!(third.attributes["event"], json!([1, 2]));
    assert_eq!(third.timestamp, NOW, "no time: the arrival time");
    assert_eq!(third.resource["com.splunk.extra"], json!({"k": 1}));
}

#[test]
fn the_events_own_fields_win_and_the_envelope_is_kept_beside_them() {
    let body = r#"{"time":1718000000,"source":"hec","host":"h2","fields":{"user":"field"},
        "event":{"event_id":"f77432cb-baef-55d1-9210-d970a8df777e","timestamp":"2026-11-20T09:00:00.123456Z",
                 "source":"toktra","user":"own","resource":{"host.name":"h1"}}}"#;
    let parsed = parse(body);
    let event = &parsed.batch[0];
    assert_eq!(
        event.event_id.to_string(),
        "f77432cb-baef-55d1-9210-d970a8df777e"
    );
    assert_eq!(event.timestamp.to_rfc3339(), "2026-11-20T09:00:00.123456Z");
    assert_eq!(event.source.as_deref(), Some("toktra"));
    assert_eq!(event.resource["com.splunk.source"], "hec");
    assert_eq!(event.resource["com.splunk.time"], 1718000000);
    assert_eq!(event.resource["host.name"], "h1");
    assert_eq!(event.resource["_duplicate"]["host.name"], json!(["h2"]));
    assert_eq!(event.attributes["user"], "own");
    assert_eq!(event.attributes["_duplicate"]["user"], json!(["field"]));
}

#[test]
fn a_signed_event_is_kept_exactly_as_signed() {
    let signed = json!({"event_id": "f77432cb-baef-55d1-9210-d970a8df777e", "event_type": "x",
        "timestamp": "2026-11-20T09:00:00Z", "attributes": {"a": 1},
        "signature": {"alg": "HMAC-SHA256", "kid": "k", "value": "00"}});
    let body = json!({"host": "h", "index": "main", "fields": {"f": "v"}, "event": signed});
    let parsed = parse(&body.to_string());
    let event = &parsed.batch[0];
    assert!(event.resource.is_empty());
    assert_eq!(
        Value::Object(event.attributes.clone().into()),
        json!({"a": 1})
    );
}

#[test]
fn token_defaults_fill_in_and_the_index_allow_list_holds() {
    let token = TokenDefaults {
        index: Some("main".into()),
        source: Some("tok-src".into()),
        sourcetype: Some("tok-st".into()),
        allowed_indexes: vec!["main".into(), "security".into()],
    };
    let body = r#"{"event":"a"}{"event":"b","index":"security","sourcetype":"own"}{"event":"c","index":"other"}{"event":"d"}"#;
    let parsed = parse_with(body, &token, &options());
    assert_eq!(parsed.batch.len(), 2);
    assert_eq!(parsed.batch[0].resource["com.splunk.index"], "main");
    assert_eq!(parsed.batch[0].resource["com.splunk.sourcetype"], "tok-st");
    assert_eq!(parsed.batch[0].source.as_deref(), Some("tok-src"));
    assert_eq!(parsed.batch[1].resource["com.splunk.index"], "security");
    assert_eq!(parsed.batch[1].resource["com.splunk.sourcetype"], "own");
    let fault = parsed.fault.unwrap();
    assert_eq!((fault.event, fault.status.code), (2, 7));
}

#[test]
fn the_first_bad_envelope_stops_the_parse_and_is_named() {
    let good = r#"{"event":"ok"}"#;
    assert_eq!(fault_of(""), (0, Some((0, 5))));
    assert_eq!(fault_of(" \n "), (0, Some((0, 5))));
    assert_eq!(
        fault_of(&format!("{good}{{\"time\":1}}{good}")),
        (1, Some((1, 12)))
    );
    assert_eq!(
        fault_of(&format!("{good}{{\"event\":\"  \"}}")),
        (1, Some((1, 13)))
    );
    assert_eq!(
        fault_of(&format!("{good}{{\"event\":null}}")),
        (1, Some((1, 6)))
    );
    assert_eq!(
        fault_of(&format!("{good}{good}{{\"event\":")),
        (2, Some((2, 6)))
    );
    assert_eq!(fault_of(&format!("{good}[1]")), (1, Some((1, 6))));
    assert_eq!(
        fault_of(&format!("{good}{{\"event\":1,}}")),
        (1, Some((1, 6)))
    );
    assert_eq!(
        fault_of(&format!(
            "{good}{{\"event\":\"x\",\"fields\":{{\"a\":{{\"b\":1}}}}}}"
        )),
        (1, Some((1, 15)))
    );
    assert_eq!(
        fault_of(&format!("{good}{{\"event\":\"x\",\"fields\":{{\"n\":5}}}}")),
        (1, Some((1, 15)))
    );
    assert_eq!(
        fault_of(&format!("{good}{{\"event\":\"x\",\"host\":5}}")),
        (1, Some((1, 6)))
    );
    // Braces inside strings do not end an envelope.
    assert_eq!(
        fault_of(r#"{"event":"a } { \" }"}{"event":"b"}"#),
        (2, None)
    );
}

#[test]
fn strict_mode_refuses_a_misfit_naming_the_envelope() {
    let strict = IngestOptions::for_receiver("splunk_hec", FieldMapping::default(), true);
    let body = r#"{"event":{"severity":"high"}}{"event":{"severity":"severe"}}"#;
    let parsed = parse_with(body, &TokenDefaults::default(), &strict);
    let fault = parsed.fault.unwrap();
    assert_eq!(
        (parsed.batch.len(), fault.event, fault.status.code),
        (1, 1, 6)
    );
    assert!(fault.detail.contains("severity"), "{}", fault.detail);
    let lenient = parse(body);
    assert_eq!(lenient.batch.len(), 2);
    assert_eq!(lenient.mapping_errors, 1);
}

#[test]
fn too_many_envelopes_refuse_the_whole_request() {
    let ctx = RequestContext {
        options: &options(),
        token: &TokenDefaults::default(),
        observed: NOW,
        max_events: 2,
    };
    let body = r#"{"event":"a"}{"event":"b"}{"event":"c"}"#;
    let result = parse_events(body.as_bytes(), &ctx, &Limits::unlimited());
    assert_eq!(result.unwrap_err(), WholeRequest::TooManyEvents(2));
}

#[test]
fn raw_lines_become_events_with_the_query_metadata() {
    let ctx = RequestContext {
        options: &options(),
        token: &TokenDefaults {
            sourcetype: Some("tok-st".into()),
            ..Default::default()
        },
        observed: NOW,
        max_events: 10,
    };
    let query = QueryMetadata {
        host: Some("h".into()),
        source: Some("app".into()),
        ..Default::default()
    };
    let body = b"first line\r\n\n  \nsecond {\"json\": 1}\n";
    let parsed = parse_raw(body, &ctx, &query, &Limits::unlimited()).unwrap();
    assert!(parsed.fault.is_none());
    let summaries: Vec<_> = parsed.batch.iter().map(|e| e.summary.clone()).collect();
    assert_eq!(
        summaries,
        [
            Some("first line".to_string()),
            Some("second {\"json\": 1}".to_string())
        ]
    );
    let event = &parsed.batch[0];
    assert_eq!(event.source.as_deref(), Some("app"));
    assert_eq!(event.resource["host.name"], "h");
    assert_eq!(event.resource["com.splunk.sourcetype"], "tok-st");
    let bad = parse_raw(b"ok\n\xff\xfe\n", &ctx, &query, &Limits::unlimited()).unwrap();
    assert_eq!(bad.batch.len(), 1);
    assert_eq!(bad.fault.map(|f| (f.event, f.status.code)), Some((1, 6)));
    let empty = parse_raw(b"\n", &ctx, &query, &Limits::unlimited()).unwrap();
    assert_eq!(empty.fault.map(|f| f.status.code), Some(5));
}

#[test]
fn epoch_time_is_exact() {
    let exact = |v: Value| epoch_time(&v).map(|t| t.0);
    assert_eq!(
        exact(json!(1718000000.123456)),
        Some(1_718_000_000_123_456_000)
    );
    assert_eq!(
        exact(json!("1718000000.123456789")),
        Some(1_718_000_000_123_456_789)
    );
    assert_eq!(exact(json!(1718000000)), Some(1_718_000_000_000_000_000));
    assert_eq!(
        exact(json!(1718000000123_i64)),
        Some(1_718_000_000_123_000_000)
    );
    assert_eq!(exact(json!("soon")), None);
    assert_eq!(exact(json!(true)), None);
}
