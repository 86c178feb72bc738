//! The commands of the `siemrelay` binary.

pub mod deliver;
pub mod dlq;
pub mod exporter_command;
pub mod logging;
pub mod notify;
pub mod run;
pub mod send;
pub mod status;
pub mod tap;
pub mod test;
pub mod validate;
pub mod verify;

/// Sets up `tracing` output on stderr (see [`logging`]): readable lines, or JSON with
/// `--log-format json`. The level comes from `RUST_LOG` (default `info`).
pub fn init_logging(json: bool) {
    logging::init(json);
}

/// A multi-threaded tokio runtime for a command.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("siemrelay")
        .build()
}

/// `siemrelay queue inspect DIR`: the disk queue's state as JSON; exit 1 when it is damaged.
pub fn queue_inspect(directory: &std::path::Path) -> std::process::ExitCode {
    use siemrelay_exporters::delivery::disk_queue::DiskQueue;
    match DiskQueue::inspect(directory) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            if report.is_clean() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {}: {e}", directory.display());
            std::process::ExitCode::from(2)
        }
    }
}
