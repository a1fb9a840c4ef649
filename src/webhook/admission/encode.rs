//! The bytes of a response review: kube-core's [`AdmissionResponse`] in the
//! request's `apiVersion`, with the patch (if any) as the API server expects
//! it, `patch` the base64 of the JSON patch and `patchType: JSONPatch`.
//!
//! kube-core keeps `patch` as raw bytes, which serde writes as an array of
//! numbers, while the API server expects base64 (kube-rs issue 1781); so
//! kube-core's own `patch` stays empty and the patch is spliced in here.
//! For an injecting review this is most of the webhook's own work besides
//! the engine, hence the care: the patch's JSON is written by
//! [`super::patch_json`] and base64-encoded with SIMD where the CPU has it.

use kube::core::admission::AdmissionResponse;
use serde_json::Value;

use super::patch_json;

/// The response review as written on the wire.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: &'a AdmissionResponse,
}

/// Serializes the response review, with the patch (if any) base64-encoded.
///
/// The base64 text is spliced in as is: its alphabet never needs JSON
/// escaping.
pub(super) fn encode_response(
    response: &AdmissionResponse,
    patch: Option<&json_patch::Patch>,
) -> Vec<u8> {
    let wire = WireReview {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response,
    };
    // Plain structs, strings and maps: serialization cannot fail.
    let mut out = serde_json::to_vec(&wire).unwrap_or_default();
    let Some(patch) = patch else {
        return out;
    };
    let patch = patch_json::patch_to_vec(patch);
    // `out` ends with the response object's `}` and the review's `}`.
    if !out.ends_with(b"}}") {
        return encode_response_slowly(&out, &patch);
    }
    out.truncate(out.len() - 2);
    out.reserve(encoded_len(patch.len()) + 40);
    out.extend_from_slice(b",\"patch\":\"");
    append_base64(&patch, &mut out);
    out.extend_from_slice(b"\",\"patchType\":\"JSONPatch\"}}");
    out
}

/// The length of the padded base64 of `len` bytes.
fn encoded_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// Appends the standard, padded base64 of `bytes` (RFC 4648 section 4, what
/// Kubernetes' `[]byte` fields use).
pub(super) fn append_base64(bytes: &[u8], out: &mut Vec<u8>) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

/// The same answer through `serde_json::Value`, should the fast path's
/// assumption about the serialized shape ever not hold.
pub(super) fn encode_response_slowly(review: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(review).unwrap_or(Value::Null);
    if let Some(Value::Object(response)) = value.get_mut("response") {
        let encoded = base64_simd::STANDARD.encode_to_string(patch);
        response.insert("patch".into(), Value::String(encoded));
        response.insert("patchType".into(), Value::String("JSONPatch".into()));
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests;
