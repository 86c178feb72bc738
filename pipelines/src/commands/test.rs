//! `siemrelay test EXPORTER_ID`, and the test delivery it shares with
//! `POST /api/v1/exporters/{id}/test`.
//!
//! A test event goes straight to the SIEM, without the pipeline's processors. So that it never
//! breaks `siemrelay verify`, it is never written into a file whose events are signed: for a
//! `file` exporter fed by a pipeline with a `sign` processor, the test checks that the day's file
//! can be appended to, and writes nothing.

use super::exporter_command::{ExporterCommand, Needs, async_runtime};
use crate::config::LoadedConfig;
use crate::registry;
use siemrelay_exporters::delivery::{Sink, TestReport, test_delivery};
use siemrelay_exporters::file::{FileConfig, FileSink};
use siemrelay_processors::sign::SignConfig;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The pipelines that deliver to `exporter` and sign their events.
pub fn signing_pipelines(loaded: &LoadedConfig, exporter: &str) -> Vec<String> {
    loaded
        .service
        .pipelines
        .iter()
        .filter(|(_, p)| p.exporters.iter().any(|e| e == exporter))
        .filter(|(_, p)| {
            p.processors.iter().any(|pid| {
                loaded
                    .processors
                    .iter()
                    .any(|(id, spec)| &id.id == pid && spec.config_as::<SignConfig>().is_some())
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Tests an exporter: one synthetic `test_connection` event through `sink`; or, for a `file`
/// exporter whose events are signed by `signing` pipelines, a check that its file is writable.
pub async fn test_exporter(
    sink: &dyn Sink,
    timeout: Duration,
    file: Option<&FileConfig>,
    signing: &[String],
) -> TestReport {
    match file {
        Some(file) if !signing.is_empty() => check_signed_file(file, signing).await,
        _ => test_delivery(sink, timeout).await,
    }
}

async fn check_signed_file(file: &FileConfig, signing: &[String]) -> TestReport {
    let started = Instant::now();
    let result = FileSink::new(file).check_writable().await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let why = format!(
        "pipeline {} signs the events of this file, and an unsigned test event would make \
         `siemrelay verify` fail at its line",
        signing.join(", ")
    );
    match result {
        Ok(path) => TestReport {
            ok: true,
            outcome: "checked".into(),
            http_status: None,
            reply: Some(format!(
                "{} is writable; no test event was written to it: {why}",
                path.display()
            )),
            latency_ms,
            hint: None,
            event_id: String::new(),
        },
        Err(e) => TestReport {
            ok: false,
            outcome: "retry".into(),
            http_status: None,
            reply: Some(format!("cannot append to the file: {e}")),
            latency_ms,
            hint: Some(
                "check that the directory exists or can be created, its permissions and free space"
                    .into(),
            ),
            event_id: String::new(),
        },
    }
}

/// Sends one synthetic `test_connection` event through the exporter and prints the outcome:
/// status, the SIEM's reply, latency, and a hint on failure. Exit 0 only when delivered (or,
/// for a signed file, when it is writable).
pub fn test(exporter: &str, config_path: &Path) -> ExitCode {
    let command = match ExporterCommand::load(config_path, exporter, Needs::Exporter) {
        Ok(command) => command,
        Err(code) => return code,
    };
    let Some((id, spec)) = command.spec() else {
        return ExitCode::from(1);
    };
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let timeout = spec.delivery.sending.timeout.0;
    let file = spec.config_as::<FileConfig>();
    let signing = signing_pipelines(&command.loaded, exporter);
    let report = runtime.block_on(async {
        let sink = registry::build_sink(id, spec)?;
        anyhow::Ok(test_exporter(sink.as_ref(), timeout, file, &signing).await)
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => return command.fail(&format!("exporters.{exporter}: "), &e),
    };
    let scrub = |text: &str| command.scrub(text);
    println!("exporter:  {exporter}");
    let result = match (report.ok, report.outcome.as_str()) {
        (true, "checked") => "OK, writable (no event written)",
        (true, _) => "OK, delivered",
        (false, _) => "FAILED",
    };
    println!("result:    {result}");
    println!("outcome:   {}", report.outcome);
    println!(
        "status:    {}",
        report
            .http_status
            .map_or("no reply".to_string(), |s| format!("HTTP {s}"))
    );
    if let Some(reply) = &report.reply {
        println!("reply:     {}", scrub(reply));
    }
    println!("latency:   {} ms", report.latency_ms);
    if !report.event_id.is_empty() {
        println!("event_id:  {}", report.event_id);
    }
    if let Some(hint) = &report.hint {
        println!("hint:      {}", scrub(hint));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
