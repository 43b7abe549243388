//! How an engine logs: one subscriber (its filter from `SWITCHYARD_LOG`), a background
//! writer, and the access log's sink on that same writer. It lives in the library, not in
//! the binary, so that the gateway benchmark measures the logging a gateway runs with
//! rather than a copy of it.

use std::io::Write;

/// Logs go to `out` through a background writer: a request's log line is formatted on
/// its worker but never waits for the terminal or pipe. The access log (a line per
/// request) is on unless `SWITCHYARD_LOG` turns it off (`switchyard::access=off`); its
/// lines go through the same writer, in batches. Keep the guards until exit, so that the
/// last lines are flushed. `ansi`: colours, for a terminal only.
pub fn init(
    json: bool,
    ansi: bool,
    out: impl Write + Send + 'static,
) -> (
    // Dropped first: its last lines go through the writer the second one flushes.
    Option<crate::frontend::access_log::Guard>,
    tracing_appender::non_blocking::WorkerGuard,
) {
    use tracing_subscriber::util::SubscriberInitExt;
    let (dispatch, access, guard) = dispatch(json, ansi, out);
    dispatch.init();
    (access, guard)
}

/// The subscriber [`init`] installs, for a caller that sets it itself (the policy
/// benchmark measures a decision under it, on one thread, with `set_default`). The access
/// log's sink is process-wide all the same.
pub fn dispatch(
    json: bool,
    ansi: bool,
    out: impl Write + Send + 'static,
) -> (
    tracing::Dispatch,
    Option<crate::frontend::access_log::Guard>,
    tracing_appender::non_blocking::WorkerGuard,
) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Block rather than drop lines when the writer falls behind: an access log with
        // holes is worse than a slower request.
        .lossy(false)
        .finish(out);
    let access = crate::frontend::access_log::install(json, writer.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let dispatch = if json {
        // Event fields at the top level; the request's span (its id, operation and
        // bucket) stays under `span`, so that what the engine logs while it handles a
        // request still names it (the access log writes its own flat lines).
        tracing::Dispatch::new(builder.json().flatten_event(true).finish())
    } else {
        tracing::Dispatch::new(builder.finish())
    };
    (dispatch, access, guard)
}
