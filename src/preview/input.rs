//! Splitting the preview's input into documents: multi-document YAML (as
//! `kubectl` and `istioctl kube-inject` read it), a JSON object, or a stream
//! of JSON objects. Order is kept; each document must be a Kubernetes object.

use serde::Deserialize;
use serde_json::Value;

use super::{Document, DocumentLabel, PreviewError};
use crate::inject::bounded_yaml::{YamlLimits, check_yaml};

/// Parses `text` into its documents, in order.
///
/// Text whose first character is `{` or `[` is read as JSON (one value or a
/// stream of values); if that fails but the text is valid YAML (JSON-looking
/// flow documents between `---` separators), the YAML reading wins. Empty
/// YAML documents (nothing, or only comments, between separators) are
/// dropped but still counted, so that document numbers match the file.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, PreviewError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents = if looks_like_json(text) {
        match parse_json_stream(text) {
            Ok(docs) => docs,
            Err(json_err) => parse_yaml_stream(text).map_err(|_| json_err)?,
        }
    } else {
        parse_yaml_stream(text)?
    };
    if documents.is_empty() {
        return Err(PreviewError::Empty);
    }
    Ok(documents)
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{' | '['))
}

fn parse_json_stream(text: &str) -> Result<Vec<Document>, PreviewError> {
    let mut documents = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let index = i + 1;
        let object = value.map_err(|source| PreviewError::Json {
            document: DocumentLabel::unparsed(index),
            source,
        })?;
        documents.push(kubernetes_object(index, object, "JSON")?);
    }
    Ok(documents)
}

fn parse_yaml_stream(text: &str) -> Result<Vec<Document>, PreviewError> {
    // A local file may be large, but an alias bomb or a deep flow nesting
    // must not hang the CLI: the generous local bounds hold it.
    check_yaml(text, &YamlLimits::LOCAL_FILE).map_err(|e| PreviewError::NotAnObject {
        document: DocumentLabel::unparsed(1),
        problem: format!("the input (all its documents together) is refused: {e}"),
    })?;
    let mut documents = Vec::new();
    for_each_yaml_document(text, |doc| {
        documents.push(doc);
        Ok(())
    })?;
    Ok(documents)
}

/// Calls `f` on each document of `text` in order, parsing YAML one
/// document at a time, so that only the current document is held parsed
/// (a JSON text is parsed whole first: it may turn out to be YAML). Errors
/// as [`parse_documents`].
pub(super) fn for_each_document(
    text: &str,
    mut f: impl FnMut(Document) -> Result<(), PreviewError>,
) -> Result<(), PreviewError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if looks_like_json(text) {
        return parse_documents(text)?.into_iter().try_for_each(f);
    }
    let mut seen = 0;
    for_each_yaml_document(text, |doc| {
        seen += 1;
        f(doc)
    })?;
    if seen == 0 {
        return Err(PreviewError::Empty);
    }
    Ok(())
}

fn for_each_yaml_document(
    text: &str,
    mut f: impl FnMut(Document) -> Result<(), PreviewError>,
) -> Result<(), PreviewError> {
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let yaml_error = |source| PreviewError::Yaml {
            document: DocumentLabel::unparsed(index),
            source,
        };
        let mut value = serde_yaml::Value::deserialize(de).map_err(yaml_error)?;
        if value.is_null() {
            continue; // an empty document, e.g. a trailing `---`
        }
        value.apply_merge().map_err(yaml_error)?;
        if let Some(tag) = find_tag(&value) {
            return Err(PreviewError::NotAnObject {
                document: DocumentLabel::unparsed(index),
                problem: format!(
                    "YAML tag {tag} is not supported: Kubernetes objects are plain YAML \
                     (mappings, lists, strings, numbers, booleans, null)"
                ),
            });
        }
        let object = serde_json::to_value(&value).map_err(|err| PreviewError::NotAnObject {
            document: DocumentLabel::unparsed(index),
            problem: format!("cannot be read as a JSON object: {err}"),
        })?;
        drop(value);
        f(kubernetes_object(index, object, "YAML")?)?;
    }
    Ok(())
}

/// The first custom tag (`!Thing`) anywhere in the value, if any.
fn find_tag(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::Tagged(tagged) => Some(tagged.tag.to_string()),
        serde_yaml::Value::Sequence(items) => items.iter().find_map(find_tag),
        serde_yaml::Value::Mapping(map) => map
            .iter()
            .find_map(|(k, v)| find_tag(k).or_else(|| find_tag(v))),
        _ => None,
    }
}

/// Checks that a parsed document is a Kubernetes object: a mapping with a
/// string `kind`.
fn kubernetes_object(index: usize, object: Value, syntax: &str) -> Result<Document, PreviewError> {
    let found = match &object {
        Value::Object(map) => match map.get("kind") {
            Some(Value::String(kind)) if !kind.is_empty() => {
                return Ok(Document { index, object });
            }
            Some(Value::String(_)) | None => "a mapping without kind".to_owned(),
            Some(other) => format!("a mapping whose kind is {}", json_type(other)),
        },
        other => json_type(other).to_owned(),
    };
    let document = match object {
        Value::Object(_) => DocumentLabel::of(index, &object),
        _ => DocumentLabel::unparsed(index),
    };
    Err(PreviewError::NotAnObject {
        document,
        problem: format!(
            "not a Kubernetes object: expected a {syntax} mapping with apiVersion and kind \
             (kind: List to hold several), found {found}"
        ),
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
