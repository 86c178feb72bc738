use super::*;
use serde_json::json;

fn ctx() -> ProcessorContext {
    ProcessorContext {
        id: "enrich".into(),
        pipeline: "security".into(),
        storage_dir: std::env::temp_dir(),
    }
}

fn enrich(yaml: &str) -> Enrich {
    let config: EnrichConfig = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(config.validate(), []);
    build(config, &ctx()).unwrap()
}

/// Runs `yaml`'s processor over one event with `attributes` and returns the attributes after.
fn run(yaml: &str, attributes: Value) -> Value {
    let mut batch = vec![Event::new("login")];
    *batch[0].attributes = attributes.as_object().unwrap().clone();
    enrich(yaml).process(&mut batch);
    Value::Object(batch.remove(0).into_fields().attributes.into())
}

fn issue_keys(yaml: &str) -> Vec<String> {
    let config: EnrichConfig = serde_yaml::from_str(yaml).unwrap();
    let issues = config.validate();
    assert_eq!(build(config, &ctx()).unwrap_err(), issues);
    issues.into_iter().map(|i| i.key).collect()
}

#[test]
fn insert_sets_only_absent_keys() {
    let yaml = "actions: [{ action: insert, key: tags.env, value: prod }]";
    assert_eq!(run(yaml, json!({})), json!({"tags": {"env": "prod"}}));
    assert_eq!(
        run(yaml, json!({"tags": {"env": "dev"}})),
        json!({"tags": {"env": "dev"}})
    );
    // A non-map parent blocks insert rather than being replaced.
    assert_eq!(run(yaml, json!({"tags": "flat"})), json!({"tags": "flat"}));
}

#[test]
fn upsert_sets_and_replaces() {
    let yaml = "actions: [{ action: upsert, key: deployment.env, value: prod }]";
    assert_eq!(run(yaml, json!({})), json!({"deployment": {"env": "prod"}}));
    assert_eq!(
        run(yaml, json!({"deployment": {"env": "dev", "x": 1}})),
        json!({"deployment": {"env": "prod", "x": 1}})
    );
    assert_eq!(
        run(yaml, json!({"deployment": 5})),
        json!({"deployment": {"env": "prod"}})
    );
}

#[test]
fn update_replaces_only_present_keys() {
    let yaml = r"actions: [{ action: update, key: 'a\.b', value: 2 }]";
    assert_eq!(run(yaml, json!({"a.b": 1})), json!({"a.b": 2}));
    assert_eq!(run(yaml, json!({"a": {"b": 1}})), json!({"a": {"b": 1}}));
    assert_eq!(run(yaml, json!({})), json!({}));
}

#[test]
fn delete_removes_nested_keys() {
    let yaml = "actions: [{ action: delete, key: tags.internal }]";
    let out = run(
        yaml,
        json!({"z": 1, "tags": {"b": 1, "internal": true, "a": 2}, "y": 0}),
    );
    assert_eq!(out, json!({"z": 1, "tags": {"b": 1, "a": 2}, "y": 0}));
    assert_eq!(run(yaml, json!({"other": 1})), json!({"other": 1}));
}

#[test]
fn rename_moves_and_copy_duplicates() {
    let rename = "actions: [{ action: rename, from: usr, to: user.name }]";
    assert_eq!(
        run(rename, json!({"usr": "bob", "user": {"id": 7}})),
        json!({"user": {"id": 7, "name": "bob"}})
    );
    assert_eq!(
        run(rename, json!({"user": {"name": "kept"}})),
        json!({"user": {"name": "kept"}})
    );
    let copy = "actions: [{ action: copy, from: user.name, to: actor }]";
    assert_eq!(
        run(copy, json!({"user": {"name": "bob"}, "actor": "x"})),
        json!({"user": {"name": "bob"}, "actor": "bob"})
    );
    assert_eq!(run(copy, json!({})), json!({}));
}

#[test]
fn promote_resource_copies_listed_or_all_without_overwriting() {
    let mut event = Event::new("login");
    event.resource = json!({"service.name": "auth", "host.name": "h1", "zone": "eu"})
        .as_object()
        .unwrap()
        .clone();
    *event.attributes = json!({"zone": "mine"}).as_object().unwrap().clone();
    let mut batch = vec![event.clone()];
    enrich("actions: [{ action: promote_resource, keys: [service.name, missing] }]")
        .process(&mut batch);
    assert_eq!(
        Value::Object(batch[0].attributes.clone().into()),
        json!({"zone": "mine", "service.name": "auth"})
    );
    let mut batch = vec![event];
    enrich("actions: [{ action: promote_resource }]").process(&mut batch);
    assert_eq!(
        Value::Object(batch[0].attributes.clone().into()),
        json!({"zone": "mine", "service.name": "auth", "host.name": "h1"})
    );
}

#[test]
fn actions_apply_in_listed_order() {
    let copy_then_delete =
        "actions: [{ action: copy, from: a, to: b }, { action: delete, key: a }]";
    assert_eq!(run(copy_then_delete, json!({"a": 1})), json!({"b": 1}));
    let delete_then_copy =
        "actions: [{ action: delete, key: a }, { action: copy, from: a, to: b }]";
    assert_eq!(run(delete_then_copy, json!({"a": 1})), json!({}));
    let insert_then_upsert =
        "actions: [{ action: insert, key: k, value: 1 }, { action: upsert, key: k, value: 2 }]";
    assert_eq!(run(insert_then_upsert, json!({})), json!({"k": 2}));
    let upsert_then_insert =
        "actions: [{ action: upsert, key: k, value: 2 }, { action: insert, key: k, value: 1 }]";
    assert_eq!(run(upsert_then_insert, json!({})), json!({"k": 2}));
}

#[test]
fn config_values_and_hostname_appear_and_source_is_filled() {
    let yaml = r#"
actions:
  - { action: upsert, key: region, value: "eu-west-1 (from env)" }
  - { action: upsert, key: limits, value: { max: 5, ratio: 0.5, on: true, list: [1, "two"] } }
  - { action: insert, key: host, value_from: hostname }
source: gateway
"#;
    let mut batch = vec![Event::new("a"), Event::new("b")];
    batch[1].source = Some("toktra".into());
    enrich(yaml).process(&mut batch);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    assert!(!host.is_empty());
    for event in &batch {
        assert_eq!(event.attributes["region"], "eu-west-1 (from env)");
        assert_eq!(
            event.attributes["limits"],
            json!({"max": 5, "ratio": 0.5, "on": true, "list": [1, "two"]})
        );
        assert_eq!(event.attributes["host"], host.as_str());
    }
    assert_eq!(batch[0].source.as_deref(), Some("gateway"));
    assert_eq!(batch[1].source.as_deref(), Some("toktra"));
}

#[test]
fn config_errors_name_the_action_field() {
    let keys = issue_keys(
        r#"
actions:
  - { action: insert, key: a }
  - { action: upsert, value: 1 }
  - { action: update, key: a, value: 1, value_from: hostname }
  - { action: rename, from: a }
  - { action: copy, from: "a..b", to: c }
  - { action: delete, key: a, to: b }
  - { action: promote_resource, keys: [] }
"#,
    );
    assert_eq!(
        keys,
        [
            "actions[0].value",
            "actions[1].key",
            "actions[2].value_from",
            "actions[3].to",
            "actions[4].from",
            "actions[5].to",
            "actions[6].keys",
        ]
    );
    assert!(
        serde_yaml::from_str::<EnrichConfig>("actions: [{ action: explode, key: a }]").is_err()
    );
    assert!(
        serde_yaml::from_str::<EnrichConfig>("actions: [{ action: delete, key: a, bogus: 1 }]")
            .is_err()
    );
}

#[test]
fn a_form_kept_by_an_earlier_sign_does_not_survive_enrich() {
    // Enrich changes events: a JSON form kept before it (by `sign`) must not be sent.
    let mut batch = vec![Event::new("login")];
    batch[0].keep_written_json(b"{\"stale\":true}".to_vec());
    enrich("actions: [{ action: upsert, key: team, value: sec }]").process(&mut batch);
    assert!(batch[0].written_json().is_none());
    let sent: Value = serde_json::from_slice(&batch[0].to_json_bytes()).unwrap();
    assert_eq!(sent["attributes"]["team"], "sec");
}

/// Runs `yaml` over one event whose attributes are `attributes`, held raw or as a tree.
fn run_on(yaml: &str, attributes: &Value, raw: bool) -> Event {
    let map = attributes.as_object().unwrap().clone();
    let mut event = Event::new("login");
    event.event_id = uuid::Uuid::nil();
    event.timestamp = siemrelay_core::Timestamp(1);
    event.observed_timestamp = siemrelay_core::Timestamp(1);
    let mut batch = vec![event];
    batch[0].attributes = if raw {
        Attributes::raw_from_map(&map)
    } else {
        map.into()
    };
    enrich(yaml).process(&mut batch);
    batch.remove(0)
}

#[test]
fn enrich_on_raw_attributes_equals_enrich_on_the_tree_and_keeps_them_raw_when_it_can() {
    let reference = "actions: [{ action: upsert, key: deployment.env, value: prod }, \
                     { action: upsert, key: relay.region, value: eu-west-1 }]";
    let inputs = [
        json!({}),
        json!({"user": "ann", "z": [1, 2.5, {"b": null}], "a\"q": "é\n"}),
        json!({"deployment": {"env": "dev", "x": 1}, "relay": 5}),
        json!({"deployment": "flat", "zone": "mine", "tags": {"env": "dev"}}),
    ];
    let actions = [
        reference,
        "actions: [{ action: insert, key: tags.env, value: prod }]",
        "actions: [{ action: insert, key: zone, value: { nested: [1, x] } }]",
        "actions: [{ action: upsert, key: deployment, value: 7 }]",
        "actions: [{ action: update, key: zone, value: yours }]",
        "actions: [{ action: delete, key: user }]",
        "actions: [{ action: rename, from: zone, to: place }]",
        "actions: [{ action: copy, from: user, to: who }]",
    ];
    for yaml in actions {
        for input in &inputs {
            let tree = run_on(yaml, input, false);
            let raw = run_on(yaml, input, true);
            assert_eq!(raw, tree, "{yaml} on {input}");
            assert_eq!(
                raw.to_json_bytes(),
                tree.to_json_bytes(),
                "{yaml} on {input}"
            );
        }
    }
    // The reference pipeline's upserts of absent keys leave the bytes raw, in serde_json's form.
    let input = json!({"user": "ann", "z": 1});
    let raw = run_on(reference, &input, true);
    assert_eq!(
        raw.attributes.raw_json(),
        Some(&serde_json::to_vec(&*run_on(reference, &input, false).attributes).unwrap()[..])
    );
    // A present key makes them a map.
    let raw = run_on(reference, &inputs[2], true);
    assert!(raw.attributes.raw_json().is_none());
}

#[test]
fn insert_and_upsert_on_raw_attributes_equal_the_tree_path_at_every_position() {
    let input = json!({"b": 1, "m": {"x": 2.5}, "t": "z"});
    // First, middle and last among the members; present at the top or below; nested paths.
    for key in ["a", "c", "z", "b", "m", "m.x", "m.y", "a.b.c", "n.x", "t.u"] {
        for action in ["insert", "upsert"] {
            for (value, canonical) in [("{ v: [1, 0.5, é] }", true), ("1.0", false)] {
                let yaml = format!("actions: [{{ action: {action}, key: {key}, value: {value} }}]");
                let tree = run_on(&yaml, &input, false);
                let raw = run_on(&yaml, &input, true);
                assert_eq!(raw, tree, "{yaml}");
                assert_eq!(raw.to_json_bytes(), tree.to_json_bytes(), "{yaml}");
                let first = key.split('.').next().unwrap();
                if input.get(first).is_none() {
                    // Absent: written into the bytes, in serde_json's form.
                    let expected = serde_json::to_vec(&*tree.attributes).unwrap();
                    assert_eq!(raw.attributes.raw_json(), Some(&expected[..]), "{yaml}");
                    assert_eq!(
                        raw.attributes.raw_canonical_json().is_some(),
                        canonical,
                        "{yaml}: canonical as long as the value is"
                    );
                } else if action == "upsert" {
                    assert!(raw.attributes.raw_json().is_none(), "{yaml}: made a map");
                }
            }
        }
    }
    // Several actions one after another on the same bytes, as the reference pipeline does.
    let yaml = "actions: [{ action: upsert, key: deployment.env, value: prod }, \
                { action: upsert, key: relay.region, value: eu-west-1 }, \
                { action: insert, key: a, value: 0 }, { action: insert, key: zz, value: x }]";
    let tree = run_on(yaml, &input, false);
    let raw = run_on(yaml, &input, true);
    assert_eq!(raw, tree);
    let expected = serde_json::to_vec(&*tree.attributes).unwrap();
    assert_eq!(raw.attributes.raw_canonical_json(), Some(&expected[..]));
}

#[test]
fn insert_and_upsert_serialize_their_member_once_when_built() {
    let enrich = enrich(
        "actions: [{ action: upsert, key: deployment.env, value: prod }, \
         { action: insert, key: \"a\\\\.b\", value: [1, 0.5] }]",
    );
    let members: Vec<&[u8]> = enrich
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Insert(set) | Action::Upsert(set) => set.raw.as_ref().map(|m| m.text()),
            _ => None,
        })
        .collect();
    assert_eq!(
        members,
        [&br#""deployment":{"env":"prod"}"#[..], br#""a.b":[1,0.5]"#]
    );
}
