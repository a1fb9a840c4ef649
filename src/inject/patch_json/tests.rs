//! [`super::patch_to_vec`] against serde_json itself: every test compares the
//! hand-written text with `serde_json::to_vec` of the same value, byte for
//! byte, over targeted edge cases, the engine's golden patches and many
//! generated patches.

use json_patch::Patch;
use serde_json::{Map, Number, Value, json};

use super::*;

fn assert_value_like_serde(value: &Value) {
    let ours = value_to_vec(value);
    let theirs = serde_json::to_vec(value).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs),
        "{value:?}"
    );
    assert_eq!(ours, theirs, "{value:?}");
}

fn assert_patch_like_serde(patch: &Patch) {
    let ours = patch_to_vec(patch);
    let theirs = serde_json::to_vec(patch).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(ours, theirs);
}

#[test]
fn every_byte_below_0x80_is_escaped_as_serde_does_at_every_offset() {
    // Each ASCII byte at each position of strings up to three words long,
    // so that it lands in every lane of the word-at-a-time scan and in the
    // tail.
    for byte in 0u8..0x80 {
        for len in 1..=25 {
            for at in 0..len {
                let mut s = vec![b'a'; len];
                s[at] = byte;
                let s = String::from_utf8(s).unwrap();
                assert_value_like_serde(&Value::String(s));
            }
        }
    }
}

#[test]
fn two_bytes_to_escape_at_every_pair_of_offsets() {
    // The escaped path finds each byte to escape a word at a time; a
    // borrow from the first can flag bytes after it, so pairs of every kind,
    // next to bytes with the high bit set and to each other, in every lane.
    let escapes = [b'"', b'\\', b'\n', 0x00, 0x1f];
    let fillers = [b'a', 0xc3];
    for first in escapes {
        for second in escapes {
            for filler in fillers {
                for len in 2..=19 {
                    for i in 0..len {
                        for j in i + 1..len {
                            let mut s = vec![filler; len];
                            s[i] = first;
                            s[j] = second;
                            // 0xc3 alone is not UTF-8: keep it valid by
                            // reading the bytes as Latin-1.
                            let s: String = s.iter().map(|&b| char::from(b)).collect();
                            assert_value_like_serde(&Value::String(s));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn long_strings_dense_with_escapes_cross_the_buffer_at_every_alignment() {
    // Escaped text goes through a 256-byte buffer: strings whose escapes
    // (two or six bytes each) and plain words land on its edge in every way.
    for pattern in [
        "\u{1}a\"",
        "ab\\cdefghij\"",
        "\n\u{1f}xyz",
        "\"\"\"\"\"\"\"\"\"\"x",
    ] {
        for len in 200..=330 {
            let s: String = pattern.chars().cycle().take(len).collect();
            assert_value_like_serde(&Value::String(s));
        }
    }
}

#[test]
fn non_ascii_text_is_copied_as_is() {
    for s in [
        "",
        "é",
        "naïve café ☕ 日本語 🦀",
        "\u{7f}\u{80}\u{ff}\u{2028}\u{2029}\u{feff}",
        "🦀\"🦀\\🦀\n🦀\u{1}",
        "ÿÿÿÿÿÿÿÿÿÿÿÿ\"",
        "\"\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\",
        "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
    ] {
        assert_value_like_serde(&Value::String(s.into()));
    }
}

#[test]
fn every_control_character_alone_and_in_runs() {
    let all: String = (0u8..0x20).map(char::from).collect();
    assert_value_like_serde(&Value::String(all.clone()));
    assert_value_like_serde(&Value::String(all.repeat(3)));
    for byte in 0u8..0x20 {
        assert_value_like_serde(&Value::String(char::from(byte).to_string()));
    }
}

#[test]
fn numbers_are_written_as_serde_does() {
    let numbers = [
        json!(0),
        json!(1),
        json!(-1),
        json!(15017),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(0.0),
        json!(-0.0),
        json!(0.1),
        json!(1.5),
        json!(-2.25e-7),
        json!(1e300),
        json!(1e21),
        json!(123456789.125),
        json!(f64::MIN_POSITIVE),
        json!(f64::MAX),
        json!(f64::EPSILON),
    ];
    for n in &numbers {
        assert_value_like_serde(n);
    }
    assert_value_like_serde(&Value::Array(numbers.to_vec()));
}

#[test]
fn empty_and_nested_containers() {
    for value in [
        json!(null),
        json!(true),
        json!(false),
        json!(""),
        json!([]),
        json!({}),
        json!([[], {}, [[]], {"": {}}]),
        json!({"a": [1, {"b": [null, true, "x\"y"]}], "": "", "~/": [{}]}),
    ] {
        assert_value_like_serde(&value);
    }
}

#[test]
fn every_kind_of_operation() {
    let patch: Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/labels/security.istio.io~1tlsMode", "value": "istio"},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "remove", "path": "/metadata/annotations/a~0b"},
        {"op": "move", "from": "/a/0", "path": "/b/-"},
        {"op": "copy", "from": "/c", "path": "/d/e~1f"},
        {"op": "test", "path": "", "value": {"k": [1, 2.5, null]}},
    ]))
    .unwrap();
    assert_patch_like_serde(&patch);
    assert_patch_like_serde(&Patch(Vec::new()));
}

#[test]
fn the_engines_golden_patches() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/inject");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".patch.json") {
            continue;
        }
        let patch: Patch = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(!patch.is_empty(), "{}", path.display());
        assert_patch_like_serde(&patch);
        seen += 1;
    }
    assert!(
        seen >= 10,
        "only {seen} golden patches under {}",
        dir.display()
    );
}

/// A small deterministic generator (xorshift64*), so that failures repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Strings biased toward what needs care: quotes, backslashes, every
    /// control character, `~` and `/`, multi-byte characters, long plain
    /// runs.
    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "\"",
            "\\",
            "~",
            "/",
            "~0",
            "~1",
            "é",
            "日本",
            "🦀",
            "\u{7f}",
            "\u{2028}",
            " ",
            "istio-proxy",
            "sidecar.istio.io/inject",
            "0123456789abcdef",
        ];
        let len = self.below(12);
        let mut s = String::new();
        for _ in 0..len {
            match self.below(4) {
                0 => s.push(char::from(self.below(0x20) as u8)),
                1 => s.push(char::from(b' ' + self.below(0x5f) as u8)),
                _ => s.push_str(PIECES[self.below(PIECES.len() as u64) as usize]),
            }
        }
        s
    }

    fn number(&mut self) -> Value {
        match self.below(5) {
            0 => json!(self.next()),
            1 => json!(-((self.next() >> 1) as i64)),
            2 => json!(self.below(100_000)),
            3 => json!(f64::from_bits(self.next() >> 2)),
            _ => {
                let (a, b) = (self.below(1_000_000) as f64, self.below(1000) as f64 + 1.0);
                Number::from_f64(a / b - 500.0).map_or(Value::Null, Value::Number)
            }
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        let leaf = depth == 0 || self.below(3) == 0;
        match self.below(if leaf { 4 } else { 6 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => self.number(),
            3 => Value::String(self.string()),
            4 => (0..self.below(5)).map(|_| self.value(depth - 1)).collect(),
            _ => {
                let mut map = Map::new();
                for _ in 0..self.below(5) {
                    let key = self.string();
                    let value = self.value(depth - 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        }
    }

    /// A JSON pointer of random tokens, escaped as RFC 6901 says.
    fn pointer(&mut self) -> String {
        (0..self.below(5))
            .map(|_| format!("/{}", self.string().replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    fn operation(&mut self) -> Value {
        let path = self.pointer();
        match self.below(6) {
            0 => json!({"op": "add", "path": path, "value": self.value(4)}),
            1 => json!({"op": "replace", "path": path, "value": self.value(4)}),
            2 => json!({"op": "test", "path": path, "value": self.value(4)}),
            3 => json!({"op": "remove", "path": path}),
            4 => json!({"op": "move", "from": self.pointer(), "path": path}),
            _ => json!({"op": "copy", "from": self.pointer(), "path": path}),
        }
    }
}

#[test]
fn generated_patches_are_written_as_serde_does() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let ops: Vec<Value> = (0..rng.below(8)).map(|_| rng.operation()).collect();
        let patch: Patch = serde_json::from_value(Value::Array(ops)).unwrap();
        assert_patch_like_serde(&patch);
    }
}

#[test]
fn generated_values_are_written_as_serde_does() {
    let mut rng = Rng(42);
    for _ in 0..5000 {
        assert_value_like_serde(&rng.value(5));
    }
}
