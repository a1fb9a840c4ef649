//! `outrigger serve`'s logs: colours are for terminals only, so a log
//! file or collector gets plain lines; and a log that cannot be written
//! (a full disk) costs log lines, never admissions.

mod webhook_support;

use serde_json::Value;
use webhook_support::{Server, client, deployment, review, sample, test_dir};

#[test]
fn text_logs_to_a_file_carry_no_colour_codes() {
    let dir = test_dir("serve-text-logs");
    let args = ["--log-format", "text", "--shutdown-delay", "0s"].map(String::from);
    let mut server = Server::start(dir, &args);
    server.wait_for_log("serving");
    server.signal("TERM");
    assert!(server.wait().success());
    let log = server.log();
    assert!(log.contains(" INFO "), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a file:\n{log}");
}

#[tokio::test]
async fn a_log_that_cannot_be_written_costs_lines_not_admissions() {
    // /dev/full fails every write with ENOSPC, as a full disk does.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let dir = test_dir("serve-full-log");
    let args = [
        "--ca-dir",
        &dir.join("ca").display().to_string(),
        "--ca-bundle-out",
        &dir.join("bundle.pem").display().to_string(),
        "--shutdown-delay",
        "0s",
        // The client's keep-alive connections stay open to the end.
        "--shutdown-grace",
        "1s",
    ]
    .map(String::from);
    let mut server = Server::start_logging_to(dir, &args, full);
    let client = client(&server.bundle());
    let body = review("admission.k8s.io/v1", "apps", "CREATE", &deployment());
    for _ in 0..3 {
        let response = client
            .post(server.url("/inject"))
            .json(&body)
            .send()
            .await
            .expect("the admission is answered");
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert!(answer["response"]["patch"].is_string(), "{answer}");
    }
    // The lost lines are counted: at least the three admissions'.
    let metrics = server.metrics().await;
    let dropped = sample(&metrics, "outrigger_log_lines_dropped_total");
    assert!(dropped >= 3.0, "{metrics}");
    server.signal("TERM");
    assert!(server.wait().success());
}
