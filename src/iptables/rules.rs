//! The rule model and its `iptables-restore` rendering: an ordered list of
//! rules per IP family, each in a table and chain, appended or inserted.
//!
//! Rendering follows Istio's builder: tables in name order, and in each
//! table first `-N` for every Istio chain (in the order the rules first use
//! them, then chains only jumped to), then the rules in the order they were
//! added, then `COMMIT`.

use std::fmt;

/// The IP family a rule set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `iptables`.
    V4,
    /// `ip6tables`.
    V6,
}

impl Family {
    /// The family's restore command (`iptables-restore` / `ip6tables-restore`).
    pub fn restore_command(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    /// The family's save command.
    pub fn save_command(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    /// The family's rule command.
    pub fn command(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The netfilter tables the capture rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `mangle` (TPROXY, invalid-packet drop). Sorted by name, as Istio does.
    Mangle,
    /// `nat` (REDIRECT).
    Nat,
    /// `raw` (DNS conntrack zones).
    Raw,
}

impl Table {
    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Mangle => "mangle",
            Table::Nat => "nat",
            Table::Raw => "raw",
        }
    }

    /// Every table, in rendering order.
    pub const ALL: [Table; 3] = [Table::Mangle, Table::Nat, Table::Raw];
}

/// Whether a rule goes at the end of its chain or at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// `-A chain`.
    Append,
    /// `-I chain N` (1-based).
    Insert(u32),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its table.
    pub table: Table,
    /// Its chain.
    pub chain: String,
    /// Append or insert.
    pub position: Position,
    /// The match and target arguments, e.g. `["-p", "tcp", "-j", "RETURN"]`.
    pub args: Vec<String>,
}

/// Whether a chain is one of Istio's (created and removed by us) rather than
/// a built-in chain or target.
pub fn is_istio_chain(name: &str) -> bool {
    name.starts_with("ISTIO_")
}

impl Rule {
    /// The chain this rule jumps to, when it ends in `-j CHAIN` (Istio's test).
    pub fn jump_target(&self) -> Option<&str> {
        match self.args.as_slice() {
            [.., j, target] if j == "-j" => Some(target),
            _ => None,
        }
    }

    /// The rule's line in restore input: `-A CHAIN args` or `-I CHAIN N args`.
    pub fn restore_line(&self) -> String {
        let head = match self.position {
            Position::Append => format!("-A {}", self.chain),
            Position::Insert(n) => format!("-I {} {n}", self.chain),
        };
        if self.args.is_empty() {
            head
        } else {
            format!("{head} {}", self.args.join(" "))
        }
    }

    /// The line that deletes this rule: `-D CHAIN args`.
    pub fn delete_line(&self) -> String {
        format!("-D {} {}", self.chain, self.args.join(" "))
    }
}

/// The rules of both families, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// IPv4 rules.
    pub v4: Vec<Rule>,
    /// IPv6 rules (empty unless IPv6 is on).
    pub v6: Vec<Rule>,
    /// Whether IPv6 rules are emitted at all.
    pub ipv6: bool,
}

impl RuleSet {
    /// The rules of one family.
    pub fn family(&self, family: Family) -> &[Rule] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// The families that have rules to apply: IPv4, and IPv6 when it is on.
    pub fn families(&self) -> Vec<Family> {
        if self.ipv6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// The `iptables-restore --noflush` input for one family.
    pub fn restore_text(&self, family: Family) -> String {
        render_restore(self.family(family))
    }
}

/// The Istio chains of one table, in creation order: chains that hold rules,
/// by first use, then chains only jumped to.
pub fn istio_chains(rules: &[Rule], table: Table) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    let in_table = rules.iter().filter(|r| r.table == table);
    for rule in in_table.clone() {
        if is_istio_chain(&rule.chain) && !chains.contains(&rule.chain) {
            chains.push(rule.chain.clone());
        }
    }
    for rule in in_table {
        if let Some(target) = rule.jump_target()
            && is_istio_chain(target)
            && !chains.iter().any(|c| c == target)
        {
            chains.push(target.to_owned());
        }
    }
    chains
}

/// Renders rules as `iptables-restore` input (`* table`, `-N`, rules, `COMMIT`).
pub fn render_restore(rules: &[Rule]) -> String {
    let mut out = String::new();
    for table in Table::ALL {
        let in_table: Vec<&Rule> = rules.iter().filter(|r| r.table == table).collect();
        if in_table.is_empty() {
            continue;
        }
        out.push_str(&format!("* {}\n", table.name()));
        for chain in istio_chains(rules, table) {
            out.push_str(&format!("-N {chain}\n"));
        }
        for rule in in_table {
            out.push_str(&rule.restore_line());
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}
