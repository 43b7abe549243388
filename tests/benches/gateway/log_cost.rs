//! What the engine's logging costs one request, measured in this process with the
//! engine's own logging ([`switchyard::logging::init`], writing to a file): the request's
//! span (made, entered and left at each poll, its operation and bucket recorded) and its
//! access log line, on as many threads at once as the machine has cores.
//!
//! Why in this process: the difference between a gateway with the access log on and one
//! with it off moves by several percent of a 4 KiB request between runs on a shared
//! machine (docs/benchmarks.md), more than the log could cost; timed alone, the same work
//! gives the same figure run after run. CPU time of the whole process is what counts, so
//! that the threads that write the lines out (the access log's flusher and the log
//! writer) are paid for too.

use std::path::Path;
use std::time::Duration;

use switchyard::frontend::access_log::{self, Line};
use switchyard::frontend::exchange::request_span;

/// Requests per thread.
const REQUESTS: u32 = 100_000;

/// Times a 4 KiB request's future is polled, each an enter and an exit of its span: a
/// GET through an S3 backend is polled a handful of times (the request's head, the
/// backend's answer, the body's chunks); more is assumed here, to err on the dear side.
const POLLS: usize = 16;

pub struct LogCost {
    /// The request's span, µs per request.
    pub span_us: f64,
    /// The access log line, µs per request.
    pub line_us: f64,
}

/// Installs the engine's logging (once per process, writing to `dir`) and times it.
pub fn per_request(dir: &Path) -> std::io::Result<LogCost> {
    let path = dir.join("log-cost.log");
    let file = std::fs::File::create(&path)?;
    let guards = switchyard::logging::init(false, false, file);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let span_us = per_request_on(threads, |i| {
        let span = request_span(&i);
        span.record("op", "get_object");
        span.record("bucket", "bench");
        for _ in 0..POLLS {
            let _entered = span.enter();
        }
    });
    let client: std::net::SocketAddr = ([127, 0, 0, 1], 54321).into();
    let line_us = per_request_on(threads, |i| {
        access_log::write(&Line {
            warn: false,
            message: "request",
            request_id: &i,
            principal: "bench",
            client: &client,
            method: "GET",
            operation: "GetObject",
            bucket: "bench",
            key: "4096/c16/r0/obj-000123",
            status: 200,
            error_code: "-",
            bytes_in: 0,
            bytes_out: 4096,
            backend: "bench",
            latency_ms: 0.187,
            complete: true,
            error: "-",
        });
    });
    // The last lines out, so that the file says the lines were written.
    drop(guards);
    let lines = std::fs::read(&path)?
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let want = REQUESTS as usize * threads;
    if lines < want {
        return Err(std::io::Error::other(format!(
            "the access log has {lines} lines, not {want}: the measurement did not log"
        )));
    }
    let _ = std::fs::remove_file(&path);
    Ok(LogCost { span_us, line_us })
}

/// The process's CPU time per call of `one`, called [`REQUESTS`] times on each of
/// `threads` threads at once.
fn per_request_on(threads: usize, one: impl Fn(u64) + Sync) -> f64 {
    let before = cpu_time();
    std::thread::scope(|s| {
        for t in 0..threads {
            let one = &one;
            s.spawn(move || {
                for i in 0..REQUESTS {
                    one((t as u64) << 32 | u64::from(i));
                }
            });
        }
    });
    // The lines handed over are written within the flush interval: wait it out, so
    // that their writing is in the time measured.
    std::thread::sleep(access_log::FLUSH_EVERY * 2);
    let spent = cpu_time().saturating_sub(before);
    spent.as_secs_f64() * 1e6 / (f64::from(REQUESTS) * threads as f64)
}

fn cpu_time() -> Duration {
    super::procs::cpu_time(std::process::id()).unwrap_or_default()
}
