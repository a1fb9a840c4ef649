//! The offline preview: what injection would do to a file of Kubernetes
//! objects, rendered for a person or a script.
//!
//! This module owns the path from input text to output text around the pure
//! engine ([`crate::inject::inject`]): it splits multi-document YAML or JSON
//! into documents (keeping their order), runs the engine on each one with the
//! same [`Context`] and [`Config`] the webhook would use, and renders the
//! outcomes in one of the [`Format`]s. It performs no IO itself, so the
//! `outrigger inject` command and the webhook's `/preview` endpoint share it,
//! and what the preview shows is what the webhook does.
//!
//! Nothing is half-written: [`preview`] returns the whole output or an error,
//! never a part of the output; every error names the document (its position
//! in the input, and its kind and name when known) and the problem.

mod explain;
mod input;
mod labels;
mod render;
#[cfg(test)]
mod tests;
mod yaml;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use tracing::debug;

use crate::config::Config;
use crate::inject::{self, Context, InjectError, Outcome};

pub use input::parse_documents;
pub use labels::{NamespaceLabelError, parse_namespace_label, parse_namespace_labels};

/// How the preview is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Every document, injected or unchanged, as YAML separated by `---`,
    /// like `istioctl kube-inject`.
    #[default]
    Yaml,
    /// The injected object as JSON; a `kind: List` holding every document
    /// when the input had several.
    Json,
    /// The RFC 6902 operations of each document as a JSON array, one array
    /// per line in input order (`[]` for a document left alone).
    Patch,
    /// For people: the decision, the rule that decided it, and what would be
    /// added, per document.
    Explain,
}

impl Format {
    /// Every format, in the order they are documented.
    pub const ALL: [Format; 4] = [Format::Yaml, Format::Json, Format::Patch, Format::Explain];

    /// The format's name on the command line and in query strings.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Patch => "patch",
            Format::Explain => "explain",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?}: expected one of yaml, json, patch, explain")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// One document of the input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its 1-based position among the input's documents (empty YAML
    /// documents count, so the number matches what a reader of the file
    /// counts between `---` separators).
    pub index: usize,
    /// The object, as JSON: the engine works on JSON so that fields it does
    /// not know survive untouched.
    pub object: Value,
}

impl Document {
    /// How errors and `explain` name this document.
    pub fn label(&self) -> DocumentLabel {
        DocumentLabel::of(self.index, &self.object)
    }
}

/// A document's name for people: its position, and its kind and
/// `namespace/name` when the object says them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentLabel {
    /// 1-based position in the input.
    pub index: usize,
    /// `kind`, when it is a string.
    pub kind: Option<String>,
    /// `metadata.namespace`, when it is a string.
    pub namespace: Option<String>,
    /// `metadata.name`, else `metadata.generateName`, when a string.
    pub name: Option<String>,
}

impl DocumentLabel {
    /// The label of the `index`-th document holding `object`.
    pub fn of(index: usize, object: &Value) -> DocumentLabel {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        DocumentLabel {
            index,
            kind: text("/kind").map(str::to_owned),
            namespace: text("/metadata/namespace").map(str::to_owned),
            name: text("/metadata/name")
                .or_else(|| text("/metadata/generateName"))
                .map(str::to_owned),
        }
    }

    /// A document whose content is unknown (it could not be parsed).
    pub fn unparsed(index: usize) -> DocumentLabel {
        DocumentLabel {
            index,
            kind: None,
            namespace: None,
            name: None,
        }
    }

    /// `kind namespace/name`, as much of it as is known (empty when nothing).
    pub fn object_ref(&self) -> String {
        let name = match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            (None, Some(name)) => Some(name.clone()),
            _ => None,
        };
        match (&self.kind, name) {
            (Some(kind), Some(name)) => format!("{kind} {name}"),
            (Some(kind), None) => kind.clone(),
            (None, Some(name)) => name,
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for DocumentLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = self.object_ref();
        if object.is_empty() {
            write!(f, "document {}", self.index)
        } else {
            write!(f, "document {} ({object})", self.index)
        }
    }
}

/// Why a preview could not be made. Every variant names the document.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The input holds no document at all.
    #[error("the input holds no document: expected one or more Kubernetes objects as YAML or JSON")]
    Empty,
    /// A YAML document is not valid YAML.
    #[error("{document}: invalid YAML: {source}")]
    Yaml {
        /// Which document.
        document: DocumentLabel,
        /// The parser's message, with its line and column in the input.
        #[source]
        source: serde_yaml::Error,
    },
    /// A JSON document is not valid JSON.
    #[error("{document}: invalid JSON: {source}")]
    Json {
        /// Which document.
        document: DocumentLabel,
        /// The parser's message, with its line and column in the input.
        #[source]
        source: serde_json::Error,
    },
    /// A document is valid YAML/JSON but cannot be a Kubernetes object.
    #[error("{document}: {problem}")]
    NotAnObject {
        /// Which document.
        document: DocumentLabel,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The engine rejected the object (e.g. an invalid annotation value).
    #[error("{document}: {source}")]
    Inject {
        /// Which document.
        document: DocumentLabel,
        /// The engine's message, naming the field, the value and the
        /// accepted form.
        #[source]
        source: InjectError,
    },
    /// A result could not be written as JSON.
    #[error("{document}: cannot write as JSON: {source}")]
    RenderJson {
        /// Which document.
        document: DocumentLabel,
        /// The serializer's message.
        #[source]
        source: serde_json::Error,
    },
}

impl PreviewError {
    /// The document the error is about (`None` for an empty input).
    pub fn document(&self) -> Option<&DocumentLabel> {
        match self {
            PreviewError::Empty => None,
            PreviewError::Yaml { document, .. }
            | PreviewError::Json { document, .. }
            | PreviewError::NotAnObject { document, .. }
            | PreviewError::Inject { document, .. }
            | PreviewError::RenderJson { document, .. } => Some(document),
        }
    }
}

/// One document and what the engine made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Previewed {
    /// The document's name for people.
    pub label: DocumentLabel,
    /// The document as it was given.
    pub original: Value,
    /// The engine's answer.
    pub outcome: Outcome,
}

impl Previewed {
    /// The object as it would be admitted: the injected one, or the original
    /// when injection was skipped.
    pub fn output(&self) -> &Value {
        match &self.outcome {
            Outcome::Injected { mutated, .. } => mutated,
            Outcome::Skipped { .. } => &self.original,
        }
    }
}

/// Runs the engine on every document, in order. Stops at the first
/// document the engine rejects, and names it.
pub fn inject_all(
    documents: Vec<Document>,
    ctx: &Context,
    cfg: &Config,
    on_warning: &mut dyn FnMut(String),
) -> Result<Vec<Previewed>, PreviewError> {
    documents
        .into_iter()
        .map(|doc| inject_one(doc, ctx, cfg, on_warning))
        .collect()
}

/// Runs the engine on one document; an error names it. Warnings about the
/// document (a `sidecar.istio.io/inject` value Istio would ignore, ...) go
/// to `on_warning`, prefixed with the object they are about.
fn inject_one(
    doc: Document,
    ctx: &Context,
    cfg: &Config,
    on_warning: &mut dyn FnMut(String),
) -> Result<Previewed, PreviewError> {
    let label = doc.label();
    for warning in inject::warnings(&doc.object) {
        on_warning(format!("{}: {warning}", label.object_ref()));
    }
    let outcome = inject::inject(&doc.object, ctx, cfg).map_err(|source| PreviewError::Inject {
        document: label.clone(),
        source,
    })?;
    if let Outcome::Injected { decision, .. } = &outcome {
        for warning in decision.all_warnings() {
            on_warning(format!("{}: {warning}", label.object_ref()));
        }
    }
    match &outcome {
        Outcome::Injected { decision, .. } => debug!(
            document = label.index,
            object = %label.object_ref(),
            rule = %decision.rule,
            "injected"
        ),
        Outcome::Skipped { reason } => debug!(
            document = label.index,
            object = %label.object_ref(),
            reason = reason.name(),
            "skipped"
        ),
    }
    Ok(Previewed {
        label,
        original: doc.object,
        outcome,
    })
}

/// Writes the outcomes in `format`. The whole output, or an error.
pub fn render(results: &[Previewed], format: Format) -> Result<String, PreviewError> {
    match format {
        Format::Yaml => render::yaml(results),
        Format::Json => render::json(results),
        Format::Patch => render::patch(results),
        Format::Explain => Ok(explain::explain(results)),
    }
}

/// The whole preview: parse `input`, inject every document, render in
/// `format`. Returns the complete output or the first error (so that a
/// failure prints nothing).
///
/// YAML and patch output are made document by document: each is parsed,
/// injected and rendered to text before the next is read, so that memory
/// holds the input and output texts and one document's objects, not every
/// document's parsed, injected and patched forms at once (a file of 2,000
/// Deployments peaked at 224 times its size). JSON (one `List` of them
/// all) and explanations (which number the documents) take them all.
pub fn preview(
    input: &str,
    format: Format,
    ctx: &Context,
    cfg: &Config,
    on_warning: &mut dyn FnMut(String),
) -> Result<String, PreviewError> {
    let mut out = String::new();
    match format {
        Format::Yaml => input::for_each_document(input, |doc| {
            render::yaml_document(&inject_one(doc, ctx, cfg, on_warning)?, &mut out);
            Ok(())
        })?,
        Format::Patch => input::for_each_document(input, |doc| {
            render::patch_line(&inject_one(doc, ctx, cfg, on_warning)?, &mut out)
        })?,
        Format::Json | Format::Explain => {
            let documents = parse_documents(input)?;
            let results = inject_all(documents, ctx, cfg, on_warning)?;
            out = render(&results, format)?;
        }
    }
    Ok(out)
}
