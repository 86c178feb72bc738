//! The index template `siemrelay-events` (`index_template: true`): keyword/date mappings for the
//! well-known fields, matching the configured indices or data stream.

use serde_json::{Value, json};

/// Name of the index template.
pub const TEMPLATE_NAME: &str = "siemrelay-events";

/// The `PUT _index_template/siemrelay-events` body. Priority 200 wins over the built-in
/// `logs-*-*` template (priority 100) for a data stream such as `logs-siemrelay-default`.
pub fn template_body(pattern: &str, data_stream: bool) -> Value {
    let keyword = json!({"type": "keyword"});
    let date = json!({"type": "date"});
    let mut body = json!({
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "mappings": {
                "properties": {
                    "@timestamp": date,
                    "observed_timestamp": date,
                    "event_id": keyword,
                    "event_type": keyword,
                    "severity": keyword,
                    "severity_number": {"type": "short"},
                    "source": keyword,
                    "summary": {"type": "text"},
                    "attributes": {"type": "object"},
                    "resource": {"type": "object"},
                    "signature": {"properties": {
                        "alg": keyword, "kid": keyword, "value": keyword, "prev": keyword,
                    }},
                }
            }
        },
        "_meta": {"managed_by": "siemrelay"},
    });
    if data_stream {
        body["data_stream"] = json!({});
    }
    body
}
