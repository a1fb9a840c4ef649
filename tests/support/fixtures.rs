//! The engine's inputs as fixtures: Istio's conformance inputs with their
//! settings, and outrigger's own inputs. Shared by the tests that check
//! properties over all of them.
#![allow(dead_code)]

use std::path::Path;

use outrigger::config::Config;
use serde_json::Value;

use super::conformance::{Suite, case_config, load_suite, pending, yaml_docs};

/// Whether [`fixtures`] includes Istio's conformance inputs (absent on a
/// fresh clone without `../shared`): the tests that count fixtures expect
/// that many only then.
pub fn with_istio() -> bool {
    super::requires::shared_exists(&super::conformance::case_dir(Suite::Inject).join("cases.yaml"))
}

/// One object the engine is expected to inject, with its configuration.
pub struct Fixture {
    /// `<suite folder>:<case>#<doc>` or `own:<file>#<doc>`.
    pub name: String,
    /// The object.
    pub object: Value,
    /// The configuration it is injected with.
    pub cfg: Config,
}

/// Every input of Istio's conformance cases (both suites) that is not an
/// expected error nor a case outrigger does not pass yet (with its case's
/// settings), and every outrigger input under tests/testdata/inject
/// (default settings).
pub fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for suite in [Suite::Inject, Suite::Templates] {
        let (dir, cases) = load_suite(suite).unwrap_or_default();
        let ready = cases
            .iter()
            .filter(|c| c.error.is_none() && pending(suite, &c.name).is_none());
        for case in ready {
            let text = std::fs::read_to_string(dir.join(&case.input)).expect("input");
            for (i, object) in yaml_docs(&text).into_iter().enumerate() {
                out.push(Fixture {
                    name: format!("{}:{}#{i}", suite.folder(), case.name),
                    object,
                    cfg: case_config(&dir, case),
                });
            }
        }
    }
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/inject");
    let mut files: Vec<_> = std::fs::read_dir(&own)
        .expect("testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.ends_with(".yaml") && !n.ends_with(".injected.yaml") && n != "cases.yaml"
        })
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("own input");
        for (i, object) in yaml_docs(&text).into_iter().enumerate() {
            out.push(Fixture {
                name: format!(
                    "own:{}#{i}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
                object,
                cfg: Config::default(),
            });
        }
    }
    out
}
