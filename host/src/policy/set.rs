//! The loaded policy components, swapped atomically when the plugins directory changes.
//!
//! A new or changed `NAME.wasm` is compiled and probed off the request path, then swapped
//! in; a request that already holds the previous version finishes on it. A file that fails
//! to load or to answer its probe is rejected with a log line that says why, and the last
//! good version stays. A removed file unloads its policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tracing::{info, warn};

use super::wasm::{CallSettings, EngineSettings, Grants, WasmEngine, WasmPolicy};
use crate::config::{Config, PluginsConfig, PolicyConfig};
use crate::metrics::{Metrics, ReloadResult};

/// A version of a policy's file that failed to load or to answer its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// SHA-256 of the file's content, in hex.
    pub hash: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's modification time, when the filesystem gives one.
    pub modified: Option<SystemTime>,
    /// When a rescan judged it.
    pub seen: SystemTime,
    /// Why it was rejected.
    pub reason: String,
}

impl Rejected {
    /// Whether this is the version with content `hash` modified at `modified`.
    fn is(&self, hash: &str, modified: Option<SystemTime>) -> bool {
        self.hash == hash && self.modified == modified
    }
}

pub struct PolicySet {
    engine: WasmEngine,
    plugins: PluginsConfig,
    settings: BTreeMap<String, PolicyConfig>,
    loaded: ArcSwap<BTreeMap<String, Arc<WasmPolicy>>>,
    metrics: Arc<Metrics>,
    /// One rescan at a time.
    scanning: std::sync::Mutex<()>,
    /// The version of each policy last rejected, while it is the one on disk: so that a
    /// rescan does not compile, log and count the same rejected file again (it is known
    /// by its content hash and modification time), and so that `/policies` can show it
    /// beside the version kept in service. A rejection can be passing (a probe past its
    /// deadline on a loaded machine): touching the file has it judged again.
    rejected: std::sync::Mutex<BTreeMap<String, Rejected>>,
    /// Rescans so far: one at start, then one per burst of changes.
    rescans: std::sync::atomic::AtomicU64,
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
            perf_map: config.plugins.perf_map,
            ..EngineSettings::default()
        })?;
        let set = Arc::new(Self {
            engine,
            plugins: config.plugins.clone(),
            settings: config.policies.clone(),
            loaded: ArcSwap::from_pointee(BTreeMap::new()),
            metrics,
            scanning: std::sync::Mutex::new(()),
            rejected: std::sync::Mutex::new(BTreeMap::new()),
            rescans: std::sync::atomic::AtomicU64::new(0),
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

    /// The rejected version of each policy whose file on disk failed to load or to
    /// answer its probe (the version in service, if any, is [`PolicySet::get`]'s).
    pub fn rejected(&self) -> BTreeMap<String, Rejected> {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn dir(&self) -> Option<&Path> {
        self.plugins.dir.as_deref()
    }

    /// Loads new and changed components, unloads removed ones. Blocking: it compiles.
    pub fn rescan(&self) {
        let Some(dir) = &self.plugins.dir else { return };
        let _guard = self.scanning.lock();
        self.rescans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rejected = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if current.get(&name).is_some_and(|p| p.info().hash == hash) {
                // Back to the version in service: nothing rejected is on disk any more.
                rejected.remove(&name);
                continue;
            }
            if rejected.get(&name).is_some_and(|r| r.is(&hash, modified)) {
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
                    rejected.remove(&name);
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
                    rejected.insert(
                        name,
                        Rejected {
                            hash,
                            size: bytes.len() as u64,
                            modified,
                            seen: SystemTime::now(),
                            reason,
                        },
                    );
                }
            }
        }
        rejected.retain(|name, _| seen.contains(name));
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
        let policy = WasmPolicy::load(
            &self.engine,
            name,
            bytes,
            call_settings(&self.plugins, self.settings.get(name)),
        )
        .map_err(|e| e.to_string())?;
        // The probe's counters are not the policy's traffic: metrics come after it.
        policy.probe().map_err(|e| e.to_string())?;
        Ok(policy.with_metrics(self.metrics.clone()))
    }

    /// Watches the plugins directory and rescans after each burst of changes. The task
    /// ends when the returned handle is aborted or the set is dropped.
    pub fn watch(self: &Arc<Self>) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
        let Some(dir) = self.plugins.dir.clone() else {
            return Ok(None);
        };
        // Changes only, not the rescan's own reads: they would schedule the next rescan.
        let (watcher, mut rx) = crate::watch::watch_dir(&dir)?;
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

    /// How many times the directory was read: once at start, then once per burst of
    /// changes (an idle directory is not read).
    pub fn rescans(&self) -> u64 {
        self.rescans.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long a rescan waits after the last change.
    pub fn debounce(&self) -> Duration {
        self.plugins.debounce
    }
}

/// The settings a policy runs with: its `[policies.NAME]` entry over `[plugins]`.
pub fn call_settings(plugins: &PluginsConfig, policy: Option<&PolicyConfig>) -> CallSettings {
    let p = policy.cloned().unwrap_or_default();
    CallSettings {
        timeout: p.timeout.unwrap_or(plugins.timeout),
        memory_bytes: p.memory_limit.unwrap_or(plugins.memory_limit),
        config: Arc::from(p.config.unwrap_or_default()),
        warm_instances: p.warm_instances,
        concurrency: p.concurrency,
        grants: Grants {
            env: p.allow_env,
            dirs: p.allow_dirs,
            clock: p.allow_clock,
            random: p.allow_random,
        },
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ReloadLabels;

    fn reloads(m: &Metrics, policy: &str, result: ReloadResult) -> u64 {
        m.reloads
            .get_or_create(&ReloadLabels {
                policy: policy.to_owned(),
                result,
            })
            .get()
    }

    /// A rejected version is remembered with what `/policies` shows of it: its hash,
    /// size and modification time, when it was judged and why. A new version replaces it;
    /// a removed file takes it away.
    #[test]
    fn rejected_versions_are_described() {
        let dir = std::env::temp_dir().join(format!("sy-plugins-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("broken.wasm");
        std::fs::write(&file, b"not a component").unwrap();
        let config = Config::from_toml(&format!(
            "version = 1\n[plugins]\ndir = {:?}\n",
            dir.display().to_string()
        ))
        .unwrap();
        let before = SystemTime::now();
        let set = PolicySet::new(&config, Arc::new(Metrics::default())).unwrap();
        let r = set.rejected().remove("broken").unwrap();
        use sha2::Digest as _;
        assert_eq!(
            r.hash,
            hex::encode(sha2::Sha256::digest(b"not a component"))
        );
        assert_eq!(r.size, 15);
        assert_eq!(
            r.modified,
            std::fs::metadata(&file).unwrap().modified().ok()
        );
        assert!(r.seen >= before && r.seen <= SystemTime::now());
        assert_eq!(
            r.reason,
            "not a WebAssembly component: the file does not start with the WebAssembly magic number"
        );
        assert!(set.get("broken").is_none());

        std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
        set.rescan();
        let r = set.rejected().remove("broken").unwrap();
        assert_eq!(r.size, 8);
        assert!(r.reason.contains("core module"), "{}", r.reason);

        std::fs::remove_file(&file).unwrap();
        set.rescan();
        assert!(set.rejected().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An idle directory is left alone: the watcher's own reads are not changes, and a
    /// rejected file is judged once per version, not at every rescan. A real change is
    /// still seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_rests_while_nothing_changes() {
        let dir = std::env::temp_dir().join(format!("sy-plugins-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("broken.wasm"), b"not a component").unwrap();
        let config = Config::from_toml(&format!(
            "version = 1\n[plugins]\ndir = {:?}\ndebounce = \"20ms\"\n",
            dir.display().to_string()
        ))
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let set = PolicySet::new(&config, metrics.clone()).unwrap();
        let watcher = set.watch().unwrap().unwrap();
        let rejected = || reloads(&metrics, "broken", ReloadResult::Rejected);
        assert_eq!(rejected(), 1);
        // Fifty debounce periods with nothing written.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rejected(), 1, "an idle directory was rescanned");
        // A rescan of the same rejected version does not judge it again.
        let again = set.clone();
        tokio::task::spawn_blocking(move || again.rescan())
            .await
            .unwrap();
        assert_eq!(rejected(), 1, "the same rejected version was judged again");
        // A new version is judged, once, and the directory is then left alone.
        std::fs::write(dir.join("broken.wasm"), b"still not a component").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rejected() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(rejected(), 2, "a changed file was not seen");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let scans = set.rescans();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            set.rescans(),
            scans,
            "the watcher rescanned an idle directory"
        );
        assert_eq!(rejected(), 2);
        watcher.abort();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
