//! Sending GELF messages to a Graylog GELF HTTP input and judging the replies.

use crate::config::GelfConfig;
use crate::mapping::to_gelf;
use siemrelay_plugin_sdk::{Batch, Delivery, Outcome, Request};
use std::io::Read;
use std::time::{Duration, Instant};
use ureq::Agent;

/// Longest reply text kept for status and the dead-letter file.
const MAX_REPLY: u64 = 512;

/// Posts GELF messages over a keep-alive connection pool.
pub struct Sender {
    config: GelfConfig,
    agent: Agent,
}

/// One request's result.
struct Sent {
    outcome: Outcome,
    status: Option<u16>,
    reply: Option<String>,
}

impl Sender {
    /// A sender for a validated config.
    pub fn new(config: GelfConfig) -> Sender {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .max_idle_connections_per_host(16)
            .user_agent(concat!("siemrelay-gelf/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Sender { config, agent }
    }

    /// Delivers a batch: one request per event, or one for the batch with `bulk`.
    pub fn deliver(&self, batch: &Batch<'_>) -> Delivery {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut bodies: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
        for event in batch.events() {
            match event {
                Ok(event) => {
                    let gelf = to_gelf(&event, &self.config.default_host);
                    bodies.push(serde_json::to_vec(&gelf).unwrap_or_default());
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Outcome::permanent(format!("not an event: {e}")))),
            }
        }
        let started = Instant::now();
        let mut request = Request::default();
        if self.config.bulk {
            let body = bodies.join(&b'\n');
            let sent = self.post(body.clone());
            request.events = bodies.len() as u64;
            request.bytes = body.len() as u64;
            fill(&mut outcomes, &sent.outcome);
            request.http_status = sent.status;
            request.reply = sent.reply;
        } else {
            let mut bodies = bodies.into_iter();
            for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
                let Some(body) = bodies.next() else { break };
                request.events += 1;
                request.bytes += body.len() as u64;
                let sent = self.post(body);
                request.http_status = sent.status;
                if sent.reply.is_some() {
                    request.reply = sent.reply;
                }
                let stop = matches!(sent.outcome, Outcome::Retry { .. });
                *slot = Some(sent.outcome.clone());
                if stop {
                    // The input is down or throttling: the rest of the batch waits for the retry.
                    fill(&mut outcomes, &sent.outcome);
                    break;
                }
            }
        }
        request.latency = started.elapsed();
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Delivered))
            .collect();
        Delivery::per_event(outcomes).with_request(request)
    }

    fn post(&self, body: Vec<u8>) -> Sent {
        let mut request = self
            .agent
            .post(&self.config.endpoint)
            .header("Content-Type", "application/json");
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        match request.send(&body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                // Read the (short) body so the connection can be reused.
                let mut text = String::new();
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(MAX_REPLY)
                    .read_to_string(&mut text);
                let outcome = match status {
                    200..=299 => Outcome::Delivered,
                    408 | 429 | 500..=599 => Outcome::Retry {
                        reason: format!("Graylog answered HTTP {status}: {}", text.trim()),
                        after: retry_after,
                    },
                    _ => Outcome::permanent(format!(
                        "Graylog answered HTTP {status}: {}",
                        text.trim()
                    )),
                };
                let reply = (!(200..300).contains(&status)).then_some(text);
                Sent {
                    outcome,
                    status: Some(status),
                    reply,
                }
            }
            Err(e) => {
                let reason = format!("cannot reach {}: {e}", self.config.endpoint);
                Sent {
                    outcome: Outcome::retry(reason.clone()),
                    status: None,
                    reply: Some(reason),
                }
            }
        }
    }
}

/// Gives every event without an outcome yet this one.
fn fill(outcomes: &mut [Option<Outcome>], outcome: &Outcome) {
    for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
        *slot = Some(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Answers one request per connection with the scripted status lines; returns the bodies.
    fn serve(replies: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/gelf", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                bodies.push(String::from_utf8(body).unwrap());
                let response =
                    format!("{reply}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
                reader.get_mut().write_all(response.as_bytes()).unwrap();
            }
            bodies
        });
        (url, handle)
    }

    fn config(endpoint: String, bulk: bool) -> GelfConfig {
        serde_json::from_value(serde_json::json!({ "endpoint": endpoint, "bulk": bulk })).unwrap()
    }

    const BATCH: &[u8] =
        b"{\"event_id\":\"a\",\"timestamp\":\"2026-11-20T09:00:00Z\",\"event_type\":\"t\"}\n\
{\"event_id\":\"b\",\"timestamp\":\"2026-11-20T09:00:00Z\",\"event_type\":\"t\"}\n";

    #[test]
    fn bulk_sends_the_batch_newline_separated_in_one_request() {
        let (url, server) = serve(vec!["HTTP/1.1 202 Accepted"]);
        let delivery = Sender::new(config(url, true)).deliver(&Batch::from_ndjson(BATCH));
        assert_eq!(
            delivery.outcomes,
            siemrelay_plugin_sdk::Outcomes::PerEvent(vec![Outcome::Delivered; 2])
        );
        let bodies = server.join().unwrap();
        let lines: Vec<serde_json::Value> = bodies[0]
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["_event_id"], "b");
        assert_eq!(delivery.requests[0].http_status, Some(202));
    }

    #[test]
    fn replies_are_classified_and_a_retry_stops_the_batch() {
        let (url, server) = serve(vec!["HTTP/1.1 400 Bad Request"]);
        let delivery =
            Sender::new(config(url, false)).deliver(&Batch::from_ndjson(&BATCH[..BATCH.len() / 2]));
        assert_eq!(
            delivery.outcomes,
            siemrelay_plugin_sdk::Outcomes::PerEvent(vec![Outcome::permanent(
                "Graylog answered HTTP 400: nope"
            )])
        );
        server.join().unwrap();

        let (url, server) = serve(vec!["HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7"]);
        let delivery = Sender::new(config(url, false)).deliver(&Batch::from_ndjson(BATCH));
        let retry = Outcome::Retry {
            reason: "Graylog answered HTTP 503: nope".into(),
            after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            delivery.outcomes,
            siemrelay_plugin_sdk::Outcomes::PerEvent(vec![retry.clone(), retry])
        );
        assert_eq!(
            server.join().unwrap().len(),
            1,
            "the second event waits for the retry"
        );
    }
}
