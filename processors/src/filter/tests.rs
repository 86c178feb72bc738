use super::*;
use serde_json::json;
use siemrelay_core::Severity;

fn ctx() -> ProcessorContext {
    ProcessorContext {
        id: "filter/test".into(),
        pipeline: "security".into(),
        storage_dir: std::env::temp_dir(),
    }
}

fn filter(yaml: &str) -> Filter {
    let config: FilterConfig = serde_yaml::from_str(yaml).unwrap();
    build(config, &ctx()).unwrap()
}

fn issues(yaml: &str) -> Vec<ConfigIssue> {
    let config: FilterConfig = serde_yaml::from_str(yaml).unwrap();
    let from_validate = config.validate();
    let from_build = build(config, &ctx()).unwrap_err();
    assert_eq!(from_validate, from_build);
    from_validate
}

fn event(event_type: &str, severity: &str, attributes: Value) -> Event {
    let mut event = Event::new(event_type);
    event.severity = Severity::from_name(severity).unwrap();
    *event.attributes = attributes.as_object().unwrap().clone();
    event
}

/// The event types of the events that survive the filter.
fn kept(filter: &Filter, events: Vec<Event>) -> Vec<String> {
    let mut batch = events;
    filter.process(&mut batch);
    batch
        .into_iter()
        .map(|e| e.into_fields().event_type)
        .collect()
}

#[test]
fn event_types_match_exactly_and_by_glob() {
    let f = filter("include: { event_types: [lockout, 'anomaly*', '*_violation', 'a*b*c'] }");
    let events = [
        "lockout",
        "lockouts",
        "anomaly",
        "anomaly_login",
        "policy_violation",
        "violation",
        "axxbyyc",
        "abc",
        "acb",
        "Lockout",
    ]
    .map(|t| event(t, "info", json!({})));
    assert_eq!(
        kept(&f, events.to_vec()),
        [
            "lockout",
            "anomaly",
            "anomaly_login",
            "policy_violation",
            "axxbyyc",
            "abc"
        ]
    );
    assert!(!glob_matches(&["ab".into(), "b".into()], "ab"));
    assert!(glob_matches(&["".into(), "".into()], ""));
}

#[test]
fn min_severity_accepts_names_and_numbers() {
    let events = || {
        ["debug", "info", "warn", "high", "critical"]
            .map(|s| event(s, s, json!({})))
            .to_vec()
    };
    assert_eq!(
        kept(&filter("include: { min_severity: warn }"), events()),
        ["warn", "high", "critical"]
    );
    assert_eq!(
        kept(&filter("include: { min_severity: 17 }"), events()),
        ["high", "critical"]
    );
    let mut unspecified = Event::new("none");
    unspecified.severity = Severity::default();
    assert_eq!(
        kept(&filter("include: { min_severity: 1 }"), vec![unspecified]),
        Vec::<String>::new()
    );
}

#[test]
fn attribute_conditions_equals_in_regex_exists() {
    let a = event(
        "a",
        "info",
        json!({"n": 1, "user": "bob@corp.example", "tags": {"env": "prod"}}),
    );
    let b = event(
        "b",
        "info",
        json!({"n": 2.0, "user": "eve@test.example", "tags": {"env": "dev"}}),
    );
    let c = event("c", "info", json!({"n": "1", "tags": "flat"}));
    let all = || vec![a.clone(), b.clone(), c.clone()];
    assert_eq!(
        kept(
            &filter("include: { attributes: { n: { equals: 1 } } }"),
            all()
        ),
        ["a"]
    );
    assert_eq!(
        kept(
            &filter("include: { attributes: { n: { equals: 2 } } }"),
            all()
        ),
        ["b"]
    );
    assert_eq!(
        kept(
            &filter("include: { attributes: { n: { equals: '1' } } }"),
            all()
        ),
        ["c"]
    );
    assert_eq!(
        kept(
            &filter("include: { attributes: { tags.env: { in: [dev, qa] } } }"),
            all()
        ),
        ["b"]
    );
    assert_eq!(
        kept(
            &filter(r#"include: { attributes: { user: { regex: '@corp\.example$' } } }"#),
            all()
        ),
        ["a"]
    );
    assert_eq!(
        kept(
            &filter("include: { attributes: { user: { exists: true } } }"),
            all()
        ),
        ["a", "b"]
    );
    assert_eq!(
        kept(
            &filter("include: { attributes: { user: { exists: false } } }"),
            all()
        ),
        ["c"]
    );
    assert_eq!(
        kept(
            &filter("include: { attributes: { tags.env: { exists: false } } }"),
            all()
        ),
        ["c"]
    );
    // Several tests in one condition must all hold.
    assert_eq!(
        kept(
            &filter("include: { attributes: { user: { exists: true, regex: '^eve' } } }"),
            all()
        ),
        ["b"]
    );
}

#[test]
fn nested_and_dotted_keys_are_distinct_paths() {
    let nested = event(
        "nested",
        "info",
        json!({"http": {"user": {"agent": "curl"}}}),
    );
    let dotted = event("dotted", "info", json!({"http": {"user.agent": "curl"}}));
    let all = || vec![nested.clone(), dotted.clone()];
    assert_eq!(
        kept(
            &filter("include: { attributes: { http.user.agent: { equals: curl } } }"),
            all()
        ),
        ["nested"]
    );
    assert_eq!(
        kept(
            &filter(r#"include: { attributes: { 'http.user\.agent': { equals: curl } } }"#),
            all()
        ),
        ["dotted"]
    );
    assert_eq!(
        kept(
            &filter(r#"include: { attributes: { 'http["user.agent"]': { equals: curl } } }"#),
            all()
        ),
        ["dotted"]
    );
}

#[test]
fn well_known_fields_and_resource_can_be_conditions() {
    let mut a = event("a", "info", json!({}));
    a.source = Some("toktra".into());
    a.summary = Some("login failed for admin".into());
    a.resource = json!({"service.name": "auth"}).as_object().unwrap().clone();
    let b = event("b", "high", json!({}));
    let all = || vec![a.clone(), b.clone()];
    assert_eq!(
        kept(
            &filter("include: { fields: { source: { equals: toktra } } }"),
            all()
        ),
        ["a"]
    );
    assert_eq!(
        kept(
            &filter("include: { fields: { summary: { regex: admin } } }"),
            all()
        ),
        ["a"]
    );
    assert_eq!(
        kept(
            &filter("include: { fields: { source: { exists: false } } }"),
            all()
        ),
        ["b"]
    );
    assert_eq!(
        kept(
            &filter("include: { fields: { severity: { in: [high] } } }"),
            all()
        ),
        ["b"]
    );
    assert_eq!(
        kept(
            &filter("include: { fields: { event_type: { equals: b } } }"),
            all()
        ),
        ["b"]
    );
    assert_eq!(
        kept(
            &filter(r#"include: { resource: { 'service\.name': { equals: auth } } }"#),
            all()
        ),
        ["a"]
    );
}

#[test]
fn include_needs_all_criteria_and_exclude_wins() {
    let f = filter(
        r#"
include: { event_types: [policy_violation, lockout, "anomaly*"], min_severity: warn }
exclude: { attributes: { user_email: { regex: ".*@test\\.example$" } } }
"#,
    );
    let events = vec![
        event(
            "policy_violation",
            "high",
            json!({"user_email": "a@corp.example"}),
        ),
        event("lockout", "info", json!({"user_email": "b@corp.example"})),
        event("anomaly_x", "warn", json!({"user_email": "c@test.example"})),
        event("anomaly_y", "warn", json!({})),
        event("login", "critical", json!({})),
    ];
    assert_eq!(kept(&f, events), ["policy_violation", "anomaly_y"]);

    // Exclude alone; its criteria must all hold to drop an event.
    let f = filter("exclude: { event_types: [heartbeat], attributes: { env: { equals: dev } } }");
    let events = vec![
        event("heartbeat", "info", json!({"env": "dev"})),
        event("heartbeat", "info", json!({"env": "prod"})),
        event("login", "info", json!({"env": "dev"})),
    ];
    let mut batch = events;
    f.process(&mut batch);
    assert_eq!(batch.len(), 2);
    assert!(
        batch
            .iter()
            .all(|e| e.event_type != "heartbeat" || e.attributes["env"] == "prod")
    );

    // No include and no exclude: everything passes.
    assert_eq!(
        kept(&filter("{}"), vec![event("x", "info", json!({}))]),
        ["x"]
    );
}

#[test]
fn config_errors_name_the_key() {
    let found = issues(
        r#"
include:
  event_types: []
  min_severity: loud
  attributes:
    user_email: { regex: "([a-z" }
    "a..b": { exists: true }
    empty: {}
    choices: { in: [] }
exclude:
  fields: { hostname: { exists: true } }
"#,
    );
    let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "include.event_types",
            "include.min_severity",
            "include.attributes.a..b",
            "include.attributes.choices.in",
            "include.attributes.empty",
            "include.attributes.user_email.regex",
            "exclude.fields.hostname",
        ]
    );
    assert!(
        found[5].message.contains("invalid regex"),
        "{}",
        found[5].message
    );
    let empty_exclude = issues("exclude: {}");
    assert_eq!(empty_exclude[0].key, "exclude");
    assert!(serde_yaml::from_str::<FilterConfig>("include: { typo: 1 }").is_err());
    assert!(issues("include: { min_severity: 25 }")[0].key == "include.min_severity");
}
