//! `outrigger inject` on a large file holds one document's objects at a
//! time: its peak memory grows with the input and output texts, not with
//! every document's parsed, injected and patched forms (a file of 2,000
//! Deployments took 224 times its size before).
//!
//! The peak is read from `/proc/<pid>/status` (`VmHWM`) once the output
//! has begun: the whole output is written at once, after every document
//! is done, so at that point the process has reached its peak. Both runs
//! write more than a pipe holds (64 KiB), so the process is still alive,
//! blocked on the pipe, when it is measured: an exited process's status has
//! no memory lines (the baseline of a single document, 7 KiB of output,
//! sometimes exited first).

mod support;

use std::io::Read;
use std::process::{Command, Stdio};

/// `outrigger inject -f FILE` peak resident memory, in KiB.
fn peak_kib(file: &std::path::Path) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(["inject", "-f"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("output begins");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    assert!(child.wait().unwrap().success());
    peak
}

#[test]
fn memory_grows_with_the_text_not_with_every_documents_objects() {
    if !support::requires::available(
        std::path::Path::new("/proc/self/status").exists(),
        "measuring the preview's peak memory",
        "Linux's /proc",
    ) {
        return;
    }
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deployment.yaml"),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("outrigger-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let documents = |n: usize| -> String {
        (0..n)
            .map(|i| example.replacen("name: ", &format!("name: n{i}-"), 1) + "\n---\n")
            .collect()
    };
    let few = dir.join("few.yaml");
    std::fs::write(&few, documents(20)).unwrap();
    let many = dir.join("many.yaml");
    let text = documents(400);
    std::fs::write(&many, &text).unwrap();

    let base = peak_kib(&few);
    let peak = peak_kib(&many);
    let input_kib = text.len() as u64 / 1024;
    // The output is about 10 times the input; the documents' objects held
    // all at once took about 200 times.
    assert!(
        peak.saturating_sub(base) < 40 * input_kib,
        "400 Deployments ({input_kib} KiB) peaked at {peak} KiB, {base} KiB for 20"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
