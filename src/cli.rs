//! The command line (clap derive): `serve | inject | ca ... | iptables`.
//! Each subcommand's flags and its thin run function live in `cli/<name>.rs`.

pub mod ca;
pub mod inject;
pub mod iptables;
mod log_line;
pub mod serve;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// outrigger: an Istio-compatible sidecar injector and workload CA.
#[derive(Debug, Parser)]
#[command(name = "outrigger", version, about, propagate_version = true)]
pub struct Cli {
    /// Flags every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in `tracing` EnvFilter syntax (also `RUST_LOG`).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook, the CA service and the monitoring port.
    Serve(serve::ServeArgs),
    /// Preview injection offline: the injected object, the patch, or why not.
    Inject(inject::InjectArgs),
    /// The workload certificate authority.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Traffic-capture rules, compatible with Istio's `istio-iptables`.
    Iptables(iptables::IptablesArgs),
}

/// Logs go to stderr so that stdout stays clean for previews and rules.
/// Text logs are coloured only when stderr is a terminal, so files and log
/// collectors get no escape codes.
///
/// A line that cannot be written (stderr on a full disk) is dropped:
/// tracing-subscriber would otherwise report the failure with `eprintln!`,
/// to the same stderr, and that panics. The webhook then failed every
/// admission, its log line being written in the request, and could not
/// start at all; with `failurePolicy: Fail`, a full log disk would have
/// stopped every pod in the cluster from being created.
pub fn init_logging(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // No colours: the single-line writer escapes every control
        // character, so that a logged value cannot drive a terminal either.
        .with_ansi(false)
        .with_writer(|| Stderr)
        .log_internal_errors(false);
    match global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// stderr, counting the lines it cannot take
/// ([`outrigger::metrics::log_line_dropped`]); tracing-subscriber writes each
/// line with one `write_all`.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let written = std::io::stderr().write_all(&log_line::single_line(buf));
        if written.is_err() {
            outrigger::metrics::log_line_dropped();
        }
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Ca(cmd) => ca::run(cmd),
        Command::Iptables(args) => iptables::run(args),
    }
}
