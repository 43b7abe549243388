//! The access log's writer: one line per request, formatted straight into a shared buffer
//! that a background thread hands to the log's output every [`FLUSH_EVERY`].
//!
//! Why not a `tracing` event per request: formatting sixteen fields through
//! tracing-subscriber and waking its writer thread for each line cost about a sixth of a
//! small request's CPU (measured with the gateway benchmark), and every line was a
//! `write(2)` of its own. Here a line costs its formatting and a short lock; lines leave
//! in batches, through the same writer as the engine's other logs (so the two never
//! interleave inside a line). A crash loses at most the last [`FLUSH_EVERY`] of lines.
//!
//! Whether lines are written still follows `SWITCHYARD_LOG`: the filter's verdict for the
//! target `switchyard::access` (`switchyard::access=off` turns the log off).
//!
//! Without [`install`] (an engine run as a library, in tests), lines go through
//! `tracing` events instead, with the same fields.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this large is handed over at once, whatever the time.
const FLUSH_AT: usize = 256 * 1024;

/// One request's line. Strings are the request's own (keys and bucket names are client
/// input): they are escaped in either format, so no line can be forged or split.
pub struct Line<'a> {
    pub warn: bool,
    pub message: &'a str,
    pub request_id: &'a dyn std::fmt::Display,
    pub principal: &'a str,
    pub client: &'a dyn std::fmt::Display,
    pub method: &'a str,
    pub operation: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub status: u16,
    pub error_code: &'a str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub backend: &'a str,
    pub latency_ms: f64,
    pub complete: bool,
    pub error: &'a str,
}

struct Sink {
    json: bool,
    buf: Mutex<Vec<u8>>,
    /// Signalled when the buffer is over [`FLUSH_AT`] or the engine stops.
    wake: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
    stopping: AtomicBool,
}

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

/// Flushes the last lines when dropped (at exit).
pub struct Guard {
    sink: Arc<Sink>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sink.stopping.store(true, Ordering::Relaxed);
        self.sink.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sink.flush();
    }
}

/// Sends the access log to `out` (the engine's log writer), as JSON lines or as text
/// lines shaped like the engine's other log lines.
pub fn install(json: bool, out: impl Write + Send + 'static) -> Option<Guard> {
    let sink = Arc::new(Sink {
        json,
        buf: Mutex::new(Vec::with_capacity(FLUSH_AT)),
        wake: Condvar::new(),
        out: Mutex::new(Box::new(out)),
        stopping: AtomicBool::new(false),
    });
    SINK.set(sink.clone()).ok()?;
    let flusher = sink.clone();
    let thread = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            while !flusher.stopping.load(Ordering::Relaxed) {
                {
                    let buf = flusher.lock_buf();
                    if buf.len() < FLUSH_AT {
                        let _ = flusher.wake.wait_timeout(buf, FLUSH_EVERY);
                    }
                }
                flusher.flush();
            }
        })
        .ok()?;
    Some(Guard {
        sink,
        thread: Some(thread),
    })
}

impl Sink {
    fn lock_buf(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.lock_buf());
        if batch.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(&batch);
        let _ = out.flush();
    }
}

/// Writes `line` to the access log, if the log filter lets it through.
pub fn write(line: &Line<'_>) {
    let enabled = if line.warn {
        tracing::enabled!(target: "switchyard::access", tracing::Level::WARN)
    } else {
        tracing::enabled!(target: "switchyard::access", tracing::Level::INFO)
    };
    if !enabled {
        return;
    }
    let Some(sink) = SINK.get() else {
        return through_tracing(line);
    };
    let mut text = String::with_capacity(384);
    if sink.json {
        json_line(&mut text, line);
    } else {
        text_line(&mut text, line);
    }
    let mut buf = sink.lock_buf();
    buf.extend_from_slice(text.as_bytes());
    if buf.len() >= FLUSH_AT {
        sink.wake.notify_one();
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `2026-12-07T10:00:00.123456Z  INFO switchyard::access: request request_id=... key="a b"`:
/// the layout of tracing-subscriber's text lines, strings quoted and escaped as Rust
/// debug strings (a newline in a key is `\n`, not a new line).
fn text_line(out: &mut String, l: &Line<'_>) {
    let level = if l.warn { " WARN" } else { " INFO" };
    let _ = writeln!(
        out,
        "{} {level} switchyard::access: {} request_id={} principal={:?} client={} method={} operation={} bucket={:?} key={:?} status={} error_code={} bytes_in={} bytes_out={} backend={:?} latency_ms={:.3} complete={} error={:?}",
        now(),
        l.message,
        l.request_id,
        l.principal,
        l.client,
        l.method,
        l.operation,
        l.bucket,
        l.key,
        l.status,
        l.error_code,
        l.bytes_in,
        l.bytes_out,
        l.backend,
        l.latency_ms,
        l.complete,
        l.error,
    );
}

/// One JSON object with flat fields (tracing-subscriber's JSON lines nest them under
/// `fields`; log pipelines want them at the top).
fn json_line(out: &mut String, l: &Line<'_>) {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    let _ = writeln!(
        out,
        "{{\"timestamp\":\"{}\",\"level\":\"{}\",\"target\":\"switchyard::access\",\"message\":{},\"request_id\":\"{}\",\"principal\":{},\"client\":\"{}\",\"method\":{},\"operation\":{},\"bucket\":{},\"key\":{},\"status\":{},\"error_code\":{},\"bytes_in\":{},\"bytes_out\":{},\"backend\":{},\"latency_ms\":{:.3},\"complete\":{},\"error\":{}}}",
        now(),
        if l.warn { "WARN" } else { "INFO" },
        s(l.message),
        l.request_id,
        s(l.principal),
        l.client,
        s(l.method),
        s(l.operation),
        s(l.bucket),
        s(l.key),
        l.status,
        s(l.error_code),
        l.bytes_in,
        l.bytes_out,
        s(l.backend),
        l.latency_ms,
        l.complete,
        s(l.error),
    );
}

fn through_tracing(l: &Line<'_>) {
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                target: "switchyard::access",
                request_id = %l.request_id,
                principal = l.principal,
                client = %l.client,
                method = l.method,
                operation = l.operation,
                bucket = l.bucket,
                key = l.key,
                status = l.status,
                error_code = l.error_code,
                bytes_in = l.bytes_in,
                bytes_out = l.bytes_out,
                backend = l.backend,
                latency_ms = l.latency_ms,
                complete = l.complete,
                error = l.error,
                "{}",
                l.message
            )
        };
    }
    if l.warn {
        event!(warn);
    } else {
        event!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(key: &'a str, warn: bool) -> Line<'a> {
        Line {
            warn,
            message: "request",
            request_id: &"0123456789ABCDEF",
            principal: "AKIA",
            client: &"127.0.0.1:5000",
            method: "PUT",
            operation: "PutObject",
            bucket: "photos",
            key,
            status: 200,
            error_code: "-",
            bytes_in: 4096,
            bytes_out: 0,
            backend: "fast",
            latency_ms: 1.25,
            complete: true,
            error: "-",
        }
    }

    /// A key with a newline, quotes and a control character stays inside its line and its
    /// field, in both formats.
    #[test]
    fn client_strings_cannot_split_or_forge_a_line() {
        let key = "a\n2026 INFO forged=\"x\"\u{1}\\";
        let mut text = String::new();
        text_line(&mut text, &line(key, false));
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(
            text.contains(r#"key="a\n2026 INFO forged=\"x\"\u{1}\\""#),
            "{text}"
        );
        assert!(text.contains(" INFO switchyard::access: request request_id=0123456789ABCDEF principal=\"AKIA\" client=127.0.0.1:5000 method=PUT operation=PutObject bucket=\"photos\""), "{text}");
        let mut json = String::new();
        json_line(&mut json, &line(key, true));
        assert_eq!(json.matches('\n').count(), 1, "{json}");
        let v: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(v["key"], key);
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_in"], 4096);
        assert_eq!(v["latency_ms"], 1.25);
        assert_eq!(v["request_id"], "0123456789ABCDEF");
        assert_eq!(v["complete"], true);
    }
}
