//! Tiering passes with the age-tiering example policy (plugins/age-tiering, built by
//! plugins/build-all.sh): on demand with `switchyard tier`, on a schedule inside `serve`,
//! and as jobs on the admin API with their progress and metrics.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use switchyard_tests::harness::{Gateway, TempDir, repo_root, switchyard_bin};

const TOKEN: &str = "test-admin-token-0123456789";

fn install_age_tiering(dir: &Path) {
    let wasm = repo_root().join("plugins/age-tiering/age-tiering.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: build the example policies with plugins/build-all.sh (scripts/test.sh does)",
        wasm.display()
    );
    std::fs::copy(wasm, dir.join("age-tiering.wasm")).unwrap();
}

struct Tiers {
    plugins: TempDir,
    hot: TempDir,
    cold: TempDir,
}

impl Tiers {
    fn new() -> Self {
        let t = Self {
            plugins: TempDir::new("tier-plugins"),
            hot: TempDir::new("tier-hot"),
            cold: TempDir::new("tier-cold"),
        };
        install_age_tiering(&t.plugins.0);
        t
    }

    /// Objects older than 2 s go cold.
    fn config(&self, extra_server: &str, extra_bucket: &str) -> String {
        format!(
            r#"version = 1
[server]
{extra_server}
[plugins]
dir = {plugins:?}
timeout = "2s"
[policies.age-tiering]
config = '{{"cold_after_seconds": 2}}'
[backends.hot]
kind = "fs"
root = {hot:?}
labels = {{ tier = "hot" }}
[backends.cold]
kind = "fs"
root = {cold:?}
labels = {{ tier = "cold" }}
[[users]]
access_key = "tier-user"
secret_key = "tier-secret"
[buckets.aged]
members = ["hot", "cold"]
policy = "age-tiering"
{extra_bucket}
"#,
            plugins = self.plugins.0.display().to_string(),
            hot = self.hot.0.display().to_string(),
            cold = self.cold.0.display().to_string(),
        )
    }
}

async fn put(c: &aws_sdk_s3::Client, key: &str) {
    c.put_object()
        .bucket("aged")
        .key(key)
        .body(ByteStream::from(format!("bytes of {key}").into_bytes()))
        .content_type("text/x-aged")
        .metadata("origin", "tiering-test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
}

/// Writes `old/0..n` (then waits past the threshold) and `new/0..n`: every object is in
/// the hot member.
async fn seed(c: &aws_sdk_s3::Client, t: &Tiers, n: usize) {
    for i in 0..n {
        put(c, &format!("old/{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(3100)).await;
    for i in 0..n {
        put(c, &format!("new/{i}")).await;
    }
    assert!(t.hot.0.join("old/0").exists() && !t.cold.0.join("old/0").exists());
}

fn assert_tiered(t: &Tiers, n: usize) {
    for i in 0..n {
        let old = format!("old/{i}");
        assert!(t.cold.0.join(&old).exists(), "{old} moved to cold");
        assert!(!t.hot.0.join(&old).exists(), "{old} left hot");
        let new = format!("new/{i}");
        assert!(t.hot.0.join(&new).exists(), "{new} stays hot");
        assert!(!t.cold.0.join(&new).exists(), "{new} not copied cold");
    }
}

fn summary_of(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "switchyard tier failed: {s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tier_command_moves_old_objects_to_cold_and_keeps_the_rest() {
    let t = Tiers::new();
    let config = t.config("", "");
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    seed(&c, &t, 6).await;
    let cfg_path = t.plugins.0.join("switchyard.toml");
    std::fs::write(&cfg_path, &config).unwrap();
    let tier = |extra: &[&str]| {
        let out = Command::new(switchyard_bin().unwrap())
            .args(["tier", "--config"])
            .arg(&cfg_path)
            .args(["--bucket", "aged"])
            .args(extra)
            .env("SWITCHYARD_LOG", "warn")
            .output()
            .unwrap();
        summary_of(&out)
    };

    // A dry run asks the policy and changes nothing.
    let dry = tier(&["--dry-run"]);
    assert!(
        dry.contains("listed 12, would copy 6") && dry.contains("kept 6"),
        "{dry}"
    );
    assert!(t.hot.0.join("old/0").exists() && !t.cold.0.join("old/0").exists());

    let pass = tier(&[]);
    assert!(
        pass.contains("listed 12, copied 6") && pass.contains("kept 6, deleted 0, failed 0"),
        "{pass}"
    );
    assert_tiered(&t, 6);

    // Reads find the moved objects, with their attributes, through the gateway.
    let got = c
        .get_object()
        .bucket("aged")
        .key("old/3")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/x-aged"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("tiering-test")
    );
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"bytes of old/3"
    );

    // A second pass finds nothing to do: cold objects stay cold, young ones stay hot.
    let again = tier(&[]);
    assert!(
        again.contains("copied 0") && again.contains("failed 0"),
        "{again}"
    );
    assert_tiered(&t, 6);
    gw.stop().await;
}

async fn admin_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, v)
}

async fn wait_job(http: &reqwest::Client, admin: &str, id: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, job) = admin_json(
            http,
            reqwest::Method::GET,
            &format!("{admin}/jobs/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{job}");
        if job["status"]["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still running: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_passes_and_admin_jobs_report_progress_and_metrics() {
    let t = Tiers::new();
    let archive = TempDir::new("tier-archive");
    let config = t.config(
        &format!("admin_listen = \"127.0.0.1:0\"\nadmin_token = {TOKEN:?}"),
        &format!(
            "[buckets.aged.tiering]\nevery = \"1s\"\nconcurrency = 4\n[backends.archive]\nkind = \"fs\"\nroot = {:?}\n[buckets.archived]\nmembers = [\"archive\", \"cold\"]\n",
            archive.0.display().to_string()
        ),
    );
    let gw = Gateway::start(&config).await.unwrap();
    let admin = format!(
        "http://{}",
        gw.server.as_ref().unwrap().admin_addr().unwrap()
    );
    let http = reqwest::Client::new();
    let c = gw.client();
    for i in 0..5 {
        put(&c, &format!("old/{i}")).await;
    }

    // The schedule inside the engine moves them once they are old enough.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(0..5).all(|i| t.cold.0.join(format!("old/{i}")).exists()) {
        assert!(Instant::now() < deadline, "no scheduled pass moved old/*");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, jobs) =
        admin_json(&http, reqwest::Method::GET, &format!("{admin}/jobs"), None).await;
    assert_eq!(status, 200);
    let tier_jobs: Vec<_> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "tier" && j["bucket"] == "aged")
        .collect();
    assert!(!tier_jobs.is_empty(), "{jobs}");

    // Starting a job needs the token.
    let migrate = format!("{admin}/jobs/migrate?bucket=archived&from=cold&to=archive&mode=copy");
    let (status, _) = admin_json(&http, reqwest::Method::POST, &migrate, None).await;
    assert_eq!(status, 401);
    let (status, _) = admin_json(&http, reqwest::Method::POST, &migrate, Some("wrong")).await;
    assert_eq!(status, 401);
    // Bad parameters are refused before anything starts.
    for bad in [
        format!("{admin}/jobs/migrate?bucket=archived&from=cold&to=nope"),
        format!("{admin}/jobs/migrate?bucket=archived&from=cold&to=archive&shard=3/3"),
        format!("{admin}/jobs/migrate?bucket=archived&from=cold&to=archive&speed=1"),
        format!("{admin}/jobs/tier?bucket=missing"),
        format!("{admin}/jobs/tier?bucket=aged&bandwidth=fast"),
    ] {
        let (status, body) = admin_json(&http, reqwest::Method::POST, &bad, Some(TOKEN)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, _) = admin_json(
        &http,
        reqwest::Method::DELETE,
        &format!("{admin}/jobs"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 405);

    // A migration through the admin API, with its progress.
    let (status, job) = admin_json(&http, reqwest::Method::POST, &migrate, Some(TOKEN)).await;
    assert_eq!(status, 202, "{job}");
    let done = wait_job(&http, &admin, job["id"].as_u64().unwrap()).await;
    assert_eq!(done["status"]["state"], "done", "{done}");
    let p = &done["progress"];
    assert_eq!(p["listed"], 5, "{done}");
    assert_eq!(p["copied"], 5, "{done}");
    assert_eq!(p["failed"], 0, "{done}");
    assert_eq!(p["listing_done"], true, "{done}");
    assert!(archive.0.join("old/4").exists());

    // A tiering pass on demand, as a dry run: the cold objects are kept.
    let (status, job) = admin_json(
        &http,
        reqwest::Method::POST,
        &format!("{admin}/jobs/tier?bucket=aged&dry_run=true"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let done = wait_job(&http, &admin, job["id"].as_u64().unwrap()).await;
    assert_eq!(done["progress"]["copied"], 0, "{done}");
    assert_eq!(done["progress"]["kept"], 5, "{done}");

    // The mover's metrics.
    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "switchyard_mover_objects_total{kind=\"migrate\",outcome=\"copied\"} 5",
        "switchyard_mover_objects_total{kind=\"tier\",outcome=\"copied\"} 5",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("switchyard_mover_bytes_total{kind=\"migrate\",outcome=\"copied\"}"),
        "{metrics}"
    );
    // Tiering decisions are timed like placements and routes.
    let timed = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("switchyard_policy_decision_seconds_count{policy=\"age-tiering\"} ")
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(timed.is_some_and(|n| n >= 5), "{metrics}");
    gw.stop().await;
}
