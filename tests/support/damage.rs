//! Seeded damage for robustness tests: a small generator and byte-level
//! edits (flipped, dropped, inserted and duplicated bytes, truncation).
//! Included by path (`#[path = "support/damage.rs"] mod damage;`) by the
//! tests that damage their inputs.
#![allow(dead_code)]

/// xorshift64*: small, seeded, good enough to pick edits.
pub struct Rng(pub u64);

impl Rng {
    /// A generator for this seed (any value; zero is avoided).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One to four random edits of `input`, with bytes from `alphabet`.
pub fn damage(input: &[u8], alphabet: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] = *rng.pick(alphabet),
            1 => {
                out.remove(at);
            }
            2 => out.insert(at, *rng.pick(alphabet)),
            3 => {
                let end = (at + rng.below(32)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Bytes worth inserting into binary and text formats alike.
pub const ANY_BYTE: &[u8] =
    b"\x00\x01\x02\x03\x04\x05\x06\x07\x0a\x0c\x13\x16\x17\x1e\x30\x31\x80\x81\x82\xa0\xa3\xff-\n=A";

/// Runs `check` on `rounds` damaged copies of `input`; returns how many
/// were refused. Fails listing every round that panicked or was refused
/// without a message.
pub fn series(
    what: &str,
    input: &[u8],
    alphabet: &[u8],
    rounds: usize,
    seed: u64,
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) -> usize {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let mut rng = Rng::new(seed);
    let mut problems = Vec::new();
    let mut refused = 0;
    for round in 0..rounds {
        let damaged = damage(input, alphabet, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| check(&damaged))) {
            Err(_) => problems.push(format!("{what} round {round}: panicked")),
            Ok(Err(message)) if message.trim().is_empty() => {
                problems.push(format!("{what} round {round}: refused without a message"))
            }
            Ok(Err(_)) => refused += 1,
            Ok(Ok(())) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    refused
}
