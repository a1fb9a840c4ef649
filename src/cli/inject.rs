//! `outrigger inject`: preview injection offline. A thin layer over
//! [`outrigger::preview`]: read the input and the configuration, build the
//! engine's context from the flags, print the preview. Warnings that do
//! not stop injection (an invalid `sidecar.istio.io/inject` value) go to
//! stderr, as the webhook returns them to kubectl.
//!
//! `outrigger uninject`: every document without what injection added
//! ([`outrigger::inject::uninject`]), as YAML.
//!
//! Exit status: 0 on success; 1 on bad input (an unreadable file, a document
//! that is not a valid object, a value the engine rejects, a malformed
//! `--set`, `--values`, `--config` or `--namespace-label`), with one message
//! on stderr naming what is wrong and nothing on stdout. Usage errors found
//! by the argument parser itself exit 2, as clap does.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use outrigger::config::{Config, ConfigBuilder, ConfigError};
use outrigger::inject::Context;
use outrigger::preview::{self, Format};

/// Flags of `outrigger inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The objects to preview: a file of YAML documents, a JSON object or a
    /// stream of JSON objects; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    pub filename: String,
    /// What to print.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// The namespace the objects are admitted into (default: each object's
    /// own, else `default`).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// A label of that namespace, e.g. `istio-injection=enabled`
    /// (repeatable). Without any, the namespace's labels count as unknown.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE")]
    pub namespace_labels: Vec<String>,
    /// The injector's configuration file (`values:`, `meshConfig:`,
    /// `config:`), as `outrigger serve` reads it. Default: Istio's defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Install values to merge over the configuration (repeatable, in
    /// order): plain values, or an IstioOperator whose `spec.values` is used.
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// One override `path=value` applied last (repeatable, in order), e.g.
    /// `values.global.proxy.image=proxyv2`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

/// The `--output` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Every document, injected or unchanged, as YAML (like `istioctl kube-inject`).
    Yaml,
    /// The injected object as JSON; a `kind: List` when the input had several.
    Json,
    /// The RFC 6902 patch of each document, one JSON array per line.
    Patch,
    /// The decision, the rule behind it, and what would be added.
    Explain,
}

impl From<OutputFormat> for Format {
    fn from(value: OutputFormat) -> Self {
        match value {
            OutputFormat::Yaml => Format::Yaml,
            OutputFormat::Json => Format::Json,
            OutputFormat::Patch => Format::Patch,
            OutputFormat::Explain => Format::Explain,
        }
    }
}

/// Flags of `outrigger uninject`.
#[derive(Debug, Args)]
pub struct UninjectArgs {
    /// The objects: a file of YAML documents, a JSON object or a stream of
    /// JSON objects; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    pub filename: String,
    /// The injector's configuration file, for the annotations it injects
    /// (`sidecarInjectorWebhook.injectedAnnotations`). Default: Istio's
    /// defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs `outrigger inject`.
pub fn run(args: InjectArgs) -> anyhow::Result<ExitCode> {
    print_or_fail(render(&args))
}

/// Runs `outrigger uninject`.
pub fn run_uninject(args: UninjectArgs) -> anyhow::Result<ExitCode> {
    print_or_fail(render_uninjected(&args))
}

/// Every document without what injection added, as YAML separated by
/// `---` lines; documents without a status record are printed unchanged.
fn render_uninjected(args: &UninjectArgs) -> Result<String, String> {
    let cfg = match &args.config {
        Some(path) => Config::load(path).map_err(|e| format!("--config: {e}"))?,
        None => Config::default(),
    };
    let input = read_input(&args.filename)?;
    let documents = preview::parse_documents(&input).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (i, doc) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let plain = outrigger::inject::uninject(&doc.object, &cfg);
        let text = serde_yaml::to_string(plain.as_ref().unwrap_or(&doc.object))
            .map_err(|e| format!("{}: cannot write it as YAML: {e}", doc.label().object_ref()))?;
        out.push_str(&text);
    }
    Ok(out)
}

fn print_or_fail(output: Result<String, String>) -> anyhow::Result<ExitCode> {
    let output = match output {
        Ok(output) => output,
        Err(message) => {
            // One line naming what is wrong; the library errors already
            // carry their causes, so only the display is printed.
            eprintln!("error: {message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // The reader went away (`| head`): what it wanted, it got.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        result => {
            result.context("cannot write the preview to standard output")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Everything but the printing: the whole output, or the message for a
/// user's mistake.
fn render(args: &InjectArgs) -> Result<String, String> {
    let ctx = context(args)?;
    let cfg = config(args)?;
    let input = read_input(&args.filename)?;
    // Document by document for YAML and patch output (memory bounded by
    // the texts and one document's objects); warnings as each is read.
    preview::preview(&input, args.output.into(), &ctx, &cfg, &mut |warning| {
        eprintln!("warning: {warning}")
    })
    .map_err(|e| e.to_string())
}

fn context(args: &InjectArgs) -> Result<Context, String> {
    let namespace_labels = if args.namespace_labels.is_empty() {
        None
    } else {
        let labels = preview::parse_namespace_labels(&args.namespace_labels)
            .map_err(|e| format!("--namespace-label: {e}"))?;
        Some(labels)
    };
    if args.namespace.as_deref() == Some("") {
        return Err("--namespace: expected a namespace name, got an empty string".to_owned());
    }
    Ok(Context {
        namespace: args.namespace.clone(),
        namespace_labels,
    })
}

/// Defaults, then `--config`, then each `--values`, then each `--set`,
/// then the check of keys that only work together.
/// Each message names the flag (and the file or assignment) it is about.
fn config(args: &InjectArgs) -> Result<Config, String> {
    let mut cfg = match &args.config {
        // The config's errors name the file and the key themselves.
        Some(path) => ConfigBuilder::load(path).map_err(|e| format!("--config: {e}"))?,
        None => ConfigBuilder::new(),
    };
    for path in &args.values {
        let text = read_file(path).map_err(|e| format!("--values {}: {e}", path.display()))?;
        cfg.merge_values_yaml(&text)
            .map_err(|e| format!("--values {}: {e}", path.display()))?;
    }
    for assignment in &args.set {
        cfg.set(assignment).map_err(|e| match e {
            // Already says `--set "..."` and the expected form.
            ConfigError::BadAssignment(_) => e.to_string(),
            _ => format!("--set {assignment:?}: {e}"),
        })?;
    }
    // Names the keys to change itself, whichever layer set them.
    cfg.build().map_err(|e| e.to_string())
}

fn read_input(filename: &str) -> Result<String, String> {
    if filename == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the objects from standard input: {e}"))?;
        Ok(text)
    } else {
        read_file(Path::new(filename)).map_err(|e| format!("-f {filename}: {e}"))
    }
}

fn read_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))
}
