//! Shared pieces of the benchmark tools: the reference event shape.

/// Builds one ~400-byte reference security event as NDJSON (with the trailing newline):
/// `event_id` (UUIDv7), `timestamp`, `event_type` `policy_violation`, `severity` (every 10th
/// `info`, the rest `high`), `source`, a ~90-character `summary`, `user_email`, and `attributes`
/// with 7 fields including a nested `tags` map.
pub fn reference_event(sequence: u64, out: &mut String) {
    use std::fmt::Write;
    let severity = if sequence.is_multiple_of(10) {
        "info"
    } else {
        "high"
    };
    let id = uuid::Uuid::now_v7();
    let _ = write!(
        out,
        concat!(
            "{{\"event_id\":\"{id}\",\"timestamp\":\"2026-11-20T09:00:00.123456Z\",\"event_type\":\"policy_violation\",",
            "\"severity\":\"{severity}\",\"source\":\"toktra\",",
            "\"summary\":\"User exceeded the daily token policy eng-default: 1200 of 1000 requests #{seq:08}\",",
            "\"user_email\":\"user{user}@acme.example\",",
            "\"attributes\":{{\"policy\":\"eng\",\"model\":\"gpt-x\",\"requests\":1200,\"limit\":1000,",
            "\"ratio\":1.2,\"blocked\":true,\"tags\":{{\"team\":\"sec\",\"env\":\"prod\"}}}}}}\n"
        ),
        id = id,
        severity = severity,
        seq = sequence,
        user = sequence % 1000,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_event_is_about_400_bytes_of_json() {
        let mut line = String::new();
        super::reference_event(7, &mut line);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["severity"], "high");
        assert_eq!(value["attributes"].as_object().unwrap().len(), 7);
        assert!((380..=440).contains(&line.len()), "{} bytes", line.len());
        let mut info = String::new();
        super::reference_event(10, &mut info);
        assert!(info.contains("\"severity\":\"info\""));
    }
}
