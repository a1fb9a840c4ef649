//! The JSON text of a [`json_patch::Patch`], written directly rather than
//! through serde: byte for byte what `serde_json::to_vec(&patch)` gives (the
//! operations' keys in serde's order, compact, serde_json's escapes and
//! number text), at a fraction of the cost.
//!
//! An injecting review's patch is several kilobytes of mostly plain ASCII
//! strings (container specs, annotations). serde_json escapes strings one
//! byte at a time behind its generic serializer; here runs of bytes that need
//! no escaping are found eight at a time and copied at once. This was the
//! largest cost of encoding an injecting review's response.

use std::io::Write as _;

use json_patch::{Patch, PatchOperation};
use serde_json::{Number, Value};

/// Room reserved up front for a patch's text: an injection's patch is a
/// few kilobytes, so this saves the first several reallocations.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// The patch as serde_json would write it (`serde_json::to_vec`).
pub(super) fn patch_to_vec(patch: &Patch) -> Vec<u8> {
    let mut out = Vec::with_capacity(INITIAL_CAPACITY);
    write_patch(patch, &mut out);
    out
}

/// Appends the patch to `out`, as serde_json would write it.
pub(super) fn write_patch(patch: &Patch, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, op) in patch.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_operation(op, out);
    }
    out.push(b']');
}

/// One operation: `{"op":NAME` then its fields in declaration order, which
/// is the order serde's internally tagged enum writes them.
fn write_operation(op: &PatchOperation, out: &mut Vec<u8>) {
    match op {
        PatchOperation::Add(op) => write_path_value(b"add", op.path.as_str(), &op.value, out),
        PatchOperation::Replace(op) => {
            write_path_value(b"replace", op.path.as_str(), &op.value, out);
        }
        PatchOperation::Test(op) => write_path_value(b"test", op.path.as_str(), &op.value, out),
        PatchOperation::Remove(op) => {
            out.extend_from_slice(b"{\"op\":\"remove\",\"path\":");
            write_str(op.path.as_str(), out);
            out.push(b'}');
        }
        PatchOperation::Move(op) => {
            write_from_path(b"move", op.from.as_str(), op.path.as_str(), out)
        }
        PatchOperation::Copy(op) => {
            write_from_path(b"copy", op.from.as_str(), op.path.as_str(), out)
        }
    }
}

fn write_path_value(name: &[u8], path: &str, value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"op\":\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\",\"path\":");
    write_str(path, out);
    out.extend_from_slice(b",\"value\":");
    write_value(value, out);
    out.push(b'}');
}

fn write_from_path(name: &[u8], from: &str, path: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"op\":\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\",\"from\":");
    write_str(from, out);
    out.extend_from_slice(b",\"path\":");
    write_str(path, out);
    out.push(b'}');
}

/// Any JSON value, compact, objects in their map's iteration order (the
/// order serde_json serializes them in).
pub(super) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

/// A number as serde_json writes it: integers through `itoa`, as serde_json
/// does; floats through serde_json's own `Display`, which is the text its
/// serializer writes (the shortest form that reads back the same).
fn write_number(n: &Number, out: &mut Vec<u8>) {
    let mut buffer = itoa::Buffer::new();
    if let Some(u) = n.as_u64() {
        out.extend_from_slice(buffer.format(u).as_bytes());
    } else if let Some(i) = n.as_i64() {
        out.extend_from_slice(buffer.format(i).as_bytes());
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{n}");
    }
}

/// A quoted JSON string with serde_json's escapes: `\"`, `\\`, the short
/// forms `\b \t \n \f \r`, and `\u00xx` (lowercase hex) for the other
/// control characters. Everything else, including non-ASCII UTF-8 and DEL,
/// is copied as is.
///
/// Most strings of a patch (keys, names, images, paths) need no escape and
/// are short, so the common case is one check and one copy.
pub(super) fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if needs_no_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(bytes, out);
    }
    out.push(b'"');
}

/// Whether no byte of `bytes` needs an escape: eight bytes at a time, the
/// last (partial) word checked as the overlapping final eight bytes.
fn needs_no_escape(bytes: &[u8]) -> bool {
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().fold(0, |acc, &b| acc | ESCAPE[usize::from(b)]) == 0;
    };
    let mut rest = bytes;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        if word_needs_escape(u64::from_le_bytes(*word)) {
            return false;
        }
        rest = tail;
    }
    !word_needs_escape(u64::from_le_bytes(*last))
}

/// The contents of a string with at least one byte to escape: runs of plain
/// words copied at once, words with a special byte done byte by byte.
fn write_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    // `bytes[start..i]` is the pending run of bytes that need no escape.
    let mut start = 0;
    let mut i = 0;
    loop {
        while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            if word_needs_escape(u64::from_le_bytes(*word)) {
                break;
            }
            i += 8;
        }
        let end = bytes.len().min(i + 8);
        if i >= end {
            break;
        }
        for (j, &byte) in bytes.iter().enumerate().take(end).skip(i) {
            let escape = ESCAPE[usize::from(byte)];
            if escape != 0 {
                out.extend_from_slice(&bytes[start..j]);
                write_escape(byte, escape, out);
                start = j + 1;
            }
        }
        i = end;
    }
    out.extend_from_slice(&bytes[start..]);
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any of the eight bytes of `word` is a control character, `"`
/// or `\`. Exact (no false positives): the classic "has a zero byte" and
/// "has a byte less than n" tests, which may misplace which byte matched
/// but never misreport whether one did.
fn word_needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = {
        let x = word ^ (ONES * u64::from(b'"'));
        x.wrapping_sub(ONES) & !x
    };
    let backslash = {
        let x = word ^ (ONES * u64::from(b'\\'));
        x.wrapping_sub(ONES) & !x
    };
    (control | quote | backslash) & HIGHS != 0
}

fn write_escape(byte: u8, escape: u8, out: &mut Vec<u8>) {
    if escape == UU {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

/// `\u00xx`.
const UU: u8 = b'u';

/// For each byte, the letter after the backslash of its escape, or 0 for a
/// byte written as is (serde_json's table).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = UU;
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

#[cfg(test)]
mod tests;
