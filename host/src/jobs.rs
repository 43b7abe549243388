//! Mover jobs inside a serving engine: migrations, tiering passes and inventories started
//! through the admin API (or the console) or by a bucket's tiering schedule, with their
//! progress and, for an inventory, what it found.
//!
//! Jobs are kept in memory only, like everything else in an engine: a restart forgets
//! them, and running the same job again resumes it, because the mover itself is stateless.
//! For the same reason a job can be cancelled at any point: the task is dropped where it
//! stands, as a crash of the engine would stop it, which the mover is built to survive
//! (a copy cut short is never visible, and the journal of the next run of the same
//! migration settles the copies it had in flight).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::config::TieringConfig;
use crate::metrics::{JobKind, Metrics};
use crate::mover::{self, Inventory, InventorySpec, MigrateSpec, Progress, Shard, TierSpec};
use crate::router::Router;

/// Finished jobs kept for the admin API, oldest dropped first.
const KEEP_FINISHED: usize = 100;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "error")]
pub enum JobState {
    Running,
    Done,
    Failed(String),
    /// Stopped through the admin API.
    Cancelled,
}

/// When a job ended, and how long after its start.
type Ended = (DateTime<Utc>, Duration);

#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub kind: JobKind,
    pub bucket: String,
    /// The job's parameters, as the admin API shows them.
    pub params: serde_json::Value,
    pub started: DateTime<Utc>,
    clock: Instant,
    pub progress: Arc<Progress>,
    /// The state, and once the job has ended, when and how long after its start: its
    /// elapsed time and rate stop there rather than go on growing (a finished job's rate
    /// would fall for ever).
    state: Mutex<(JobState, Option<Ended>)>,
    /// Stops the job's task; set once it is spawned.
    abort: Mutex<Option<tokio::task::AbortHandle>>,
    /// What an inventory found, once it is done.
    inventory: OnceLock<Inventory>,
}

impl Job {
    pub fn state(&self) -> JobState {
        self.lock().0.clone()
    }

    pub fn running(&self) -> bool {
        matches!(self.state(), JobState::Running)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (JobState, Option<Ended>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the job if it is running; false if it had already ended.
    pub fn cancel(&self) -> bool {
        {
            let mut state = self.lock();
            if !matches!(state.0, JobState::Running) {
                return false;
            }
            *state = (JobState::Cancelled, Some(self.ended_now()));
        }
        // A job cancelled before its task is spawned is stopped by `Jobs::run`.
        if let Some(task) = self.abort.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        tracing::info!(job = self.id, kind = ?self.kind, bucket = %self.bucket, progress = ?self.progress.snapshot(), "job cancelled");
        true
    }

    fn ended_now(&self) -> Ended {
        (Utc::now(), self.clock.elapsed())
    }

    pub fn to_json(&self) -> serde_json::Value {
        let (state, ended) = self.lock().clone();
        let p = self.progress.snapshot();
        let finished = ended.map(|(at, _)| at);
        let elapsed = ended
            .map_or_else(|| self.clock.elapsed(), |(_, after)| after)
            .as_secs_f64();
        let rate = p.bytes_copied as f64 / elapsed.max(1e-3);
        let done_bytes = p.bytes_copied;
        // An ETA only once the listing has its totals.
        let eta = (p.listing_done && rate > 0.0 && matches!(state, JobState::Running))
            .then(|| p.listed_bytes.saturating_sub(done_bytes) as f64 / rate);
        serde_json::json!({
            "id": self.id,
            "kind": self.kind,
            "bucket": self.bucket,
            "params": self.params,
            "status": state,
            "started": self.started.to_rfc3339(),
            "finished": finished.map(|f| f.to_rfc3339()),
            "elapsed_seconds": elapsed,
            "progress": p,
            "bytes_per_second": rate,
            "eta_seconds": eta,
            "inventory": self.inventory.get(),
        })
    }
}

/// The jobs of one engine.
#[derive(Debug)]
pub struct Jobs {
    router: Arc<ArcSwap<Router>>,
    metrics: Arc<Metrics>,
    next: AtomicU64,
    jobs: Mutex<Vec<Arc<Job>>>,
}

impl Jobs {
    pub fn new(router: Arc<ArcSwap<Router>>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            router,
            metrics,
            next: AtomicU64::new(1),
            jobs: Mutex::new(Vec::new()),
        })
    }

    pub fn list(&self) -> Vec<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many jobs of each kind run, every kind named (for `switchyard_jobs_running`).
    pub fn running(&self) -> Vec<(String, i64)> {
        let jobs = self.list();
        [JobKind::Migrate, JobKind::Tier, JobKind::Inventory]
            .into_iter()
            .map(|kind| {
                let n = jobs
                    .iter()
                    .filter(|j| j.kind == kind && j.running())
                    .count();
                (
                    kind.as_str().to_owned(),
                    i64::try_from(n).unwrap_or(i64::MAX),
                )
            })
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.list().into_iter().find(|j| j.id == id)
    }

    fn register(
        self: &Arc<Self>,
        kind: JobKind,
        bucket: &str,
        params: serde_json::Value,
    ) -> Arc<Job> {
        let job = Arc::new(Job {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            kind,
            bucket: bucket.to_owned(),
            params,
            started: Utc::now(),
            clock: Instant::now(),
            progress: Arc::new(Progress::with_metrics(self.metrics.clone(), kind)),
            state: Mutex::new((JobState::Running, None)),
            abort: Mutex::new(None),
            inventory: OnceLock::new(),
        });
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let finished = jobs.iter().filter(|j| !j.running()).count();
        if finished >= KEEP_FINISHED
            && let Some(i) = jobs.iter().position(|j| !j.running())
        {
            jobs.remove(i);
        }
        jobs.push(job.clone());
        job
    }

    /// Runs `work` as `job`'s task, which cancelling it aborts.
    fn run(job: &Arc<Job>, work: impl Future<Output = crate::model::Result<()>> + Send + 'static) {
        let j = job.clone();
        let task = tokio::spawn(async move {
            let r = work.await;
            Self::finish(&j, r);
        });
        *job.abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        if matches!(job.state(), JobState::Cancelled) {
            task.abort();
        }
    }

    fn finish(job: &Job, result: crate::model::Result<()>) {
        let state = match result {
            Ok(()) => JobState::Done,
            Err(e) => JobState::Failed(e.to_string()),
        };
        let mut current = job.lock();
        // Cancelled meanwhile: that stands.
        if !matches!(current.0, JobState::Running) {
            return;
        }
        *current = (state.clone(), Some(job.ended_now()));
        drop(current);
        match &state {
            JobState::Failed(e) => {
                tracing::warn!(job = job.id, kind = ?job.kind, bucket = %job.bucket, error = %e, "job failed")
            }
            _ => {
                tracing::info!(job = job.id, kind = ?job.kind, bucket = %job.bucket, progress = ?job.progress.snapshot(), "job done")
            }
        }
    }

    /// Starts a migration in the background.
    pub async fn migrate(self: &Arc<Self>, spec: MigrateSpec) -> crate::model::Result<Arc<Job>> {
        let router = self.router.load_full();
        // Refuse a bad request now rather than as a failed job.
        let vb = router.bucket(&spec.bucket).await?;
        for m in [&spec.from, &spec.to] {
            if vb.member(m).is_none() {
                return Err(crate::model::Error::InvalidArgument(format!(
                    "{m:?} is not a member of bucket {:?}",
                    spec.bucket
                )));
            }
        }
        let params = serde_json::json!({
            "from": spec.from, "to": spec.to,
            "mode": if spec.mode == mover::Mode::Move { "move" } else { "copy" },
            "shard": format!("{}/{}", spec.shard.index, spec.shard.count),
            "dry_run": spec.dry_run, "concurrency": spec.concurrency, "bandwidth": spec.bandwidth,
        });
        let job = self.register(JobKind::Migrate, &spec.bucket, params);
        let progress = job.progress.clone();
        Self::run(&job, async move {
            mover::migrate(&router, &spec, &progress).await
        });
        Ok(job)
    }

    /// Starts a tiering pass in the background.
    pub async fn tier(self: &Arc<Self>, spec: TierSpec) -> crate::model::Result<Arc<Job>> {
        let router = self.router.load_full();
        router.bucket(&spec.bucket).await?;
        let params = serde_json::json!({
            "shard": format!("{}/{}", spec.shard.index, spec.shard.count),
            "dry_run": spec.dry_run, "concurrency": spec.concurrency, "bandwidth": spec.bandwidth,
        });
        let job = self.register(JobKind::Tier, &spec.bucket, params);
        let progress = job.progress.clone();
        Self::run(
            &job,
            async move { mover::tier(&router, &spec, &progress).await },
        );
        Ok(job)
    }

    /// Starts an inventory of one bucket in the background; what it finds is kept with
    /// the job (its JSON's `inventory`).
    pub async fn inventory(
        self: &Arc<Self>,
        spec: InventorySpec,
    ) -> crate::model::Result<Arc<Job>> {
        let router = self.router.load_full();
        router.bucket(&spec.bucket).await?;
        let params = serde_json::json!({
            "shard": format!("{}/{}", spec.shard.index, spec.shard.count),
        });
        let job = self.register(JobKind::Inventory, &spec.bucket, params);
        let j = job.clone();
        Self::run(&job, async move {
            let found = mover::inventory(&router, &spec, &j.progress).await?;
            let _ = j.inventory.set(found);
            Ok(())
        });
        Ok(job)
    }

    /// Runs each configured tiering schedule until the engine stops: a pass every
    /// `every`, never two of one bucket at once.
    pub fn schedule(
        self: &Arc<Self>,
        bucket: String,
        cfg: TieringConfig,
    ) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let shard = cfg
                .shard
                .as_deref()
                .map_or(Ok(Shard::ALL), Shard::parse)
                .unwrap_or(Shard::ALL);
            let bandwidth = cfg
                .bandwidth
                .as_deref()
                .and_then(|b| mover::parse_rate(b).ok());
            let first = tokio::time::Instant::now() + cfg.every;
            let mut tick = tokio::time::interval_at(first, cfg.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last: Option<Arc<Job>> = None;
            loop {
                tick.tick().await;
                if last.as_ref().is_some_and(|j| j.running()) {
                    tracing::info!(bucket = %bucket, "the previous tiering pass is still running; skipping this one");
                    continue;
                }
                let spec = TierSpec {
                    bucket: bucket.clone(),
                    shard,
                    dry_run: false,
                    concurrency: cfg.concurrency,
                    bandwidth,
                };
                match jobs.tier(spec).await {
                    Ok(j) => last = Some(j),
                    Err(e) => {
                        tracing::warn!(bucket = %bucket, error = %e, "cannot start a tiering pass")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once a job has ended, its elapsed time and rate are those of its run: read later,
    /// they do not change (a finished job's rate used to fall for ever in the console).
    #[test]
    fn a_finished_jobs_elapsed_time_and_rate_stop_at_its_end() {
        for cancel in [false, true] {
            let job = Job {
                id: 1,
                kind: JobKind::Migrate,
                bucket: "b".into(),
                params: serde_json::json!({}),
                started: Utc::now(),
                clock: Instant::now(),
                progress: Arc::new(Progress::default()),
                state: Mutex::new((JobState::Running, None)),
                abort: Mutex::new(None),
                inventory: OnceLock::new(),
            };
            job.progress.bytes_copied.store(1 << 20, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
            if cancel {
                assert!(job.cancel());
            } else {
                Jobs::finish(&job, Ok(()));
            }
            let at_end = job.to_json();
            std::thread::sleep(Duration::from_millis(50));
            let later = job.to_json();
            assert_eq!(
                at_end["elapsed_seconds"], later["elapsed_seconds"],
                "{later}"
            );
            assert_eq!(
                at_end["bytes_per_second"], later["bytes_per_second"],
                "{later}"
            );
            assert!(
                at_end["elapsed_seconds"].as_f64().unwrap() >= 0.02,
                "{at_end}"
            );
            assert!(later["finished"].is_string(), "{later}");
        }
    }
}
