//! `siemrelay test EXPORTER_ID`.

use crate::config;
use crate::registry;
use siemrelay_exporters::delivery::test_delivery;
use std::path::Path;
use std::process::ExitCode;

/// Sends one synthetic `test_connection` event through the exporter and prints the outcome:
/// status, the SIEM's reply, latency, and a hint on failure. Exit 0 only when delivered.
pub fn test(exporter: &str, config_path: &Path) -> ExitCode {
    let loaded = match crate::admin::overlay::load(Some(config_path)) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(1);
        }
    };
    let Some((id, spec)) = loaded.exporter(exporter) else {
        let known: Vec<&str> = loaded
            .exporters
            .iter()
            .map(|(id, _)| id.id.as_str())
            .collect();
        eprintln!(
            "error: no exporter {exporter:?} in {}; defined: {}",
            loaded.file,
            known.join(", ")
        );
        return ExitCode::from(1);
    };
    let runtime = match super::tokio_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let timeout = spec.delivery.sending.timeout.0;
    let report = runtime.block_on(async {
        let sink = registry::build_sink(id, spec)?;
        anyhow::Ok(test_delivery(sink.as_ref(), timeout).await)
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "error: exporters.{exporter}: {}",
                config::expand::scrub(&format!("{e:#}"), &loaded.secrets)
            );
            return ExitCode::from(1);
        }
    };
    let scrub = |text: &str| config::expand::scrub(text, &loaded.secrets);
    println!("exporter:  {exporter}");
    println!(
        "result:    {}",
        if report.ok { "OK, delivered" } else { "FAILED" }
    );
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
    println!("event_id:  {}", report.event_id);
    if let Some(hint) = &report.hint {
        println!("hint:      {}", scrub(hint));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
