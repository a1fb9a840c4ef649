//! The machine-readable renderings of a preview: `yaml`, `json` and
//! `patch`. Each builds the whole output in memory and returns it, or an
//! error naming the document that could not be written.

use serde_json::{Value, json};

use super::{PreviewError, Previewed};
use crate::inject::Outcome;

/// Every document, injected or unchanged, as YAML, separated by `---` lines
/// (what `istioctl kube-inject` prints), written so that Kubernetes' YAML 1.1
/// reader gets every string back as a string ([`super::yaml`]).
pub(super) fn yaml(results: &[Previewed]) -> Result<String, PreviewError> {
    let mut out = String::new();
    for result in results {
        yaml_document(result, &mut out);
    }
    Ok(out)
}

/// Appends one document to a YAML stream (a `---` line before all but the
/// first).
pub(super) fn yaml_document(result: &Previewed, out: &mut String) {
    if !out.is_empty() {
        out.push_str("---\n");
    }
    out.push_str(&super::yaml::to_string(result.output()));
}

/// The injected object as pretty JSON; with several documents, a
/// `kind: List` (apiVersion v1) holding them all in input order.
pub(super) fn json(results: &[Previewed]) -> Result<String, PreviewError> {
    let rendered = match results {
        [single] => serde_json::to_string_pretty(single.output()).map_err(|source| {
            PreviewError::RenderJson {
                document: single.label.clone(),
                source,
            }
        })?,
        _ => {
            let items: Vec<&Value> = results.iter().map(Previewed::output).collect();
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            serde_json::to_string_pretty(&list).map_err(|source| PreviewError::RenderJson {
                document: results
                    .first()
                    .map(|r| r.label.clone())
                    .unwrap_or_else(|| super::DocumentLabel::unparsed(1)),
                source,
            })?
        }
    };
    Ok(rendered + "\n")
}

/// One compact JSON array of RFC 6902 operations per document, one per
/// line, in input order; `[]` for a document injection leaves alone.
pub(super) fn patch(results: &[Previewed]) -> Result<String, PreviewError> {
    let mut out = String::new();
    for result in results {
        patch_line(result, &mut out)?;
    }
    Ok(out)
}

/// Appends one document's patch line.
pub(super) fn patch_line(result: &Previewed, out: &mut String) -> Result<(), PreviewError> {
    match &result.outcome {
        Outcome::Injected { patch, .. } => {
            let line = serde_json::to_string(patch).map_err(|source| PreviewError::RenderJson {
                document: result.label.clone(),
                source,
            })?;
            out.push_str(&line);
        }
        Outcome::Skipped { .. } => out.push_str("[]"),
    }
    out.push('\n');
    Ok(())
}
