//! The webhook's entry point: any bytes as an AdmissionReview body, through
//! the body bounds and the whole admission (engine included). It must
//! answer or refuse, never panic, and stay within libFuzzer's memory limit.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outrigger::config::Config;
use outrigger::inject::bounded_yaml::{YamlLimits, check_json};
use outrigger::webhook::admission;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::default)
}

fuzz_target!(|data: &[u8]| {
    if check_json(data, &YamlLimits::REQUEST).is_ok() {
        let _ = admission::admit(data, config());
    }
});
