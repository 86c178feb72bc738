//! `siemrelay tap COMPONENT_ID`: prints the events passing a component of a running siemrelay,
//! live, from its admin API (`GET /api/v1/tap/{id}`), one JSON line per event on stdout; what
//! the stream reports (what is tapped, dropped copies, the end) goes to stderr.

use super::status::admin_session;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// What to tap and how.
pub struct TapOptions<'a> {
    /// Component id (`webhook`, `filter/high`, `splunk_hec/prod`).
    pub component: &'a str,
    /// Keep one event in this many.
    pub sample: u64,
    /// Stop after this many events.
    pub limit: Option<u64>,
    /// `--admin`.
    pub admin: Option<&'a str>,
    /// `--token`.
    pub token: Option<&'a str>,
    /// `--config`.
    pub config: Option<&'a Path>,
}

/// Percent-encodes a component id for one path segment.
fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Streams the tap until `limit` events, the end of the stream, or Ctrl-C. Exit 0 when the
/// limit was reached or the stream ended normally, 1 on an error.
pub fn tap(options: &TapOptions<'_>) -> ExitCode {
    let (target, runtime) = match admin_session(options.admin, options.token, options.config) {
        Ok(session) => session,
        Err(code) => return code,
    };
    let url = format!("{}/api/v1/tap/{}", target.base, encode(options.component));
    match runtime.block_on(stream(&url, target.token.as_deref(), options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

async fn stream(url: &str, token: Option<&str>, options: &TapOptions<'_>) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut query = vec![("sample", options.sample.to_string())];
    if let Some(limit) = options.limit {
        query.push(("limit", limit.to_string()));
    }
    let mut request = client.get(url).query(&query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.map_err(|e| {
        format!("cannot reach the admin API ({e}); is siemrelay running with `service.admin`? use --config FILE or --admin HOST:PORT")
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            ": give the admin token with --token, SIEMRELAY_ADMIN_TOKEN or --config FILE"
        } else {
            ""
        };
        return Err(format!("{url}: HTTP {status}: {message}{hint}"));
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| format!("the tap stream broke: {e}"))?;
        let Some(chunk) = chunk else {
            return Err("siemrelay closed the tap stream".into());
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Some(notice) = notice(line) {
                match notice {
                    Notice::Start(text) | Notice::Dropped(text) => eprintln!("{text}"),
                    Notice::End(text) => {
                        eprintln!("{text}");
                        let _ = stdout.flush();
                        return Ok(());
                    }
                }
                continue;
            }
            if stdout
                .write_all(line)
                .and_then(|_| stdout.write_all(b"\n"))
                .and_then(|_| stdout.flush())
                .is_err()
            {
                // The reader went away (`| head`): stop quietly.
                return Ok(());
            }
        }
    }
}

/// A line of the stream that is not an event.
enum Notice {
    Start(String),
    Dropped(String),
    End(String),
}

fn notice(line: &[u8]) -> Option<Notice> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let tap = value.as_object().filter(|o| o.len() == 1)?.get("tap")?;
    if let Some(component) = tap["component"].as_str() {
        let sample = tap["sample"].as_u64().unwrap_or(1);
        let every = if sample == 1 {
            "every event".to_string()
        } else {
            format!("one event in {sample}")
        };
        return Some(Notice::Start(format!(
            "tapping {component} ({}), {every}; Ctrl-C stops",
            tap["kind"].as_str().unwrap_or("component")
        )));
    }
    if tap.get("dropped").is_some() {
        return Some(Notice::Dropped(format!(
            "warning: {}",
            tap["message"].as_str().unwrap_or("events were dropped")
        )));
    }
    if let Some(end) = tap["end"].as_str() {
        return Some(Notice::End(format!(
            "tap ended: {end} ({} events)",
            tap["events"].as_u64().unwrap_or(0)
        )));
    }
    None
}
