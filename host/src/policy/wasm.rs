//! WebAssembly component policies, hosted with wasmtime.
//!
//! Each component is compiled once and kept as an `InstancePre`. A call runs in a fresh
//! `Store` taken from the pooling allocator, under an epoch deadline and a memory limit,
//! so a policy that loops, traps or grows without bound is contained to that call. Large
//! guests (JavaScript, Python) cost far more to instantiate than the decision itself, so
//! they keep a few warm instances instead; that is why policies must not rely on state
//! between calls. WIT-generated types stop at this module.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::footprint::mib;
use super::{ObjectView, PolicyError, RequestView, RouteAnswer, TierAction, Verdict};
use crate::metrics::Metrics;
use crate::model::MemberView;

mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/switchyard-policy@0.1.0",
        world: "policy",
        // The arguments of a call borrow the views' strings (see `Pairs`).
        ownership: Borrowing {
            duplicate_if_necessary: false
        },
    });
}

mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit/switchyard-policy@0.2.0",
        world: "policy",
        // The arguments of a call borrow the views' strings (see `Pairs`).
        ownership: Borrowing {
            duplicate_if_necessary: false
        },
    });
}

/// The WIT packages this host implements, oldest first; components built against any of
/// them load.
pub const WIT_PACKAGES: [&str; 2] = ["switchyard:policy@0.1.0", "switchyard:policy@0.2.0"];

/// The newest WIT package, the one new policies are written against.
pub const WIT_PACKAGE: &str = WIT_PACKAGES[1];

/// Warm instances kept per policy unless configured. Measured (docs/benchmarks.md): a
/// fresh instance per call costs a Rust policy about 24 µs against 4-5 µs warm, and a
/// Python one milliseconds; an instance that traps or times out is never reused.
const DEFAULT_WARM: usize = 4;

/// The epoch tick's period: the deadline's resolution, and the unit of a call's
/// [`Pace`] (ticks its guest saw, or waited through in `bound_waits`).
const TICK: Duration = Duration::from_millis(1);

/// Engine-wide settings: shared by every policy, fixed for the process.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Largest memory any policy may use; pooling slots are sized for it.
    pub max_memory_bytes: u64,
    /// Instances alive at once across all policies (fresh and warm).
    pub max_instances: u32,
    /// Writes `/tmp/perf-PID.map` so `perf report` names policies' compiled functions
    /// (`wasm[0]::function[N]`, N as in the module's name section) instead of leaving their
    /// samples unattributed.
    pub perf_map: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 * 1024 * 1024,
            max_instances: 1000,
            perf_map: false,
        }
    }
}

/// The wasmtime engine with its epoch ticker (a thread that ends when the last holder of
/// the engine, this handle or a policy it loaded, is gone). One per process.
pub struct WasmEngine {
    engine: Engine,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine").finish_non_exhaustive()
    }
}

impl WasmEngine {
    pub fn new(settings: &EngineSettings) -> Result<Self, String> {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances.saturating_mul(8))
            .total_memories(settings.max_instances.saturating_mul(4))
            .total_tables(settings.max_instances.saturating_mul(8))
            .max_memory_size(usize::try_from(settings.max_memory_bytes).unwrap_or(usize::MAX))
            .max_core_instances_per_component(64)
            .max_memories_per_component(16)
            .max_tables_per_component(32)
            .table_elements(100_000)
            // Small guests reuse their slot's pages instead of zeroing fresh ones.
            .linear_memory_keep_resident(64 * 1024)
            .table_keep_resident(16 * 1024);
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
            .max_wasm_stack(512 * 1024);
        if settings.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(|e| format!("cannot start the WebAssembly engine: {e:#}"))?;
        // The ticker lives as long as anything holds the engine: this handle, and every
        // loaded policy (its instances' stores). It stopped with this handle before, and a
        // policy that outlived it (at shutdown, or returned by a function that made the
        // engine) lost its deadline: a looping call never ended.
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("switchyard-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    match ticker.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Self { engine })
    }
}

/// What a policy may touch beyond its own memory; nothing unless configured.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Environment variables passed through (names).
    pub env: Vec<String>,
    /// Directories preopened read-only, at the same path.
    pub dirs: Vec<std::path::PathBuf>,
    /// The real wall and monotonic clocks; otherwise both read as zero.
    pub clock: bool,
    /// Real random numbers; otherwise a generator from a fixed seed (per instance).
    pub random: bool,
}

/// Per-policy limits and settings.
#[derive(Debug, Clone)]
pub struct CallSettings {
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// The policy's configuration string (`host.config()`).
    pub config: Arc<str>,
    /// Warm instances kept for reuse; 0: a fresh instance per call; none: 4.
    pub warm_instances: Option<usize>,
    /// Calls of this policy running at once (each as blocking work, see
    /// [`WasmPolicy::call_off_thread`]); none: half the cores, at least one. A call waits for a free
    /// slot at most `timeout`.
    pub concurrency: Option<usize>,
    pub grants: Grants,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            memory_bytes: 64 * 1024 * 1024,
            config: Arc::from(""),
            warm_instances: None,
            concurrency: None,
            grants: Grants::default(),
        }
    }
}

fn slots(settings: &CallSettings) -> Arc<tokio::sync::Semaphore> {
    let n = settings
        .concurrency
        .unwrap_or_else(default_concurrency)
        .max(1);
    Arc::new(tokio::sync::Semaphore::new(n))
}

/// Calls of one policy running at once unless configured: half the cores, so that a
/// policy that loops until its deadline leaves the other half to everything else.
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The store's limits, remembering whether a growth was refused so that the trap that
/// follows is reported as the memory limit rather than as a plain crash.
struct Limiter {
    inner: StoreLimits,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.table_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }
}

struct State {
    limits: Limiter,
    /// When the running call must end, in wall-clock time (see `new_store`).
    deadline: Instant,
    /// Epoch ticks the running call's guest code has seen ([`Pace`]).
    ticks: u32,
    config: Arc<str>,
    name: Arc<str>,
    wasi: Option<(WasiCtx, ResourceTable)>,
    /// Where `counter-add` counts (0.2); none in `policy check` and `policy test`.
    metrics: Option<Arc<Metrics>>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (ctx, table) = self
            .wasi
            .as_mut()
            .expect("WASI is linked only for components that import it");
        WasiCtxView { ctx, table }
    }
}

impl State {
    fn log(&self, level: tracing::Level, message: &str) {
        let policy = &*self.name;
        match level {
            tracing::Level::ERROR => tracing::error!(policy, "{message}"),
            tracing::Level::WARN => tracing::warn!(policy, "{message}"),
            tracing::Level::INFO => tracing::info!(policy, "{message}"),
            _ => tracing::debug!(policy, "{message}"),
        }
    }
}

/// `config` and `log`, the same in every WIT version; only the `log-level` type differs.
macro_rules! host_config_and_log {
    ($v:ident) => {
        fn config(&mut self) -> String {
            self.config.to_string()
        }

        fn log(&mut self, level: $v::switchyard::policy::host::LogLevel, message: String) {
            use $v::switchyard::policy::host::LogLevel as L;
            let level = match level {
                L::Debug => tracing::Level::DEBUG,
                L::Info => tracing::Level::INFO,
                L::Warn => tracing::Level::WARN,
                L::Error => tracing::Level::ERROR,
            };
            State::log(self, level, &message);
        }
    };
}

impl v1::switchyard::policy::types::Host for State {}

impl v1::switchyard::policy::host::Host for State {
    host_config_and_log!(v1);
}

impl v2::switchyard::policy::types::Host for State {}

impl v2::switchyard::policy::host::Host for State {
    host_config_and_log!(v2);

    fn counter_add(&mut self, name: String, labels: Vec<(String, String)>, value: u64) {
        if let Some(m) = &self.metrics {
            m.policy_counter_add(&self.name, &name, &labels, value);
        }
    }
}

/// What a policy instance may reach through WASI: what `grants` allow, nothing else.
/// Without grants its clocks read zero and its random numbers come from a fixed seed, so
/// that the same inputs give the same decision (what `policy test` relies on).
fn wasi_ctx(name: &str, grants: &Grants) -> WasiCtx {
    let mut b = wasmtime_wasi::WasiCtxBuilder::new();
    for var in &grants.env {
        if let Ok(v) = std::env::var(var) {
            b.env(var, v);
        }
    }
    for dir in &grants.dirs {
        let path = dir.to_string_lossy().to_string();
        if let Err(e) = b.preopened_dir(dir, &path, wasmtime_wasi::FsPerms::ReadOnly) {
            tracing::warn!(policy = %name, dir = %path, error = %e, "cannot grant directory");
        }
    }
    if !grants.clock {
        b.wall_clock(ZeroClock).monotonic_clock(ZeroClock);
    }
    if !grants.random {
        use rand::SeedableRng as _;
        b.secure_random(rand::rngs::StdRng::seed_from_u64(FIXED_SEED))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(FIXED_SEED))
            .insecure_random_seed(u128::from(FIXED_SEED));
    }
    b.build()
}

/// The WASI poll interface as wasmtime-wasi defines it in a linker (guests importing an
/// older 0.2 version are matched to it). `bound_waits` re-opens it by this name; a unit
/// test checks that the name is defined, so an upgrade that moves it fails there.
const WASI_POLL: &str = "wasi:io/poll@0.2.12";

/// A guest's waits in WASI (`pollable.block` and `poll`: a `sleep`, a clock subscription)
/// run in the host, where the epoch ticks that end a call at its deadline do not reach:
/// a policy that slept an hour held its request an hour. These two replace
/// wasmtime-wasi's, waiting at most until the call's deadline and then ending the call as
/// a timeout. The time waited counts as the ticks the guest would have seen computing, so
/// a policy that waits leaves the request threads as one that computes does ([`Pace`]).
fn bound_waits(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;
    use wasmtime_wasi_io::bindings::wasi::io::poll::{Host, HostPollable};
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_POLL)?;
    poll.func_wrap(
        "poll",
        |mut cx: wasmtime::StoreContextMut<'_, State>,
         (pollables,): (Vec<Resource<DynPollable>>,)| {
            within_deadline(cx.data_mut(), |table| {
                Box::pin(Host::poll(table, pollables))
            })
            .map(|ready| (ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut cx: wasmtime::StoreContextMut<'_, State>, (pollable,): (Resource<DynPollable>,)| {
            within_deadline(cx.data_mut(), |table| {
                Box::pin(HostPollable::block(table, pollable))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A wait of [`bound_waits`], on the policy's resource table.
type Wait<'a, R> = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + 'a>>;

/// Runs `wait` until it ends or the call's deadline passes, whichever is first.
fn within_deadline<R>(
    state: &mut State,
    wait: impl for<'a> FnOnce(&'a mut ResourceTable) -> Wait<'a, R>,
) -> wasmtime::Result<R> {
    let started = Instant::now();
    let remaining = state.deadline.saturating_duration_since(started);
    let Some((_, table)) = state.wasi.as_mut() else {
        return Err(wasmtime::format_err!("WASI is not linked for this policy"));
    };
    let answer = wasmtime_wasi::runtime::in_tokio(tokio::time::timeout(remaining, wait(table)));
    let waited =
        u32::try_from(started.elapsed().as_micros() / TICK.as_micros()).unwrap_or(u32::MAX);
    state.ticks = state.ticks.saturating_add(waited);
    answer.unwrap_or_else(|_| Err(wasmtime::Trap::Interrupt.into()))
}

/// The seed of an ungranted policy's random numbers.
const FIXED_SEED: u64 = 0x5357_4954_4348_5944;

/// A frozen clock for policies not granted the real one: decisions stay reproducible.
struct ZeroClock;

impl wasmtime_wasi::HostWallClock for ZeroClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for ZeroClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("does not implement the world `policy` of switchyard:policy@0.1.0 or @0.2.0: {0}")]
    WrongWorld(String),
    #[error("imports {0}, which Switchyard does not provide")]
    UnknownImport(String),
    #[error("failed its probe call: {0}")]
    ProbeFailed(String),
    #[error(
        "over its memory limit: it needs {needed} bytes ({}) of memory to start and may use {limit} bytes ({}); the file is {size} bytes ({}). Raise `memory_limit` in [policies.{policy}] or [plugins] (`policy check`: --memory-limit)",
        mib(*needed), mib(*limit), mib(*size as u64)
    )]
    OverMemoryLimit {
        policy: String,
        needed: u64,
        limit: u64,
        size: usize,
    },
}

/// What `policy check` reports.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    pub hash: String,
    pub size: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub uses_wasi: bool,
    /// The WIT package the component was built against (one of [`WIT_PACKAGES`]).
    pub package: &'static str,
}

/// A linked component, ready to instantiate, in the WIT version it was built against.
#[derive(Clone)]
enum Pre {
    V1(v1::PolicyPre<State>),
    V2(v2::PolicyPre<State>),
}

enum Instance {
    V1(v1::Policy),
    V2(v2::Policy),
}

impl Pre {
    fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V1(p) => Instance::V1(p.instantiate(store)?),
            Pre::V2(p) => Instance::V2(p.instantiate(store)?),
        })
    }
}

/// One loaded policy component.
pub struct WasmPolicy {
    name: Arc<str>,
    info: ComponentInfo,
    pre: Pre,
    engine: Engine,
    settings: CallSettings,
    metrics: Option<Arc<Metrics>>,
    warm_cap: usize,
    warm: std::sync::Mutex<Vec<(Store<State>, Instance)>>,
    /// One permit per call allowed to run at once ([`WasmPolicy::call_off_thread`]).
    slots: Arc<tokio::sync::Semaphore>,
    /// Whether its calls run on threads of their own now ([`Pace`]).
    pace: Pace,
}

/// A decision takes a few µs; a policy that loops, or computes for long, must not hold
/// request threads (even handed over with `block_in_place`, a request thread blocked for
/// tens of ms delayed other buckets' answers: p99 of 4 KiB GETs 3.6-3.8 ms against 0.6 ms
/// alone, docs/benchmarks.md). Its calls move to threads of their own for
/// [`SLOW_WINDOW`] after one call that took [`STALLED`], or after two that took
/// [`SLOW_CALL`] within [`STRIKE_WINDOW`] of each other, counting only calls whose guest
/// code itself ran that long.
///
/// A call's wall time alone does not tell: on a busy machine a 5 µs decision is now and
/// then preempted for milliseconds, and moving a fast policy to threads of its own makes
/// each of its decisions cost a hop (20-40 µs here instead of 5-10, for ten seconds).
/// The thread's CPU time would tell the two apart, but reading it is a system call, 1.3
/// µs here, twice a call. The epoch ticks tell it for free: a guest sees a tick (the
/// epoch callback runs) only while its code runs, so a call that saw two or more ran
/// guest code across a whole tick period ([`SLOW_TICKS`]), while a preempted one sees at
/// most the one tick that passed while its thread was away. Time in host functions
/// (WASI reads of a granted directory) is not seen this way.
const SLOW_CALL: Duration = Duration::from_millis(1);
const STALLED: Duration = Duration::from_millis(10);
const STRIKE_WINDOW: Duration = Duration::from_secs(1);
/// Epoch ticks a call's guest code must see to count as slow ([`Pace`]).
const SLOW_TICKS: u32 = 2;
const SLOW_WINDOW: Duration = Duration::from_secs(10);

/// How a policy's recent calls went ([`SLOW_CALL`]): times are ms after `born`.
#[derive(Debug)]
struct Pace {
    born: Instant,
    /// The last slow call's end, plus one (0: none yet).
    last_strike: std::sync::atomic::AtomicU64,
    /// Calls run on threads of their own until then.
    off_until: std::sync::atomic::AtomicU64,
}

impl Pace {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            last_strike: std::sync::atomic::AtomicU64::new(0),
            off_until: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    fn now(&self) -> Duration {
        self.born.elapsed()
    }

    /// Counts a call that ended at `now` after `took`, its guest code having seen `ticks`
    /// epoch ticks.
    fn record(&self, now: Duration, took: Duration, ticks: u32) {
        if took <= SLOW_CALL || ticks < SLOW_TICKS {
            return;
        }
        let at = Self::ms(now).saturating_add(1);
        let before = self.last_strike.swap(at, Ordering::Relaxed);
        let again = before != 0 && at.saturating_sub(before) <= Self::ms(STRIKE_WINDOW);
        if took >= STALLED || again {
            self.off_until
                .store(Self::ms(now + SLOW_WINDOW), Ordering::Relaxed);
        }
    }

    fn off_thread(&self, now: Duration) -> bool {
        Self::ms(now) < self.off_until.load(Ordering::Relaxed)
    }
}

/// A policy call that owns its arguments, to run on a thread of its own
/// ([`WasmPolicy::call`]).
pub type OwnedCall<R> = Box<dyn FnOnce(&WasmPolicy) -> Result<R, CallError> + Send>;

impl std::fmt::Debug for WasmPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPolicy")
            .field("name", &self.name)
            .field("hash", &self.info.hash)
            .finish_non_exhaustive()
    }
}

/// The outcome of one call, before conversion.
#[derive(Debug)]
pub enum CallError {
    /// The guest trapped (a policy bug).
    Trap(String),
    /// The deadline passed (wall-clock time, checked at every epoch tick).
    Timeout,
    /// No slot freed up within the deadline: the policy's calls already running use them
    /// all (a policy slower than its traffic, or looping).
    Busy,
    /// The memory limit was hit (the guest trapped because growth was refused).
    Memory(String),
}

impl WasmPolicy {
    /// Compiles and links `bytes`; does not run it (see [`WasmPolicy::probe`]).
    pub fn load(
        engine: &WasmEngine,
        name: &str,
        bytes: &[u8],
        settings: CallSettings,
    ) -> Result<Self, LoadError> {
        let hash = hex::encode(Sha256::digest(bytes));
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
                return Err(LoadError::NotAComponent(
                    "this is a core module; turn it into a component with `switchyard policy componentize`".into(),
                ));
            }
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
            _ => {
                return Err(LoadError::NotAComponent(
                    "the file does not start with the WebAssembly magic number".into(),
                ));
            }
        }
        // Before compiling: the pooling allocator refuses such a component while
        // compiling it, in words that read as a broken file.
        if let Some(needed) =
            super::footprint::initial_memory(bytes).filter(|n| *n > settings.memory_bytes)
        {
            return Err(LoadError::OverMemoryLimit {
                policy: name.to_owned(),
                needed,
                limit: settings.memory_bytes,
                size: bytes.len(),
            });
        }
        let component = Component::new(&engine.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&engine.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports: Vec<String> = ty
            .exports(&engine.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let uses_wasi = imports.iter().any(|i| i.starts_with("wasi:"));
        // The version is the one the component's exports name; its imports must be that
        // version's host interfaces (or WASI).
        let package = WIT_PACKAGES
            .iter()
            .rev()
            .find(|p| {
                let version = p.rsplit_once('@').map_or("", |(_, v)| v);
                exports.iter().any(|e| {
                    e.starts_with("switchyard:policy/") && e.ends_with(&format!("@{version}"))
                })
            })
            .copied()
            .ok_or_else(|| {
                LoadError::WrongWorld(format!(
                    "it exports {}",
                    if exports.is_empty() {
                        "nothing".to_owned()
                    } else {
                        exports.join(", ")
                    }
                ))
            })?;
        let version = package.rsplit_once('@').map_or("", |(_, v)| v);
        for import in &imports {
            let ours = import == &format!("switchyard:policy/host@{version}")
                || import == &format!("switchyard:policy/types@{version}");
            if !import.starts_with("wasi:") && !ours {
                return Err(LoadError::UnknownImport(import.clone()));
            }
        }
        let mut linker: Linker<State> = Linker::new(&engine.engine);
        let wrong = |e: wasmtime::Error| LoadError::WrongWorld(format!("{e:#}"));
        if package == WIT_PACKAGES[0] {
            v1::Policy::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .map_err(wrong)?;
        } else {
            v2::Policy::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .map_err(wrong)?;
        }
        if uses_wasi {
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wrong)?;
            bound_waits(&mut linker).map_err(wrong)?;
        }
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::UnknownImport(format!("{e:#}")))?;
        let pre = if package == WIT_PACKAGES[0] {
            Pre::V1(v1::PolicyPre::new(instance_pre).map_err(wrong)?)
        } else {
            Pre::V2(v2::PolicyPre::new(instance_pre).map_err(wrong)?)
        };
        let info = ComponentInfo {
            hash,
            size: bytes.len(),
            imports,
            exports,
            uses_wasi,
            package,
        };
        let warm_cap = settings.warm_instances.unwrap_or(DEFAULT_WARM);
        Ok(Self {
            warm_cap,
            slots: slots(&settings),
            name: Arc::from(name),
            info,
            pre,
            engine: engine.engine.clone(),
            settings,
            metrics: None,
            warm: std::sync::Mutex::new(Vec::new()),
            pace: Pace::new(),
        })
    }

    /// Counts the policy's `counter-add` calls in `metrics` (they are dropped otherwise).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        // Warm instances (the probe's) count nowhere: their stores were made before.
        self.warm = std::sync::Mutex::new(Vec::new());
        self
    }

    /// Whether requests are admitted by the policy (a 0.2 component) rather than without
    /// a call (0.1, which has no `admission`).
    pub fn admits(&self) -> bool {
        matches!(self.pre, Pre::V2(_))
    }

    /// The same compiled component with other settings (another configuration string):
    /// no recompilation.
    pub fn reconfigured(&self, settings: CallSettings) -> Self {
        Self {
            name: self.name.clone(),
            info: self.info.clone(),
            pre: self.pre.clone(),
            engine: self.engine.clone(),
            metrics: self.metrics.clone(),
            warm_cap: settings.warm_instances.unwrap_or(DEFAULT_WARM),
            slots: slots(&settings),
            settings,
            warm: std::sync::Mutex::new(Vec::new()),
            pace: Pace::new(),
        }
    }

    /// Runs `call` (a [`WasmPolicy::place`], `route` or `tier`) as blocking work, once one
    /// of this policy's slots is free, waiting at most its timeout for one.
    /// Policy calls never run without bound: a policy that loops until its deadline
    /// occupies its own slots only, and the requests of other buckets (and of buckets
    /// with the built-in policy) go on meanwhile.
    ///
    /// Where: a fast policy's call runs right on the request's thread, the runtime told
    /// that it blocks (`block_in_place` hands the thread's other tasks to another): no hop
    /// to a thread of its own, which cost a warm Rust decision 15-25 µs on top of its 5.
    /// Once a call has taken longer than [`SLOW_CALL`], the policy's calls hop to the
    /// blocking pool for [`SLOW_WINDOW`], so that a looping policy does not hold request
    /// threads. A current-thread runtime always hops.
    pub async fn call_off_thread<R: Send + 'static>(
        self: Arc<Self>,
        call: impl FnOnce(&WasmPolicy) -> Result<R, CallError> + Send + 'static,
    ) -> Result<R, CallError> {
        self.call(call, |call, p| call(p), |call| Box::new(call))
            .await
    }

    /// [`WasmPolicy::call_off_thread`] for a call on borrowed arguments: `inline` runs
    /// the call on the request's thread with them; `owned` is asked only when the call
    /// must hop to a thread of its own, for a call that owns copies of them. A decision
    /// on the request's thread (nearly all) then copies nothing: the copies of a request,
    /// an object and the members cost about a µs, a fifth of a Rust decision.
    pub async fn call<C, R: Send + 'static>(
        self: &Arc<Self>,
        args: C,
        inline: impl FnOnce(C, &WasmPolicy) -> Result<R, CallError>,
        owned: impl FnOnce(C) -> OwnedCall<R>,
    ) -> Result<R, CallError> {
        // A free slot is taken without a timer (most calls); else wait for one, at most
        // the deadline.
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tokio::time::timeout(self.settings.timeout, self.slots.clone().acquire_owned())
                    .await
                    .map_err(|_| CallError::Busy)?
                    .map_err(|_| CallError::Busy)?
            }
        };
        if !self.runs_off_thread()
            && tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
        {
            let _permit = permit;
            return tokio::task::block_in_place(|| inline(args, self));
        }
        let call = owned(args);
        let policy = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call(&policy)
        })
        .await
        .map_err(|e| CallError::Trap(format!("the call's thread failed: {e}")))?
    }

    /// Whether the policy's calls hop to threads of their own now (recent calls were
    /// slow: [`SLOW_CALL`]).
    pub fn runs_off_thread(&self) -> bool {
        // Without a clock read for a policy that was never slow (nearly all calls).
        self.pace.off_until.load(Ordering::Relaxed) != 0 && self.pace.off_thread(self.pace.now())
    }

    pub fn settings(&self) -> &CallSettings {
        &self.settings
    }

    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The content hash, shortened for log lines.
    pub fn short_hash(&self) -> &str {
        &self.info.hash[..12]
    }

    fn new_store(&self) -> Store<State> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(self.settings.memory_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(false)
            .build();
        let wasi = self.info.uses_wasi.then(|| {
            (
                wasi_ctx(&self.name, &self.settings.grants),
                ResourceTable::new(),
            )
        });
        let state = State {
            deadline: Instant::now(),
            ticks: 0,
            limits: Limiter {
                inner: limits,
                refused: false,
            },
            config: self.settings.config.clone(),
            name: self.name.clone(),
            wasi,
            metrics: self.metrics.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The epoch ticks (every millisecond) only prompt a look at the clock: the
        // deadline is the wall-clock time in the store, so a call ends on time even when
        // ticks come late on a busy machine, and a warm instance starts each call afresh.
        store.epoch_deadline_callback(|mut cx| {
            if Instant::now() >= cx.data().deadline {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                cx.data_mut().ticks += 1;
                Ok(wasmtime::UpdateDeadline::Continue(1))
            }
        });
        store
    }

    /// Runs `f` against an instance, fresh or warm, under the deadline, and tells the
    /// policy's [`Pace`] how it went.
    fn with_instance<R>(
        &self,
        f: impl FnOnce(&mut Store<State>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let now = Instant::now();
        let started = now.saturating_duration_since(self.pace.born);
        let warm = if self.warm_cap > 0 {
            self.warm.lock().ok().and_then(|mut w| w.pop())
        } else {
            None
        };
        let record = |store: &Store<State>, result: Result<(), &CallError>| {
            let now = self.pace.now();
            // A call that ran into its deadline counts whatever ticks it saw: with a
            // deadline under two tick periods it could see fewer than two.
            let ticks = match result {
                Err(CallError::Timeout) => SLOW_TICKS,
                _ => store.data().ticks,
            };
            self.pace.record(now, now.saturating_sub(started), ticks);
        };
        let (mut store, instance) = match warm {
            Some(mut pair) => {
                self.start_deadline(&mut pair.0, now);
                pair
            }
            None => {
                let mut store = self.new_store();
                self.start_deadline(&mut store, now);
                let instance = match self.pre.instantiate(&mut store) {
                    Ok(instance) => instance,
                    Err(e) => {
                        // A start function that loops is as slow as a call that does.
                        let e = classify(&e, &store);
                        record(&store, Err(&e));
                        return Err(e);
                    }
                };
                self.start_deadline(&mut store, Instant::now());
                (store, instance)
            }
        };
        let result = f(&mut store, &instance).map_err(|e| classify(&e, &store));
        // Tests: a call whose thread is descheduled for a while (tests/policies.rs).
        fail::fail_point!("policy::preempted", &*self.name == "preempted", |_| {
            Err(CallError::Trap("the fail point returned".into()))
        });
        record(&store, result.as_ref().map(|_| ()));
        if result.is_ok()
            && self.warm_cap > 0
            && let Ok(mut w) = self.warm.lock()
            && w.len() < self.warm_cap
        {
            w.push((store, instance));
        }
        result
    }

    /// Gives the next run of guest code in `store` (an instantiation, a call) the
    /// policy's timeout from now; the epoch callback (`new_store`) enforces it.
    fn start_deadline(&self, store: &mut Store<State>, now: Instant) {
        store.data_mut().deadline = now + self.settings.timeout;
        store.data_mut().ticks = 0;
        store.set_epoch_deadline(1);
    }

    pub fn place(
        &self,
        req: &RequestView,
        obj: &ObjectView,
        members: &[MemberView],
    ) -> Result<Result<Vec<String>, PolicyError>, CallError> {
        self.with_instance(|store, p| match p {
            Instance::V1(p) => {
                let pairs = Pairs::of(&req.headers, obj, members);
                let (req, obj, ms) = (
                    conv1::request(req),
                    conv1::object(obj, &pairs),
                    conv1::members(members, &pairs),
                );
                Ok(p.switchyard_policy_placement()
                    .call_place(store, req, obj, &ms)?
                    .map_err(conv1::policy_error))
            }
            Instance::V2(p) => {
                let pairs = Pairs::of(&req.headers, obj, members);
                let (req, obj, ms) = (
                    conv2::request(req, &pairs),
                    conv2::object(obj, &pairs),
                    conv2::members(members, &pairs),
                );
                Ok(p.switchyard_policy_placement()
                    .call_place(store, req, obj, &ms)?
                    .map_err(conv2::policy_error))
            }
        })
    }

    pub fn route(
        &self,
        req: &RequestView,
        obj: &ObjectView,
        members: &[MemberView],
    ) -> Result<Result<RouteAnswer, PolicyError>, CallError> {
        self.with_instance(|store, p| match p {
            Instance::V1(p) => {
                let pairs = Pairs::of(&req.headers, obj, members);
                let (req, obj, ms) = (
                    conv1::request(req),
                    conv1::object(obj, &pairs),
                    conv1::members(members, &pairs),
                );
                Ok(p.switchyard_policy_routing()
                    .call_route(store, req, obj, &ms)?
                    .map(|members| RouteAnswer {
                        members,
                        strict: false,
                    })
                    .map_err(conv1::policy_error))
            }
            Instance::V2(p) => {
                let pairs = Pairs::of(&req.headers, obj, members);
                let (req, obj, ms) = (
                    conv2::request(req, &pairs),
                    conv2::object(obj, &pairs),
                    conv2::members(members, &pairs),
                );
                Ok(p.switchyard_policy_routing()
                    .call_route(store, req, obj, &ms)?
                    .map(|r| RouteAnswer {
                        members: r.members,
                        strict: r.strict,
                    })
                    .map_err(conv2::policy_error))
            }
        })
    }

    /// Whether the request is served. A 0.1 component has no say: it is admitted without
    /// a call.
    pub fn admit(
        &self,
        req: &RequestView,
        obj: &ObjectView,
    ) -> Result<Result<Verdict, PolicyError>, CallError> {
        if !self.admits() {
            return Ok(Ok(Verdict::Allow));
        }
        self.with_instance(|store, p| match p {
            Instance::V1(_) => Ok(Ok(Verdict::Allow)),
            Instance::V2(p) => {
                let pairs = Pairs::of(&req.headers, obj, &[]);
                let (req, obj) = (conv2::request(req, &pairs), conv2::object(obj, &pairs));
                Ok(p.switchyard_policy_admission()
                    .call_admit(store, req, obj)?
                    .map(conv2::verdict)
                    .map_err(conv2::policy_error))
            }
        })
    }

    pub fn tier(
        &self,
        obj: &ObjectView,
        current: &str,
        members: &[MemberView],
    ) -> Result<Result<TierAction, PolicyError>, CallError> {
        self.with_instance(|store, p| match p {
            Instance::V1(p) => {
                let pairs = Pairs::of(&[], obj, members);
                let (obj, ms) = (conv1::object(obj, &pairs), conv1::members(members, &pairs));
                Ok(p.switchyard_policy_tiering()
                    .call_tier(store, obj, current, &ms)?
                    .map(conv1::tier_action)
                    .map_err(conv1::policy_error))
            }
            Instance::V2(p) => {
                let pairs = Pairs::of(&[], obj, members);
                let (obj, ms) = (conv2::object(obj, &pairs), conv2::members(members, &pairs));
                Ok(p.switchyard_policy_tiering()
                    .call_tier(store, obj, current, &ms)?
                    .map(conv2::tier_action)
                    .map_err(conv2::policy_error))
            }
        })
    }

    /// Calls every export once with a synthetic request: a component that traps, loops or
    /// cannot be instantiated is refused before it serves traffic. Policy errors are fine:
    /// the probe's bucket and members are made up.
    pub fn probe(&self) -> Result<Duration, LoadError> {
        let members = vec![
            MemberView {
                name: "probe-a".into(),
                kind: "memory",
                labels: vec![("tier".into(), "hot".into())].into(),
                healthy: true,
                latency_us: Some(100),
            },
            MemberView {
                name: "probe-b".into(),
                kind: "memory",
                labels: vec![("tier".into(), "cold".into())].into(),
                healthy: true,
                latency_us: None,
            },
        ];
        let req = RequestView {
            operation: "PutObject".into(),
            principal: Some("probe".into()),
            source_ip: Some("127.0.0.1".into()),
            ..Default::default()
        };
        let obj = ObjectView {
            bucket: "probe".into(),
            key: "probe/key".into(),
            size: Some(1024),
            ..Default::default()
        };
        let started = Instant::now();
        let describe = |e: CallError| LoadError::ProbeFailed(describe_call_error(&e));
        self.admit(&req, &obj).map_err(describe)?.ok();
        self.place(&req, &obj, &members).map_err(describe)?.ok();
        self.route(&req, &obj, &members).map_err(describe)?.ok();
        self.tier(&obj, "probe-a", &members).map_err(describe)?.ok();
        Ok(started.elapsed())
    }
}

pub fn describe_call_error(e: &CallError) -> String {
    match e {
        CallError::Trap(m) => format!("trapped: {m}"),
        CallError::Timeout => "ran past its deadline".into(),
        CallError::Busy => "found no free slot within its deadline".into(),
        CallError::Memory(m) => format!("hit its memory limit: {m}"),
    }
}

fn classify(e: &wasmtime::Error, store: &Store<State>) -> CallError {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::Interrupt
    {
        return CallError::Timeout;
    }
    let text = format!("{e:#}");
    if store.data().limits.refused {
        return CallError::Memory(text);
    }
    CallError::Trap(text)
}

/// Conversions between the host's views and one WIT version's types: the same for every
/// version where the types did not change.
/// The string pairs of a call's arguments, borrowed: the call's WIT types (generated
/// borrowing, `ownership: Borrowing`) point into these lists and into the views' own
/// strings, so that a call copies no string on the host's side before the canonical ABI
/// copies it into the guest. Owned copies were 12% of a warm Rust decision (malloc and
/// free, docs/benchmarks.md); this is one allocation per non-empty list instead.
struct Pairs<'a> {
    headers: Vec<(&'a str, &'a str)>,
    metadata: Vec<(&'a str, &'a str)>,
    tags: Vec<(&'a str, &'a str)>,
    /// Every member's labels in turn; [`conv1::members`] slices them by count.
    labels: Vec<(&'a str, &'a str)>,
}

impl<'a> Pairs<'a> {
    fn of(headers: &'a [(String, String)], obj: &'a ObjectView, members: &'a [MemberView]) -> Self {
        fn borrowed<'a>(
            pairs: impl IntoIterator<Item = &'a (String, String)>,
        ) -> Vec<(&'a str, &'a str)> {
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }
        Self {
            headers: borrowed(headers),
            metadata: borrowed(&obj.metadata),
            tags: borrowed(&obj.tags),
            labels: borrowed(members.iter().flat_map(|m| m.labels.iter())),
        }
    }
}

macro_rules! common_conversions {
    ($v:ident) => {
        use super::Pairs;
        use super::$v::switchyard::policy::types::{
            Member, PolicyError as WitPolicyError, TierAction as WitTierAction,
        };
        use crate::model::MemberView;
        use crate::policy::{PolicyError, Refusal, TierAction};

        /// `ms` with their labels, which `pairs` holds in turn.
        pub(super) fn members<'a>(ms: &'a [MemberView], pairs: &'a Pairs<'a>) -> Vec<Member<'a>> {
            let mut labels = pairs.labels.as_slice();
            ms.iter()
                .map(|m| {
                    let (own, rest) = labels.split_at(m.labels.len());
                    labels = rest;
                    Member {
                        name: &m.name,
                        kind: m.kind,
                        labels: own,
                        healthy: m.healthy,
                        latency_us: m.latency_us,
                    }
                })
                .collect()
        }

        pub(super) fn policy_error(e: WitPolicyError) -> PolicyError {
            let (kind, message) = match e {
                WitPolicyError::InvalidInput(m) => (Refusal::InvalidInput, m),
                WitPolicyError::Unavailable(m) => (Refusal::Unavailable, m),
                WitPolicyError::Other(m) => (Refusal::Other, m),
            };
            PolicyError::Refused { kind, message }
        }

        pub(super) fn tier_action(a: WitTierAction) -> TierAction {
            match a {
                WitTierAction::Keep => TierAction::Keep,
                WitTierAction::MoveTo(m) => TierAction::MoveTo(m),
                WitTierAction::CopyTo(m) => TierAction::CopyTo(m),
                WitTierAction::Delete => TierAction::Delete,
            }
        }
    };
}

mod conv1 {
    common_conversions!(v1);
    use super::v1::switchyard::policy::types::{Object, Request};
    use crate::policy::{ObjectView, RequestView};

    pub(super) fn request(r: &RequestView) -> Request<'_> {
        Request {
            operation: &r.operation,
            principal: r.principal.as_deref(),
            source_ip: r.source_ip.as_deref(),
        }
    }

    pub(super) fn object<'a>(o: &'a ObjectView, pairs: &'a Pairs<'a>) -> Object<'a> {
        Object {
            bucket: &o.bucket,
            key: &o.key,
            size: o.size,
            content_type: o.content_type.as_deref(),
            metadata: &pairs.metadata,
            age_seconds: o.age_seconds,
        }
    }
}

mod conv2 {
    common_conversions!(v2);
    use super::v2::switchyard::policy::types::{
        DenyCode as WitDenyCode, Object, Phase as WitPhase, Request, Verdict as WitVerdict,
    };
    use crate::policy::{DenyCode, ObjectView, Phase, RequestView, Verdict};

    pub(super) fn request<'a>(r: &'a RequestView, pairs: &'a Pairs<'a>) -> Request<'a> {
        Request {
            operation: &r.operation,
            principal: r.principal.as_deref(),
            source_ip: r.source_ip.as_deref(),
            headers: &pairs.headers,
            phase: match r.phase {
                Phase::Single => WitPhase::Single,
                Phase::MultipartStart => WitPhase::MultipartStart,
                Phase::MultipartPart => WitPhase::MultipartPart,
                Phase::MultipartEnd => WitPhase::MultipartEnd,
            },
        }
    }

    pub(super) fn object<'a>(o: &'a ObjectView, pairs: &'a Pairs<'a>) -> Object<'a> {
        Object {
            bucket: &o.bucket,
            key: &o.key,
            size: o.size,
            content_type: o.content_type.as_deref(),
            metadata: &pairs.metadata,
            age_seconds: o.age_seconds,
            tags: &pairs.tags,
        }
    }

    pub(super) fn verdict(v: WitVerdict) -> Verdict {
        match v {
            WitVerdict::Allow => Verdict::Allow,
            WitVerdict::Deny(d) => Verdict::Deny {
                code: match d.code {
                    WitDenyCode::AccessDenied => DenyCode::AccessDenied,
                    WitDenyCode::InvalidRequest => DenyCode::InvalidRequest,
                    WitDenyCode::InvalidArgument => DenyCode::InvalidArgument,
                    WitDenyCode::EntityTooLarge => DenyCode::EntityTooLarge,
                    WitDenyCode::SlowDown => DenyCode::SlowDown,
                    WitDenyCode::ServiceUnavailable => DenyCode::ServiceUnavailable,
                },
                message: d.message,
            },
        }
    }
}

/// Turns a core module with an embedded `component-type` section (what wit-bindgen emits)
/// into a component, as `wasm-tools component new` does.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .map_err(|e| format!("{e:#}"))?;
    encoder.encode().map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod wasi_tests {
    use super::*;
    use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};

    fn draw(grants: &Grants) -> (Vec<u8>, Vec<u8>, (u64, u64)) {
        let mut ctx = wasi_ctx("t", grants);
        let r = ctx.random();
        (
            random::Host::get_random_bytes(r, 32).unwrap(),
            insecure::Host::get_insecure_random_bytes(r, 32).unwrap(),
            insecure_seed::Host::insecure_seed(r).unwrap(),
        )
    }

    /// `bound_waits` re-opens wasmtime-wasi's poll interface by its name; were the name
    /// not defined (an upgrade moved the version), it would add a second interface and
    /// leave the guest's waits unbounded.
    #[test]
    fn bound_waits_finds_the_wasi_poll_interface() {
        let engine = Engine::default();
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        // Without shadowing, defining `poll` fails exactly when it is defined already.
        let again = linker
            .instance(WASI_POLL)
            .unwrap()
            .func_wrap("poll", |_: wasmtime::StoreContextMut<'_, State>, (): ()| {
                Ok(())
            });
        assert!(
            again.is_err(),
            "{WASI_POLL} is not where wasmtime-wasi defines poll"
        );
        bound_waits(&mut linker).unwrap();
    }

    /// Without `allow_random` a policy draws the same numbers in every instance (it got
    /// real ones, against the promise of reproducible decisions); with it, real ones.
    #[test]
    fn random_numbers_are_fixed_unless_granted() {
        let none = Grants::default();
        assert_eq!(draw(&none), draw(&none));
        let granted = Grants {
            random: true,
            ..Grants::default()
        };
        let (a, b) = (draw(&granted), draw(&granted));
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
        assert_ne!(a.2, b.2);
    }

    /// A single slow call leaves a policy on the request threads; a second within the
    /// strike window, or one call that stalled, moves it. Calls whose guest code saw fewer
    /// than two epoch ticks were preempted, not slow, however long they took.
    #[test]
    fn a_policy_leaves_the_request_threads_after_two_slow_calls_or_a_stall() {
        let ms = Duration::from_millis;
        let pace = Pace::new();
        pace.record(ms(100), Duration::from_micros(5), 0);
        assert!(!pace.off_thread(ms(100)));
        pace.record(ms(200), ms(3), 3);
        assert!(!pace.off_thread(ms(200)), "one slow call");
        // The next slow one comes too late to count with it.
        pace.record(ms(1500), ms(2), 2);
        assert!(!pace.off_thread(ms(1500)));
        pace.record(ms(1900), ms(2), 2);
        assert!(pace.off_thread(ms(1900)), "two within a second");
        assert!(pace.off_thread(ms(11_800)));
        assert!(!pace.off_thread(ms(11_901)), "for ten seconds");
        let pace = Pace::new();
        pace.record(ms(50), STALLED, 10);
        assert!(pace.off_thread(ms(50)), "one call that stalled");
        // Preempted: long in wall time, one tick or none seen by the guest.
        let pace = Pace::new();
        for (i, ticks) in [1, 0, 1, 1, 0].into_iter().enumerate() {
            let now = ms(100 + 10 * i as u64);
            pace.record(now, ms(40), ticks);
            assert!(!pace.off_thread(now), "preempted call {i}");
        }
    }
}
