//! The response's bytes against independent encoders: the `base64` crate's
//! standard engine for the patch's base64, serde_json for everything else.

use base64::Engine as _;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};

use super::*;

fn reference_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn base64_matches_the_base64_crate_for_every_length_up_to_300() {
    // xorshift64: random bytes that repeat from run to run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..=300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut out = b"prefix".to_vec();
        append_base64(&bytes, &mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(
            std::str::from_utf8(&out[6..]).unwrap(),
            reference_base64(&bytes),
            "length {len}"
        );
        assert_eq!(out.len() - 6, encoded_len(len), "length {len}");
    }
}

#[test]
fn base64_of_every_byte_value() {
    let all: Vec<u8> = (0..=255).collect();
    for bytes in [
        all.clone(),
        all.iter().rev().copied().collect(),
        all.repeat(40),
    ] {
        let mut out = Vec::new();
        append_base64(&bytes, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), reference_base64(&bytes));
    }
}

fn response() -> AdmissionResponse {
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f0c3d9e-1b7e-4c55-9d7e-6c2a1f0e5b11",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "userInfo": {"username": "alice"}
        }
    }))
    .unwrap();
    let request: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    AdmissionResponse::from(&request)
}

/// A patch's text, with strings that need escapes.
fn patch() -> Vec<u8> {
    serde_json::to_vec(&json!([
        {"op": "add", "path": "/metadata/annotations", "value": {"a\"b": "c\\d\n", "é": "🦀"}},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "istio-proxy", "ports": [15090]}},
        {"op": "replace", "path": "/spec/x~1y", "value": [1.5, -3, null, true]},
    ]))
    .unwrap()
}

#[test]
fn the_patch_is_base64_of_serdes_json_and_the_rest_is_serdes_response() {
    let response = response();
    let patch = patch();
    let body: Value = serde_json::from_slice(&encode_response(&response, Some(&patch))).unwrap();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(body["kind"], "AdmissionReview");
    let mut expected = serde_json::to_value(&response).unwrap();
    expected["patch"] = json!(reference_base64(&patch));
    expected["patchType"] = json!("JSONPatch");
    assert_eq!(body["response"], expected);
}

#[test]
fn without_a_patch_there_is_neither_patch_nor_patch_type() {
    let response = response();
    let body: Value = serde_json::from_slice(&encode_response(&response, None)).unwrap();
    assert_eq!(body["response"], serde_json::to_value(&response).unwrap());
    assert!(body["response"].get("patch").is_none(), "{body}");
    assert!(body["response"].get("patchType").is_none(), "{body}");
}

#[test]
fn the_slow_path_gives_the_same_answer() {
    let response = response();
    let patch = patch();
    let fast: Value = serde_json::from_slice(&encode_response(&response, Some(&patch))).unwrap();
    let plain = encode_response(&response, None);
    let slow = encode_response_slowly(&plain, &patch);
    assert_eq!(serde_json::from_slice::<Value>(&slow).unwrap(), fast);
}
