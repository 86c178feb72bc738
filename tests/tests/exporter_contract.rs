//! Issue 22: one contract suite for every exporter (see `siemrelay_e2e::contract` for the cases).
//! The table below has one row per exporter type; a case a protocol cannot express says why
//! (`NotApplicable`), a case that fails on today's code says what was found (`KnownFailure`).
//! Each row runs against the peer the exporter's own e2e tests use, through one siemrelay
//! process.

mod plugin_support;

use plugin_support::repo;
use siemrelay_e2e::python;

use siemrelay_e2e::contract::{self, Mark, PartialFailure, Peer, Plan, Refusal, Row};
use siemrelay_e2e::fake::azure::{self, FakeAzure};
use siemrelay_e2e::fake::cloudwatch::{self, FakeCloudWatch, ScriptedError};
use siemrelay_e2e::fake::datadog::{self, FakeDatadog};
use siemrelay_e2e::fake::elasticsearch::{self, FakeElasticsearch, ItemFailure};
use siemrelay_e2e::fake::gelf::FakeGelf;
use siemrelay_e2e::fake::hec::{self, FakeHec};
use siemrelay_e2e::fake::http_sink::{FakeHttpSink, FakeServer, HttpSinkOptions, ScriptedReply};
use siemrelay_e2e::fake::rsyslog::Rsyslog;
use siemrelay_e2e::fake::syslog_parse::{parse_leef, parse_rfc5424};
use siemrelay_e2e::fake::tansu::Tansu;
use siemrelay_e2e::{free_port, read_ndjson_files, run_cli};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use Plan::{NotApplicable, Run};

/// Why a case does not apply, shared by several rows.
const ONE_STATUS_PER_REQUEST: &str =
    "the API answers one status per request, with no per-event results";
const NO_PEER: &str = "a local output has no peer that could refuse, throttle or go away";
const STREAM_NO_REPLY: &str =
    "syslog over TCP is a byte stream: the server sends no replies, so no 413 or 429";

/// One row per exporter type.
const TABLE: &[Row] = &[
    Row {
        exporter: "splunk_hec",
        // HEC reports the first bad event (`invalid-event-number`); those before it are indexed.
        partial_failure: Run,
        too_large: Run,
        throttled: Run,
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "datadog",
        partial_failure: NotApplicable(ONE_STATUS_PER_REQUEST),
        too_large: Run,
        throttled: Run,
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        // OpenSearch is the same `elasticsearch` type (the Bulk API is the same), not a row.
        exporter: "elasticsearch",
        partial_failure: Run,
        too_large: Run,
        throttled: Run,
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "sentinel",
        partial_failure: NotApplicable(ONE_STATUS_PER_REQUEST),
        too_large: Run,
        throttled: Run,
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "webhook",
        partial_failure: NotApplicable(ONE_STATUS_PER_REQUEST),
        too_large: Run,
        throttled: Run,
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "cloudwatch_logs",
        // `rejectedLogEventsInfo`: events too old or too new are refused one by one.
        partial_failure: Run,
        too_large: NotApplicable(
            "CloudWatch Logs has no 413: an over-limit batch is an InvalidParameterException (400), and the exporter sizes batches to the documented 1 MiB / 10,000-event limits",
        ),
        throttled: NotApplicable(
            "AWS throttles with ThrottlingException (HTTP 400) and sends no Retry-After",
        ),
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "syslog",
        partial_failure: NotApplicable(STREAM_NO_REPLY),
        too_large: NotApplicable(STREAM_NO_REPLY),
        throttled: NotApplicable(STREAM_NO_REPLY),
        // A message over `max_message_size` is refused before it is sent.
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "qradar",
        partial_failure: NotApplicable(STREAM_NO_REPLY),
        too_large: NotApplicable(STREAM_NO_REPLY),
        throttled: NotApplicable(STREAM_NO_REPLY),
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "file",
        partial_failure: NotApplicable(NO_PEER),
        too_large: NotApplicable(NO_PEER),
        throttled: NotApplicable(NO_PEER),
        permanent: NotApplicable(NO_PEER),
        status: NotApplicable(NO_PEER),
        shutdown_flush: Run,
    },
    Row {
        exporter: "stdout",
        partial_failure: NotApplicable(NO_PEER),
        too_large: NotApplicable(NO_PEER),
        throttled: NotApplicable(NO_PEER),
        permanent: NotApplicable(NO_PEER),
        status: NotApplicable(NO_PEER),
        shutdown_flush: Run,
    },
    Row {
        exporter: "plugin",
        // The GELF plugin sends one message per request: each event has its own result.
        partial_failure: Run,
        too_large: NotApplicable(
            "the GELF plugin sends one message per request (bulk off): there is no batch to split",
        ),
        throttled: NotApplicable(
            "Graylog's GELF HTTP input defines no 429 or Retry-After (202, 400, 413 and 503 only)",
        ),
        permanent: Run,
        status: Run,
        shutdown_flush: Run,
    },
    Row {
        exporter: "kafka",
        partial_failure: NotApplicable(
            "Kafka answers per partition, not per event; tansu cannot be made to fail one partition",
        ),
        too_large: NotApplicable(
            "Kafka has no 413: an oversized record is MESSAGE_TOO_LARGE, which tansu does not enforce",
        ),
        throttled: NotApplicable(
            "Kafka throttles by delaying replies (throttle_time_ms), never with a 429",
        ),
        permanent: NotApplicable(
            "the topic is fixed per exporter and tansu refuses no well-formed record on it (no ACLs, no size limit)",
        ),
        status: Run,
        shutdown_flush: Run,
    },
];

fn row(exporter: &str) -> &'static Row {
    TABLE
        .iter()
        .find(|row| row.exporter == exporter)
        .unwrap_or_else(|| panic!("no contract row for {exporter}"))
}

/// One contract test per exporter: `name: "type" => peer;` runs the type's row of [`TABLE`]
/// against the peer the expression starts.
macro_rules! contract_tests {
    ($($name:ident: $exporter:literal => $peer:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            contract::run(row($exporter), &$peer).await;
        }
    )*};
}

contract_tests! {
    splunk_hec: "splunk_hec" => HecPeer(FakeHec::start_default());
    datadog: "datadog" => DatadogPeer(FakeDatadog::start());
    elasticsearch: "elasticsearch" => ElasticsearchPeer(FakeElasticsearch::start());
    sentinel: "sentinel" => SentinelPeer(FakeAzure::start());
    webhook: "webhook" => WebhookPeer::start();
    cloudwatch_logs: "cloudwatch_logs" => CloudWatchPeer::start();
    syslog: "syslog" => SyslogPeer::start("syslog");
    qradar: "qradar" => SyslogPeer::start("qradar");
    file: "file" => FilePeer(tempfile::tempdir().expect("tempdir"));
    stdout: "stdout" => StdoutPeer(Mutex::new(None));
    plugin_gelf: "plugin" => GelfPeer::start();
    kafka: "kafka" => KafkaPeer::start();
}

/// What every peer in front of one of the fake SIEM servers has alike: its component id, and
/// the fake (field `$fake`) for the counts and the server.
macro_rules! fake_peer {
    ($id:literal, $fake:tt) => {
        fn id(&self) -> String {
            $id.into()
        }
        fn counts(&self) -> HashMap<String, u32> {
            self.$fake.counts()
        }
        fn server(&self) -> Option<&FakeServer> {
            Some(self.$fake.server())
        }
    };
}

#[test]
fn the_table_has_a_row_for_every_exporter_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "receivers:\n  webhook: {{ endpoint: \"127.0.0.1:{}\" }}\nexporters:\n  no_such_type: {{}}\nservice:\n  pipelines:\n    p: {{ receivers: [webhook], exporters: [no_such_type] }}\n",
        free_port()
    );
    std::fs::write(dir.path().join("c.yaml"), config).expect("write config");
    let output = run_cli(&["validate", "--config", "c.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let known = stderr
        .split("known types:")
        .nth(1)
        .unwrap_or_else(|| panic!("validate names the known types: {stderr}"))
        .lines()
        .next()
        .unwrap_or_default();
    let mut types: Vec<&str> = known.split(',').map(str::trim).collect();
    types.sort_unstable();
    let mut rows: Vec<&str> = TABLE.iter().map(|row| row.exporter).collect();
    rows.sort_unstable();
    assert_eq!(rows, types, "one contract row per exporter type");
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

struct HecPeer(FakeHec);

impl Peer for HecPeer {
    fake_peer!("splunk_hec", 0);
    fn settings(&self) -> String {
        format!(
            "    endpoint: \"{}\"\n    token: \"{}\"\n    index: security",
            self.0.url(),
            hec::TOKEN
        )
    }
    fn fail_some(&self, ids: &[String]) -> PartialFailure {
        self.0.reject_event_ids(ids.iter().cloned());
        PartialFailure::Permanent
    }
    fn limit_body(&self, bytes: Option<usize>) {
        self.0.set_max_content_length(bytes);
    }
    fn throttle(&self, seconds: u64) {
        self.0.script([hec::Scripted::throttled(seconds)]);
    }
    fn refuse(&self, ids: &[String]) -> Refusal {
        self.0.reject_event_ids(ids.iter().cloned());
        Refusal::Marked
    }
    fn refusal_reason(&self) -> &'static str {
        "Invalid data format"
    }
}

struct DatadogPeer(FakeDatadog);

impl Peer for DatadogPeer {
    fake_peer!("datadog", 0);
    fn settings(&self) -> String {
        format!(
            "    site: datadoghq.eu\n    endpoint: \"{}\"\n    api_key: \"{}\"",
            self.0.url(),
            datadog::API_KEY
        )
    }
    fn limit_body(&self, bytes: Option<usize>) {
        let defaults = datadog::DatadogOptions::default();
        self.0.set_limits(
            defaults.max_entries,
            bytes.unwrap_or(defaults.max_request_bytes),
        );
    }
    fn throttle(&self, seconds: u64) {
        self.0.script([datadog::Scripted::throttled(seconds)]);
    }
    fn refuse(&self, _ids: &[String]) -> Refusal {
        self.0.script([datadog::Scripted::status(400)]);
        Refusal::NextRequest
    }
    fn refusal_reason(&self) -> &'static str {
        "400"
    }
}

struct ElasticsearchPeer(FakeElasticsearch);

impl Peer for ElasticsearchPeer {
    fake_peer!("elasticsearch", 0);
    fn settings(&self) -> String {
        format!(
            "    endpoint: \"{}\"\n    index: siemrelay-events",
            self.0.url()
        )
    }
    fn fail_some(&self, ids: &[String]) -> PartialFailure {
        self.0
            .fail_ids(ids.iter().cloned(), ItemFailure::Rejected, 1);
        PartialFailure::Retryable
    }
    fn limit_body(&self, bytes: Option<usize>) {
        self.0.set_max_content_length(bytes);
    }
    fn throttle(&self, seconds: u64) {
        self.0
            .script([elasticsearch::Scripted::too_many_requests(Some(seconds))]);
    }
    fn refuse(&self, ids: &[String]) -> Refusal {
        self.0
            .fail_ids(ids.iter().cloned(), ItemFailure::MapperParsing, usize::MAX);
        Refusal::Marked
    }
    fn refusal_reason(&self) -> &'static str {
        "mapper_parsing_exception"
    }
}

struct SentinelPeer(FakeAzure);

impl Peer for SentinelPeer {
    fake_peer!("sentinel", 0);
    fn settings(&self) -> String {
        let url = self.0.url();
        format!(
            "    endpoint: \"{url}\"\n    authority_host: \"{url}\"\n    dcr_immutable_id: {}\n    stream_name: {}\n    tenant_id: {}\n    client_id: {}\n    client_secret: \"{}\"",
            azure::DCR_ID,
            azure::STREAM,
            azure::TENANT_ID,
            azure::CLIENT_ID,
            azure::CLIENT_SECRET
        )
    }
    fn limit_body(&self, bytes: Option<usize>) {
        self.0
            .set_max_body(bytes.unwrap_or(azure::AzureOptions::default().max_body));
    }
    fn throttle(&self, seconds: u64) {
        self.0.script([azure::Scripted::throttled(seconds)]);
    }
    fn refuse(&self, _ids: &[String]) -> Refusal {
        self.0.script([azure::Scripted::status(400)]);
        Refusal::NextRequest
    }
    fn refusal_reason(&self) -> &'static str {
        "400"
    }
}

struct WebhookPeer(FakeHttpSink);

impl WebhookPeer {
    fn start() -> WebhookPeer {
        WebhookPeer(FakeHttpSink::start(HttpSinkOptions {
            path: Some("/hooks/siem".into()),
            ..Default::default()
        }))
    }
}

impl Peer for WebhookPeer {
    fake_peer!("webhook", 0);
    fn settings(&self) -> String {
        format!("    endpoint: \"{}/hooks/siem\"", self.0.url())
    }
    fn limit_body(&self, bytes: Option<usize>) {
        self.0.set_max_body(bytes);
    }
    fn throttle(&self, seconds: u64) {
        self.0.script([ScriptedReply::throttled(seconds)]);
    }
    fn refuse(&self, _ids: &[String]) -> Refusal {
        self.0.script([ScriptedReply::status(400)]);
        Refusal::NextRequest
    }
    fn refusal_reason(&self) -> &'static str {
        "400"
    }
}

const LOG_GROUP: &str = "/security/contract";

struct CloudWatchPeer(FakeCloudWatch);

impl CloudWatchPeer {
    fn start() -> CloudWatchPeer {
        let fake = FakeCloudWatch::start();
        fake.create(LOG_GROUP, None);
        CloudWatchPeer(fake)
    }
}

impl Peer for CloudWatchPeer {
    fake_peer!("cloudwatch_logs", 0);
    fn settings(&self) -> String {
        format!(
            "    region: {}\n    log_group: {LOG_GROUP}\n    log_stream: contract\n    endpoint: \"{}\"",
            cloudwatch::REGION,
            self.0.url()
        )
    }
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", cloudwatch::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", cloudwatch::SECRET_KEY),
            ("AWS_REGION", cloudwatch::REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
    /// CloudWatch keeps events of the last 14 days only: timestamps are now (an event of the
    /// partial-failure case: 20 days ago, which CloudWatch refuses through
    /// `rejectedLogEventsInfo`).
    fn event_line(&self, id: &str, n: usize, mark: Mark) -> String {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let millis = match mark {
            Mark::PartialFailure => now_ms - 20 * 86_400_000,
            _ => now_ms - 60_000,
        };
        format!(
            "{{\"event_id\":\"{id}\",\"timestamp\":{millis},\"event_type\":\"policy_violation\",\"severity\":\"high\",\"source\":\"toktra\",\"summary\":\"event {n}\"}}\n"
        )
    }
    fn fail_some(&self, _ids: &[String]) -> PartialFailure {
        PartialFailure::Permanent
    }
    fn refuse(&self, _ids: &[String]) -> Refusal {
        self.0.script([ScriptedError::access_denied()]);
        Refusal::NextRequest
    }
    fn refusal_reason(&self) -> &'static str {
        "AccessDeniedException"
    }
}

/// A real rsyslogd behind the `syslog` or `qradar` exporter.
struct SyslogPeer {
    server: Mutex<Rsyslog>,
    exporter: &'static str,
}

impl SyslogPeer {
    fn start(exporter: &'static str) -> SyslogPeer {
        SyslogPeer {
            server: Mutex::new(Rsyslog::start(None)),
            exporter,
        }
    }

    fn rsyslog(&self) -> std::sync::MutexGuard<'_, Rsyslog> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Peer for SyslogPeer {
    fn id(&self) -> String {
        self.exporter.into()
    }
    fn settings(&self) -> String {
        let format = if self.exporter == "syslog" {
            "\n    format: json"
        } else {
            ""
        };
        format!(
            "    endpoint: \"{}\"\n    hostname: relay-contract\n    max_message_size: 4KiB{format}",
            self.rsyslog().endpoint()
        )
    }
    fn counts(&self) -> HashMap<String, u32> {
        let mut counts = HashMap::new();
        for line in self.rsyslog().lines() {
            let Ok(syslog) = parse_rfc5424(&line) else {
                continue;
            };
            let id = if self.exporter == "syslog" {
                serde_json::from_str::<serde_json::Value>(&syslog.msg)
                    .ok()
                    .and_then(|v| v["event_id"].as_str().map(str::to_string))
            } else {
                parse_leef(&syslog.msg)
                    .ok()
                    .and_then(|leef| leef.get("event_id").map(str::to_string))
            };
            if let Some(id) = id {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        counts
    }
    /// A refused event is larger than `max_message_size` (4 KiB).
    fn event_line(&self, id: &str, n: usize, mark: Mark) -> String {
        let line = siemrelay_e2e::events::event_line(id, 0, n % 1_000_000);
        if mark == Mark::Refused {
            line.replace(
                "\"summary\":\"",
                &format!("\"summary\":\"{}", "x".repeat(5000)),
            )
        } else {
            line
        }
    }
    fn refuse(&self, _ids: &[String]) -> Refusal {
        Refusal::Marked
    }
    fn refusal_reason(&self) -> &'static str {
        "max_message_size"
    }
    fn go_down(&self) {
        self.rsyslog().stop();
    }
    fn come_up(&self) {
        self.rsyslog().start_again();
    }
}

/// The `file` exporter's output, read back.
struct FilePeer(tempfile::TempDir);

impl Peer for FilePeer {
    fn id(&self) -> String {
        "file".into()
    }
    fn settings(&self) -> String {
        format!(
            "    path: \"{}\"",
            self.0.path().join("events.ndjson").display()
        )
    }
    fn counts(&self) -> HashMap<String, u32> {
        ids_in(read_ndjson_files(self.0.path(), "events"))
    }
}

fn ids_in(lines: Vec<serde_json::Value>) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for line in lines {
        if let Some(id) = line["event_id"].as_str() {
            *counts.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// The `stdout` exporter's output: the relay's standard output, which the harness writes to a
/// log file in the relay's directory (its diagnostics go to standard error, in the same file,
/// and are not JSON objects with an `event_id`).
struct StdoutPeer(Mutex<Option<PathBuf>>);

impl Peer for StdoutPeer {
    fn id(&self) -> String {
        "stdout".into()
    }
    fn settings(&self) -> String {
        String::new()
    }
    fn counts(&self) -> HashMap<String, u32> {
        let dir = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(dir) = dir else {
            return HashMap::new();
        };
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("siemrelay-") && name.ends_with(".log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()),
                );
            }
        }
        ids_in(lines)
    }
    fn attach(&self, relay_dir: &std::path::Path) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(relay_dir.to_path_buf());
    }
}

/// The GELF plugin in front of the fake Graylog GELF HTTP input.
struct GelfPeer {
    fake: FakeGelf,
    library: PathBuf,
}

impl GelfPeer {
    fn start() -> GelfPeer {
        GelfPeer {
            fake: FakeGelf::start(),
            library: plugin_support::gelf_plugin(),
        }
    }
}

impl Peer for GelfPeer {
    fake_peer!("plugin/graylog", fake);
    fn settings(&self) -> String {
        format!(
            "    library: \"{}\"\n    config: {{ endpoint: \"{}\", default_host: relay-contract, timeout_ms: 5000 }}",
            self.library.display(),
            self.fake.endpoint()
        )
    }
    fn service(&self) -> String {
        format!(
            "  plugins: {{ directory: \"{}\" }}",
            self.library
                .parent()
                .expect("the library's directory")
                .display()
        )
    }
    fn fail_some(&self, ids: &[String]) -> PartialFailure {
        self.fake.fail_once(ids);
        PartialFailure::Retryable
    }
    fn refuse(&self, ids: &[String]) -> Refusal {
        self.fake.refuse(ids);
        Refusal::Marked
    }
    fn refusal_reason(&self) -> &'static str {
        "400"
    }
}

const TOPIC: &str = "contract-events";

/// A real Kafka-compatible broker (tansu), read by the independent client
/// (`tests/python/kafka_client.py`, confluent-kafka) running as one consumer for the whole row.
struct KafkaPeer {
    broker: Tansu,
    consumer: Mutex<std::process::Child>,
    consumed: tempfile::NamedTempFile,
}

impl KafkaPeer {
    fn start() -> KafkaPeer {
        let broker = Tansu::start();
        broker.create_topic(TOPIC, 3);
        let consumed = tempfile::NamedTempFile::new().expect("temp file");
        let consumer = std::process::Command::new(python())
            .arg(repo().join("tests/python/kafka_client.py"))
            .args(["consume", &broker.bootstrap(), TOPIC, "100000000", "3600"])
            .stdin(std::process::Stdio::null())
            .stdout(consumed.reopen().expect("consumer output"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run kafka_client.py");
        KafkaPeer {
            broker,
            consumer: Mutex::new(consumer),
            consumed,
        }
    }
}

impl Drop for KafkaPeer {
    fn drop(&mut self) {
        let mut consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let _ = consumer.kill();
        let _ = consumer.wait();
    }
}

impl Peer for KafkaPeer {
    fn id(&self) -> String {
        "kafka".into()
    }
    fn settings(&self) -> String {
        format!(
            "    brokers: [\"{}\"]\n    topic: {TOPIC}\n    key: event_id\n    sending: {{ timeout: 3s }}",
            self.broker.bootstrap()
        )
    }
    fn counts(&self) -> HashMap<String, u32> {
        let text = std::fs::read_to_string(self.consumed.path()).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        let mut counts = HashMap::new();
        for line in complete.lines() {
            let message: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if let Some(id) = message["headers"]["event_id"].as_str() {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }
    fn go_down(&self) {
        self.broker.freeze();
    }
    fn come_up(&self) {
        self.broker.thaw();
    }
}
