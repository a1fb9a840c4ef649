//! outrigger's own goldens for `outrigger iptables`, beyond Istio's set:
//! the rules behind the injected init container's default arguments, the
//! `--cleanup-only` output, and the refusal of bad values.
//!
//! Goldens live in `tests/testdata/iptables/`. `UPDATE_GOLDENS=1 cargo test
//! --test iptables_goldens` rewrites them; review the diff before committing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use outrigger::iptables::{outrigger_init_args, plan_for_init_args};

/// The arguments Istio's injection template gives the `istio-init` container
/// by default (`pilot-agent istio-iptables ...`).
const INIT_DEFAULT_ARGS: &[&str] = &[
    "istio-iptables",
    "-p",
    "15001",
    "-z",
    "15006",
    "-u",
    "1337",
    "-m",
    "REDIRECT",
    "-i",
    "*",
    "-x",
    "",
    "-b",
    "*",
    "-d",
    "15090,15021,15020",
    "--log_output_level=default:info",
];

/// Every golden this file reads; [`no_golden_is_left_unread`] checks the
/// folder holds nothing else.
const GOLDENS: &[&str] = &[
    "init-container-defaults.golden",
    "cleanup-only-init-container-defaults.golden",
    "cleanup-only-tproxy-dns-ipv6.golden",
    "refused.golden",
    "beyond-istio-tproxy-ports-capture-all-dns.golden",
    "beyond-istio-loopback-include-owner-groups.golden",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/iptables")
}

/// Compares `actual` with a golden (or rewrites it under `UPDATE_GOLDENS=1`).
fn check_golden(name: &str, actual: &str) {
    assert!(GOLDENS.contains(&name), "{name} is not listed in GOLDENS");
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        std::fs::write(&path, actual).expect("golden written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden {} missing ({e}); run with UPDATE_GOLDENS=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs.\n--- golden\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn outrigger_iptables(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .arg("iptables")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the outrigger binary runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The injected container's arguments as `outrigger iptables` takes them
/// (what [`outrigger_init_args`] gives the injector, minus `iptables`).
fn init_args_for_cli() -> Vec<String> {
    let mut args = outrigger_init_args(INIT_DEFAULT_ARGS).expect("the default args are valid");
    assert_eq!(args.remove(0), "iptables");
    args
}

#[test]
fn init_container_default_args_give_the_expected_rules() {
    let plan = plan_for_init_args(INIT_DEFAULT_ARGS, None).expect("the default args are valid");
    assert!(plan.setup.is_empty(), "REDIRECT over IPv4 needs no route");
    let library = plan.dry_run();
    check_golden("init-container-defaults.golden", &library);

    // The CLI parses them with the same parser and prints the same rules.
    let cli_args = init_args_for_cli();
    let mut args = vec!["--dry-run"];
    args.extend(cli_args.iter().map(String::as_str));
    let run = outrigger_iptables(&args);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, library);

    // What the issue spells out for `-b '*'`: inbound catch-all, and with
    // `-i '*'` ISTIO_OUTPUT ends by redirecting everything else.
    let nat: Vec<&str> = library.lines().collect();
    let pos = |line: &str| {
        nat.iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("missing rule {line:?} in\n{library}"))
    };
    let excluded = pos("-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN");
    let catch_all = pos("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT");
    assert!(
        excluded < catch_all,
        "excluded ports come before the catch-all"
    );
    assert_eq!(nat[nat.len() - 2], "-A ISTIO_OUTPUT -j ISTIO_REDIRECT");
}

#[test]
fn cleanup_only_output() {
    let cli_args = init_args_for_cli();
    let mut args = vec!["--cleanup-only", "--dry-run"];
    args.extend(cli_args.iter().map(String::as_str));
    let run = outrigger_iptables(&args);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    check_golden("cleanup-only-init-container-defaults.golden", &run.stdout);

    let run = outrigger_iptables(&[
        "--cleanup-only",
        "--dry-run",
        "-m",
        "TPROXY",
        "-b",
        "*",
        "-i",
        "*",
        "-c",
        "not-istio-nic",
        "--redirect-dns",
        "--dns-servers",
        "10.96.0.10,fd00::a",
        "--drop-invalid",
        "--ipv6",
    ]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    check_golden("cleanup-only-tproxy-dns-ipv6.golden", &run.stdout);
}

/// Flag combinations Istio's conformance set does not exercise: TPROXY with
/// a port list, `-o`/`-q` ports, `-k` with `-i '*'`, `--capture-all-dns`,
/// mixed-family `-x`; and a loopback `-i` range with an owner-group allowlist.
#[test]
fn combinations_beyond_istios_set() {
    let run = outrigger_iptables(&[
        "--dry-run",
        "-m",
        "TPROXY",
        "-b",
        "8080,9090",
        "-i",
        "*",
        "-k",
        "vm0",
        "-o",
        "53,5353",
        "-q",
        "3306",
        "--redirect-dns",
        "--capture-all-dns",
        "-x",
        "10.0.0.0/8,fd00::/8",
        "--ipv6",
    ]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    check_golden(
        "beyond-istio-tproxy-ports-capture-all-dns.golden",
        &run.stdout,
    );
    for line in [
        "-A ISTIO_OUTPUT -p udp --dport 53 -j RETURN",
        "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-port 15053",
        "-I PREROUTING 1 -i vm0 -j ISTIO_REDIRECT",
        "-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_TPROXY",
        "-A ISTIO_OUTPUT -d fd00::/8 -j RETURN",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "missing {line:?}");
    }

    let run = outrigger_iptables(&[
        "--dry-run",
        "-i",
        "127.1.2.3/32,10.96.0.0/12",
        "--outbound-owner-groups",
        "1000,app",
    ]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    check_golden(
        "beyond-istio-loopback-include-owner-groups.golden",
        &run.stdout,
    );
    assert!(
        !run.stdout.contains("-o lo -m owner ! --uid-owner"),
        "with loopback captured, app-to-self traffic is not exempted"
    );
    assert!(run.stdout.contains(
        "-A ISTIO_OUTPUT -m owner ! --gid-owner 1000 -m owner ! --gid-owner app -j RETURN"
    ));
}

/// Bad values, each refused before anything is generated or applied: exit 1,
/// nothing on stdout, and a message naming the flag, the value and the form.
const REFUSED: &[&[&str]] = &[
    &["-i", "10.0.0.0/33"],
    &["-i", "10.0.0.256/8"],
    &["-i", "10.0.0.0"],
    &["-i", "10.0.0.0/8,not-a-cidr"],
    &["-x", "2001:db8::/129"],
    &["-x", "2001:db8:::1/64"],
    &["-x", "*"],
    &["-p", "70000"],
    &["-z", "0"],
    &["-e", "http"],
    &["-b", "80,8o"],
    &["-d", "15090,-1"],
    &["-q", "65536"],
    &["-o", "53,dns"],
    &["-m", "NAT"],
    &["-m", "tproxy"],
    &["-t", "mark"],
    &["-c", "eth0 eth1"],
    &["-c", "-j"],
    &["-k", "averyveryverylongname0"],
    &["-u", "1337;reboot"],
    &["-g", "-1"],
    &["--dns-servers", "10.96.0"],
    &["--host-ipv4-loopback-cidr", "10.0.0.1/32"],
    &[
        "--outbound-owner-groups",
        "java",
        "--outbound-owner-groups-exclude",
        "ftp",
    ],
];

#[test]
fn bad_cidrs_ports_and_modes_are_refused() {
    let mut transcript = String::new();
    for args in REFUSED {
        let mut full = vec!["--dry-run"];
        full.extend_from_slice(args);
        let run = outrigger_iptables(&full);
        assert_eq!(
            run.code,
            Some(1),
            "{args:?} must be refused; stderr: {}",
            run.stderr
        );
        assert_eq!(
            run.stdout, "",
            "{args:?}: nothing may be printed or applied"
        );
        assert!(run.stderr.contains("expected"), "{args:?}: {}", run.stderr);
        transcript.push_str(&format!(
            "$ outrigger iptables --dry-run {}\nexit {}\n{}\n",
            args.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" "),
            run.code.unwrap_or(-1),
            run.stderr.trim_end()
        ));
    }
    check_golden("refused.golden", &transcript);
}

#[test]
fn bad_init_container_args_are_refused_by_the_library_too() {
    let err =
        plan_for_init_args(["istio-iptables", "-i", "10.0.0.0/40"], None).expect_err("refused");
    assert!(err.to_string().contains("-i/--istio-service-cidr"), "{err}");
    let err = plan_for_init_args(["istio-iptables", "--bogus"], None).expect_err("refused");
    assert!(err.to_string().contains("--bogus"), "{err}");
}

#[test]
fn no_golden_is_left_unread() {
    let listed: BTreeSet<String> = GOLDENS.iter().map(|g| (*g).to_owned()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .expect("tests/testdata/iptables exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let unread: Vec<&String> = on_disk.difference(&listed).collect();
    assert!(unread.is_empty(), "goldens nobody reads: {unread:?}");
}
