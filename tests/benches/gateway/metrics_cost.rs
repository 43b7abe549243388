//! What the request metrics cost one request, measured in this process with the engine's
//! own [`Metrics`]: the calls one proxied 4 KiB GET makes (the request counted, its
//! bucket's label found, one backend call and its bytes), on as many threads at once as
//! the machine has cores, so that the counters' cache lines move between cores as they do
//! in a busy gateway.
//!
//! Why not a gateway with the metrics off: there is no such gateway (the metrics are not
//! optional), and a switch that exists only for a benchmark would measure a build nobody
//! runs. The access log's cost, which can be turned off, is measured end to end instead
//! (`switchyard-quiet`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::metrics::{BackendOp, BackendOutcome, Metrics, Name};

/// Requests per thread.
const REQUESTS: u32 = 200_000;

/// CPU time per request, in µs.
pub fn per_request_us() -> f64 {
    let metrics = Arc::new(Metrics::default());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spent: Duration = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let m = metrics.clone();
                s.spawn(move || {
                    let backend = Name::new("bench");
                    let started = Instant::now();
                    for i in 0..REQUESTS {
                        let seconds = f64::from(i % 1000) * 1e-6;
                        m.request_started();
                        let bucket = m.bucket_label("bench");
                        m.backend_call(&backend, BackendOp::Get, BackendOutcome::Ok, seconds);
                        m.backend_bytes(&backend, 4096, 0);
                        m.request_done("get_object", bucket, 200, seconds, 0, 4096);
                    }
                    started.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .sum()
    });
    spent.as_secs_f64() * 1e6 / (f64::from(REQUESTS) * threads as f64)
}
