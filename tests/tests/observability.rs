//! What an operator sees of the data plane, from a running `switchyard serve` process:
//! every metric the operations issue names appears on `/metrics` once a request has
//! exercised it (labels snake_case, never a key), and the access log has exactly one line
//! per request (a failed one included), whose id is the `x-amz-request-id` the client got,
//! in JSON with flat fields or in text without colours, and can be turned off.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::primitives::ByteStream;
use switchyard_tests::harness::{TempDir, anonymous_client, s3_client, switchyard_bin};
use switchyard_tests::wasm::{Misbehaviour, fixed_policy};

const LIMIT: Duration = Duration::from_secs(30);
const ACCESS: &str = "obs-access";
const SECRET: &str = "obs-secret";
const TOKEN: &str = "obs-admin-token-0123456789";

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A running engine: `photos` on `fast` (fs), `mixed` on `fast` then `down` (an S3
/// endpoint nobody listens on), its stderr in a file.
struct Engine {
    child: tokio::process::Child,
    s3: String,
    admin: String,
    log: std::path::PathBuf,
    dirs: (TempDir, TempDir),
}

impl Engine {
    async fn start(json: bool, log_filter: &str) -> Self {
        let (data, logs) = (TempDir::new("obs-data"), TempDir::new("obs-logs"));
        let (s3, admin) = (free_addr(), free_addr());
        let config = format!(
            r#"version = 1
[server]
listen = "{s3}"
admin_listen = "{admin}"
admin_token = "{TOKEN}"
[[users]]
access_key = "{ACCESS}"
secret_key = "{SECRET}"
policy = "full-access"
[backends.fast]
kind = "fs"
root = {root:?}
[backends.down]
kind = "s3"
bucket = "b"
endpoint = "http://{closed}"
allow_http = true
access_key_id = "x"
secret_access_key = "y"
network = {{ connect_timeout = "1s", read_timeout = "1s", max_retries = 0, unhealthy_for = "10m" }}
[backends.m1]
kind = "fs"
root = {m1:?}
[backends.m2]
kind = "fs"
root = {m2:?}
[buckets.photos]
members = ["fast"]
[buckets.mixed]
members = ["fast", "down"]
[buckets.moving]
members = ["m1", "m2"]
policy = "picky"
failure = "fail-open"
[plugins]
dir = {plugins:?}
[dynamic_buckets]
kind = "fs"
root = {dynamic:?}
"#,
            root = data.0.join("fast").display().to_string(),
            m1 = data.0.join("m1").display().to_string(),
            m2 = data.0.join("m2").display().to_string(),
            plugins = data.0.join("plugins").display().to_string(),
            dynamic = data.0.join("dynamic").display().to_string(),
            closed = free_addr(),
        );
        // Places on m1, and traps for keys starting with `evil`.
        std::fs::create_dir_all(data.0.join("plugins")).unwrap();
        std::fs::write(
            data.0.join("plugins/picky.wasm"),
            fixed_policy("m1", Misbehaviour::Trap),
        )
        .unwrap();
        let file = data.0.join("switchyard.toml");
        std::fs::write(&file, config).unwrap();
        let log = logs.0.join("stderr.log");
        let mut cmd = tokio::process::Command::new(switchyard_bin().unwrap());
        cmd.arg("serve").arg("--config").arg(&file);
        if json {
            cmd.arg("--log-json");
        }
        let child = cmd
            .env("SWITCHYARD_LOG", log_filter)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut engine = Self {
            child,
            s3: format!("http://{s3}"),
            admin: format!("http://{admin}"),
            log,
            dirs: (data, logs),
        };
        let started = Instant::now();
        while reqwest::get(format!("{}/healthz", engine.admin))
            .await
            .is_err()
        {
            assert!(started.elapsed() < LIMIT, "the engine did not start");
            if let Some(status) = engine.child.try_wait().unwrap() {
                panic!(
                    "switchyard serve exited with {status}: {}",
                    std::fs::read_to_string(&engine.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        engine
    }

    fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.s3, ACCESS, SECRET)
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the engine (SIGTERM, so the last log lines are flushed) and returns its log.
    async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("the engine stops on SIGTERM")
            .unwrap();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// The requests both log tests send, with the request id each answer carried and the
/// status it had.
async fn exercise(engine: &Engine) -> Vec<(&'static str, String, u16)> {
    let c = engine.client();
    let mut seen = Vec::new();
    let put = c
        .put_object()
        .bucket("photos")
        .key("cats/a b.jpg")
        .body(ByteStream::from(vec![7u8; 5000]))
        .send()
        .await
        .unwrap();
    seen.push(("put", put.request_id().unwrap().to_owned(), 200));
    let get = c
        .get_object()
        .bucket("photos")
        .key("cats/a b.jpg")
        .send()
        .await
        .unwrap();
    let id = get.request_id().unwrap().to_owned();
    assert_eq!(get.body.collect().await.unwrap().into_bytes().len(), 5000);
    seen.push(("get", id, 200));
    let list = c.list_objects_v2().bucket("photos").send().await.unwrap();
    seen.push(("list", list.request_id().unwrap().to_owned(), 200));
    let missing = c
        .get_object()
        .bucket("photos")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    seen.push(("missing key", missing.request_id().unwrap().to_owned(), 404));
    let no_bucket = c
        .head_bucket()
        .bucket("no-such-bucket")
        .send()
        .await
        .unwrap_err();
    seen.push((
        "missing bucket",
        no_bucket.request_id().unwrap().to_owned(),
        404,
    ));
    let anonymous = anonymous_client(&engine.s3)
        .get_object()
        .bucket("photos")
        .key("cats/a b.jpg")
        .send()
        .await
        .unwrap_err();
    seen.push(("anonymous", anonymous.request_id().unwrap().to_owned(), 403));
    let bad_signature = s3_client(&engine.s3, ACCESS, "wrong-secret")
        .list_objects_v2()
        .bucket("photos")
        .send()
        .await
        .unwrap_err();
    seen.push((
        "bad signature",
        bad_signature.request_id().unwrap().to_owned(),
        403,
    ));
    // Not in `fast`: the read falls through to `down`, which cannot be reached.
    let down = c
        .get_object()
        .bucket("mixed")
        .key("elsewhere")
        .send()
        .await
        .unwrap_err();
    seen.push(("backend down", down.request_id().unwrap().to_owned(), 503));
    for (what, id, _) in &seen {
        assert_eq!(id.len(), 16, "{what}: {id:?}");
    }
    seen
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_plane_metric_appears_after_a_request_that_exercises_it() {
    let engine = Engine::start(false, "warn").await;
    exercise(&engine).await;
    let m = engine.metrics().await;
    let at_least = |series: &str, min: f64| {
        let v = value(&m, series).unwrap_or_else(|| panic!("no {series} in\n{m}"));
        assert!(v >= min, "{series} = {v}, want >= {min}");
    };
    at_least(
        r#"switchyard_requests_total{operation="put_object",bucket="photos",status_class="2xx"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_requests_total{operation="get_object",bucket="photos",status_class="2xx"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_requests_total{operation="list_objects_v2",bucket="photos",status_class="2xx"}"#,
        1.0,
    );
    // The missing key and the anonymous read.
    at_least(
        r#"switchyard_requests_total{operation="get_object",bucket="photos",status_class="4xx"}"#,
        2.0,
    );
    // A bucket nobody made is no label of its own.
    at_least(
        r#"switchyard_requests_total{operation="head_bucket",bucket="_other",status_class="4xx"}"#,
        1.0,
    );
    // Refused before its operation was known.
    at_least(
        r#"switchyard_requests_total{operation="unknown",bucket="",status_class="4xx"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_requests_total{operation="get_object",bucket="mixed",status_class="5xx"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_request_duration_seconds_count{operation="put_object"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_bucket_received_bytes_total{bucket="photos"}"#,
        5000.0,
    );
    at_least(
        r#"switchyard_bucket_sent_bytes_total{bucket="photos"}"#,
        5000.0,
    );
    at_least(
        r#"switchyard_backend_requests_total{backend="fast",operation="put",outcome="ok"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_backend_requests_total{backend="fast",operation="get",outcome="not_found"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_backend_requests_total{backend="down",operation="get",outcome="unavailable"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_backend_requests_total{backend="fast",operation="list",outcome="ok"}"#,
        1.0,
    );
    at_least(
        r#"switchyard_backend_request_duration_seconds_count{backend="fast"}"#,
        3.0,
    );
    at_least(
        r#"switchyard_backend_sent_bytes_total{backend="fast"}"#,
        5000.0,
    );
    at_least(
        r#"switchyard_backend_received_bytes_total{backend="fast"}"#,
        5000.0,
    );
    assert_eq!(
        value(&m, r#"switchyard_backend_healthy{backend="fast"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, r#"switchyard_backend_healthy{backend="down"}"#),
        Some(0.0),
        "{m}"
    );
    // Only the scrape's own connection... which is the admin listener's: no S3 request.
    assert_eq!(value(&m, "switchyard_requests_in_flight"), Some(0.0), "{m}");
    assert!(m.contains("switchyard_build_info{"), "{m}");
    at_least("process_cpu_seconds_total", 0.0);
    at_least("process_resident_memory_bytes", 1e6);
    at_least("process_open_fds", 3.0);
    at_least("process_start_time_seconds", 1.6e9);
    // No key ever becomes a label value; label values are snake_case words.
    assert!(!m.contains("cats"), "{m}");
    for line in m.lines().filter(|l| l.starts_with("switchyard_")) {
        if let Some(labels) = line.split_once('{').map(|(_, r)| r) {
            assert!(
                !labels.contains("=\"Ok\"") && !labels.contains("=\"Place\""),
                "{line}"
            );
        }
    }
    engine.stop().await;
}

/// The JSON lines of `log` written by the access log, by request id.
fn access_lines(log: &str) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut by_id: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line:?}"));
        if v["target"] == "switchyard::access" {
            let id = v["request_id"].as_str().unwrap().to_owned();
            by_id.entry(id).or_default().push(v);
        }
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_access_line_per_request_with_the_request_id_the_client_got() {
    let engine = Engine::start(true, "info,s3s=off").await;
    let seen = exercise(&engine).await;
    let log = engine.stop().await;
    let lines = access_lines(&log);
    assert_eq!(
        lines.len(),
        seen.len(),
        "one line per request, no more:\n{log}"
    );
    for (what, id, status) in &seen {
        let got = lines
            .get(id)
            .unwrap_or_else(|| panic!("{what}: no access line with request id {id}:\n{log}"));
        assert_eq!(got.len(), 1, "{what}: {got:?}");
        let l = &got[0];
        assert_eq!(l["status"], *status, "{what}: {l}");
        // Flat: every field at the top, none nested.
        for field in [
            "timestamp",
            "level",
            "request_id",
            "principal",
            "client",
            "method",
            "operation",
            "bucket",
            "key",
            "status",
            "error_code",
            "bytes_in",
            "bytes_out",
            "backend",
            "latency_ms",
        ] {
            assert!(l.get(field).is_some(), "{what}: no {field} in {l}");
        }
        assert!(l.get("fields").is_none() && l.get("span").is_none(), "{l}");
        assert!(
            l["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{l}"
        );
        // No other log line of any target names the request.
        let others = log
            .lines()
            .filter(|line| line.contains(id.as_str()))
            .count();
        assert_eq!(others, 1, "{what}: more than one line names {id}:\n{log}");
    }
    let by = |what: &str| {
        let id = &seen.iter().find(|(w, _, _)| *w == what).unwrap().1;
        lines[id][0].clone()
    };
    let put = by("put");
    assert_eq!(put["operation"], "PutObject");
    assert_eq!(put["bucket"], "photos");
    assert_eq!(put["key"], "cats/a b.jpg");
    assert_eq!(put["principal"], ACCESS);
    assert_eq!(put["backend"], "fast");
    assert_eq!(put["level"], "INFO");
    assert!(put["bytes_in"].as_u64().unwrap() >= 5000, "{put}");
    assert!(put["latency_ms"].as_f64().unwrap() > 0.0, "{put}");
    let get = by("get");
    assert_eq!(get["bytes_out"], 5000);
    assert_eq!(get["backend"], "fast");
    assert_eq!(get["complete"], true);
    assert_eq!(by("missing key")["error_code"], "NoSuchKey");
    assert_eq!(by("missing bucket")["error_code"], "NoSuchBucket");
    let anonymous = by("anonymous");
    assert_eq!(anonymous["error_code"], "AccessDenied");
    assert_eq!(anonymous["principal"], "-");
    // Why it was refused is for the operator, not the client.
    assert!(
        anonymous["error"].as_str().unwrap().contains("anonymous"),
        "{anonymous}"
    );
    assert_eq!(by("bad signature")["error_code"], "SignatureDoesNotMatch");
    let down = by("backend down");
    assert_eq!(down["level"], "WARN");
    assert_eq!(down["message"], "request failed");
    assert_eq!(down["error_code"], "ServiceUnavailable");
    assert!(
        down["error"].as_str().unwrap().contains("down"),
        "the cause names the backend: {down}"
    );
}

/// A warning the engine logs while a request runs names that request: in JSON mode its
/// line carries the request's span, whose id is the one the client got. The warning here
/// is a bucket policy edited by hand into something that does not parse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_logged_inside_a_request_carries_the_request_id() {
    let engine = Engine::start(true, "info,s3s=off").await;
    let c = engine.client();
    c.create_bucket()
        .bucket("hand-edited")
        .send()
        .await
        .unwrap();
    let stored = engine
        .dirs
        .0
        .0
        .join("dynamic/hand-edited/.switchyard/bucket-policy.json");
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(&stored, "{ not a policy").unwrap();
    let refused = c
        .get_object()
        .bucket("hand-edited")
        .key("k")
        .send()
        .await
        .unwrap_err();
    let id = refused.request_id().unwrap().to_owned();
    let log = engine.stop().await;
    let warning = log
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|v| {
            v["target"] != "switchyard::access"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("does not parse"))
        })
        .unwrap_or_else(|| panic!("no warning about the stored policy:\n{log}"));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["span"]["request_id"], id.as_str(), "{warning}");
    // Flat, as the access lines: the event's fields at the top.
    assert_eq!(warning["bucket"], "hand-edited", "{warning}");
    assert!(warning.get("fields").is_none(), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_have_no_colours_and_the_log_can_be_turned_off() {
    let engine = Engine::start(false, "info,s3s=off").await;
    let seen = exercise(&engine).await;
    let log = engine.stop().await;
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a file:\n{log}");
    for (what, id, status) in &seen {
        let mine: Vec<&str> = log.lines().filter(|l| l.contains(id.as_str())).collect();
        assert_eq!(mine.len(), 1, "{what}:\n{log}");
        assert!(
            mine[0].contains(" switchyard::access: ")
                && mine[0].contains(&format!(" status={status} ")),
            "{what}: {}",
            mine[0]
        );
    }

    let engine = Engine::start(true, "info,s3s=off,switchyard::access=off").await;
    exercise(&engine).await;
    let log = engine.stop().await;
    assert!(access_lines(&log).is_empty(), "{log}");
    assert!(
        log.contains("switchyard is serving S3"),
        "other logs stay: {log}"
    );
}

/// Metric names in `text` (a dashboard's or rule file's queries).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for prefix in ["switchyard_", "process_"] {
        for (i, _) in text.match_indices(prefix) {
            if text[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// Whether `/metrics` (`exposition`) declares `name`: a counter `X` is queried as
/// `X_total`, a histogram as `X_bucket`, `X_count` or `X_sum`.
fn declared(exposition: &str, name: &str) -> bool {
    exposition.lines().any(|l| {
        let Some(rest) = l.strip_prefix("# TYPE ") else {
            return false;
        };
        let (family, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => name == format!("{family}_total"),
            "histogram" => ["_bucket", "_count", "_sum"]
                .iter()
                .any(|s| name == format!("{family}{s}")),
            _ => name == family,
        }
    })
}

/// What makes the policy and mover metrics appear: a policy that traps (and falls back to
/// the default, `picky` being fail-open) and a migration.
async fn exercise_policy_and_mover(engine: &Engine) {
    let c = engine.client();
    for key in ["evil-1", "fine-1"] {
        c.put_object()
            .bucket("moving")
            .key(key)
            .body(ByteStream::from_static(b"moving"))
            .send()
            .await
            .unwrap();
    }
    let http = reqwest::Client::new();
    let job = http
        .post(format!(
            "{}/jobs/migrate?bucket=moving&from=m1&to=m2",
            engine.admin
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let job: serde_json::Value = serde_json::from_str(&job).unwrap();
    let url = format!("{}/jobs/{}", engine.admin, job["id"]);
    let started = Instant::now();
    loop {
        let j = http.get(&url).send().await.unwrap().text().await.unwrap();
        let j: serde_json::Value = serde_json::from_str(&j).unwrap();
        if j["status"]["state"] != "running" {
            assert_eq!(j["status"]["state"], "done", "{j}");
            break;
        }
        assert!(started.elapsed() < LIMIT, "the migration does not end: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The monitoring example's dashboard and alert rules query only metrics a running
/// engine has; the rules pass `promtool check rules`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_example_queries_metrics_that_exist() {
    let engine = Engine::start(false, "warn").await;
    exercise(&engine).await;
    exercise_policy_and_mover(&engine).await;
    let m = engine.metrics().await;
    assert!(
        m.contains(
            r#"switchyard_policy_decisions_total{policy="picky",call="place",outcome="trap"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_mover_objects_total{kind="migrate",outcome="copied"} 2"#),
        "{m}"
    );
    engine.stop().await;
    let dir = switchyard_tests::harness::repo_root().join("examples/monitoring");
    let dashboard = std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut queries = String::new();
    for panel in parsed["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push_str(target["expr"].as_str().unwrap());
            queries.push('\n');
        }
    }
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    for (file, text) in [("grafana-dashboard.json", &queries), ("alerts.yml", &rules)] {
        let names = metric_names(text);
        assert!(names.len() >= 3, "{file}: {names:?}");
        for name in names {
            assert!(
                declared(&m, &name),
                "{file} queries {name}, which /metrics does not have:\n{m}"
            );
        }
    }
    // promtool comes with Debian's prometheus package (scripts/install-test-tools.sh).
    let promtool = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(dir.join("alerts.yml"))
        .output()
        .expect("promtool is not installed: apt-get install --no-install-recommends prometheus (scripts/install-test-tools.sh does)");
    assert!(
        promtool.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
}
