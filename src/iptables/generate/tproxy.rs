//! TPROXY bookkeeping in `mangle`: keep the proxy's marks on the connection,
//! mark the proxy's outbound-to-inbound loopback traffic, and never capture
//! the proxy's own loopback traffic inbound.

use super::super::config::CaptureConfig;
use super::super::rules::{Position, Table};
use super::{
    ADDR, Builder, INBOUND, INBOUND_PASSTHROUGH_V4, INBOUND_PASSTHROUGH_V6, LOOPBACK_V6,
    OUTBOUND_MARK,
};

/// Adds the TPROXY mark rules (only called in TPROXY mode).
pub fn marks(b: &mut Builder, cfg: &CaptureConfig) {
    let mark = cfg.tproxy_mark;
    let save = format!("-p tcp -m mark --mark {mark} -j CONNMARK --save-mark");
    b.append(Table::Mangle, "PREROUTING", &save);
    let marked = format!("-p tcp -o lo -m mark --mark {mark} -j RETURN");
    b.append(Table::Mangle, "OUTPUT", &marked);
    let loopback_v4 = cfg.host_ipv4_loopback.to_string();
    let owners = [
        ("--uid-owner", &cfg.proxy_uids),
        ("--gid-owner", &cfg.proxy_gids),
    ];
    for (match_flag, ids) in owners {
        for id in ids {
            let spec = format!(
                "! -d {ADDR} -p tcp -o lo -m owner {match_flag} {id} -j MARK --set-mark {OUTBOUND_MARK}"
            );
            b.append_versioned(&loopback_v4, LOOPBACK_V6, Table::Mangle, "OUTPUT", &spec);
        }
    }
    let restore = format!("-p tcp -m connmark --mark {mark} -j CONNMARK --restore-mark");
    b.append(Table::Mangle, "OUTPUT", &restore);
    let already = format!("-p tcp -m mark --mark {mark} -j RETURN");
    b.insert(Table::Mangle, INBOUND, 1, &already);
    let passthrough = |source: &str| format!("-p tcp -s {source} -i lo -j RETURN");
    let at2 = Position::Insert(2);
    b.push_v4(
        Table::Mangle,
        INBOUND,
        at2,
        &passthrough(INBOUND_PASSTHROUGH_V4),
    );
    b.push_v6(
        Table::Mangle,
        INBOUND,
        at2,
        &passthrough(INBOUND_PASSTHROUGH_V6),
    );
    let not_proxy = format!("-p tcp -i lo -m mark ! --mark {OUTBOUND_MARK} -j RETURN");
    b.insert(Table::Mangle, INBOUND, 3, &not_proxy);
}
