//! The example exporter of `docs/architecture.md` ("How to add an exporter"): a tiny HTTP
//! exporter, `line_post`, that lives only in this test. It is what a new exporter module holds
//! (its config, an encoder that builds requests and judges replies, its factory); the test puts
//! its factory next to the built-in ones (the "one list line"), reads a config block through the
//! registry, and delivers one event through the real delivery layer to a local HTTP server.

use async_trait::async_trait;
use serde::Deserialize;
use siemrelay_core::config_read::Value;
use siemrelay_core::ingest::{IngestOptions, event_from_object};
use siemrelay_core::{ConfigIssue, Event, Timestamp};
use siemrelay_exporters::delivery::RestoredStatus;
use siemrelay_exporters::delivery::assemble::{ExporterStorage, assemble};
use siemrelay_exporters::delivery::factory::ExporterFactory;
use siemrelay_exporters::delivery::http::{
    Classified, Compression, HttpEncoder, HttpSink, Reply, classify_by_status,
};
use siemrelay_exporters::delivery::pack::{EncodeError, EncodedRequest, Framing, LINES};
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{Outcomes, RequestLimits};
use siemrelay_pipelines::config::ComponentId;
use siemrelay_pipelines::registry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- The exporter module (`exporters/src/line_post.rs` if it were shipped) ----------------

/// `line_post/<name>:` settings: its own keys only (the shared keys are taken out before).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinePostConfig {
    /// Where events are POSTed, one JSON object per line.
    endpoint: String,
}

impl LinePostConfig {
    fn validate(&self) -> Vec<ConfigIssue> {
        match reqwest::Url::parse(&self.endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Vec::new(),
            _ => vec![ConfigIssue::new("endpoint", "must be an http(s) URL")],
        }
    }
}

/// Encodes events as NDJSON and judges replies by status: the only exporter-specific work.
struct LinePostEncoder {
    url: reqwest::Url,
}

#[async_trait]
impl HttpEncoder for LinePostEncoder {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: 500,
            max_bytes: 1 << 20,
        }
    }

    fn framing(&self) -> Framing {
        LINES
    }

    fn write_event(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        event.write_json(out);
        out.push(b'\n');
        Ok(())
    }

    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client.post(self.url.clone())
    }

    fn classify(&self, reply: &Reply<'_>, _request: &EncodedRequest) -> Classified {
        if reply.status == 413 {
            return Classified::Split;
        }
        Classified::Outcomes(Outcomes::Uniform(classify_by_status(
            reply,
            "the line_post endpoint",
        )))
    }
}

// The module's factory, one declaration: its type name, its config, the encoder whose shared
// keys it takes, and how its sink is built.
siemrelay_exporters::exporter_factory! {
    /// Builds `line_post` exporters.
    struct LinePostFactory {
        type_name: "line_post",
        config: LinePostConfig,
        http: LinePostEncoder,
        build: |config, ctx| {
            let encoder = LinePostEncoder {
                url: reqwest::Url::parse(&config.endpoint)?,
            };
            Ok(Arc::new(HttpSink::new(
                ctx.id,
                encoder,
                ctx.http,
                ctx.timeout(),
                Compression::None,
            )?))
        },
    }
}

// ---- The list line (`exporters/src/lib.rs`: `&line_post::factory::LinePostFactory,`) -------

static LINE_POST: LinePostFactory = LinePostFactory;

fn factories() -> Vec<&'static dyn ExporterFactory> {
    let mut list = registry::exporter_factories().to_vec();
    list.push(&LINE_POST);
    list
}

// ---- The test -----------------------------------------------------------------------------

/// A local HTTP server that keeps every body it receives.
async fn serve() -> (String, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/ingest"), bodies)
}

fn event() -> Event {
    let object = serde_json::json!({
        "event_type": "login_failed",
        "severity": "warn",
        "message": "example exporter",
    });
    let serde_json::Value::Object(object) = object else {
        unreachable!()
    };
    event_from_object(object, &IngestOptions::default(), Timestamp::now())
        .expect("a valid event")
        .event
}

#[tokio::test]
async fn a_new_exporter_is_a_module_and_one_list_line() {
    let (endpoint, bodies) = serve().await;
    let id = ComponentId::parse("line_post/demo").unwrap();
    let path = "exporters.line_post/demo";
    let block: Value = serde_yaml::from_str(&format!(
        "{{ endpoint: \"{endpoint}\", compression: none, sending: {{ batch_size: 1, batch_timeout: 10ms }} }}"
    ))
    .unwrap();

    // Without its list line the type is unknown; with it, the registry reads the block: the
    // shared keys go to the delivery layer, the rest to the exporter's own config.
    let unknown = registry::exporter_from_yaml(&id, block.clone(), path).unwrap_err();
    assert!(
        unknown[0]
            .message
            .contains("unknown exporter type `line_post`")
    );
    let spec = registry::exporter_from_yaml_in(&factories(), &id, block, path)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(spec.delivery.sending.batch_size, Some(1));
    let bad: Value = serde_yaml::from_str("{ endpoint: \"ftp://x\", endpont: 1 }").unwrap();
    let errors = registry::exporter_from_yaml_in(&factories(), &id, bad, path).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"exporters.line_post/demo.endpont"),
        "{errors:?}"
    );
    assert!(
        paths.contains(&"exporters.line_post/demo.endpoint"),
        "{errors:?}"
    );

    // Built and assembled like every exporter: queue, workers, dead-letter file, status.
    let storage_dir = tempfile::tempdir().unwrap();
    let storage = ExporterStorage {
        dead_letter_dir: storage_dir.path().join("dead_letter"),
        queue_dir: storage_dir.path().join("queues").join(id.file_name()),
    };
    let sink = registry::build_sink(&id, &spec).unwrap();
    let handle = assemble(
        &id.id,
        sink,
        &spec.delivery,
        &storage,
        RestoredStatus::default(),
    )
    .unwrap();
    let queue = handle.queue().clone();
    let reservation = queue.try_reserve(1, 0).unwrap();
    queue
        .push(reservation, SizedBatch::new(vec![event()]))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.status().snapshot().events_sent < 1 {
        assert!(Instant::now() < deadline, "the event was not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = bodies.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].lines().count(), 1);
    assert!(
        received[0].contains("\"event_type\":\"login_failed\""),
        "{received:?}"
    );
    let shutdown = handle
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    assert!(shutdown.drained);
}
