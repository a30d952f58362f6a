//! A tiny, dependency-free mutation fuzzer that runs on stable Rust inside
//! `cargo test`. Each parser that sees outside input has a target: a
//! `#[test]` in the crate that owns the parser, fed with a seed corpus
//! (committed under `fuzz/corpus/<target>/` at the repo root) and a
//! dictionary of fragments that matter to its grammar.
//!
//! The engine is deterministic for a given seed and input count: a seeded
//! xorshift64* picks which corpus entry to mutate and how. Mutations stack
//! 1–4 at a time: bit flips, byte overwrites (random or "interesting"
//! values), inserts and overwrites of dictionary fragments, truncations,
//! deletions, duplications and repetitions of a range, random bytes, swaps,
//! and splices with another corpus entry. Every input runs under
//! [`std::panic::catch_unwind`]; a panic counts as a crash and the first
//! crashing input is printed as hex and as escaped text.
//!
//! A run stops at whichever of [`Budget::max_inputs`] and
//! [`Budget::max_time`] comes first. `FUZZ_SECONDS=<n>` in the environment
//! lifts the input cap and runs each target for `n` seconds instead.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest input a mutation may produce.
pub const MAX_INPUT: usize = 64 * 1024;

/// Crashes after which a run stops early (the first one is what matters).
const MAX_CRASHES: u64 = 16;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced, xorshift would stay at 0).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Byte values that tend to sit on parser edges.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xE2, 0xF0, b'"', b'\\', b'\n', b'\r', b'\t', b' ', b'0',
    b'9', b'-', b'+', b'.', b'e', b'%',
];

/// Stacks 1–4 random mutations on `input`. `corpus` gives splice partners,
/// `dictionary` the fragments to insert; either may be empty.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], dictionary: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        mutate_once(rng, &mut out, corpus, dictionary);
    }
    out.truncate(MAX_INPUT);
    out
}

fn mutate_once(rng: &mut Rng, out: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[&[u8]]) {
    let len = out.len();
    match rng.below(14) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.below(len);
            out[i] ^= 1 << rng.below(8);
        }
        // Overwrite a byte: random, or a value parsers care about.
        1 if len > 0 => {
            let i = rng.below(len);
            out[i] = rng.next_u64() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            out[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        // Insert a dictionary fragment (twice as likely: it steers deepest).
        3 | 4 if !dictionary.is_empty() => {
            let i = rng.below(len + 1);
            let tok = dictionary[rng.below(dictionary.len())];
            out.splice(i..i, tok.iter().copied());
        }
        // Overwrite a range with a dictionary fragment.
        5 if !dictionary.is_empty() && len > 0 => {
            let tok = dictionary[rng.below(dictionary.len())];
            let a = rng.below(len);
            let b = (a + tok.len()).min(len);
            out.splice(a..b, tok.iter().copied());
        }
        // Truncate.
        6 => out.truncate(rng.below(len + 1)),
        // Delete a range.
        7 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            out.drain(a..b);
        }
        // Duplicate a range somewhere else.
        8 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(128)).min(len);
            let chunk = out[a..b].to_vec();
            let at = rng.below(len + 1);
            out.splice(at..at, chunk);
        }
        // Repeat a short range many times in place (nesting, long runs).
        9 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(8)).min(len);
            let chunk = out[a..b].to_vec();
            let times = 1 + rng.below(256);
            let rep: Vec<u8> = chunk
                .iter()
                .copied()
                .cycle()
                .take(chunk.len() * times)
                .collect();
            out.splice(a..a, rep);
        }
        // Insert random bytes.
        10 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(i..i, bytes);
        }
        // Splice: this input's head with another corpus entry's tail.
        11 | 12 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        // Swap two bytes.
        _ if len > 1 => {
            let a = rng.below(len);
            let b = rng.below(len);
            out.swap(a, b);
        }
        _ => {}
    }
}

/// How long a run may take: whichever limit comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Inputs to try, the unmutated seeds included.
    pub max_inputs: u64,
    /// Wall-clock time.
    pub max_time: Duration,
}

impl Budget {
    /// What `cargo test` runs: 20 000 inputs or 15 s, whichever first.
    pub const CI: Budget = Budget {
        max_inputs: 20_000,
        max_time: Duration::from_secs(15),
    };

    /// [`Budget::CI`], unless `FUZZ_SECONDS` is set: then that many seconds
    /// and no cap on inputs.
    pub fn from_env() -> Budget {
        Self::from_env_or(Self::CI)
    }

    /// `default`, unless `FUZZ_SECONDS` is set.
    pub fn from_env_or(default: Budget) -> Budget {
        match std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(secs) if secs > 0 => Budget {
                max_inputs: u64::MAX,
                max_time: Duration::from_secs(secs),
            },
            _ => default,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    /// Seeds in the corpus.
    pub seeds: usize,
    /// Inputs tried, the unmutated seeds included.
    pub inputs: u64,
    /// Inputs whose run panicked.
    pub crashes: u64,
    pub elapsed: Duration,
    /// The first input that panicked.
    pub first_crash: Option<Vec<u8>>,
}

impl Report {
    /// `fuzz <name>: N inputs, M crashes (T s, S seeds)`.
    pub fn summary(&self) -> String {
        format!(
            "fuzz {}: {} inputs, {} crashes ({:.1} s, {} seeds)",
            self.name,
            self.inputs,
            self.crashes,
            self.elapsed.as_secs_f64(),
            self.seeds
        )
    }
}

/// Runs `f` on every seed unmutated, then on mutations of them until the
/// budget is spent, catching panics. Prints the summary (and the first
/// crashing input) and returns the report; does not fail by itself, see
/// [`check`].
pub fn run(
    name: &str,
    corpus: &[Vec<u8>],
    dictionary: &[&[u8]],
    budget: Budget,
    f: impl Fn(&[u8]),
) -> Report {
    assert!(!corpus.is_empty(), "fuzz {name}: the seed corpus is empty");
    // A fixed seed per target: the same run every time in CI.
    let seed = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut report = Report {
        name: name.to_string(),
        seeds: corpus.len(),
        inputs: 0,
        crashes: 0,
        elapsed: Duration::ZERO,
        first_crash: None,
    };
    let try_one = |input: &[u8], report: &mut Report| {
        report.inputs += 1;
        if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
            report.crashes += 1;
            if report.first_crash.is_none() {
                report.first_crash = Some(input.to_vec());
            }
        }
    };
    for seed in corpus {
        if report.inputs >= budget.max_inputs {
            break;
        }
        try_one(seed, &mut report);
    }
    while report.inputs < budget.max_inputs
        && report.crashes < MAX_CRASHES
        && start.elapsed() < budget.max_time
    {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, corpus, dictionary);
        try_one(&input, &mut report);
    }
    report.elapsed = start.elapsed();
    println!("{}", report.summary());
    if let Some(input) = &report.first_crash {
        println!("first crashing input ({} bytes):", input.len());
        println!("  hex:     {}", hex(input));
        println!("  escaped: \"{}\"", escaped(input));
    }
    report
}

/// [`run`], then fail the test on any crash.
pub fn check(
    name: &str,
    corpus: &[Vec<u8>],
    dictionary: &[&[u8]],
    budget: Budget,
    f: impl Fn(&[u8]),
) -> Report {
    let report = run(name, corpus, dictionary, budget, f);
    if let Some(input) = &report.first_crash {
        panic!(
            "{}; first crashing input: hex {} / \"{}\"",
            report.summary(),
            hex(input),
            escaped(input)
        );
    }
    report
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `bytes` as printable ASCII with `\n`, `\"`, `\\` and `\xNN` escapes.
pub fn escaped(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

/// `fuzz/corpus/<target>/` of the repo, found by walking up from
/// `manifest_dir` (pass `env!("CARGO_MANIFEST_DIR")`).
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir)
        .ancestors()
        .map(|d| d.join("fuzz/corpus").join(target))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("no fuzz/corpus/{target}/ above {manifest_dir}"))
}

/// Every file of `fuzz/corpus/<target>/`, in name order.
pub fn load_corpus(manifest_dir: &str, target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(manifest_dir, target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let corpus: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!corpus.is_empty(), "{} holds no seeds", dir.display());
    corpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_deterministic_and_bounded() {
        let corpus = vec![b"{\"a\":[1,2,3]}".to_vec(), b"x=1\n".to_vec()];
        let dict: &[&[u8]] = &[b"[", b"]", b"\"\\u0000\""];
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..10_000 {
            let x = mutate(&mut a, &corpus[0], &corpus, dict);
            let y = mutate(&mut b, &corpus[0], &corpus, dict);
            assert_eq!(x, y);
            assert!(x.len() <= MAX_INPUT);
        }
    }

    #[test]
    fn budget_counts_and_crashes_are_caught() {
        let corpus = vec![b"abc".to_vec()];
        let budget = Budget {
            max_inputs: 500,
            max_time: Duration::from_secs(60),
        };
        let ok = run("ok", &corpus, &[], budget, |_| {});
        assert_eq!((ok.inputs, ok.crashes), (500, 0));
        let bad = run("bad", &corpus, &[b"!"], budget, |input| {
            assert!(!input.contains(&b'!'), "boom");
        });
        assert!(bad.crashes > 0);
        assert!(bad.first_crash.unwrap().contains(&b'!'));
        let timed = run(
            "timed",
            &corpus,
            &[],
            Budget {
                max_inputs: u64::MAX,
                max_time: Duration::from_millis(50),
            },
            |_| {},
        );
        assert!(timed.elapsed < Duration::from_secs(5));
    }

    #[test]
    fn escapes() {
        assert_eq!(hex(b"\x00a"), "0061");
        assert_eq!(escaped(b"a\"\n\xff"), "a\\\"\\n\\xff");
    }
}
