//! `outrigger serve`'s text logs: colours are for terminals only, so a log
//! file or collector gets plain lines.

mod webhook_support;

use webhook_support::{Server, test_dir};

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
