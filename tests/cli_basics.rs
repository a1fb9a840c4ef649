//! What a new user types first: `version`, `--version`, shell completion,
//! and a mistyped `--log-level` refused instead of silently ignored.

use std::process::{Command, Output};

fn outrigger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("outrigger runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_names_outrigger_and_the_proxy_tag_it_injects() {
    let version = env!("CARGO_PKG_VERSION");
    let text = stdout(&outrigger(&["version"]));
    assert!(
        text.starts_with(&format!("outrigger {version}\n")),
        "{text}"
    );
    assert!(text.contains("1.26.0"), "{text}");
    assert_eq!(
        stdout(&outrigger(&["--version"])).trim(),
        format!("outrigger {version}")
    );
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef outrigger"),
        ("fish", "complete -c outrigger"),
    ] {
        let text = stdout(&outrigger(&["completion", shell]));
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(text.contains("inject") && text.contains("serve"), "{shell}");
    }
    let out = outrigger(&["completion", "powershell2"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_log_level_that_is_not_a_filter_is_refused() {
    let out = outrigger(&["--log-level", "verbose", "version"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-level"), "{err}");
    assert!(err.contains("expected a level"), "{err}");
    stdout(&outrigger(&[
        "--log-level",
        "debug,outrigger=trace",
        "version",
    ]));
}

#[test]
fn a_listen_address_that_is_not_one_names_the_forms_that_are() {
    // Refused before anything is bound, with the forms that work.
    let out = outrigger(&["serve", "--listen", "example.com:15017"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":PORT") && err.contains("localhost:PORT"),
        "{err}"
    );
    // The forms themselves are parsed in `cli::tests`.
}

#[test]
fn a_port_in_use_is_named_once_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("outrigger-port-taken-{}", std::process::id()));
    let out = outrigger(&[
        "serve",
        "--cluster-mode",
        "disabled",
        "--ca-dir",
        dir.join("ca").to_str().unwrap(),
        "--listen",
        &addr,
        "--monitoring-listen",
        "127.0.0.1:0",
        "--ca-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the OS error once: {stderr}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}
