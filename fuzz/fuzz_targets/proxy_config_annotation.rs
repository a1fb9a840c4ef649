//! Any text as a pod's `proxy.istio.io/config` annotation, through the
//! engine: refused with a message or injected, never a panic, a hang or an
//! alias expansion beyond the annotation's budget.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outrigger::config::Config;
use outrigger::inject::{self, Context};
use serde_json::json;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::default)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "n",
                     "annotations": {"proxy.istio.io/config": text}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    });
    let _ = inject::inject(&pod, &Context::default(), config());
});
