//! `siemrelay status`: the exporters' table from a running siemrelay's admin API.

use crate::admin::model::{Exporter, ExporterList};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// The admin address `status` asks when given none.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:8686";

/// Prints the exporters' status table (coloured by status on a terminal, the word always shown).
/// Exit 0 when the table was read, 1 otherwise.
pub fn status(admin: &str, token: Option<&str>) -> ExitCode {
    let base = if admin.contains("://") {
        admin.trim_end_matches('/').to_string()
    } else {
        format!("http://{admin}")
    };
    let runtime = match super::tokio_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(fetch(&base, token)) {
        Ok(list) => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", table(&list.exporters, colour));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

async fn fetch(base: &str, token: Option<&str>) -> Result<ExporterList, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{base}/api/v1/exporters");
    let mut request = client.get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        format!("cannot reach the admin API at {base} ({e}); is `service.admin` configured and siemrelay running? use --admin HOST:PORT")
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "{url}: 401 unauthorized: give the admin token with --token or SIEMRELAY_ADMIN_TOKEN"
        ));
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{url}: HTTP {status}: {body}"));
    }
    response
        .json::<ExporterList>()
        .await
        .map_err(|e| format!("{url}: unexpected answer: {e}"))
}

fn paint(word: &str, width: usize, colour: bool) -> String {
    let padded = format!("{word:<width$}");
    if !colour {
        return padded;
    }
    let code = match word {
        "active" => "32",
        "degraded" => "33",
        "failed" => "1;31",
        "disabled" => "2",
        _ => return padded,
    };
    format!("\x1b[{code}m{padded}\x1b[0m")
}

fn size(bytes: u64) -> String {
    siemrelay_exporters::delivery::disk_queue::space::human(bytes)
}

/// The table text.
pub fn table(exporters: &[Exporter], colour: bool) -> String {
    if exporters.is_empty() {
        return "no exporters are running\n".into();
    }
    let id_width = exporters
        .iter()
        .map(|e| e.id.len())
        .max()
        .unwrap_or(0)
        .max("EXPORTER".len());
    let mut out = format!(
        "{:<id_width$}  {:<8}  {:>10}  {:>8}  {:>9}  {:>18}  LAST ERROR\n",
        "EXPORTER", "STATUS", "SENT", "RETRIED", "DEAD-LTR", "QUEUE"
    );
    for e in exporters {
        let queue = format!("{} / {}", e.queue.events, size(e.queue.bytes));
        let error = e.last_error.as_deref().unwrap_or("-");
        let error: String = error.chars().take(80).collect();
        out.push_str(&format!(
            "{:<id_width$}  {}  {:>10}  {:>8}  {:>9}  {:>18}  {}\n",
            e.id,
            paint(&e.status, 8, colour),
            e.events_sent,
            e.events_retried,
            e.events_dead_lettered,
            queue,
            error
        ));
        if let Some(reason) = e.status_reason.as_deref().filter(|_| e.status != "active") {
            out.push_str(&format!("  {:<id_width$}  why: {reason}\n", ""));
        }
        for loss in &e.queue_losses {
            out.push_str(&format!(
                "  {:<id_width$}  QUEUE LOSS (found {}): {}; acknowledge: POST /api/v1/exporters/{}/acknowledge-losses\n",
                "",
                loss.found_at,
                loss.loss.describe(),
                e.id.replace('/', "%2F")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::model::Queue;

    fn exporter(id: &str, status: &str) -> Exporter {
        Exporter {
            id: id.into(),
            kind: "splunk_hec".into(),
            status: status.into(),
            status_reason: None,
            failure_count: 0,
            last_error: None,
            last_error_at: None,
            last_error_current: false,
            last_success: None,
            events_sent: 10,
            events_retried: 1,
            events_dead_lettered: 0,
            dead_letter_count: 0,
            recent_dead_letter_ratio: 0.0,
            queue_losses: Vec::new(),
            notice: None,
            queue: Queue {
                events: 3,
                bytes: 2048,
                max_events: 100,
                max_bytes: 1 << 20,
            },
            pipelines: vec!["security".into()],
        }
    }

    #[test]
    fn plain_output_shows_the_status_word_and_no_escape_codes() {
        let text = table(
            &[
                exporter("splunk_hec/prod", "failed"),
                exporter("file", "active"),
            ],
            false,
        );
        assert!(text.contains("splunk_hec/prod  failed"), "{text}");
        assert!(text.contains("3 / 2.0 KiB"), "{text}");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn terminal_output_colours_the_status_and_keeps_the_word() {
        let text = table(&[exporter("x", "failed"), exporter("y", "degraded")], true);
        assert!(text.contains("\x1b[1;31mfailed  \x1b[0m"), "{text:?}");
        assert!(text.contains("\x1b[33mdegraded\x1b[0m"), "{text:?}");
    }
}
