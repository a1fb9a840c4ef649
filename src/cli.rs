//! The command line (clap derive): `serve | inject | ca ... | iptables |
//! version | completion`. Each subcommand's flags and its thin run function
//! live in `cli/<name>.rs`; the small ones and the parsers every subcommand
//! shares (listen addresses, the log filter) live here.

pub mod ca;
pub mod inject;
pub mod iptables;
mod log_line;
pub mod serve;
mod trust_domain;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

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
    /// Log filter: a level (error, warn, info, debug, trace) or `tracing`
    /// EnvFilter directives such as `info,outrigger=debug` (also `RUST_LOG`).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info", value_parser = parse_log_level)]
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
    /// Remove what injection added, as each object's status record names
    /// it (like `istioctl experimental kube-uninject`).
    Uninject(inject::UninjectArgs),
    /// The workload certificate authority.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Traffic-capture rules, compatible with Istio's `istio-iptables`.
    Iptables(iptables::IptablesArgs),
    /// Print outrigger's version and the Istio proxy version it injects by
    /// default (the same as `--version`, with the proxy's).
    Version,
    /// Print a shell completion script: `source <(outrigger completion bash)`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// The shells `outrigger completion` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash: `source <(outrigger completion bash)`.
    Bash,
    /// zsh: `outrigger completion zsh > "${fpath[1]}/_outrigger"`.
    Zsh,
    /// fish: `outrigger completion fish > ~/.config/fish/completions/outrigger.fish`.
    Fish,
}

/// Checks a `--log-level` filter, so that a typo is an error rather than
/// a silent fallback to `info`. EnvFilter alone would take any word
/// (`verbose`) as a target name; here every directive must end in a level.
fn parse_log_level(text: &str) -> Result<String, String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let expected = "expected a level (off, error, warn, info, debug, trace) or directives such as info,outrigger=debug";
    for directive in text.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        let spanned = directive.contains('[');
        if !spanned && !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("{directive:?} does not end in a level: {expected}"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("{e}: {expected}"))
}

/// A listen address: `IP:PORT`, `[IPv6]:PORT`, `:PORT` (every IPv4
/// interface, as Go's and Istio's flags take it) or `localhost:PORT`
/// (loopback only).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let expected = "expected IP:PORT, :PORT (every interface) or localhost:PORT, e.g. 0.0.0.0:15017, :15017 or 127.0.0.1:15017";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} has no port: {expected}"))?;
    let port: u16 = port.parse().map_err(|_| {
        format!("{text:?}: the port {port:?} is not a number from 0 to 65535: {expected}")
    })?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => {
            return Err(format!(
                "{text:?}: {host:?} is not an IP address: {expected}"
            ));
        }
    };
    Ok(SocketAddr::new(ip, port))
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
    let mut filter = tracing_subscriber::EnvFilter::try_new(&global.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The kube client logs every failed request at ERROR, a line per retry
    // of every watch and lease round while the API server is away (96 in an
    // 82-second outage); outrigger's own lines report each failure once, in
    // context. Named explicitly in --log-level, the client's lines come back.
    if !global.log_level.contains("kube_client") {
        filter = filter.add_directive(
            "kube_client::client::builder=off"
                .parse()
                .expect("a valid directive"),
        );
    }
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
        Command::Uninject(args) => inject::run_uninject(args),
        Command::Ca(cmd) => ca::run(cmd),
        Command::Iptables(args) => iptables::run(args),
        Command::Version => {
            println!("{}", version_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            let out = &mut std::io::stdout();
            match shell {
                Shell::Bash => {
                    clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "outrigger", out)
                }
                Shell::Zsh => {
                    clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "outrigger", out)
                }
                Shell::Fish => {
                    clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "outrigger", out)
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `outrigger version`: outrigger's version and the proxy image tag it
/// injects unless `values.global.tag` says otherwise.
fn version_text() -> String {
    let cfg = outrigger::config::Config::default();
    format!(
        "outrigger {}\nistio proxy (default values.global.tag): {}",
        env!("CARGO_PKG_VERSION"),
        cfg.settings().tag
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_ip_port_colon_port_and_localhost() {
        for (text, want) in [
            ("0.0.0.0:15017", "0.0.0.0:15017"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("[::]:15017", "[::]:15017"),
            (":15017", "0.0.0.0:15017"),
            ("localhost:15017", "127.0.0.1:15017"),
        ] {
            assert_eq!(parse_listen(text), Ok(want.parse().unwrap()), "{text}");
        }
        for (text, says) in [
            ("15017", "has no port"),
            (":http", "is not a number"),
            (":99999", "is not a number"),
            ("example.com:15017", "is not an IP address"),
        ] {
            let err = parse_listen(text).unwrap_err();
            assert!(err.contains(says) && err.contains(":PORT"), "{text}: {err}");
        }
    }

    #[test]
    fn log_level_refuses_what_is_not_a_filter() {
        assert!(parse_log_level("debug").is_ok());
        assert!(parse_log_level("info,outrigger=trace").is_ok());
        for bad in ["verbose", "outrigger=loud", "", "info,"] {
            let err = parse_log_level(bad).unwrap_err();
            assert!(err.contains("expected a level"), "{bad}: {err}");
        }
    }
}
