//! The loaded policy components, swapped atomically when the plugins directory changes.
//!
//! A new or changed `NAME.wasm` is compiled and probed off the request path, then swapped
//! in; a request that already holds the previous version finishes on it. A file that fails
//! to load or to answer its probe is rejected with a log line that says why, and the last
//! good version stays. A removed file unloads its policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{info, warn};

use super::wasm::{CallSettings, EngineSettings, Grants, WasmEngine, WasmPolicy};
use crate::config::{Config, PluginsConfig, PolicyConfig};
use crate::metrics::{Metrics, ReloadResult};

pub struct PolicySet {
    engine: WasmEngine,
    plugins: PluginsConfig,
    settings: BTreeMap<String, PolicyConfig>,
    loaded: ArcSwap<BTreeMap<String, Arc<WasmPolicy>>>,
    metrics: Arc<Metrics>,
    /// One rescan at a time.
    scanning: std::sync::Mutex<()>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("loaded", &self.names())
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Builds the set and loads the directory once (synchronously: start-up waits for the
    /// policies its buckets name).
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, String> {
        let max_memory = config
            .policies
            .values()
            .filter_map(|p| p.memory_limit)
            .chain([config.plugins.memory_limit])
            .max()
            .unwrap_or(config.plugins.memory_limit);
        let engine = WasmEngine::new(&EngineSettings {
            max_memory_bytes: max_memory,
            ..EngineSettings::default()
        })?;
        let set = Arc::new(Self {
            engine,
            plugins: config.plugins.clone(),
            settings: config.policies.clone(),
            loaded: ArcSwap::from_pointee(BTreeMap::new()),
            metrics,
            scanning: std::sync::Mutex::new(()),
        });
        set.rescan();
        Ok(set)
    }

    pub fn get(&self, name: &str) -> Option<Arc<WasmPolicy>> {
        self.loaded.load().get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.loaded.load().keys().cloned().collect()
    }

    pub fn dir(&self) -> Option<&Path> {
        self.plugins.dir.as_deref()
    }

    fn call_settings(&self, name: &str) -> CallSettings {
        let p = self.settings.get(name).cloned().unwrap_or_default();
        CallSettings {
            timeout: p.timeout.unwrap_or(self.plugins.timeout),
            memory_bytes: p.memory_limit.unwrap_or(self.plugins.memory_limit),
            config: Arc::from(p.config.unwrap_or_default()),
            warm_instances: p.warm_instances,
            grants: Grants {
                env: p.allow_env,
                dirs: p.allow_dirs,
                clock: p.allow_clock,
            },
        }
    }

    /// Loads new and changed components, unloads removed ones. Blocking: it compiles.
    pub fn rescan(&self) {
        let Some(dir) = &self.plugins.dir else { return };
        let _guard = self.scanning.lock();
        let current = self.loaded.load_full();
        let mut next = (*current).clone();
        let mut seen = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot read the plugins directory");
                return;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            if !valid_name(&name) {
                warn!(file = %path.display(), "ignored: a policy name is 1-63 characters of [A-Za-z0-9_-]");
                continue;
            }
            seen.push(name.clone());
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    warn!(policy = %name, file = %path.display(), error = %e, "cannot read policy; keeping the last good version");
                    continue;
                }
            };
            let hash = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&bytes))
            };
            if current.get(&name).is_some_and(|p| p.info().hash == hash) {
                continue;
            }
            match self.load_checked(&name, &bytes) {
                Ok(policy) => {
                    info!(
                        policy = %name,
                        hash = policy.short_hash(),
                        size = bytes.len(),
                        replaced = current.contains_key(&name),
                        "policy loaded"
                    );
                    self.metrics.reload(&name, ReloadResult::Loaded);
                    next.insert(name, Arc::new(policy));
                }
                Err(reason) => {
                    let kept = current.get(&name).map(|p| p.short_hash().to_owned());
                    warn!(
                        policy = %name,
                        file = %path.display(),
                        kept = kept.as_deref().unwrap_or("none"),
                        "policy rejected: {reason}"
                    );
                    self.metrics.reload(&name, ReloadResult::Rejected);
                }
            }
        }
        next.retain(|name, p| {
            let keep = seen.contains(name);
            if !keep {
                info!(policy = %name, hash = p.short_hash(), "policy unloaded: its file is gone");
                self.metrics.reload(name, ReloadResult::Unloaded);
            }
            keep
        });
        self.loaded.store(Arc::new(next));
    }

    fn load_checked(&self, name: &str, bytes: &[u8]) -> Result<WasmPolicy, String> {
        let policy = WasmPolicy::load(&self.engine, name, bytes, self.call_settings(name))
            .map_err(|e| e.to_string())?;
        policy.probe().map_err(|e| e.to_string())?;
        Ok(policy)
    }

    /// Watches the plugins directory and rescans after each burst of changes. The task
    /// ends when the returned handle is aborted or the set is dropped.
    pub fn watch(self: &Arc<Self>) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
        use notify::Watcher as _;
        let Some(dir) = self.plugins.dir.clone() else {
            return Ok(None);
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(64);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = tx.try_send(());
                }
            })
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        let weak = Arc::downgrade(self);
        let debounce = self.plugins.debounce;
        Ok(Some(tokio::spawn(async move {
            let _watcher = watcher;
            while rx.recv().await.is_some() {
                // Wait for the burst to end: editors and copies write in several steps.
                while let Ok(Some(())) = tokio::time::timeout(debounce, rx.recv()).await {}
                let Some(set) = weak.upgrade() else { break };
                let _ = tokio::task::spawn_blocking(move || set.rescan()).await;
            }
        })))
    }

    /// How long a rescan waits after the last change.
    pub fn debounce(&self) -> Duration {
        self.plugins.debounce
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
