//! Collects rules for both families in the order they are added, with the
//! family-specific variants Istio's builder offers (v4 only, v6 only, one
//! address per family).

use super::super::config::Cidr;
use super::super::rules::{Position, Rule, RuleSet, Table};

/// Stands for the family-specific address in [`Builder::append_versioned`].
pub const ADDR: &str = "@ADDR";

/// Rules of both families, in order of addition.
pub struct Builder {
    set: RuleSet,
}

fn rule(table: Table, chain: &str, position: Position, spec: &str) -> Rule {
    Rule {
        table,
        chain: chain.to_owned(),
        position,
        args: spec.split_whitespace().map(str::to_owned).collect(),
    }
}

impl Builder {
    /// A builder for IPv4, plus IPv6 when `ipv6`.
    pub fn new(ipv6: bool) -> Builder {
        Builder {
            set: RuleSet {
                ipv6,
                ..RuleSet::default()
            },
        }
    }

    /// The rules.
    pub fn finish(self) -> RuleSet {
        self.set
    }

    /// Adds an IPv4 rule.
    pub fn push_v4(&mut self, table: Table, chain: &str, position: Position, spec: &str) {
        self.set.v4.push(rule(table, chain, position, spec));
    }

    /// Adds an IPv6 rule (dropped unless IPv6 is on).
    pub fn push_v6(&mut self, table: Table, chain: &str, position: Position, spec: &str) {
        if self.set.ipv6 {
            self.set.v6.push(rule(table, chain, position, spec));
        }
    }

    /// Appends to both families.
    pub fn append(&mut self, table: Table, chain: &str, spec: &str) {
        self.push_v4(table, chain, Position::Append, spec);
        self.push_v6(table, chain, Position::Append, spec);
    }

    /// Appends to IPv4 only.
    pub fn append_v4(&mut self, table: Table, chain: &str, spec: &str) {
        self.push_v4(table, chain, Position::Append, spec);
    }

    /// Appends to IPv6 only.
    pub fn append_v6(&mut self, table: Table, chain: &str, spec: &str) {
        self.push_v6(table, chain, Position::Append, spec);
    }

    /// Inserts at `at` in both families.
    pub fn insert(&mut self, table: Table, chain: &str, at: u32, spec: &str) {
        self.push_v4(table, chain, Position::Insert(at), spec);
        self.push_v6(table, chain, Position::Insert(at), spec);
    }

    /// Appends to both families, [`ADDR`] in `spec` being `v4` or `v6`.
    pub fn append_versioned(&mut self, v4: &str, v6: &str, table: Table, chain: &str, spec: &str) {
        self.push_v4(table, chain, Position::Append, &spec.replace(ADDR, v4));
        self.push_v6(table, chain, Position::Append, &spec.replace(ADDR, v6));
    }

    /// Adds to the family `cidr` belongs to.
    pub fn push_for(
        &mut self,
        cidr: &Cidr,
        table: Table,
        chain: &str,
        position: Position,
        spec: &str,
    ) {
        if cidr.is_v4() {
            self.push_v4(table, chain, position, spec);
        } else {
            self.push_v6(table, chain, position, spec);
        }
    }
}
