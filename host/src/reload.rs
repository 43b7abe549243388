//! Reloading the configuration file without a restart: on SIGHUP, when the file changes,
//! and on the admin API's `POST /config/reload`.
//!
//! A reload reads and validates the file as `serve` does at start (the same checks, the
//! same error text, secrets resolved, every new backend built), and only then puts the new
//! users, backends and buckets in service, in one swap of the snapshot requests take
//! ([`Live`]): a request that arrived before the swap finishes on the configuration it
//! started with, one that arrives after sees only the new one. An invalid file changes
//! nothing; the error is logged and counted, and the configuration in service stays.
//!
//! Some settings are bound to what start-up built (sockets, the TLS listeners, the admin
//! listener and its token, the plugins directory and the compiled policies): a reload that
//! changes them applies everything else, keeps their old values, and names each one in a
//! warning ([`RESTART_ONLY`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{info, warn};

use crate::config::Config;
use crate::frontend::{Live, Snapshot, Users};
use crate::jobs::Jobs;
use crate::metrics::{ConfigReload, Metrics};
use crate::policy::set::PolicySet;
use crate::router::Router;

/// Quiet time after a change in the configuration file's directory before the file is
/// read: editors and `kubectl` write in several steps (a temporary file, then a rename).
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The settings a reload does not change, with how each is compared and kept. Each is used
/// once, by start-up, to build something that lives as long as the engine: the listeners
/// (`listen`, `tls`, `read_buffers`, `client_timeout`, `shutdown_grace`, `domains`, which
/// the S3 service is built with), the admin listener (`admin_listen`, `admin_token`,
/// `admin_auth`) and the policy engine (`[plugins]`, and `[policies.NAME]`, compiled into
/// each loaded component).
pub const RESTART_ONLY: &[&str] = &[
    "server.listen",
    "server.tls",
    "server.domains",
    "server.read_buffers",
    "server.client_timeout",
    "server.shutdown_grace",
    "server.admin_listen",
    "server.admin_token",
    "server.admin_auth",
    "plugins",
    "policies",
];

/// Where a reload reads the configuration from.
pub struct ConfigSource {
    /// The file, watched for changes.
    pub path: PathBuf,
    /// Reads and validates it as `serve` did at start, command-line overrides included.
    pub load: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new configuration is in service, but for the settings named, which need a
    /// restart and kept their old values.
    Applied { kept: Vec<&'static str> },
    /// The file is invalid (the error as `check-config` words it); nothing changed.
    Rejected { error: String },
}

impl Outcome {
    /// As `POST /config/reload` answers it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Outcome::Applied { kept } => serde_json::json!({
                "result": "applied",
                "restart_needed": kept,
            }),
            Outcome::Rejected { error } => serde_json::json!({
                "result": "rejected",
                "error": error,
            }),
        }
    }
}

/// What set a reload off, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Signal,
    FileChanged,
    AdminApi,
}

/// Puts reloaded configurations in service, and runs the buckets' tiering schedules
/// (which a reload may change).
pub struct Reloader {
    source: Option<Arc<ConfigSource>>,
    /// The configuration in service. Held for the whole of a reload: one at a time.
    current: tokio::sync::Mutex<Arc<Config>>,
    live: Live,
    /// The router jobs and the admin API read (the one in `live`).
    router: Arc<ArcSwap<Router>>,
    policies: Option<Arc<PolicySet>>,
    metrics: Arc<Metrics>,
    jobs: Arc<Jobs>,
    /// Each bucket's tiering schedule: its settings (`Debug` form) and task.
    schedules: Mutex<BTreeMap<String, (String, tokio::task::JoinHandle<()>)>>,
}

impl Reloader {
    /// The reloader of the engine start-up built from `config`. Starts its tiering
    /// schedules.
    pub fn new(
        source: Option<ConfigSource>,
        config: Arc<Config>,
        live: Live,
        router: Arc<ArcSwap<Router>>,
        policies: Option<Arc<PolicySet>>,
        metrics: Arc<Metrics>,
        jobs: Arc<Jobs>,
    ) -> Arc<Self> {
        metrics.config_loaded(None);
        let reloader = Arc::new(Self {
            source: source.map(Arc::new),
            current: tokio::sync::Mutex::new(config.clone()),
            live,
            router,
            policies,
            metrics,
            jobs,
            schedules: Mutex::new(BTreeMap::new()),
        });
        reloader.schedule(&config);
        reloader
    }

    /// The file reloads read, if the engine was started from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.source.as_deref().map(|s| s.path.as_path())
    }

    /// Reads the file and puts it in service, or keeps the configuration in service if
    /// it is invalid. `None`: the engine was not started from a file.
    pub async fn reload(&self, trigger: Trigger) -> Option<Outcome> {
        let source = self.source.clone()?;
        let mut current = self.current.lock().await;
        let previous = current.clone();
        let router = self.router.load_full();
        let policies = self.policies.clone();
        let metrics = self.metrics.clone();
        // Reading the file and building backends block.
        let built = tokio::task::spawn_blocking(move || {
            build(&source, &previous, &router, policies, metrics)
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reload failed: {e}")));
        let file = self.path().map(|p| p.display().to_string());
        let outcome = match built {
            Ok(next) => {
                for key in &next.kept {
                    warn!(key = %key, "configuration reload: {key} changed, but needs a restart; the value in service stays");
                }
                crate::server::log_unloaded_policies(&next.config, self.policies.as_deref());
                let router = Arc::new(next.router);
                self.router.store(router.clone());
                self.live.store(Snapshot {
                    router,
                    users: Arc::new(next.users),
                });
                self.schedule(&next.config);
                *current = next.config;
                self.metrics.config_loaded(Some(ConfigReload::Applied));
                info!(?trigger, file = ?file, buckets = current.buckets.len(), backends = current.backends.len(), users = current.users.len(), "configuration reloaded");
                Outcome::Applied { kept: next.kept }
            }
            Err(error) => {
                self.metrics.config_loaded(Some(ConfigReload::Rejected));
                warn!(?trigger, file = ?file, "configuration reload rejected, the configuration in service stays: {error}");
                Outcome::Rejected { error }
            }
        };
        Some(outcome)
    }

    /// Starts, restarts or stops each bucket's tiering schedule as `config` has it. A
    /// schedule whose settings did not change keeps running (and its clock).
    fn schedule(&self, config: &Config) {
        let mut schedules = self
            .schedules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wanted: BTreeMap<&String, _> = config
            .buckets
            .iter()
            .filter_map(|(name, b)| Some((name, b.tiering.clone()?)))
            .collect();
        schedules.retain(|name, (settings, task)| {
            let keep = wanted
                .get(name)
                .is_some_and(|t| format!("{t:?}") == *settings);
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, t) in wanted {
            if schedules.contains_key(name) {
                continue;
            }
            info!(bucket = %name, every = ?t.every, "tiering passes scheduled");
            let settings = format!("{t:?}");
            let task = self.jobs.schedule(name.clone(), t);
            schedules.insert(name.clone(), (settings, task));
        }
    }

    /// Stops the tiering schedules (the engine is stopping).
    pub fn stop(&self) {
        let mut schedules = self
            .schedules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, (_, task)) in std::mem::take(&mut *schedules) {
            task.abort();
        }
    }

    /// Reloads on SIGHUP and when the file changes, until the returned task is aborted.
    /// `None` when the engine was not started from a file. The file's directory is
    /// watched, not the file: an editor that saves by renaming a new file over the old
    /// one, and Kubernetes, which updates a mounted ConfigMap by swapping a symbolic link
    /// to a new directory, both replace the inode a watch on the file would follow. Any
    /// change in the directory has the file read; it is reloaded if its content changed.
    pub fn watch(self: &Arc<Self>) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
        let Some(path) = self.path().map(std::path::Path::to_owned) else {
            return Ok(None);
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        let (watcher, mut rx) = crate::watch::watch_dir(&dir)?;
        let reloader = self.clone();
        let mut last = content_digest(&path);
        Ok(Some(tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                let trigger = tokio::select! {
                    s = hangup.recv() => match s {
                        Some(()) => Trigger::Signal,
                        None => break,
                    },
                    c = rx.recv() => match c {
                        Some(()) => {
                            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                            let now = content_digest(&path);
                            if now == last {
                                continue;
                            }
                            Trigger::FileChanged
                        }
                        None => break,
                    },
                };
                // What this reload reads (or close to it): the next change is measured
                // from here, whatever the outcome, so a rejected file is not read again
                // until it changes.
                last = content_digest(&path);
                reloader.reload(trigger).await;
            }
        })))
    }
}

/// A digest of the file's content; `None` when it cannot be read (being replaced).
fn content_digest(path: &std::path::Path) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    std::fs::read(path)
        .ok()
        .map(|bytes| sha2::Sha256::digest(bytes).into())
}

/// A configuration ready to be put in service.
struct Built {
    config: Arc<Config>,
    router: Router,
    users: Users,
    kept: Vec<&'static str>,
}

/// Reads, validates and builds the configuration of `source`, as start-up does.
fn build(
    source: &ConfigSource,
    previous: &Config,
    router: &Router,
    policies: Option<Arc<PolicySet>>,
    metrics: Arc<Metrics>,
) -> Result<Built, String> {
    let mut config = (source.load)()?;
    // The questions `check-config` asks beyond validation: every access policy parsed,
    // every user's secret resolved.
    let users = Users::from_config(&config).map_err(|e| e.to_string())?;
    let kept = keep_restart_only(previous, &mut config);
    let config = Arc::new(config);
    let router =
        Router::reload(config.clone(), policies, metrics, router).map_err(|e| e.to_string())?;
    Ok(Built {
        config,
        router,
        users,
        kept,
    })
}

/// Gives `next` the values in service of the [`RESTART_ONLY`] settings, and names those
/// that differed.
fn keep_restart_only(current: &Config, next: &mut Config) -> Vec<&'static str> {
    fn debug<T: std::fmt::Debug>(v: &T) -> String {
        format!("{v:?}")
    }
    // A secret's Debug form hides its value: compared resolved (an unresolvable one was
    // refused by validation).
    let token = |c: &Config| {
        c.server
            .admin_token
            .as_ref()
            .map(|t| t.resolve("server.admin_token").ok())
    };
    let (cur, new) = (&current.server, &mut next.server);
    let mut kept = Vec::new();
    let mut check = |key: &'static str, differs: bool| {
        if differs {
            kept.push(key);
        }
        differs
    };
    if check("server.listen", cur.listen != new.listen) {
        new.listen = cur.listen;
    }
    if check("server.tls", debug(&cur.tls) != debug(&new.tls)) {
        new.tls = cur.tls.clone();
    }
    if check("server.domains", cur.domains != new.domains) {
        new.domains = cur.domains.clone();
    }
    if check("server.read_buffers", cur.read_buffers != new.read_buffers) {
        new.read_buffers = cur.read_buffers;
    }
    if check(
        "server.client_timeout",
        cur.client_timeout != new.client_timeout,
    ) {
        new.client_timeout = cur.client_timeout;
    }
    if check(
        "server.shutdown_grace",
        cur.shutdown_grace != new.shutdown_grace,
    ) {
        new.shutdown_grace = cur.shutdown_grace;
    }
    if check("server.admin_listen", cur.admin_listen != new.admin_listen) {
        new.admin_listen = cur.admin_listen;
    }
    if check("server.admin_token", token(current) != token(&*next)) {
        next.server.admin_token = current.server.admin_token.clone();
    }
    let (cur, new) = (&current.server, &mut next.server);
    if check("server.admin_auth", cur.admin_auth != new.admin_auth) {
        new.admin_auth = cur.admin_auth;
    }
    if check("plugins", debug(&current.plugins) != debug(&next.plugins)) {
        next.plugins = current.plugins.clone();
    }
    if check(
        "policies",
        debug(&current.policies) != debug(&next.policies),
    ) {
        next.policies = current.policies.clone();
    }
    debug_assert!(kept.iter().all(|k| RESTART_ONLY.contains(k)));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_toml(&format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9001\"\n{extra}\n[backends.a]\nkind = \"memory\"\n[buckets.data]\nmembers = [\"a\"]\n"
        ))
        .unwrap()
    }

    /// Settings bound to what start-up built keep their values in service, each named;
    /// the rest comes from the new file.
    #[test]
    fn restart_only_settings_keep_their_values() {
        let current = config("region = \"eu-west-1\"\nadmin_token = \"token-number-one\"");
        let mut next = config(
            "region = \"eu-west-3\"\nadmin_token = \"token-number-two\"\nclient_timeout = \"5s\"",
        );
        next.server.listen = "127.0.0.1:9100".parse().unwrap();
        let kept = keep_restart_only(&current, &mut next);
        assert_eq!(
            kept,
            [
                "server.listen",
                "server.client_timeout",
                "server.admin_token"
            ]
        );
        assert_eq!(next.server.listen, current.server.listen);
        assert_eq!(next.server.client_timeout, current.server.client_timeout);
        assert_eq!(
            next.server
                .admin_token
                .as_ref()
                .map(|t| t.resolve("t").unwrap()),
            Some("token-number-one".to_owned())
        );
        // Applied: not restart-only.
        assert_eq!(next.server.region, "eu-west-3");
        // Nothing differs: nothing kept.
        let mut same = config("region = \"eu-west-1\"\nadmin_token = \"token-number-one\"");
        assert!(keep_restart_only(&current, &mut same).is_empty());
    }
}
