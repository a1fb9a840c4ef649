//! Traffic-capture rules compatible with Istio's `istio-iptables`:
//! generation is pure; applying runs `iptables-restore`.
