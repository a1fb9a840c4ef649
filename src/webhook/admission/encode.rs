//! The bytes of a response review: kube-core's [`AdmissionResponse`] in the
//! request's `apiVersion`, with the patch (if any) as the API server expects
//! it, `patch` the base64 of the JSON patch and `patchType: JSONPatch`.
//!
//! kube-core keeps `patch` as raw bytes, which serde writes as an array of
//! numbers, while the API server expects base64 (kube-rs issue 1781); so
//! kube-core's own `patch` stays empty and the patch is spliced in here.
//! For an injecting review this is most of the webhook's own work besides
//! the engine, hence the care: the patch's JSON is written by
//! the engine directly (`inject::inject_patch`) and base64-encoded with SIMD where the CPU has it.

use kube::core::admission::AdmissionResponse;
use serde_json::Value;

/// The response review as written on the wire.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: &'a AdmissionResponse,
}

/// Room for the response review without its patch (uid, status, warnings).
const ENVELOPE_CAPACITY: usize = 512;

/// Serializes the response review, with the patch (if any) base64-encoded.
///
/// The base64 text is spliced in as is: its alphabet never needs JSON
/// escaping.
pub(super) fn encode_response(response: &AdmissionResponse, patch: Option<&[u8]>) -> Vec<u8> {
    let wire = WireReview {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response,
    };
    // The whole answer in one allocation: the envelope is a few hundred
    // bytes, the patch's base64 is known to the byte.
    let patch_room = patch.map_or(0, |t| encoded_len(t.len()) + 40);
    let mut out = Vec::with_capacity(ENVELOPE_CAPACITY + patch_room);
    // Plain structs, strings and maps: serialization cannot fail.
    if serde_json::to_writer(&mut out, &wire).is_err() {
        out.clear();
    }
    let Some(text) = patch else {
        return out;
    };
    // `out` ends with the response object's `}` and the review's `}`.
    if !out.ends_with(b"}}") {
        return encode_response_slowly(&out, text);
    }
    out.truncate(out.len() - 2);
    out.extend_from_slice(b",\"patch\":\"");
    append_base64(text, &mut out);
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
