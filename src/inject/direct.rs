//! The webhook's direct path: a first injection, written straight into the
//! patch's JSON text.
//!
//! The Value engine renders the template as `serde_json::Value`s, merges
//! them into a copy of the pod, post-processes it, diffs it against the
//! original and serializes the operations: every node of the several
//! kilobytes it adds is allocated, inserted, compared, moved, written and
//! dropped. For the common case (a pod never injected before, whose own
//! containers, volumes and pull secrets the template does not touch by
//! name), the patch is known without any of that: the template's items are
//! inserted by name, so each is one `add` at its merged index, written as
//! text, from the configuration's compiled template ([`compiled`]) or, for
//! a pod with tuning annotations, from the template rendered for it
//! ([`Node`]s). The metadata's operations are written directly too
//! ([`metadata`]), and so are the redirected app probes ([`probes`]), from
//! the rewrite's plan, which the Value engine applies.
//!
//! The contract: [`patch`] gives the very bytes `serde_json::to_vec` writes
//! for [`super::inject`]'s patch, or `None` (take the Value engine). The
//! invariants, mutation and paths tests hold it to that on every fixture,
//! on thousands of mutants, and across configurations.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::annotations::{OVERRIDES, STATUS};
use super::compiled::{self, Compiled, PodValues};
use super::merge::merge_into;
use super::node::Node;
use super::order::{order_containers, order_init_containers};
use super::patch::diff_into_at;
use super::patch_json::Out;
use super::pipeline;
use super::probes::{APP_PROBERS_ENV, Plan};
use super::proxy;
use super::sidecar::{
    self, CORE_DUMP_NAME, INIT_NAME, Inputs, Metadata, PROXY_NAME, Status, VALIDATION_NAME,
};
use super::{Candidate, InjectError, at, inputs};
use crate::config::Config;
use ops::{Ops, Slot};

mod metadata;
mod ops;
mod probes;

/// A first injection's patch.
pub struct Direct {
    /// The patch's JSON text.
    pub patch: Vec<u8>,
    /// What was added.
    pub status: Status,
    /// Whether the configuration's compiled template was used.
    pub compiled: bool,
}

/// The pod spec's lists the template adds to, in the order a diff visits
/// them (sorted keys).
const LISTS: [&str; 4] = [
    "containers",
    "imagePullSecrets",
    "initContainers",
    "volumes",
];

/// The containers Istio's order moves, whoever added them.
const ORDERED_NAMES: [&str; 4] = [PROXY_NAME, INIT_NAME, VALIDATION_NAME, CORE_DUMP_NAME];

/// The patch of a first injection of `object`, or `None` when the pod is
/// not one the direct path handles (an earlier injection, the user's own
/// versions of injected containers, volumes or secrets of the same names,
/// lists that are not lists of uniquely named objects).
pub fn patch(object: &Value, c: &Candidate, cfg: &Config) -> Result<Option<Direct>, InjectError> {
    if c.annotations.contains_key(STATUS) || c.annotations.contains_key(OVERRIDES) {
        return Ok(None);
    }
    let Some(originals) = Originals::of(c.spec) else {
        return Ok(None);
    };
    let s = cfg.settings();
    let compiled_template = if compiled_fits(c) {
        compiled::of_config(cfg)
    } else {
        None
    };
    let settings = match compiled_template {
        Some(t) => Cow::Borrowed(&t.pod_settings),
        None => Cow::Owned(pipeline::pod_settings(s, &c.annotations)?),
    };
    let inputs = Inputs {
        s,
        annotations: &c.annotations,
        labels: &c.labels,
        spec: c.spec,
        workload: &c.workload,
        proxy_config: &settings.proxy_config,
        native: settings.native,
        hold: settings.hold,
        resources: inputs::resources(s, &c.annotations),
        compile: false,
    };
    let (mut added, template_metadata, status) = match compiled_template {
        Some(t) => {
            let values = PodValues {
                pod_ports: proxy::pod_ports(&inputs),
                app_containers: inputs.app_containers().join(","),
                workload_name: &c.workload.name,
                owner: c.workload.owner(),
                certs_secret: if s.mount_mtls_certs {
                    sidecar::certs_secret(c.spec)
                } else {
                    String::new()
                },
                extra_env: Vec::new(),
            };
            let metadata = sidecar::metadata(&inputs);
            (Added::Compiled(t, values), metadata, t.status.clone())
        }
        None => {
            let sidecar::Rendered {
                metadata,
                init_containers,
                containers,
                volumes,
                image_pull_secrets,
                status,
            } = sidecar::render(&inputs)?;
            let lists = [containers, image_pull_secrets, init_containers, volumes];
            (Added::Rendered(lists), metadata, status)
        }
    };
    if originals.collide(&added) {
        return Ok(None);
    }

    // Metadata: the pod's labels and annotations with the template's merged
    // in, then post-processed as the engine does.
    let mut proxy_env = Vec::new();
    let status_text = compiled_template.map(|t| (t.status_json.as_str(), &t.status_text[..]));
    let mut metadata = NewMetadata::merged(c, template_metadata, status_text);
    let status_json = match compiled_template {
        Some(t) => t.status_json.clone(),
        None => status.to_json(),
    };
    pipeline::finish_annotations(
        &mut metadata.annotations,
        s,
        &settings.target_port,
        &status.revision,
        status_json,
        &mut proxy_env,
    );

    // The app's probes: which handlers are redirected, and the probers.
    let probe_plan = pipeline::probe_rewrite_port(s, &c.annotations)
        .map(|status_port| Plan::of(c.spec, status_port));
    if let Some(plan) = &probe_plan {
        proxy_env.extend(pipeline::probers_env(
            &plan.probers,
            added.existing_probers(),
        ));
    }
    added.add_proxy_env(proxy_env);

    // The operations, in the order a diff of the whole pod gives: the
    // metadata's before the spec's, unless the pod has no metadata (keys
    // added come after the keys that were there).
    let mut ops = Ops::new();
    let original_meta = at(object, c.meta_ptr);
    if original_meta.is_some() {
        metadata.write(c.meta_ptr, original_meta, &mut ops);
    }
    let lists = Lists {
        spec_ptr: c.spec_ptr,
        originals: &originals,
        added: &added,
        hold: settings.hold,
    };
    lists.write(probe_plan.as_ref(), &mut ops);
    if original_meta.is_none() {
        metadata.write(c.meta_ptr, original_meta, &mut ops);
    }
    Ok(Some(Direct {
        patch: ops.finish(),
        status,
        compiled: compiled_template.is_some(),
    }))
}

/// Whether the configuration's compiled template fits the pod: it has no
/// tuning annotation, a named workload (the template leaves the workload's
/// env vars as holes), and named app containers (it leaves the value of
/// `ISTIO_META_APP_CONTAINERS` as one, where an empty value drops the key).
fn compiled_fits(c: &Candidate) -> bool {
    let has_apps = c
        .spec
        .get("containers")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty())
            })
        });
    !c.workload.name.is_empty()
        && !c.workload.api_version.is_empty()
        && has_apps
        && !c.annotations.keys().any(|k| compiled::tunes(k))
}

/// The injected pod's labels and annotations.
struct NewMetadata<'a> {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// The template's own labels and annotations, for the engine's merge
    /// when the pod's metadata is unusual.
    template: Metadata,
    /// A value whose JSON text is written already, and that text: the
    /// compiled template's status record.
    written: Option<(&'a str, &'a [u8])>,
}

impl<'a> NewMetadata<'a> {
    /// The pod's labels and annotations (as strings, as the engine reads
    /// them) with the template's merged in.
    fn merged(c: &Candidate, template: Metadata, written: Option<(&'a str, &'a [u8])>) -> Self {
        let mut labels = c.labels.clone();
        let mut annotations = c.annotations.clone();
        for (added, map) in [
            (&template.labels, &mut labels),
            (&template.annotations, &mut annotations),
        ] {
            for (k, v) in added {
                map.insert(k.to_string(), v.clone());
            }
        }
        NewMetadata {
            labels,
            annotations,
            template,
            written,
        }
    }

    /// Writes the operations that turn `original`, at `meta_ptr`, into
    /// this: directly for plain metadata ([`metadata::ops`]), else through
    /// the engine's merge and diff.
    fn write(&self, meta_ptr: &str, original: Option<&Value>, ops: &mut Ops) {
        if let Some(direct) = metadata::ops(original, &self.labels, &self.annotations) {
            metadata::write(meta_ptr, &direct, self.written, ops);
            return;
        }
        let mut meta = match original {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(m) => m.clone(),
        };
        merge_into(&mut meta, self.template.to_value());
        pipeline::set_annotations(&mut meta, self.annotations.clone());
        let mut engine_ops = Vec::new();
        diff_into_at(meta_ptr, original, meta, &mut engine_ops);
        ops.values(&engine_ops);
    }
}

/// The pod spec's lists with the template's items inserted.
struct Lists<'a> {
    spec_ptr: &'static str,
    originals: &'a Originals<'a>,
    added: &'a Added<'a>,
    hold: bool,
}

impl Lists<'_> {
    /// Writes the operations on the lists: those the pod has, in key
    /// order, then those the template adds; an inserted item is an `add`
    /// at its merged index, a kept one gets its redirected probes
    /// (`probe_plan`).
    fn write(&self, probe_plan: Option<&Plan>, ops: &mut Ops) {
        for present in [true, false] {
            for (l, field) in LISTS.iter().enumerate() {
                let original = self.originals.lists[l];
                if !self.added.sets(l) || original.is_some() != present {
                    continue;
                }
                let names = self.added.names(l);
                let slots = merged_order(field, &names, original.unwrap_or(&[]), self.hold);
                let list_ptr = [self.spec_ptr, "/", field].concat();
                let Some(original) = original else {
                    ops.add_list(&list_ptr, &slots, |i, out| self.added.write(l, i, out));
                    continue;
                };
                for (j, slot) in slots.iter().enumerate() {
                    match *slot {
                        Slot::Added(i) => {
                            ops.add_item(&list_ptr, j, |out| self.added.write(l, i, out));
                        }
                        Slot::Kept(k) => {
                            if let Some(plan) = probe_plan {
                                let item = (*field, k, &original[k]);
                                probes::write(plan, item, &list_ptr, j, ops);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the template adds, by list (in [`LISTS`]' order): rendered for this
/// pod, or the configuration's compiled template with this pod's values.
enum Added<'a> {
    Rendered([Vec<Node<'a>>; 4]),
    Compiled(&'a Compiled, PodValues<'a>),
}

impl Added<'_> {
    fn compiled_list(t: &Compiled, l: usize) -> &[compiled::Item] {
        match l {
            0 => &t.containers,
            1 => &t.image_pull_secrets,
            2 => &t.init_containers,
            _ => &t.volumes,
        }
    }

    /// Whether the template sets list `l`: containers, init containers and
    /// volumes always, if only to `[]`; pull secrets when there are any (as
    /// the Value engine's partial pod has it).
    fn sets(&self, l: usize) -> bool {
        l != 1 || !self.names(l).is_empty()
    }

    /// The names of the items of list `l`.
    fn names(&self, l: usize) -> Vec<&str> {
        match self {
            Added::Rendered(lists) => lists[l]
                .iter()
                .map(|n| n.str_of("name").unwrap_or(""))
                .collect(),
            Added::Compiled(t, _) => Self::compiled_list(t, l)
                .iter()
                .map(|i| i.name.as_str())
                .collect(),
        }
    }

    /// Writes item `i` of list `l`.
    fn write(&self, l: usize, i: usize, out: &mut Out) {
        match self {
            Added::Rendered(lists) => lists[l][i].write(out),
            Added::Compiled(t, values) => Self::compiled_list(t, l)[i].write(values, out),
        }
    }

    /// The probers the proxy already carries in its env (from ProxyConfig's
    /// `proxyMetadata`), as the Value engine finds them. A compiled
    /// template has none (see [`Compiled::of`]).
    fn existing_probers(&self) -> Option<Value> {
        let Added::Rendered(lists) = self else {
            return None;
        };
        let proxy = lists
            .iter()
            .flatten()
            .find(|c| c.str_of("name") == Some(PROXY_NAME))?;
        let Some(Node::List(env)) = proxy.get("env") else {
            return None;
        };
        let text = env
            .iter()
            .find(|e| e.str_of("name") == Some(APP_PROBERS_ENV))?
            .str_of("value")?;
        serde_json::from_str(text).ok()
    }

    /// Adds post-processing's env vars to the proxy's, replacing any of the
    /// same name.
    fn add_proxy_env(&mut self, extra: Vec<Node<'static>>) {
        match self {
            Added::Compiled(_, values) => values.extra_env = extra,
            Added::Rendered(lists) => {
                let proxy = lists
                    .iter_mut()
                    .flatten()
                    .find(|c| c.str_of("name") == Some(PROXY_NAME));
                if let Some(Node::List(env)) = proxy.and_then(|p| p.get_mut("env")) {
                    for e in extra {
                        let name = e.str_of("name").map(str::to_string);
                        match env.iter_mut().find(|x| x.str_of("name") == name.as_deref()) {
                            Some(slot) => *slot = e,
                            None => env.push(e),
                        }
                    }
                }
            }
        }
    }
}

/// The pod's own lists, known to be lists of uniquely named objects.
struct Originals<'o> {
    lists: [Option<&'o [Value]>; 4],
}

impl<'o> Originals<'o> {
    /// The pod's lists, or `None` if one is neither absent nor a list of
    /// objects with distinct string names (the Value engine then decides
    /// what the merge and the diff make of it).
    fn of(spec: &'o Value) -> Option<Originals<'o>> {
        let mut lists = [None; 4];
        for (slot, field) in lists.iter_mut().zip(LISTS) {
            match spec.get(field) {
                None => {}
                Some(Value::Array(items)) => {
                    let mut names: Vec<&str> = items
                        .iter()
                        .map(|i| i.get("name").and_then(Value::as_str))
                        .collect::<Option<_>>()?;
                    names.sort_unstable();
                    if names.windows(2).any(|w| w[0] == w[1]) {
                        return None;
                    }
                    *slot = Some(items.as_slice());
                }
                Some(_) => return None,
            }
        }
        Some(Originals { lists })
    }

    /// Whether the pod has an item of the name of one the template adds:
    /// a container or init container of the name of any injected container
    /// (the user's own settings for it) or of one Istio's container order
    /// moves, or a volume or pull secret of the same name as an injected
    /// one (the merge would combine them).
    fn collide(&self, added: &Added) -> bool {
        let containers: Vec<&str> = [0, 2].iter().flat_map(|&l| added.names(l)).collect();
        let injected_container =
            |name: &str| ORDERED_NAMES.contains(&name) || containers.contains(&name);
        let names = |l: usize| {
            self.lists[l]
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("name").and_then(Value::as_str))
        };
        names(0).chain(names(2)).any(injected_container)
            || [1, 3].iter().any(|&l| {
                let injected = added.names(l);
                names(l).any(|n| injected.contains(&n))
            })
    }
}

/// The order of a merged list: the template's items, then the pod's (the
/// merge's order when no name is shared), then Istio's container order.
fn merged_order(field: &str, added: &[&str], kept: &[Value], hold: bool) -> Vec<Slot> {
    let mut named: Vec<(Slot, &str)> = added
        .iter()
        .enumerate()
        .map(|(i, name)| (Slot::Added(i), *name))
        .chain(kept.iter().enumerate().map(|(k, item)| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
            (Slot::Kept(k), name)
        }))
        .collect();
    match field {
        "containers" => order_containers(&mut named, |(_, n)| n, hold),
        "initContainers" => order_init_containers(&mut named, |(_, n)| n),
        _ => {}
    }
    named.into_iter().map(|(slot, _)| slot).collect()
}
