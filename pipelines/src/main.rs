//! The `siemrelay` command.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// mimalloc: the hot path allocates many small, short-lived objects per batch (parsed JSON,
/// events, encoded bodies); measured on the reference pipeline it costs ~20% less CPU than glibc
/// malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use siemrelay_pipelines::{build_info, commands};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// siemrelay forwards security events from receivers (webhook, OTLP, files, Kafka) through
/// processors (filter, enrich, batch, sign) to SIEM exporters (Splunk HEC, Datadog,
/// Elasticsearch, CloudWatch Logs, Sentinel, QRadar, syslog, Kafka, webhooks, plugins), and never
/// loses an event it acknowledged.
#[derive(Parser)]
#[command(
    name = "siemrelay",
    version,
    after_help = "Logging:\n  --log-format human|json   log lines on stderr as readable text (default) or one JSON object\n                            per line; before or after any command. RUST_LOG sets the level (default info).\n\nExamples:\n  siemrelay run                                  # embedded default: webhook on 127.0.0.1:8088 → ./siemrelay-data/*.ndjson\n  siemrelay run --config pipeline.yaml\n  siemrelay validate --config pipeline.yaml\n  siemrelay test splunk_hec/prod --config pipeline.yaml\n  siemrelay tap webhook --config pipeline.yaml --sample 10\n  siemrelay verify --keys keys.yaml --chain ./siemrelay-data/events-2026-11-25.ndjson"
)]
struct Cli {
    /// How log lines (on stderr) are written. Accepted before or after any command; hidden from
    /// the options lists and described once in the top-level help's "Logging" section.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true, hide = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines (the embedded default config when --config is not given).
    Run {
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Mark the losses the disk queues find when they open (and earlier unacknowledged
        /// ones) as seen by an operator: they are logged and counted, but leave the status.
        #[arg(long)]
        acknowledge_queue_losses: bool,
    },
    /// Check a pipeline file; exit 1 and list every error if it is not valid.
    Validate {
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Send one synthetic `test_connection` event through an exporter and report the outcome.
    Test {
        /// Exporter id, e.g. `splunk_hec/prod` (`--exporter ID` works too).
        #[arg(value_name = "EXPORTER_ID")]
        exporter: String,
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Deliver archived events (NDJSON, e.g. the file exporter's output) through an exporter:
    /// `send ID FILE…` or `send --exporter ID FILE…` (`-` reads standard input).
    Send {
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Exporter id (instead of the first positional argument).
        #[arg(long = "exporter")]
        exporter_flag: Option<String>,
        /// The exporter id (unless --exporter is given), then files (NDJSON or a JSON array,
        /// plain or gzip) or `-`.
        #[arg(required = true)]
        args: Vec<String>,
        /// Send only events at or after this time (RFC 3339, e.g. 2026-11-20T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: Option<siemrelay_core::Timestamp>,
        /// Send only events before this time (RFC 3339; exclusive).
        #[arg(long, value_parser = parse_time)]
        until: Option<siemrelay_core::Timestamp>,
        /// Read the objects the way this receiver does (its `mapping` and `strict`).
        #[arg(long)]
        receiver: Option<String>,
        /// Run this pipeline's processors (filter, enrich, sign…) on the events first.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Show the exporters' status of a running siemrelay (from its admin API).
    Status {
        /// The running siemrelay's pipeline file: its `service.admin` gives the address and the
        /// token.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Admin address, e.g. `127.0.0.1:8686` or `http://host:8686` (default: from --config,
        /// else 127.0.0.1:8686).
        #[arg(long)]
        admin: Option<String>,
        /// Bearer token of the admin API (default: from --config).
        #[arg(long, env = "SIEMRELAY_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Print the events passing a component of a running siemrelay, live, one JSON line each
    /// (from its admin API; notices on stderr).
    Tap {
        /// Component id: a receiver, processor or exporter (`webhook`, `filter/high`,
        /// `splunk_hec/prod`).
        #[arg(value_name = "COMPONENT_ID")]
        component: String,
        /// Print one event in N.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        sample: u64,
        /// Stop after this many events.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// The running siemrelay's pipeline file: its `service.admin` gives the address and the
        /// token.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Admin address, e.g. `127.0.0.1:8686` (default: from --config, else 127.0.0.1:8686).
        #[arg(long)]
        admin: Option<String>,
        /// Bearer token of the admin API (default: from --config).
        #[arg(long, env = "SIEMRELAY_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Inspect, resend or delete an exporter's dead-lettered events.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Inspect a disk queue directory (read-only; safe next to a running siemrelay).
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Check the signatures (and optionally the chain) of signed events in NDJSON.
    Verify {
        /// YAML file with the `keys:` list of the sign processor.
        #[arg(long)]
        keys: PathBuf,
        /// Also check that events form an unbroken chain.
        #[arg(long)]
        chain: bool,
        /// The shape the events were written in by an exporter's `schema` (`flat`, `ecs`,
        /// `ocsf`): each event's signature is checked over the native form it carries, and its
        /// visible fields must be exactly that form reshaped.
        #[arg(long, default_value = "native", value_parser = ["native", "flat", "ecs", "ocsf"])]
        schema: String,
        /// NDJSON file of events, or `-` for standard input.
        events: PathBuf,
    },
    /// Print a shell completion script: `siemrelay completions bash > /etc/bash_completion.d/siemrelay`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write `siemrelay.1`, `siemrelay-run.1`, … into this directory instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Print pending records, segments and any damage of a disk queue as JSON.
    Inspect {
        /// The queue directory (e.g. ./siemrelay-data/queues/splunk_hec__prod).
        directory: PathBuf,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List dead-lettered events with their errors.
    List {
        /// Exporter id, e.g. `splunk_hec/prod` (`--exporter ID` works too).
        #[arg(value_name = "EXPORTER_ID")]
        exporter: String,
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Resend dead-lettered events through the exporter (event ids kept).
    Replay {
        /// Exporter id, e.g. `splunk_hec/prod` (`--exporter ID` works too).
        #[arg(value_name = "EXPORTER_ID")]
        exporter: String,
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Delete dead-lettered events (asks for confirmation).
    Purge {
        /// Exporter id, e.g. `splunk_hec/prod` (`--exporter ID` works too).
        #[arg(value_name = "EXPORTER_ID")]
        exporter: String,
        /// Pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// The command line definition with the version texts of [`build_info`]: `-V` gives the
/// version and commit, `--version` also the build and what is compiled in.
fn cli_command() -> clap::Command {
    Cli::command()
        .version(build_info::short_version())
        .long_version(build_info::long_version())
}

/// `siemrelay completions SHELL` (generated into memory first: the generator panics on a write
/// error such as a closed pipe).
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli_command(), "siemrelay", &mut script);
    match std::io::stdout().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the completion script: {e}");
            ExitCode::from(1)
        }
    }
}

/// `siemrelay man [--dir DIR]`.
fn print_man(dir: Option<&std::path::Path>) -> ExitCode {
    let result = match dir {
        Some(dir) => clap_mangen::generate_to(cli_command(), dir),
        None => clap_mangen::Man::new(cli_command()).render(&mut std::io::stdout()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let target = dir.map_or("standard output".to_string(), |d| d.display().to_string());
            eprintln!("error: cannot write the man page to {target}: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--exporter ID` (or `--exporter=ID`) after `test` or `dlq list|replay|purge` becomes the
/// positional exporter id, so the help can show the id as the required argument it is while
/// both spellings keep working. `send` takes `--exporter` itself (its positionals are files).
fn exporter_flag_as_positional(args: Vec<OsString>) -> Vec<OsString> {
    let takes_positional_id = |words: &[OsString]| match words.get(1).and_then(|w| w.to_str()) {
        Some("test") => true,
        Some("dlq") => matches!(
            words.get(2).and_then(|w| w.to_str()),
            Some("list" | "replay" | "purge")
        ),
        _ => false,
    };
    if !takes_positional_id(&args) {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut words = args.into_iter();
    while let Some(word) = words.next() {
        match word.to_str() {
            Some("--") => {
                out.push(word);
                out.extend(words);
                break;
            }
            Some("--exporter") => match words.next() {
                Some(value) => out.push(value),
                None => out.push(word),
            },
            Some(text) if text.starts_with("--exporter=") => {
                out.push(OsString::from(&text["--exporter=".len()..]));
            }
            _ => out.push(word),
        }
    }
    out
}

fn main() -> ExitCode {
    siemrelay_pipelines::allocator::tune();
    let args = exporter_flag_as_positional(std::env::args_os().collect());
    let cli =
        Cli::from_arg_matches(&cli_command().get_matches_from(args)).unwrap_or_else(|e| e.exit());
    commands::init_logging(matches!(cli.log_format, LogFormat::Json));
    match cli.command {
        Command::Run {
            config,
            acknowledge_queue_losses,
        } => {
            siemrelay_exporters::delivery::disk_queue::acknowledge_losses_at_open(
                acknowledge_queue_losses,
            );
            commands::run::run(config.as_deref())
        }
        Command::Validate { config } => commands::validate::validate(&config),
        Command::Test { exporter, config } => commands::test::test(&exporter, &config),
        Command::Verify {
            keys,
            chain,
            schema,
            events,
        } => commands::verify::verify(&keys, chain, &schema, &events),
        Command::Send {
            config,
            exporter_flag,
            args,
            since,
            until,
            receiver,
            pipeline,
        } => {
            let (exporter, files) = match exporter_flag {
                Some(id) => (id, args),
                None => {
                    let mut args = args.into_iter();
                    (args.next().unwrap_or_default(), args.collect())
                }
            };
            if files.is_empty() {
                eprintln!(
                    "error: give the files to send: siemrelay send EXPORTER_ID FILE... --config FILE"
                );
                return ExitCode::from(2);
            }
            let files: Vec<PathBuf> = files.into_iter().map(PathBuf::from).collect();
            let options = commands::send::SendOptions {
                since,
                until,
                receiver,
                pipeline,
            };
            commands::send::send(&exporter, &config, &files, &options)
        }
        Command::Completions { shell } => print_completions(shell),
        Command::Man { dir } => print_man(dir.as_deref()),
        Command::Status {
            config,
            admin,
            token,
        } => commands::status::status(admin.as_deref(), token.as_deref(), config.as_deref()),
        Command::Tap {
            component,
            sample,
            limit,
            config,
            admin,
            token,
        } => commands::tap::tap(&commands::tap::TapOptions {
            component: &component,
            sample,
            limit,
            admin: admin.as_deref(),
            token: token.as_deref(),
            config: config.as_deref(),
        }),
        Command::Queue {
            action: QueueAction::Inspect { directory },
        } => commands::queue_inspect(&directory),
        Command::Dlq { action } => match action {
            DlqAction::List { exporter, config } => commands::dlq::list(&exporter, &config),
            DlqAction::Replay { exporter, config } => commands::dlq::replay(&exporter, &config),
            DlqAction::Purge {
                exporter,
                config,
                yes,
            } => commands::dlq::purge(&exporter, &config, yes),
        },
    }
}

/// Parses an RFC 3339 time for `--since` / `--until`.
fn parse_time(text: &str) -> Result<siemrelay_core::Timestamp, String> {
    siemrelay_core::Timestamp::parse_rfc3339(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time such as 2026-11-20T09:00:00Z"))
}
