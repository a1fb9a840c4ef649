//! Applying and removing a [`CapturePlan`] on the machine: runs
//! `iptables-restore --noflush` / `ip6tables-restore --noflush`, feeding the
//! generated text on stdin, and the plan's `ip` commands.
//!
//! All or nothing: both families are first checked with `--test`; the `ip`
//! commands run; the touched tables are saved; then each family is
//! committed. If a commit still fails, the saved tables are restored and the
//! `ip` commands undone, so everything ends as it was, and the error carries
//! iptables' own message.

use std::io::Write;
use std::process::{Command, Stdio};

use tracing::{info, warn};

use super::CapturePlan;
use super::cleanup::{check_args, cleanup_from_saved, parse_save, unattributable_rules};
use super::routes::IpCommand;
use super::rules::{Family, RuleSet, Table};

/// The iptables programs to run, per family. The defaults are the names on
/// `PATH` (`iptables-restore`, ...), i.e. whatever backend the system chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// Which build of iptables (see [`Tools::program`]).
    pub variant: Variant,
}

/// Which iptables build to run (`--iptables-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Variant {
    /// The system's choice: `iptables-restore`, ... as found on `PATH`.
    #[default]
    System,
    /// The nf_tables build (`iptables-nft-restore`, ...).
    Nft,
    /// The legacy x_tables build (`iptables-legacy-restore`, ...).
    Legacy,
}

impl Default for Tools {
    fn default() -> Self {
        Tools::new(Variant::System)
    }
}

impl Tools {
    /// The programs of one iptables build.
    pub fn new(variant: Variant) -> Tools {
        Tools { variant }
    }

    /// The program implementing `base` (`iptables`, `iptables-save`,
    /// `ip6tables-restore`, ...) in the chosen variant.
    pub fn program(&self, base: &str) -> String {
        let suffix = match self.variant {
            Variant::System => return base.to_owned(),
            Variant::Nft => "nft",
            Variant::Legacy => "legacy",
        };
        match base.split_once('-') {
            Some((head, tail)) => format!("{head}-{suffix}-{tail}"),
            None => format!("{base}-{suffix}"),
        }
    }
}

/// Applying or removing rules failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A program could not be started (not installed?).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed; `stderr` is iptables' message.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A commit failed after the check passed; the saved tables were put back.
    #[error("applying the rules failed; the tables were restored to their previous state")]
    RolledBack {
        /// The failure.
        #[source]
        source: Box<ApplyError>,
    },
    /// A commit failed and putting the saved tables back failed too.
    #[error(
        "applying the rules failed, and restoring the previous tables also failed ({rollback})"
    )]
    RollbackFailed {
        /// The failure.
        #[source]
        source: Box<ApplyError>,
        /// Why the rollback failed.
        rollback: Box<ApplyError>,
    },
}

/// Runs a program with `args`, feeding `stdin`; returns its stdout.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, ApplyError> {
    let command_line = if args.is_empty() {
        program.to_owned()
    } else {
        format!("{program} {}", args.join(" "))
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ApplyError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means the program exited early; its status says why.
        if let Err(err) = pipe.write_all(text.as_bytes()) {
            warn!(program, error = %err, "could not write all input");
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|source| ApplyError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(ApplyError::Failed {
            program: command_line,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether a program exits successfully (used for `iptables -C`).
fn succeeds(program: &str, args: &[String]) -> Result<bool, ApplyError> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| ApplyError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    Ok(status.success())
}

/// The tables a restore text touches.
fn tables_of(text: &str) -> Vec<Table> {
    Table::ALL
        .into_iter()
        .filter(|t| text.lines().any(|l| l.trim() == format!("* {}", t.name())))
        .collect()
}

/// Saves the given tables of one family (restore input that puts them back).
fn save_tables(tools: &Tools, family: Family, tables: &[Table]) -> Result<String, ApplyError> {
    let program = tools.program(family.save_command());
    let mut saved = String::new();
    for table in tables {
        let text = run(&program, &["-t", table.name()], None)?;
        if text
            .lines()
            .any(|l| l.trim() == format!("*{}", table.name()))
        {
            saved.push_str(&text);
        } else {
            // Not there yet: putting it back means leaving it empty.
            saved.push_str(&format!("*{}\nCOMMIT\n", table.name()));
        }
    }
    Ok(saved)
}

/// Restores `text` for `family`, all or nothing across families (see the
/// module docs). `texts` pairs each family with its restore input.
pub fn restore_atomically(tools: &Tools, texts: &[(Family, String)]) -> Result<(), ApplyError> {
    let texts: Vec<&(Family, String)> = texts.iter().filter(|(_, t)| !t.is_empty()).collect();
    for (family, text) in &texts {
        let program = tools.program(family.restore_command());
        run(&program, &["--noflush", "--test"], Some(text))?;
    }
    let mut snapshots = Vec::new();
    for (family, text) in &texts {
        snapshots.push((*family, save_tables(tools, *family, &tables_of(text))?));
    }
    for (family, text) in &texts {
        let program = tools.program(family.restore_command());
        if let Err(err) = run(&program, &["--noflush"], Some(text)) {
            warn!(family = %family, error = %err, "commit failed; restoring the saved tables");
            for (snap_family, snapshot) in &snapshots {
                let program = tools.program(snap_family.restore_command());
                if let Err(rollback) = run(&program, &[], Some(snapshot)) {
                    return Err(ApplyError::RollbackFailed {
                        source: Box::new(err),
                        rollback: Box::new(rollback),
                    });
                }
            }
            return Err(ApplyError::RolledBack {
                source: Box::new(err),
            });
        }
        info!(family = %family, "rules applied");
    }
    Ok(())
}

/// Runs `ip args`; `Ok(true)` when it changed something, `Ok(false)` when
/// iproute2 says the thing is already there (`added`) or already gone.
fn run_ip(command: &IpCommand) -> Result<bool, ApplyError> {
    let args: Vec<&str> = command.args.iter().map(String::as_str).collect();
    match run("ip", &args, None) {
        Ok(_) => Ok(true),
        Err(ApplyError::Failed { stderr, .. }) if already_done(command, &stderr) => {
            info!(command = %command.line(), answer = %stderr, "nothing to change");
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// Whether iproute2's complaint means the state is already what `command`
/// wants: an `add` of something present, a `del` of something absent.
fn already_done(command: &IpCommand, stderr: &str) -> bool {
    if command.args.iter().any(|a| a == "add") {
        stderr.contains("File exists")
    } else {
        stderr.contains("No such file or directory") || stderr.contains("No such process")
    }
}

/// Undoes the `ip` commands that took effect, newest first (best effort:
/// the original failure is what gets reported).
fn undo_ip(done: &[IpCommand]) {
    for command in done.iter().rev() {
        if let Err(err) = run_ip(&command.undo()) {
            warn!(command = %command.undo().line(), error = %err, "could not undo");
        }
    }
}

/// Installs a capture plan: the rules of every family atomically, plus the
/// `ip` addresses/routes it needs. On failure nothing stays changed.
pub fn apply(tools: &Tools, plan: &CapturePlan) -> Result<(), ApplyError> {
    let texts = restore_texts(&plan.rules);
    // Refuse early, before any route is touched.
    for (family, text) in &texts {
        run(
            &tools.program(family.restore_command()),
            &["--noflush", "--test"],
            Some(text),
        )?;
    }
    let mut done = Vec::new();
    for command in &plan.setup {
        match run_ip(command) {
            Ok(true) => done.push(command.clone()),
            Ok(false) => {}
            Err(err) => {
                undo_ip(&done);
                return Err(err);
            }
        }
    }
    if let Err(err) = restore_atomically(tools, &texts) {
        undo_ip(&done);
        return Err(err);
    }
    for command in &done {
        info!(command = %command.line(), "done");
    }
    Ok(())
}

fn restore_texts(rules: &RuleSet) -> Vec<(Family, String)> {
    rules
        .families()
        .into_iter()
        .map(|f| (f, rules.restore_text(f)))
        .collect()
}

/// Plans the removal of what is installed, per family: reads
/// `iptables-save`, checks the configuration's rules in built-in chains with
/// `iptables -C`. Returns each family's restore input (empty: nothing to do).
pub fn plan_cleanup(tools: &Tools, rules: &RuleSet) -> Result<Vec<(Family, String)>, ApplyError> {
    let mut plans = Vec::new();
    for family in rules.families() {
        let saved = run(&tools.program(family.save_command()), &[], None)?;
        let state = parse_save(&saved);
        let check = tools.program(family.command());
        let mut present = Vec::new();
        for rule in unattributable_rules(rules.family(family)) {
            if succeeds(&check, &check_args(rule))? {
                present.push(rule);
            }
        }
        plans.push((family, cleanup_from_saved(&state, &present)));
    }
    Ok(plans)
}

/// Removes what is installed (see [`plan_cleanup`]) and the plan's routes;
/// a no-op when nothing is. Returns the restore input run per family.
pub fn cleanup(tools: &Tools, plan: &CapturePlan) -> Result<Vec<(Family, String)>, ApplyError> {
    let texts = plan_cleanup(tools, &plan.rules)?;
    if texts.iter().all(|(_, text)| text.is_empty()) {
        info!("no rule or chain installed; nothing to remove");
    } else {
        restore_atomically(tools, &texts)?;
    }
    for command in &plan.teardown {
        if run_ip(command)? {
            info!(command = %command.line(), "removed");
        }
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_program_names() {
        let legacy = Tools {
            variant: Variant::Legacy,
        };
        assert_eq!(
            legacy.program("iptables-restore"),
            "iptables-legacy-restore"
        );
        assert_eq!(legacy.program("ip6tables-save"), "ip6tables-legacy-save");
        assert_eq!(legacy.program("iptables"), "iptables-legacy");
        assert_eq!(Tools::default().program("iptables-save"), "iptables-save");
    }

    #[test]
    fn tables_of_restore_text() {
        assert_eq!(
            tables_of("* mangle\nCOMMIT\n* raw\nCOMMIT\n"),
            vec![Table::Mangle, Table::Raw]
        );
    }
}
