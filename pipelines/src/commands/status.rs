//! `siemrelay status`: the exporters' table from a running siemrelay's admin API.
//!
//! The admin address and token come from `--admin` / `--token` (or `SIEMRELAY_ADMIN_TOKEN`),
//! else from `service.admin` of the `--config` file (its `auth.bearer_token` expanded like the
//! running siemrelay does, so `${env:…}` and `${file:…}` work), else the default address.

use crate::admin::AdminConfig;
use crate::admin::model::{Exporter, ExporterList};
use crate::config;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// The admin address `status` asks when given none.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:8686";

/// Where the admin API is and the token to send.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminTarget {
    /// `http://host:port`.
    pub base: String,
    /// The bearer token, if any.
    pub token: Option<String>,
}

/// The start of every command that talks to a running relay's admin API (`status`, `tap`):
/// the target ([`resolve_target`]) and an async runtime; an error is printed and is the exit
/// code.
pub fn admin_session(
    admin: Option<&str>,
    token: Option<&str>,
    config_path: Option<&Path>,
) -> Result<(AdminTarget, tokio::runtime::Runtime), ExitCode> {
    let target = resolve_target(admin, token, config_path).map_err(|message| {
        eprintln!("error: {message}");
        ExitCode::from(1)
    })?;
    let runtime = super::tokio_runtime().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::from(1)
    })?;
    Ok((target, runtime))
}

/// The admin API to ask: flags first, then the config file's `service.admin`, then the default.
pub fn resolve_target(
    admin: Option<&str>,
    token: Option<&str>,
    config_path: Option<&Path>,
) -> Result<AdminTarget, String> {
    let from_config = match config_path {
        Some(path) => Some(admin_of_config(path, token.is_none())?),
        None => None,
    };
    let base = match (admin, &from_config) {
        (Some(admin), _) => base_url(admin),
        (None, Some((config, _))) => format!("http://{}", connect_address(config.endpoint.addr)),
        (None, None) => DEFAULT_ADMIN.to_string(),
    };
    let token = token
        .map(str::to_string)
        .or_else(|| from_config.and_then(|(_, token)| token));
    Ok(AdminTarget { base, token })
}

fn base_url(admin: &str) -> String {
    if admin.contains("://") {
        admin.trim_end_matches('/').to_string()
    } else {
        format!("http://{admin}")
    }
}

/// Where to connect to reach a listener bound to `addr`: a wildcard bind is reached on loopback.
fn connect_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// `service.admin` of a config file, with its token when `want_token` (only that block is read
/// and expanded: the rest of the file may use variables this shell does not have).
fn admin_of_config(path: &Path, want_token: bool) -> Result<(AdminConfig, Option<String>), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let root: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{shown}: not valid YAML: {e}"))?;
    let Some(mut admin) = root
        .get("service")
        .and_then(|service| service.get("admin"))
        .cloned()
    else {
        return Err(format!(
            "{shown} has no service.admin: the admin listener is off (see docs/operations.md), \
             or give its address with --admin HOST:PORT"
        ));
    };
    if !want_token && let serde_yaml::Value::Mapping(map) = &mut admin {
        map.remove("auth");
    }
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    config::expand::expand_tree(&mut admin, "service.admin", &mut secrets, &mut errors);
    if let Some(error) = errors.first() {
        return Err(format!(
            "{shown}: {}: {} (or give the token with --token / SIEMRELAY_ADMIN_TOKEN)",
            error.path, error.message
        ));
    }
    let admin: AdminConfig = config::deserialize_at(admin, "service.admin").map_err(|e| {
        config::expand::scrub(&format!("{shown}: {}: {}", e.path, e.message), &secrets)
    })?;
    let token = admin.token().map(str::to_string);
    Ok((admin, token))
}

/// Prints the exporters' status table (coloured by status on a terminal, the word always shown).
/// Exit 0 when the table was read, 1 otherwise.
pub fn status(admin: Option<&str>, token: Option<&str>, config_path: Option<&Path>) -> ExitCode {
    let (target, runtime) = match admin_session(admin, token, config_path) {
        Ok(session) => session,
        Err(code) => return code,
    };
    match runtime.block_on(fetch(&target.base, target.token.as_deref())) {
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
        format!("cannot reach the admin API at {base} ({e}); is `service.admin` configured and siemrelay running? use --config FILE or --admin HOST:PORT")
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "{url}: 401 unauthorized: give the admin token with --token or SIEMRELAY_ADMIN_TOKEN, or --config FILE whose service.admin.auth holds it"
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

/// The table text: one row per exporter, every column as wide as its widest cell; the last
/// error is printed whole (on one line), since it is the column an operator needs in full.
pub fn table(exporters: &[Exporter], colour: bool) -> String {
    if exporters.is_empty() {
        return "no exporters are running\n".into();
    }
    const HEAD: [&str; 7] = [
        "EXPORTER",
        "STATUS",
        "SENT",
        "RETRIED",
        "DEAD-LTR",
        "QUEUE (EVENTS)",
        "QUEUE (BYTES)",
    ];
    let rows: Vec<[String; 7]> = exporters
        .iter()
        .map(|e| {
            [
                e.id.clone(),
                e.status.clone(),
                e.events_sent.to_string(),
                e.events_retried.to_string(),
                e.dead_letter_count.to_string(),
                format!("{} / {}", e.queue.events, e.queue.max_events),
                format!("{} / {}", size(e.queue.bytes), size(e.queue.max_bytes)),
            ]
        })
        .collect();
    let mut widths = HEAD.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7], status: String| {
        let mut out = format!("{:<w$}  {status}", cells[0], w = widths[0]);
        for (index, cell) in cells.iter().enumerate().skip(2) {
            out.push_str(&format!("  {cell:>w$}", w = widths[index]));
        }
        out
    };
    let mut out = line(HEAD, format!("{:<w$}", HEAD[1], w = widths[1]));
    out.push_str("  LAST ERROR\n");
    for (row, e) in rows.iter().zip(exporters) {
        let cells = [
            row[0].as_str(),
            row[1].as_str(),
            row[2].as_str(),
            row[3].as_str(),
            row[4].as_str(),
            row[5].as_str(),
            row[6].as_str(),
        ];
        out.push_str(&line(cells, paint(&e.status, widths[1], colour)));
        let error = e
            .last_error
            .as_deref()
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!("  {error}\n"));
        if let Some(reason) = e.status_reason.as_deref().filter(|_| e.status != "active") {
            out.push_str(&format!("  {:<w$}  why: {reason}\n", "", w = widths[0]));
        }
        for loss in &e.queue_losses {
            out.push_str(&format!(
                "  {:<w$}  QUEUE LOSS (found {}): {}; acknowledge: POST /api/v1/exporters/{}/acknowledge-losses\n",
                "",
                loss.found_at,
                loss.loss.describe(),
                e.id.replace('/', "%2F"),
                w = widths[0]
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
        assert!(text.contains("3 / 100"), "queue capacity in events: {text}");
        assert!(
            text.contains("2.0 KiB / 1.0 MiB"),
            "queue capacity in bytes: {text}"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn a_long_last_error_is_printed_whole_on_one_line() {
        let mut failing = exporter("webhook/soar", "degraded");
        let reply = "x".repeat(300);
        failing.last_error = Some(format!(
            "HTTP 503 from https://soar.example.com/hooks:\n{reply} END"
        ));
        let text = table(&[failing, exporter("file", "active")], false);
        assert!(text.contains(&format!("{reply} END")), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn the_admin_address_and_token_come_from_the_config_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "file-token-123\n").unwrap();
        let path = dir.path().join("siemrelay.yaml");
        std::fs::write(
            &path,
            format!(
                "exporters: {{ splunk_hec: {{ token: \"${{env:SIEMRELAY_TEST_STATUS_UNSET}}\" }} }}\n\
                 service:\n  admin:\n    endpoint: 0.0.0.0:9797\n    auth: {{ bearer_token: \"${{file:{}}}\" }}\n",
                token_file.display()
            ),
        )
        .unwrap();
        let target = resolve_target(None, None, Some(&path)).unwrap();
        assert_eq!(target.base, "http://127.0.0.1:9797");
        assert_eq!(target.token.as_deref(), Some("file-token-123"));
        let target = resolve_target(Some("10.0.0.5:1"), Some("flag"), Some(&path)).unwrap();
        assert_eq!(
            target,
            AdminTarget {
                base: "http://10.0.0.5:1".into(),
                token: Some("flag".into())
            }
        );
        assert_eq!(
            resolve_target(None, None, None).unwrap().base,
            DEFAULT_ADMIN
        );
        std::fs::write(&path, "service: { pipelines: {} }\n").unwrap();
        let error = resolve_target(None, None, Some(&path)).unwrap_err();
        assert!(error.contains("has no service.admin"), "{error}");
    }

    #[test]
    fn terminal_output_colours_the_status_and_keeps_the_word() {
        let text = table(&[exporter("x", "failed"), exporter("y", "degraded")], true);
        assert!(text.contains("\x1b[1;31mfailed  \x1b[0m"), "{text:?}");
        assert!(text.contains("\x1b[33mdegraded\x1b[0m"), "{text:?}");
    }
}
