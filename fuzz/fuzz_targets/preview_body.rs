//! `POST /preview`'s body parser (YAML or JSON, bounded) and the CLI's
//! multi-document reader: any bytes must be parsed or refused with an
//! error, never panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrigger::webhook::preview;

fuzz_target!(|data: &[u8]| {
    let _ = preview::parse_object(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = outrigger::preview::parse_documents(text);
    }
});
