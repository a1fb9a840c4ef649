//! Istio's own capture goldens (`../shared/conformance/istio-iptables`), run
//! through the real binary: `outrigger iptables --dry-run --resolv-conf
//! /dev/null <case args>`, compared as `cases.yaml` describes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    args: Vec<String>,
    golden: String,
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/istio-iptables")
}

/// The golden is Istio's command log: the save commands are dropped, the rest
/// is the restore input.
fn expected_lines(golden: &str) -> Vec<String> {
    golden
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .filter(|l| *l != "iptables-save" && *l != "ip6tables-save")
        .map(str::to_owned)
        .collect()
}

/// The dry-run output without blank and comment lines.
fn actual_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// A line diff (longest common subsequence): `-` expected only, `+` actual only.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push_str(&format!("  {}\n", expected[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", actual[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", expected[i]));
            i += 1;
        }
    }
    out
}

#[test]
fn every_istio_capture_golden_passes() {
    let dir = conformance_dir();
    let cases_path = dir.join("cases.yaml");
    let needs = format!("Istio's capture goldens in {}", cases_path.display());
    let present = support::requires::shared_exists(&cases_path);
    if !support::requires::available(present, "Istio's capture goldens", &needs) {
        return;
    }
    let text = std::fs::read_to_string(&cases_path).expect("cases.yaml is readable");
    let cases: Cases = serde_yaml::from_str(&text).expect("cases.yaml parses");
    assert_eq!(
        cases.cases.len(),
        18,
        "cases.yaml should hold Istio's 18 cases"
    );

    let mut failures = Vec::new();
    for case in &cases.cases {
        let golden = std::fs::read_to_string(dir.join(&case.golden))
            .unwrap_or_else(|e| panic!("golden {} for case {}: {e}", case.golden, case.name));
        let output = Command::new(env!("CARGO_BIN_EXE_outrigger"))
            .args(["iptables", "--dry-run", "--resolv-conf", "/dev/null"])
            .args(&case.args)
            .output()
            .expect("the outrigger binary runs");
        if !output.status.success() {
            failures.push(format!(
                "case {} ({:?}): exit {}: {}",
                case.name,
                case.args,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let expected = expected_lines(&golden);
        let actual = actual_lines(&String::from_utf8_lossy(&output.stdout));
        if expected != actual {
            failures.push(format!(
                "case {} ({:?}) differs from {} (- golden, + outrigger):\n{}",
                case.name,
                case.args,
                case.golden,
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Istio capture cases fail:\n\n{}",
        failures.len(),
        cases.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_diff_shows_missing_and_extra_lines() {
    let a: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
    let b: Vec<String> = ["x", "z", "w"].map(String::from).to_vec();
    assert_eq!(diff(&a, &b), "  x\n- y\n  z\n+ w\n");
}
