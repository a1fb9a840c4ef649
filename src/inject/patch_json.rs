//! The JSON text of a [`json_patch::Patch`], written directly rather than
//! through serde: byte for byte what `serde_json::to_vec(&patch)` gives (the
//! operations' keys in serde's order, compact, serde_json's escapes and
//! number text), at a fraction of the cost. [`Out`] is also what the direct
//! path writes its patch with (see `direct` and `node`).
//!
//! An injecting review's patch is several kilobytes in a few hundred mostly
//! short, plain ASCII strings (keys, names, images, paths). serde_json
//! escapes strings one byte at a time behind its generic serializer; here a
//! string reserves its room once, and its text is checked and stored eight
//! bytes at a time. Serializing the patch was the largest cost of encoding an
//! injecting review's response (bench/webhook's patch: 106k instructions
//! through serde_json, 69k here).

use json_patch::{Patch, PatchOperation};
use serde_json::{Number, Value};

use super::node::Hole;

/// Room made up front for a patch's text: an injection's patch is a few
/// kilobytes, so this saves the first several reallocations.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// The patch as serde_json would write it (`serde_json::to_vec`).
pub fn patch_to_vec(patch: &Patch) -> Vec<u8> {
    let mut out = Out::with_capacity(INITIAL_CAPACITY);
    out.put_slice(b"[");
    for (i, op) in patch.iter().enumerate() {
        if i > 0 {
            out.put_slice(b",");
        }
        out.operation(op);
    }
    out.put_slice(b"]");
    out.into_vec()
}

/// Any JSON value as serde_json would write it (`serde_json::to_vec`).
#[cfg(test)]
pub(super) fn value_to_vec(value: &Value) -> Vec<u8> {
    let mut out = Out::with_capacity(64);
    out.value(value);
    out.into_vec()
}

/// The text written so far. Every string reserves room for itself and its
/// quotes once; its text then goes in as whole eight-byte words (fixed-size
/// copies, no call to `memcpy`, no per-byte work), the last, partial word as
/// the string's last eight bytes over what is already written.
pub struct Out {
    buf: Vec<u8>,
    /// Where a compiled template's holes are, by offset in `buf`.
    holes: Vec<(usize, Hole)>,
}

impl Out {
    pub fn with_capacity(capacity: usize) -> Self {
        Out {
            buf: Vec::with_capacity(capacity),
            holes: Vec::new(),
        }
    }

    /// Records a hole at the current offset (nothing is written).
    pub fn hole(&mut self, hole: Hole) {
        self.holes.push((self.buf.len(), hole));
    }

    /// The text and its holes.
    pub fn into_parts(self) -> (Vec<u8>, Vec<(usize, Hole)>) {
        (self.buf, self.holes)
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    #[inline]
    pub fn put_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// One operation: `{"op":NAME` then its fields in declaration order,
    /// which is the order serde's internally tagged enum writes them.
    pub fn operation(&mut self, op: &PatchOperation) {
        match op {
            PatchOperation::Add(op) => self.path_value(b"add", op.path.as_str(), &op.value),
            PatchOperation::Replace(op) => {
                self.path_value(b"replace", op.path.as_str(), &op.value);
            }
            PatchOperation::Test(op) => self.path_value(b"test", op.path.as_str(), &op.value),
            PatchOperation::Remove(op) => {
                self.put_slice(b"{\"op\":\"remove\",\"path\":");
                self.string(op.path.as_str());
                self.put_slice(b"}");
            }
            PatchOperation::Move(op) => self.two_paths(b"move", op.from.as_str(), op.path.as_str()),
            PatchOperation::Copy(op) => self.two_paths(b"copy", op.from.as_str(), op.path.as_str()),
        }
    }

    fn path_value(&mut self, name: &[u8], path: &str, value: &Value) {
        self.put_slice(b"{\"op\":\"");
        self.put_slice(name);
        self.put_slice(b"\",\"path\":");
        self.string(path);
        self.put_slice(b",\"value\":");
        self.value(value);
        self.put_slice(b"}");
    }

    fn two_paths(&mut self, name: &[u8], from: &str, path: &str) {
        self.put_slice(b"{\"op\":\"");
        self.put_slice(name);
        self.put_slice(b"\",\"from\":");
        self.string(from);
        self.put_slice(b",\"path\":");
        self.string(path);
        self.put_slice(b"}");
    }

    /// Any JSON value, compact, objects in their map's iteration order (the
    /// order serde_json serializes them in).
    pub fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.put_slice(b"null"),
            Value::Bool(true) => self.put_slice(b"true"),
            Value::Bool(false) => self.put_slice(b"false"),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.put_slice(b"[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.put_slice(b",");
                    }
                    self.value(item);
                }
                self.put_slice(b"]");
            }
            Value::Object(map) => self.object(map, Out::value),
        }
    }

    /// An object from its entries, in the order given (serde_json's is
    /// sorted), each value written by `value`.
    pub fn object<K: AsRef<str>, T>(
        &mut self,
        entries: impl IntoIterator<Item = (K, T)>,
        mut value: impl FnMut(&mut Out, T),
    ) {
        self.put_slice(b"{");
        for (i, (key, item)) in entries.into_iter().enumerate() {
            if i > 0 {
                self.put_slice(b",");
            }
            self.string(key.as_ref());
            self.put_slice(b":");
            value(self, item);
        }
        self.put_slice(b"}");
    }

    /// An integer as serde_json writes it.
    pub fn integer(&mut self, n: i64) {
        let mut buffer = itoa::Buffer::new();
        self.put_slice(buffer.format(n).as_bytes());
    }

    /// A number as serde_json writes it: integers through `itoa`, as
    /// serde_json does; floats through serde_json's own `Display`, which is
    /// the text its serializer writes (the shortest form that reads back the
    /// same).
    fn number(&mut self, n: &Number) {
        let mut buffer = itoa::Buffer::new();
        if let Some(u) = n.as_u64() {
            self.put_slice(buffer.format(u).as_bytes());
        } else if let Some(i) = n.as_i64() {
            self.put_slice(buffer.format(i).as_bytes());
        } else {
            self.put_slice(n.to_string().as_bytes());
        }
    }

    /// A quoted JSON string with serde_json's escapes: `\"`, `\\`, the short
    /// forms `\b \t \n \f \r`, and `\u00xx` (lowercase hex) for the other
    /// control characters. Everything else, including non-ASCII UTF-8 and
    /// DEL, is copied as is.
    // Inlined into its few callers: a call per string was a tenth of the
    // cost of a patch's text.
    #[inline(always)]
    pub fn string(&mut self, s: &str) {
        let bytes = s.as_bytes();
        // The quotes, the text, and a word of slack for the word stores.
        self.buf.reserve(bytes.len() + 2 + 8);
        self.buf.push(b'"');
        if !self.plain(bytes) {
            self.escaped(bytes);
        }
        self.buf.push(b'"');
    }

    /// Appends `bytes` if none needs an escape; says whether it did (if
    /// not, nothing was appended).
    #[inline(always)]
    fn plain(&mut self, bytes: &[u8]) -> bool {
        let start = self.buf.len();
        let Some(last) = bytes.last_chunk::<8>() else {
            // Fewer than eight bytes: gathered into one word padded with
            // spaces, stored whole, and the padding dropped.
            let mut word = 0u64;
            for (i, &byte) in bytes.iter().enumerate() {
                word |= u64::from(byte) << (8 * i);
            }
            word |= SPACES & !((1u64 << (8 * bytes.len())) - 1);
            if word_needs_escape(word) {
                return false;
            }
            self.buf.extend_from_slice(&word.to_le_bytes());
            self.buf.truncate(start + bytes.len());
            return true;
        };
        let mut rest = bytes;
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            if word_needs_escape(u64::from_le_bytes(*word)) {
                self.buf.truncate(start);
                return false;
            }
            self.buf.extend_from_slice(word);
            rest = tail;
        }
        if !rest.is_empty() {
            if word_needs_escape(u64::from_le_bytes(*last)) {
                self.buf.truncate(start);
                return false;
            }
            // `last` repeats the 8 - rest.len() bytes before `rest`.
            self.buf.truncate(self.buf.len() + rest.len() - 8);
            self.buf.extend_from_slice(last);
        }
        true
    }

    /// The contents of a string with at least one byte to escape, through
    /// a small buffer on the stack: plain bytes go in a word at a time, each
    /// byte to escape as its escape. The JSON held in JSON strings (pod
    /// ports, app probers) has a quote every few bytes; copying the runs
    /// between them into the patch one by one was most of its cost.
    fn escaped(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut chunk = [0u8; 256];
        let mut n = 0;
        let mut at = 0;
        while at < bytes.len() {
            // Room for a word and the longest escape.
            if n > chunk.len() - 14 {
                self.buf.extend_from_slice(&chunk[..n]);
                n = 0;
            }
            if let Some(word) = bytes[at..].first_chunk::<8>() {
                // The word goes in whole; only its bytes before the first
                // to escape count.
                let flags = escape_flags(u64::from_le_bytes(*word));
                let plain = flags.trailing_zeros() as usize / 8;
                chunk[n..n + 8].copy_from_slice(word);
                n += plain;
                at += plain;
                if plain == 8 {
                    continue;
                }
            }
            let byte = bytes[at];
            at += 1;
            match ESCAPE[usize::from(byte)] {
                0 => {
                    chunk[n] = byte;
                    n += 1;
                }
                UU => {
                    chunk[n..n + 6].copy_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(byte >> 4)],
                        HEX[usize::from(byte & 0xf)],
                    ]);
                    n += 6;
                }
                escape => {
                    chunk[n] = b'\\';
                    chunk[n + 1] = escape;
                    n += 2;
                }
            }
        }
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// Eight spaces, which need no escape: the padding of a short string's word.
const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any of the eight bytes of `word` is a control character, `"`
/// or `\`.
#[inline]
fn word_needs_escape(word: u64) -> bool {
    escape_flags(word) != 0
}

/// The high bit of each byte of `word` (little-endian: byte 0 is the lowest)
/// that is a control character, `"` or `\`, as the classic "has a byte less
/// than n" and "has a zero byte" tests flag them. A borrow can flag a byte
/// above a true match, never one below: so the lowest flag is exactly the
/// first byte to escape, and no flag means none. The tests' `& !x & 0x80..`
/// parts are shared: XOR with `"` or `\` (both below 0x80) keeps each
/// byte's high bit.
#[inline]
fn escape_flags(word: u64) -> u64 {
    let control = word.wrapping_sub(ONES * 0x20);
    let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    (control | quote | backslash) & !word & HIGHS
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
