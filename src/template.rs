//! Istio's template language: Go's `text/template` with the Sprig functions
//! Istio's templates use and the functions Istio's injector registers
//! (`pkg/kube/inject/template.go`), evaluated over JSON data. User
//! templates (`values.sidecarInjectorWebhook.templates`) are written in it.
//!
//! A template is parsed once, when the configuration loads: a syntax error
//! or an unknown function is refused then, with the template's name and
//! line. Running it is bounded ([`Limits`]): the data a template sees comes
//! from admission requests, so a loop over it cannot run away. Pure: no IO.
//!
//! Written here rather than taken from a crate: `gtmpl`, the Go-template
//! crate, has had no release since 2021, has no budget on execution and no
//! Sprig functions; the subset Istio's templates use is small.
//!
//! Differences from Go, deliberately lenient: a field of nil is nil (Go
//! fails on some nil pointers), Go field names reach JSON keys (`.Spec` is
//! `spec`), and `env` answers its default (the engine reads no environment).

mod exec;
mod funcs;
mod lex;
mod parse;

use std::collections::BTreeMap;

use serde_json::Value;

pub use funcs::NAMES as FUNCTIONS;

/// How much one execution may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes run, commands evaluated and loop iterations, together.
    pub max_steps: u64,
    /// Bytes of output.
    pub max_output: usize,
    /// Nesting of `{{template}}` calls.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 200,000 steps, 1 MiB of output (a pod is at most ~1.5 MB in
    /// Kubernetes' store), 32 nested calls: far above what Istio's own
    /// templates need for a pod of a hundred containers.
    fn default() -> Self {
        Limits {
            max_steps: 200_000,
            max_output: 1 << 20,
            max_depth: 32,
        }
    }
}

/// A template that failed to parse or to run: its name, the line, why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template.
    #[error("template {name:?}, line {line}: {message}")]
    Parse {
        /// The template's name.
        name: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Running it failed (a function's error, or a limit).
    #[error("template {name:?}, line {line}: {message}")]
    Exec {
        /// The template's name.
        name: String,
        /// The line of the action that failed (1-based).
        line: usize,
        /// What went wrong.
        message: String,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    name: String,
    root: Vec<parse::Node>,
    defines: BTreeMap<String, Vec<parse::Node>>,
}

impl Template {
    /// Parses `text`, naming it `name` in errors.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let error = |(line, message): (usize, String)| TemplateError::Parse {
            name: name.to_string(),
            line,
            message,
        };
        let items = lex::items(text).map_err(error)?;
        let parsed = parse::parse(items, &funcs::known).map_err(error)?;
        Ok(Template {
            name: name.to_string(),
            root: parsed.root,
            defines: parsed.defines,
        })
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the template with `data` as dot, within `limits`.
    pub fn execute(&self, data: &Value, limits: Limits) -> Result<String, TemplateError> {
        let mut exec = exec::Exec::new(self, data, limits);
        exec.run_root()
            .map_err(|(line, message)| TemplateError::Exec {
                name: self.name.clone(),
                line,
                message,
            })?;
        Ok(exec.out)
    }
}

#[cfg(test)]
mod tests;
