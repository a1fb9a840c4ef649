//! `outrigger iptables` against the real kernel, inside network namespaces the
//! test creates (never the machine's own): namespace A holds the "pod",
//! namespace B a peer reached over a veth pair with private addresses.
//!
//! The rules are applied in A with the real binary, read back with
//! `iptables-save`, shown to capture a real TCP connection from A to B onto a
//! listener on 15001 in A, refused atomically when they cannot be applied,
//! and removed by `--cleanup-only` so that `iptables-save` shows the tables
//! exactly as they were.
//!
//! Needs root, iproute2 and iptables. Skipped (with a message) only where
//! network namespaces cannot be created.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The environment variable that turns this test binary into a helper
/// process (listener or client) run inside a namespace.
const HELPER_ENV: &str = "OUTRIGGER_NETNS_HELPER";
/// The injected init container's default arguments (`istio-iptables ...`).
const INIT_ARGS: &[&str] = &[
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

/// Runs a command, returning (success, stdout, stderr).
fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    match Command::new(program).args(args).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(err) => (false, String::new(), format!("cannot run {program}: {err}")),
    }
}

fn must(program: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = run(program, args);
    assert!(ok, "{program} {args:?} failed: {stderr}");
    stdout
}

/// Root, `ip` and the backend's `iptables-restore`/`-save`: what applying
/// the rules in a network namespace needs. Skips (says `SKIPPED`) without
/// them on a fresh machine; required in CI.
fn prerequisites(test: &str, backend: Backend) -> bool {
    use support::requires;
    requires::root(test)
        && requires::tool("ip", test)
        && requires::tool(backend.save4, test)
        && requires::tool(backend.ip6tables, test)
}

/// Two namespaces joined by a veth pair; deleted (with every helper process
/// in them) on drop, whether the test passed or not.
struct Namespaces {
    a: String,
    b: String,
    backend: Backend,
    helpers: Vec<Child>,
}

/// An iptables build: the `--iptables-backend` value and its programs.
#[derive(Debug, Clone, Copy)]
struct Backend {
    flag: &'static str,
    save4: &'static str,
    save6: &'static str,
    ip6tables: &'static str,
}

const SYSTEM: Backend = Backend {
    flag: "system",
    save4: "iptables-save",
    save6: "ip6tables-save",
    ip6tables: "ip6tables",
};

const LEGACY: Backend = Backend {
    flag: "legacy",
    save4: "iptables-legacy-save",
    save6: "ip6tables-legacy-save",
    ip6tables: "ip6tables-legacy",
};

impl Namespaces {
    /// Creates the namespaces, or says why it cannot (the only skip reason).
    fn create(backend: Backend, tag: &str, octet: u8) -> Result<Namespaces, String> {
        remove_stale();
        let pid = std::process::id();
        let a = format!("outrigger-ipt-{tag}-a-{pid}");
        let b = format!("outrigger-ipt-{tag}-b-{pid}");
        let (ok, _, err) = run("ip", &["netns", "add", &a]);
        if !ok {
            return Err(format!("`ip netns add` failed: {}", err.trim()));
        }
        // From here on, the guard deletes whatever exists.
        let ns = Namespaces {
            a,
            b,
            backend,
            helpers: Vec::new(),
        };
        let (ok, _, err) = run("ip", &["netns", "add", &ns.b]);
        if !ok {
            return Err(format!("`ip netns add` failed: {}", err.trim()));
        }
        let addr_a = format!("10.211.{octet}.1/30");
        let addr_b = format!("10.211.{octet}.2/30");
        // The pair is created inside A with its peer moved straight into B:
        // nothing is ever added to the machine's own namespace.
        must(
            "ip",
            &[
                "-n", &ns.a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
                "netns", &ns.b,
            ],
        );
        for (netns, dev, addr) in [(&ns.a, "veth-a", &addr_a), (&ns.b, "veth-b", &addr_b)] {
            must("ip", &["-n", netns, "addr", "add", addr, "dev", dev]);
            must("ip", &["-n", netns, "link", "set", dev, "up"]);
            must("ip", &["-n", netns, "link", "set", "lo", "up"]);
        }
        Ok(ns)
    }

    /// Runs `program args` inside namespace `netns`.
    fn exec(&self, netns: &str, program: &str, args: &[&str]) -> (bool, String, String) {
        let mut full = vec!["netns", "exec", netns, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `outrigger iptables args` inside A.
    fn outrigger(&self, args: &[&str]) -> (bool, String, String) {
        let mut full = vec![
            "--log-level",
            "warn",
            "iptables",
            "--iptables-backend",
            self.backend.flag,
        ];
        full.extend_from_slice(args);
        self.exec(&self.a, env!("CARGO_BIN_EXE_outrigger"), &full)
    }

    /// The tables of one family in A, as `iptables-save` prints them, minus
    /// comments and counters (which change with traffic), and minus tables
    /// that hold nothing: a table with only its built-in chains, all ACCEPT,
    /// and no rule behaves exactly like an absent one, and iptables cannot
    /// delete the empty table shell the nf_tables backend creates on first use.
    fn saved(&self, save: &str) -> String {
        let (ok, stdout, stderr) = self.exec(&self.a, save, &[]);
        assert!(ok, "{save} in the namespace failed: {stderr}");
        let mut kept = Vec::new();
        let mut table: Vec<String> = Vec::new();
        for line in stdout.lines().filter(|l| !l.starts_with('#')) {
            let line = match line.find(" [") {
                Some(i) if line.starts_with(':') => &line[..i],
                _ => line,
            };
            table.push(line.to_owned());
            if line == "COMMIT" {
                let holds_something = table
                    .iter()
                    .any(|l| l.starts_with('-') || (l.starts_with(':') && !l.ends_with(" ACCEPT")));
                if holds_something {
                    kept.append(&mut table);
                }
                table.clear();
            }
        }
        kept.join("\n")
    }

    fn state(&self) -> (String, String) {
        (
            self.saved(self.backend.save4),
            self.saved(self.backend.save6),
        )
    }

    /// Starts this test binary as a helper in `netns`; waits for its `READY` line.
    fn helper(&mut self, netns: &str, role: &str) -> BufReader<ChildStdout> {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(exe)
            .args([
                "--ignored",
                "--exact",
                "helper_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the helper starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        self.helpers.push(child);
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("helper output");
            assert!(n > 0, "helper {role:?} exited before it was ready");
            // libtest may print "test helper_process ... " before it on the same line.
            if line.trim_end().ends_with("READY") {
                return stdout;
            }
        }
    }

    /// Connects from A to `target` and returns what the far end said.
    fn connect_from_a(&mut self, target: &str) -> String {
        let a = self.a.clone();
        let mut out = self.helper(&a, &format!("connect {target}"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).expect("client output");
            assert!(n > 0, "the client in A printed no answer");
            if let Some((_, answer)) = line.trim_end().split_once("ANSWER ") {
                return answer.to_owned();
            }
        }
    }
}

/// Deletes namespaces left by an earlier run that was killed (its process is
/// gone, so its guard never ran). Only this test's own names are touched.
fn remove_stale() {
    let (_, list, _) = run("ip", &["netns", "list"]);
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let pid = name
            .strip_prefix("outrigger-ipt-")
            .and_then(|rest| rest.rsplit('-').next());
        if let Some(pid) = pid
            && pid.parse::<u32>().is_ok()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for child in &mut self.helpers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for netns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", netns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn capture_in_network_namespace() {
    capture_scenario(SYSTEM, 0);
}

/// The same with the legacy x_tables build (Debian's iptables package ships
/// both; which one a pod's kernel supports varies).
#[test]
fn capture_in_network_namespace_legacy() {
    capture_scenario(LEGACY, 1);
}

fn capture_scenario(backend: Backend, index: u32) {
    let test = format!("capture_in_network_namespace ({})", backend.flag);
    if !prerequisites(&test, backend) {
        return;
    }
    let octet = ((std::process::id() % 120) * 2 + index) as u8;
    let mut ns = match Namespaces::create(backend, backend.flag, octet) {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED: {test} (needs a machine that can create network namespaces: {why})");
            return;
        }
    };
    let b_addr = format!("10.211.{octet}.2:8080");
    let before = ns.state();

    // Without rules, a connection from A to B's address reaches B.
    let b = ns.b.clone();
    ns.helper(&b, &format!("listen 10.211.{octet}.2:8080 reached-b 2"));
    assert_eq!(
        ns.connect_from_a(&b_addr),
        "reached-b",
        "the veth pair works"
    );

    // Apply the injected init container's rules inside A.
    let (ok, _, stderr) = ns.outrigger(INIT_ARGS);
    assert!(ok, "applying the rules failed: {stderr}");
    let (v4, _) = ns.state();
    for line in [
        ":ISTIO_INBOUND -",
        ":ISTIO_REDIRECT -",
        ":ISTIO_IN_REDIRECT -",
        ":ISTIO_OUTPUT -",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
    ] {
        assert!(
            v4.lines().any(|l| l == line),
            "iptables-save lacks {line:?}:\n{v4}"
        );
    }

    // The same connection now lands on the proxy's outbound port in A.
    let a = ns.a.clone();
    ns.helper(&a, "listen 0.0.0.0:15001 captured-by-15001 1");
    assert_eq!(ns.connect_from_a(&b_addr), "captured-by-15001");

    // Applying again cannot work (the chains exist): it fails with
    // iptables' message and leaves the tables as they were.
    let installed = ns.state();
    let (ok, _, stderr) = ns.outrigger(INIT_ARGS);
    assert!(!ok, "a second apply must fail");
    assert!(
        stderr.contains("iptables-restore"),
        "iptables' message is shown: {stderr}"
    );
    assert_eq!(
        ns.state(),
        installed,
        "a failed apply leaves the tables as they were"
    );

    // --cleanup-only removes exactly what was added.
    let mut cleanup = vec!["--cleanup-only"];
    cleanup.extend_from_slice(INIT_ARGS);
    let (ok, _, stderr) = ns.outrigger(&cleanup);
    assert!(ok, "cleanup failed: {stderr}");
    assert_eq!(
        ns.state(),
        before,
        "after cleanup the tables are as they were"
    );
    assert_eq!(
        ns.connect_from_a(&b_addr),
        "reached-b",
        "traffic flows directly again"
    );

    // And it is safe where nothing is installed.
    let (ok, _, stderr) = ns.outrigger(&cleanup);
    assert!(ok, "cleanup with nothing installed failed: {stderr}");
    assert_eq!(ns.state(), before);

    // With IPv6 on, an IPv6 failure after the IPv4 commit rolls IPv4 back.
    let (ok, _, stderr) = ns.exec(&a, backend.ip6tables, &["-t", "nat", "-N", "ISTIO_INBOUND"]);
    assert!(ok, "{stderr}");
    let blocked = ns.state();
    let mut dual = vec!["--ipv6"];
    dual.extend_from_slice(INIT_ARGS);
    let (ok, _, stderr) = ns.outrigger(&dual);
    assert!(
        !ok,
        "the IPv6 rules cannot be applied over an existing chain"
    );
    assert!(stderr.contains("ip6tables-restore"), "{stderr}");
    assert_eq!(ns.state(), blocked, "neither family changed");
}

/// TPROXY mode with DNS capture, invalid-packet drop and IPv6: every table
/// (mangle, nat, raw) and the policy routing are installed, then removed so
/// that the tables, the policy rules and the route table are as they were.
#[test]
fn tproxy_dns_ipv6_apply_and_cleanup() {
    let test = "tproxy_dns_ipv6_apply_and_cleanup";
    if !prerequisites(test, SYSTEM) {
        return;
    }
    let octet = ((std::process::id() % 120) * 2 + 2) as u8;
    let ns = match Namespaces::create(SYSTEM, "tproxy", octet) {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED: {test} (needs a machine that can create network namespaces: {why})");
            return;
        }
    };
    let args = [
        "-m",
        "TPROXY",
        "-b",
        "*",
        "-i",
        "*",
        "-t",
        "1337",
        "-r",
        "133",
        "--ipv6",
        "--redirect-dns",
        "--dns-servers",
        "10.96.0.10,fd00::a",
        "--drop-invalid",
    ];
    let routing = |ns: &Namespaces| {
        let mut out = String::new();
        for args in [
            &["-4", "rule"][..],
            &["-6", "rule"],
            &["-4", "route", "show", "table", "133"],
            &["-6", "route", "show", "table", "133"],
        ] {
            let mut full = vec!["-n", ns.a.as_str()];
            full.extend_from_slice(args);
            // A route table that never existed cannot be shown: same as empty.
            let (_, listed, _) = run("ip", &full);
            out.push_str(&listed);
        }
        out
    };
    let before = (ns.state(), routing(&ns));

    let (ok, _, stderr) = ns.outrigger(&args);
    assert!(ok, "applying TPROXY rules failed: {stderr}");
    let ((v4, v6), rules) = (ns.state(), routing(&ns));
    for line in [
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A ISTIO_DIVERT -j MARK --set-xmark 0x539/0xffffffff",
        "-A OUTPUT -j ISTIO_OUTPUT_DNS",
        "-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP",
    ] {
        assert!(
            v4.lines().any(|l| l == line),
            "iptables-save lacks {line:?}:\n{v4}"
        );
    }
    assert!(v4.contains("-j TPROXY --on-port 15006"), "{v4}");
    assert!(
        v4.contains("-d 10.96.0.10/32 -p udp -m udp --dport 53 -j CT --zone 2"),
        "{v4}"
    );
    assert!(
        v6.contains("-d fd00::a/128 -p udp -m udp --dport 53 -j CT --zone 2"),
        "{v6}"
    );
    assert!(rules.contains("fwmark 0x539 lookup 133"), "{rules}");
    assert!(rules.contains("local default dev lo"), "{rules}");

    let mut cleanup = vec!["--cleanup-only"];
    cleanup.extend_from_slice(&args);
    let (ok, _, stderr) = ns.outrigger(&cleanup);
    assert!(ok, "cleanup failed: {stderr}");
    assert_eq!(
        (ns.state(), routing(&ns)),
        before,
        "cleanup restores tables and routing"
    );
    let (ok, _, stderr) = ns.outrigger(&cleanup);
    assert!(ok, "a second cleanup (nothing installed) failed: {stderr}");
    assert_eq!((ns.state(), routing(&ns)), before);
}

/// Not a test: the helper process `capture_in_network_namespace` starts
/// inside a namespace (`listen ADDR REPLY COUNT` or `connect ADDR`).
#[test]
#[ignore = "helper process started by capture_in_network_namespace"]
fn helper_process() {
    let role =
        std::env::var(HELPER_ENV).expect("run only as a helper, with OUTRIGGER_NETNS_HELPER set");
    let words: Vec<&str> = role.split_whitespace().collect();
    // Safety net against a hung connection, not a timing assertion.
    let patience = Some(Duration::from_secs(20));
    match words.as_slice() {
        ["listen", addr, reply, count] => {
            let listener = TcpListener::bind(addr).expect("bind");
            println!("READY");
            std::io::stdout().flush().expect("flush");
            let count: usize = count.parse().expect("count");
            for _ in 0..count {
                let (mut conn, _) = listener.accept().expect("accept");
                conn.write_all(reply.as_bytes()).expect("reply");
            }
        }
        ["connect", addr] => {
            println!("READY");
            let addr: SocketAddr = addr.parse().expect("address");
            let mut conn =
                TcpStream::connect_timeout(&addr, Duration::from_secs(20)).expect("connect");
            conn.set_read_timeout(patience).expect("timeout");
            let mut answer = String::new();
            conn.read_to_string(&mut answer).expect("read");
            println!("ANSWER {answer}");
        }
        _ => panic!("unknown helper role {role:?}"),
    }
    // Leave before libtest reports: the parent may have closed the pipe.
    std::io::stdout().flush().expect("flush");
    std::process::exit(0);
}
