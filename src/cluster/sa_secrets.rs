//! Per-ServiceAccount certificate Secrets, Istio's old Citadel model: in
//! namespaces labelled `outrigger.dev/certificate-secrets=enabled` (or
//! Istio's `ca.istio.io/override=true`), a Secret `istio.<sa>` of type
//! `istio.io/key-and-cert` per ServiceAccount, with `key.pem`,
//! `cert-chain.pem` and `root-cert.pem`, for workloads that read their
//! certificate from files.
//!
//! The Secret is owned by its ServiceAccount (ownerReference), so Kubernetes
//! deletes it with the account. It is renewed when less than the renew ratio
//! of its lifetime is left, recreated if deleted, and rewritten if its chain
//! no longer verifies against the current root. A Secret of that name with
//! another type is someone else's and is left alone.
//!
//! Read from the watch, write to the API: the leader decides from its
//! caches, so a ServiceAccount event in a namespace that has not opted in,
//! a resync with nothing due, or an event on a Secret that is right costs
//! no request; a missing or stale Secret costs one write.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use tracing::{debug, info, warn};

use super::authority::{AuthorityError, ClusterCa, IssuedCert, needs_renewal};
use super::cached;
use super::current_ca::{self, CurrentCa};
use super::driver::{Drive, while_leading};
use super::error::{ReconcileError, is_conflict, is_not_found};
use super::leader::LeaderGate;
use super::metrics::ClusterMetrics;
use super::writes;
use crate::ca::SpiffeId;

/// outrigger's opt-in label (value `enabled`).
pub const OPT_IN_LABEL: &str = "outrigger.dev/certificate-secrets";
/// Istio's opt-in label (value `true`), also honoured.
pub const ISTIO_OVERRIDE_LABEL: &str = "ca.istio.io/override";
/// The Secrets' type (Istio's).
pub const SECRET_TYPE: &str = "istio.io/key-and-cert";
/// The annotation naming the ServiceAccount (Istio's).
pub const SA_ANNOTATION: &str = "istio.io/service-account.name";
/// Key of the private key.
pub const KEY_KEY: &str = "key.pem";
/// Key of the chain, leaf first.
pub const CHAIN_KEY: &str = "cert-chain.pem";
/// Key of the root.
pub const ROOT_KEY: &str = "root-cert.pem";
/// Prefix of the Secrets' names.
pub const SECRET_PREFIX: &str = "istio.";

/// How the Secrets' certificates are issued.
#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// SPIFFE trust domain of the identities.
    pub trust_domain: String,
    /// Lifetime of each certificate.
    pub ttl: Duration,
    /// Renew when less than this fraction of the lifetime is left.
    pub renew_ratio: f64,
}

/// What needs reconciling: a whole namespace (resync, opt-in) or one account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretKey {
    /// Every ServiceAccount of the namespace.
    Namespace(String),
    /// One ServiceAccount.
    Account {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Namespace(ns) => write!(f, "{ns}/*"),
            Self::Account { namespace, name } => write!(f, "{namespace}/{name}"),
        }
    }
}

/// What a Secret needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretAction {
    /// It does not exist.
    Create,
    /// It must be rewritten, for this reason.
    Replace(&'static str),
    /// It is valid and not due for renewal.
    Keep,
    /// A Secret of that name with another type: not ours, left alone.
    Foreign,
}

/// Whether a namespace asks for certificate Secrets.
pub fn namespace_opted_in(namespace: &Namespace) -> bool {
    if namespace.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let labels = namespace.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    label(OPT_IN_LABEL) == Some("enabled") || label(ISTIO_OVERRIDE_LABEL) == Some("true")
}

/// The Secret's name for a ServiceAccount, `None` when the result would be
/// longer than an object name may be.
pub fn secret_name(service_account: &str) -> Option<String> {
    let name = format!("{SECRET_PREFIX}{service_account}");
    (name.len() <= 253).then_some(name)
}

/// Decides from the Secret as read (or its absence).
pub fn secret_action(
    existing: Option<&Secret>,
    ca: &ClusterCa,
    identity: &str,
    now: SystemTime,
    renew_ratio: f64,
) -> SecretAction {
    let Some(secret) = existing else {
        return SecretAction::Create;
    };
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return SecretAction::Foreign;
    }
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|b| std::str::from_utf8(&b.0).ok())
    };
    let (Some(chain), Some(_key), Some(root)) = (text(CHAIN_KEY), text(KEY_KEY), text(ROOT_KEY))
    else {
        return SecretAction::Replace("a key is missing or not PEM text");
    };
    if root.trim() != ca.root_pem().trim() {
        return SecretAction::Replace("root-cert.pem is not the current root");
    }
    let Ok(leaf) = ca.check_chain(chain, now) else {
        return SecretAction::Replace("cert-chain.pem does not verify against the current root");
    };
    if leaf.uris != [identity] {
        return SecretAction::Replace("the certificate names another identity");
    }
    if needs_renewal(leaf.not_before, leaf.not_after, now, renew_ratio) {
        SecretAction::Replace("less than the renew ratio of its lifetime is left")
    } else {
        SecretAction::Keep
    }
}

/// The Secret as outrigger writes it for `account`.
pub fn desired_secret(
    account: &ServiceAccount,
    issued: &IssuedCert,
    root_pem: &str,
    name: &str,
) -> Secret {
    let sa_name = account.metadata.name.clone().unwrap_or_default();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: sa_name.clone(),
        uid: account.metadata.uid.clone().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let data = BTreeMap::from([
        (
            KEY_KEY.to_string(),
            ByteString(issued.key_pem.expose().as_bytes().to_vec()),
        ),
        (
            CHAIN_KEY.to_string(),
            ByteString(issued.chain_pem.as_bytes().to_vec()),
        ),
        (
            ROOT_KEY.to_string(),
            ByteString(root_pem.as_bytes().to_vec()),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: account.metadata.namespace.clone(),
            annotations: Some(BTreeMap::from([(SA_ANNOTATION.to_string(), sa_name)])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// What the certificate Secret controller reads instead of the API: the
/// namespaces, the ServiceAccounts and the certificate Secrets, each from
/// its watch.
#[derive(Clone)]
pub struct SecretCaches {
    /// Every namespace (their opt-in labels).
    pub namespaces: Store<Namespace>,
    /// Every ServiceAccount.
    pub accounts: Store<ServiceAccount>,
    /// Every Secret of type [`SECRET_TYPE`].
    pub secrets: Store<Secret>,
}

impl SecretCaches {
    /// Whether `namespace` (as cached) asks for certificate Secrets.
    pub fn opted_in(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .is_some_and(|ns| namespace_opted_in(&ns))
    }

    /// The ServiceAccounts of `namespace`, as cached, by name.
    pub fn accounts_in(&self, namespace: &str) -> Vec<Arc<ServiceAccount>> {
        let mut accounts = self
            .accounts
            .state_filter(|sa| sa.metadata.namespace.as_deref() == Some(namespace));
        accounts.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        accounts
    }

    /// Every ServiceAccount of every opted-in namespace, for a resync (no
    /// request: renewals are found this way).
    pub fn all_keys(&self) -> Vec<SecretKey> {
        self.accounts
            .state()
            .iter()
            .filter_map(|sa| {
                let namespace = sa.metadata.namespace.clone()?;
                self.opted_in(&namespace).then_some(SecretKey::Account {
                    namespace,
                    name: sa.metadata.name.clone()?,
                })
            })
            .collect()
    }
}

/// Everything a reconcile needs.
#[derive(Clone)]
pub struct SecretsContext {
    /// The API client (writes, and one re-read after a conflict).
    pub client: Client,
    /// What exists now.
    pub caches: SecretCaches,
    /// The CA to issue with (replaced when the root changes).
    pub current: CurrentCa,
    /// Checked before every write.
    pub gate: LeaderGate,
    /// Counters.
    pub metrics: ClusterMetrics,
    /// Issuing policy.
    pub config: SecretsConfig,
}

impl SecretsContext {
    /// Reconciles one key.
    pub async fn reconcile(&self, key: &SecretKey) -> Result<(), ReconcileError> {
        match key {
            SecretKey::Namespace(ns) => self.reconcile_namespace(ns).await,
            SecretKey::Account { namespace, name } => self.reconcile_account(namespace, name).await,
        }
    }

    /// Every ServiceAccount of an opted-in namespace, from the caches, one
    /// after the other (the controller's own fan-out goes through account
    /// keys: [`watch`] turns an opt-in into one key per account). Continues
    /// past a failing account and returns the first error, so the whole
    /// namespace is retried.
    pub async fn reconcile_namespace(&self, namespace: &str) -> Result<(), ReconcileError> {
        if !self.caches.opted_in(namespace) {
            return Ok(());
        }
        let mut first_error = None;
        for account in self.caches.accounts_in(namespace) {
            match self.apply(namespace, &account).await {
                Ok(()) => {}
                Err(ReconcileError::NotLeader) => return Err(ReconcileError::NotLeader),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One ServiceAccount, from the caches: no request at all when its
    /// namespace has not opted in, when it is gone (its Secret goes with
    /// it) or when its Secret is right.
    pub async fn reconcile_account(
        &self,
        namespace: &str,
        account: &str,
    ) -> Result<(), ReconcileError> {
        if !self.caches.opted_in(namespace) {
            return Ok(());
        }
        let Some(account) = self
            .caches
            .accounts
            .get(&ObjectRef::new(account).within(namespace))
        else {
            return Ok(());
        };
        self.apply(namespace, &account).await
    }

    /// Writes `account`'s Secret if the cached one needs it: created if
    /// absent, replaced (conditioned on the version cached) if stale. A 409
    /// means the cache was behind: the Secret is read once, decided again
    /// and written at most once more.
    async fn apply(&self, namespace: &str, account: &ServiceAccount) -> Result<(), ReconcileError> {
        let Some(name) = account.metadata.name.as_deref().and_then(secret_name) else {
            return Ok(());
        };
        let ca = self.current.borrow().clone();
        let cached = self
            .caches
            .secrets
            .get(&ObjectRef::new(&name).within(namespace));
        let object = format!("Secret {namespace}/{name}");
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        match self
            .write_if_needed(&api, &ca, namespace, account, cached.as_deref(), &name)
            .await
        {
            Err(WriteError::Api(action, e)) if is_conflict(&e) => {
                let fresh = match api.get(&name).await {
                    Ok(secret) => Some(secret),
                    Err(e) if is_not_found(&e) => None,
                    Err(e) => return Err(ReconcileError::api("get", object, e)),
                };
                match self
                    .write_if_needed(&api, &ca, namespace, account, fresh.as_ref(), &name)
                    .await
                {
                    Err(WriteError::Api(action, e)) => Err(ReconcileError::api(action, object, e)),
                    Err(WriteError::Reconcile(e)) => Err(e),
                    Ok(()) => {
                        debug!(namespace, secret = %name, first = action, "decided again after one re-read (the cache was behind)");
                        Ok(())
                    }
                }
            }
            Err(WriteError::Api(action, e)) => Err(ReconcileError::api(action, object, e)),
            Err(WriteError::Reconcile(e)) => Err(e),
            Ok(()) => Ok(()),
        }
    }

    /// Decides from `existing` and writes once if needed.
    async fn write_if_needed(
        &self,
        api: &Api<Secret>,
        ca: &ClusterCa,
        namespace: &str,
        account: &ServiceAccount,
        existing: Option<&Secret>,
        name: &str,
    ) -> Result<(), WriteError> {
        let now = SystemTime::now();
        let object = format!("Secret {namespace}/{name}");
        let sa = account.metadata.name.as_deref().unwrap_or_default();
        let identity = SpiffeId::new(&self.config.trust_domain, namespace, sa)
            .map_err(|e| ReconcileError::Issue {
                object: object.clone(),
                source: AuthorityError::Identity(e),
            })?
            .uri();
        let action = secret_action(existing, ca, &identity, now, self.config.renew_ratio);
        let reason = match action {
            SecretAction::Keep => return Ok(()),
            SecretAction::Foreign => {
                warn!(namespace, secret = %name, "a Secret of that name with another type exists; left alone");
                return Ok(());
            }
            SecretAction::Create => "missing",
            SecretAction::Replace(reason) => reason,
        };
        self.gate.ensure()?;
        let issued = ca
            .issue_workload(
                &self.config.trust_domain,
                namespace,
                sa,
                self.config.ttl,
                now,
            )
            .map_err(|source| ReconcileError::Issue {
                object: object.clone(),
                source,
            })?;
        let mut desired = desired_secret(account, &issued, ca.root_pem(), name);
        // The lease may have moved while issuing.
        self.gate.ensure()?;
        let result = match existing {
            None => api
                .create(&writes::post_params(), &desired)
                .await
                .map_err(|e| WriteError::Api("create", e)),
            Some(old) => {
                desired.metadata.resource_version = old.metadata.resource_version.clone();
                api.replace(name, &writes::post_params(), &desired)
                    .await
                    .map_err(|e| WriteError::Api("replace", e))
            }
        };
        result?;
        self.metrics.secret_certificate_issued();
        info!(namespace, secret = %name, service_account = %sa, reason, "wrote certificate Secret");
        Ok(())
    }

    /// Runs the controller from these caches until `triggers` ends.
    pub async fn run_with_caches(
        self,
        triggers: impl Stream<Item = SecretKey>,
        ready: impl Future<Output = ()>,
        drive: Drive,
    ) {
        let refresh = current_ca::changes(&self.current);
        drive
            .run(
                self.gate.clone(),
                triggers,
                ready,
                refresh,
                || futures::future::ready(Ok(self.caches.all_keys())),
                |key| {
                    let this = &self;
                    async move { this.reconcile(&key).await }
                },
            )
            .await;
    }
}

/// Why one write did not happen.
enum WriteError {
    /// The API refused it (`create` or `replace`).
    Api(&'static str, kube::Error),
    /// Not the leader, or issuing failed.
    Reconcile(ReconcileError),
}

impl From<ReconcileError> for WriteError {
    fn from(e: ReconcileError) -> Self {
        Self::Reconcile(e)
    }
}

/// Runs the certificate Secret controller: while this replica leads,
/// watches namespaces, ServiceAccounts and certificate Secrets and keeps
/// every account's Secret of the opted-in namespaces valid, from the
/// caches; a new CA rewrites them all, `concurrency` at a time.
pub async fn run(
    client: Client,
    gate: LeaderGate,
    metrics: ClusterMetrics,
    current: CurrentCa,
    config: SecretsConfig,
    resync: Duration,
    concurrency: usize,
) {
    while_leading(gate.clone(), || {
        let (caches, triggers, ready) = watch(&client);
        let context = SecretsContext {
            client: client.clone(),
            caches,
            current: current.clone(),
            gate: gate.clone(),
            metrics: metrics.clone(),
            config: config.clone(),
        };
        context.run_with_caches(
            triggers,
            ready,
            Drive {
                concurrency,
                ..Drive::new("sa-secrets", resync)
            },
        )
    })
    .await;
}

/// The key a ServiceAccount event asks for (deletions: none, the Secret is
/// garbage-collected with its owner).
pub fn account_event_key(event: watcher::Event<ServiceAccount>) -> Option<SecretKey> {
    match event {
        watcher::Event::Apply(sa) | watcher::Event::InitApply(sa) => Some(SecretKey::Account {
            namespace: sa.metadata.namespace?,
            name: sa.metadata.name?,
        }),
        _ => None,
    }
}

/// The key a certificate Secret event asks for: its account, so a deleted
/// or edited Secret is rewritten.
pub fn secret_event_key(event: watcher::Event<Secret>) -> Option<SecretKey> {
    match event {
        watcher::Event::Apply(s) | watcher::Event::Delete(s) => Some(SecretKey::Account {
            namespace: s.metadata.namespace?,
            name: s.metadata.annotations?.get(SA_ANNOTATION)?.clone(),
        }),
        _ => None,
    }
}

/// The key a Namespace event asks for: the whole namespace once opted in.
pub fn namespace_event_key(event: watcher::Event<Namespace>) -> Option<SecretKey> {
    match event {
        watcher::Event::Apply(ns) if namespace_opted_in(&ns) => {
            ns.metadata.name.map(SecretKey::Namespace)
        }
        _ => None,
    }
}

/// The watches of Namespaces, ServiceAccounts and certificate Secrets:
/// their caches, their events as keys to reconcile (a namespace that opts
/// in becomes one key per ServiceAccount it holds, so that its Secrets are
/// written within the controller's one concurrency limit; the stream must
/// be polled for the caches to fill), and a future that completes once the
/// three caches hold their first full listing.
pub fn watch(
    client: &Client,
) -> (
    SecretCaches,
    impl Stream<Item = SecretKey> + Send + use<>,
    impl Future<Output = ()> + Send + use<>,
) {
    let (namespaces, ns_events) = cached::reflect(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        "Namespaces (certificate Secrets)",
    );
    let (accounts, sa_events) = cached::reflect(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default(),
        "ServiceAccounts",
    );
    let (secrets, secret_events) = cached::reflect(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().fields(&format!("type={SECRET_TYPE}")),
        "certificate Secrets",
    );
    let in_namespace = accounts.clone();
    let opted_in_accounts = move |key: SecretKey| {
        let SecretKey::Namespace(namespace) = key else {
            return vec![key];
        };
        in_namespace
            .state()
            .iter()
            .filter(|sa| sa.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter_map(|sa| {
                Some(SecretKey::Account {
                    namespace: namespace.clone(),
                    name: sa.metadata.name.clone()?,
                })
            })
            .collect()
    };
    let triggers = futures::stream::select_all([
        ns_events
            .filter_map(|e| futures::future::ready(namespace_event_key(e)))
            .flat_map(move |key| futures::stream::iter(opted_in_accounts(key)))
            .boxed(),
        sa_events
            .filter_map(|e| futures::future::ready(account_event_key(e)))
            .boxed(),
        secret_events
            .filter_map(|e| futures::future::ready(secret_event_key(e)))
            .boxed(),
    ]);
    let ready = futures::future::join3(
        cached::ready(&namespaces),
        cached::ready(&accounts),
        cached::ready(&secrets),
    )
    .map(|_| ());
    (
        SecretCaches {
            namespaces,
            accounts,
            secrets,
        },
        triggers,
        ready,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "spiffe://cluster.local/ns/app/sa/web";

    fn ca() -> ClusterCa {
        ClusterCa::generate("cluster.local").unwrap().0
    }

    fn account() -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("app".into()),
                uid: Some("uid-1".into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        }
    }

    fn secret_from(ca: &ClusterCa, ttl: Duration, at: SystemTime) -> Secret {
        let issued = ca
            .issue_workload("cluster.local", "app", "web", ttl, at)
            .unwrap();
        desired_secret(&account(), &issued, ca.root_pem(), "istio.web")
    }

    #[test]
    fn opt_in_labels() {
        let mut ns = Namespace::default();
        assert!(!namespace_opted_in(&ns));
        ns.metadata.labels = Some(BTreeMap::from([(OPT_IN_LABEL.into(), "enabled".into())]));
        assert!(namespace_opted_in(&ns));
        ns.metadata.labels = Some(BTreeMap::from([(
            ISTIO_OVERRIDE_LABEL.into(),
            "true".into(),
        )]));
        assert!(namespace_opted_in(&ns));
        ns.metadata.labels = Some(BTreeMap::from([(OPT_IN_LABEL.into(), "yes".into())]));
        assert!(!namespace_opted_in(&ns));
    }

    #[test]
    fn actions() {
        let ca = ca();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(secret_action(None, &ca, ID, now, 0.5), SecretAction::Create);
        let fresh = secret_from(&ca, hour, now);
        assert_eq!(
            secret_action(Some(&fresh), &ca, ID, now, 0.5),
            SecretAction::Keep
        );
        let old = secret_from(&ca, hour, now - Duration::from_secs(40 * 60));
        assert!(matches!(
            secret_action(Some(&old), &ca, ID, now, 0.5),
            SecretAction::Replace(_)
        ));
        assert_eq!(
            secret_action(Some(&old), &ca, ID, now, 0.2),
            SecretAction::Keep
        );
        let other = secret_from(&self::ca(), hour, now);
        assert_eq!(
            secret_action(Some(&other), &ca, ID, now, 0.5),
            SecretAction::Replace("root-cert.pem is not the current root")
        );
        let other_identity = ca
            .issue_workload("cluster.local", "app", "db", hour, now)
            .unwrap();
        let copied = desired_secret(&account(), &other_identity, ca.root_pem(), "istio.web");
        assert_eq!(
            secret_action(Some(&copied), &ca, ID, now, 0.5),
            SecretAction::Replace("the certificate names another identity")
        );
        let mut foreign = fresh.clone();
        foreign.type_ = Some("Opaque".into());
        assert_eq!(
            secret_action(Some(&foreign), &ca, ID, now, 0.5),
            SecretAction::Foreign
        );
    }

    #[test]
    fn desired_secret_is_owned_and_annotated() {
        let s = secret_from(&ca(), Duration::from_secs(60), SystemTime::now());
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("ServiceAccount", "web", "uid-1")
        );
        assert_eq!(s.metadata.annotations.unwrap()[SA_ANNOTATION], "web");
        assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
        assert_eq!(secret_name(&"a".repeat(300)), None);
    }

    #[test]
    fn events_that_need_work() {
        let secret = secret_from(&ca(), Duration::from_secs(60), SystemTime::now());
        let key = Some(SecretKey::Account {
            namespace: "app".into(),
            name: "web".into(),
        });
        // A deleted Secret is recreated; an edited one re-checked.
        assert_eq!(
            secret_event_key(watcher::Event::Delete(secret.clone())),
            key
        );
        assert_eq!(secret_event_key(watcher::Event::Apply(secret)), key);
        // A new ServiceAccount gets its Secret; a deleted one takes its
        // Secret along (ownerReference), so nothing is done.
        assert_eq!(account_event_key(watcher::Event::Apply(account())), key);
        assert_eq!(account_event_key(watcher::Event::Delete(account())), None);
        let mut ns = Namespace::default();
        ns.metadata.name = Some("app".into());
        assert_eq!(namespace_event_key(watcher::Event::Apply(ns.clone())), None);
        ns.metadata.labels = Some(BTreeMap::from([(OPT_IN_LABEL.into(), "enabled".into())]));
        assert_eq!(
            namespace_event_key(watcher::Event::Apply(ns)),
            Some(SecretKey::Namespace("app".into()))
        );
    }
}
