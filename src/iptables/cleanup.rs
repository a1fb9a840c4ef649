//! Cleanup planning (pure): the `iptables-restore --noflush` input that
//! removes exactly what capture installs — the rules added to built-in
//! chains (the jumps into Istio's chains, the interface exclusions, the
//! TPROXY marks) and Istio's own chains (flushed, then deleted).
//!
//! Two sources: [`cleanup_assuming_installed`] plans from the configuration
//! alone (what `--cleanup-only --dry-run` prints); [`cleanup_from_saved`]
//! plans from what `iptables-save` shows is actually installed, so that
//! running it where nothing is installed is a no-op, not an error.

use std::collections::BTreeMap;

use super::rules::{Rule, Table, is_istio_chain};

/// What one table needs removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TablePlan {
    /// Rules in built-in chains, as `CHAIN args` (deleted with `-D`).
    deletes: Vec<String>,
    /// Istio chains (flushed, then deleted).
    chains: Vec<String>,
}

fn render(plan: &BTreeMap<Table, TablePlan>) -> String {
    let mut out = String::new();
    for (table, tp) in plan {
        if tp.deletes.is_empty() && tp.chains.is_empty() {
            continue;
        }
        out.push_str(&format!("* {}\n", table.name()));
        for rule in &tp.deletes {
            out.push_str(&format!("-D {rule}\n"));
        }
        for chain in &tp.chains {
            out.push_str(&format!("-F {chain}\n"));
        }
        for chain in &tp.chains {
            out.push_str(&format!("-X {chain}\n"));
        }
        out.push_str("COMMIT\n");
    }
    out
}

fn spec(rule: &Rule) -> String {
    format!("{} {}", rule.chain, rule.args.join(" "))
}

/// The removal of everything `rules` installs, assuming all of it is
/// installed: built-in-chain rules deleted in reverse order of addition, then
/// every Istio chain flushed and deleted. Empty when there is nothing.
pub fn cleanup_assuming_installed(rules: &[Rule]) -> String {
    let mut plan: BTreeMap<Table, TablePlan> = BTreeMap::new();
    for rule in rules.iter().rev() {
        if !is_istio_chain(&rule.chain) {
            plan.entry(rule.table).or_default().deletes.push(spec(rule));
        }
    }
    for table in Table::ALL {
        let chains = super::rules::istio_chains(rules, table);
        if !chains.is_empty() {
            plan.entry(table).or_default().chains = chains;
        }
    }
    render(&plan)
}

/// The Istio state of one family, as read from `iptables-save`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedState {
    tables: BTreeMap<Table, TablePlan>,
}

impl SavedState {
    /// Whether nothing of Istio's is installed.
    pub fn is_empty(&self) -> bool {
        self.tables
            .values()
            .all(|t| t.deletes.is_empty() && t.chains.is_empty())
    }
}

fn table_named(name: &str) -> Option<Table> {
    Table::ALL.into_iter().find(|t| t.name() == name)
}

/// Reads `iptables-save` output: Istio's chains (`:ISTIO_...`) and the rules
/// of built-in chains that jump into them, per table.
pub fn parse_save(text: &str) -> SavedState {
    let mut state = SavedState::default();
    let mut table: Option<Table> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            table = table_named(name.trim());
            continue;
        }
        let Some(t) = table else { continue };
        if let Some(chain_line) = line.strip_prefix(':') {
            let chain = chain_line.split_whitespace().next().unwrap_or_default();
            if is_istio_chain(chain) {
                state
                    .tables
                    .entry(t)
                    .or_default()
                    .chains
                    .push(chain.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let mut words = rest.split_whitespace();
            let chain = words.next().unwrap_or_default();
            let words: Vec<&str> = words.collect();
            let jumps_to_istio =
                matches!(words.as_slice(), [.., "-j", target] if is_istio_chain(target));
            if !is_istio_chain(chain) && jumps_to_istio {
                state
                    .tables
                    .entry(t)
                    .or_default()
                    .deletes
                    .push(rest.to_owned());
            }
        }
    }
    state
}

/// The rules of `rules` that live in built-in chains and do not jump into an
/// Istio chain: those `iptables-save` cannot attribute to Istio, so the
/// caller checks each one (`iptables -C`) and passes the present ones to
/// [`cleanup_from_saved`].
pub fn unattributable_rules(rules: &[Rule]) -> Vec<&Rule> {
    rules
        .iter()
        .filter(|r| !is_istio_chain(&r.chain))
        .filter(|r| !r.jump_target().is_some_and(is_istio_chain))
        .collect()
}

/// The `iptables -C` arguments that check whether a rule is installed.
pub fn check_args(rule: &Rule) -> Vec<String> {
    let mut args = vec![
        "-t".to_owned(),
        rule.table.name().to_owned(),
        "-C".to_owned(),
        rule.chain.clone(),
    ];
    args.extend(rule.args.iter().cloned());
    args
}

/// The removal of what is installed: the saved jumps into Istio chains, the
/// `present` built-in-chain rules of the configuration, and every Istio
/// chain. Empty when nothing is installed.
pub fn cleanup_from_saved(saved: &SavedState, present: &[&Rule]) -> String {
    let mut plan = saved.tables.clone();
    for rule in present.iter().rev() {
        plan.entry(rule.table).or_default().deletes.push(spec(rule));
    }
    render(&plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_OUTPUT - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN
COMMIT
*filter
:INPUT ACCEPT [0:0]
:ISTIO_NOT_OURS - [0:0]
COMMIT
";

    #[test]
    fn saved_state_finds_istio_chains_and_jumps_only() {
        let state = parse_save(SAVED);
        let plan = cleanup_from_saved(&state, &[]);
        assert_eq!(
            plan,
            "* nat\n-D PREROUTING -p tcp -j ISTIO_INBOUND\n-D OUTPUT -j ISTIO_OUTPUT\n\
             -F ISTIO_INBOUND\n-F ISTIO_OUTPUT\n-X ISTIO_INBOUND\n-X ISTIO_OUTPUT\nCOMMIT\n"
        );
    }

    #[test]
    fn nothing_installed_plans_nothing() {
        let state =
            parse_save("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n");
        assert!(state.is_empty());
        assert_eq!(cleanup_from_saved(&state, &[]), "");
    }
}
