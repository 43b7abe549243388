//! The admin listener on a running engine. Its bearer token: with `admin_auth = "writes"`
//! (the default) only the requests that start jobs need it; with `"all"` every request but
//! the probes (`/healthz`, `/readyz`) does. A wrong token is refused whatever it shares
//! with the right one: a prefix of it, the token with more after it, another case. Its
//! readiness (`/readyz`): every configured bucket has its policy loaded and a healthy
//! member.

use switchyard_tests::harness::{Gateway, TempDir};

const TOKEN: &str = "admin-token-0123456789";

/// Tokens that are not [`TOKEN`], each with what makes it wrong.
fn wrong_tokens() -> Vec<(&'static str, String)> {
    vec![
        ("another token", "wrong-token-0123456789".into()),
        ("a prefix of it", TOKEN[..TOKEN.len() - 1].into()),
        ("a longer one", format!("{TOKEN}0")),
        ("another case", TOKEN.to_uppercase()),
    ]
}

async fn engine(auth: &str) -> (Gateway, String, Vec<TempDir>) {
    let (a, b) = (TempDir::new("admin-a"), TempDir::new("admin-b"));
    let config = format!(
        "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = {TOKEN:?}\n{auth}\n[backends.a]\nkind = \"fs\"\nroot = {:?}\n[backends.b]\nkind = \"fs\"\nroot = {:?}\n[buckets.data]\nmembers = [\"a\", \"b\"]\n",
        a.0.display().to_string(),
        b.0.display().to_string(),
    );
    let gw = Gateway::start(&config).await.unwrap();
    let admin = format!(
        "http://{}",
        gw.server.as_ref().unwrap().admin_addr().unwrap()
    );
    (gw, admin, vec![a, b])
}

/// The status of a request; a 401 must name the scheme it wants.
async fn status(method: reqwest::Method, url: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 401 {
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{url}"
        );
    }
    status
}

/// A dry-run migration: starting it is a write, and it changes nothing.
fn start_job(admin: &str) -> String {
    format!("{admin}/jobs/migrate?bucket=data&from=b&to=a&dry_run=true")
}

#[tokio::test]
async fn writes_need_the_token_and_reads_do_not() {
    let (gw, admin, _dirs) = engine("").await;
    let post = reqwest::Method::POST;
    assert_eq!(status(post.clone(), &start_job(&admin), None).await, 401);
    for (what, token) in wrong_tokens() {
        assert_eq!(
            status(post.clone(), &start_job(&admin), Some(&token)).await,
            401,
            "{what}"
        );
    }
    assert_eq!(
        status(post.clone(), &start_job(&admin), Some(TOKEN)).await,
        202
    );
    for path in ["/healthz", "/metrics", "/jobs", "/policies"] {
        assert_eq!(
            status(reqwest::Method::GET, &format!("{admin}{path}"), None).await,
            200,
            "{path}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn with_admin_auth_all_only_health_is_open() {
    let (gw, admin, _dirs) = engine("admin_auth = \"all\"").await;
    let get = reqwest::Method::GET;
    assert_eq!(
        status(get.clone(), &format!("{admin}/healthz"), None).await,
        200
    );
    let reads = ["/metrics", "/jobs", "/policies"];
    // Refused before routing: no path, known or not, tells anything without the token.
    for path in reads.iter().chain(&["/jobs/1", "/no-such-page"]) {
        let url = format!("{admin}{path}");
        assert_eq!(status(get.clone(), &url, None).await, 401, "{path}");
        for (what, token) in wrong_tokens() {
            assert_eq!(
                status(get.clone(), &url, Some(&token)).await,
                401,
                "{path}: {what}"
            );
        }
    }
    for path in reads {
        let url = format!("{admin}{path}");
        assert_eq!(status(get.clone(), &url, Some(TOKEN)).await, 200, "{path}");
    }
    assert_eq!(
        status(get.clone(), &format!("{admin}/no-such-page"), Some(TOKEN)).await,
        404
    );
    let post = reqwest::Method::POST;
    assert_eq!(status(post.clone(), &start_job(&admin), None).await, 401);
    assert_eq!(
        status(post.clone(), &start_job(&admin), Some(&format!("{TOKEN}0"))).await,
        401
    );
    assert_eq!(status(post, &start_job(&admin), Some(TOKEN)).await, 202);
    gw.stop().await;
}

/// `GET /readyz` with or without the token: the status and the body.
async fn readyz(admin: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{admin}/readyz"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    (status, resp.text().await.unwrap())
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

async fn started(config: &str) -> (Gateway, String) {
    let gw = Gateway::start(config).await.unwrap();
    let admin = format!(
        "http://{}",
        gw.server.as_ref().unwrap().admin_addr().unwrap()
    );
    (gw, admin)
}

#[tokio::test]
async fn ready_when_every_bucket_has_its_policy_and_a_healthy_member() {
    let (gw, admin, _dirs) = engine("").await;
    let (status, body) = readyz(&admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "[+]config ok\n[+]bucket/data/policy ok\n[+]bucket/data/members ok\nreadyz check passed\n"
    );
    gw.stop().await;
}

/// A member is marked unhealthy by a request that failed on it (here: connection refused,
/// no retries), for its `unhealthy_for`; until then it counts as healthy, so the first
/// probe passes. Once the only member of `down-only` is marked, the engine is not ready
/// and says which bucket; the other bucket still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_a_bucket_has_no_healthy_member() {
    let root = TempDir::new("readyz-members");
    let config = format!(
        r#"version = 1
[server]
admin_listen = "127.0.0.1:0"
[backends.down]
kind = "s3"
bucket = "b"
endpoint = "{}"
allow_http = true
access_key_id = "x"
secret_access_key = "y"
network = {{ connect_timeout = "1s", read_timeout = "1s", max_retries = 0, unhealthy_for = "10m" }}
[backends.good]
kind = "fs"
root = {:?}
[buckets.down-only]
members = ["down"]
[buckets.good-only]
members = ["good"]
"#,
        closed_port(),
        root.0.display().to_string()
    );
    let (gw, admin) = started(&config).await;
    let (status, body) = readyz(&admin, None).await;
    assert_eq!(status, 200, "no request has failed yet: {body}");

    let e = gw
        .client()
        .get_object()
        .bucket("down-only")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(switchyard_tests::harness::err_of(&e).0, 503);

    let (status, body) = readyz(&admin, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(
            "[-]bucket/down-only/members failed: no healthy member (down marked unhealthy by failed requests)\n"
        ),
        "{body}"
    );
    assert!(body.contains("[+]bucket/good-only/members ok\n"), "{body}");
    assert!(body.contains("[+]bucket/down-only/policy ok\n"), "{body}");
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    gw.stop().await;
}

/// The policy directory of [`policy_config`]: no `absent.wasm`, and a `garbage.wasm` that
/// is no component (rejected at start).
fn policy_config(auth: &str, plugins: &TempDir, data: &TempDir) -> String {
    std::fs::write(plugins.0.join("garbage.wasm"), b"not a component").unwrap();
    format!(
        "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = {TOKEN:?}\n{auth}\n[plugins]\ndir = {:?}\n[backends.a]\nkind = \"fs\"\nroot = {:?}\n[buckets.data]\nmembers = [\"a\"]\n[buckets.gated]\nmembers = [\"a\"]\npolicy = \"absent\"\n[buckets.broken]\nmembers = [\"a\"]\npolicy = \"garbage\"\nfailure = \"fail-open\"\n",
        plugins.0.display().to_string(),
        data.0.display().to_string(),
    )
}

/// A bucket whose policy is not loaded makes the engine not ready, whether no file was
/// ever there or its file was rejected (even with `fail-open`, which would serve the
/// bucket by the built-in default, not by the operator's rules).
#[tokio::test]
async fn not_ready_while_a_bucket_policy_is_not_loaded() {
    let (plugins, data) = (TempDir::new("readyz-plugins"), TempDir::new("readyz-data"));
    let (gw, admin) = started(&policy_config("", &plugins, &data)).await;
    let (status, body) = readyz(&admin, None).await;
    assert_eq!(status, 503, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines.contains(&"[+]bucket/data/policy ok"), "{body}");
    let absent = format!(
        "[-]bucket/gated/policy failed: policy \"absent\" is not loaded (no absent.wasm in {})",
        plugins.0.display()
    );
    assert!(lines.contains(&absent.as_str()), "{body}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "[-]bucket/broken/policy failed: policy \"garbage\" is not loaded (rejected: "
        )),
        "{body}"
    );
    assert_eq!(lines.last(), Some(&"readyz check failed"), "{body}");
    gw.stop().await;
}

/// With `admin_auth = "all"` the kubelet's probe, which carries no token, still gets the
/// status; the names and reasons (buckets, members, policies) are for the token's holder.
#[tokio::test]
async fn readyz_needs_no_token_and_tells_names_only_with_it() {
    let (gw, admin, _dirs) = engine("admin_auth = \"all\"").await;
    assert_eq!(
        readyz(&admin, None).await,
        (200, "readyz check passed\n".into())
    );
    let (status, body) = readyz(&admin, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("[+]bucket/data/members ok\n"), "{body}");
    gw.stop().await;

    let (plugins, data) = (TempDir::new("readyz-plugins"), TempDir::new("readyz-data"));
    let (gw, admin) = started(&policy_config("admin_auth = \"all\"", &plugins, &data)).await;
    let (status, body) = readyz(&admin, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        "2 of 7 checks failed (reasons withheld: send the admin token)\nreadyz check failed\n"
    );
    for (what, token) in wrong_tokens() {
        let (status, body) = readyz(&admin, Some(&token)).await;
        assert_eq!(status, 503, "{what}");
        assert!(!body.contains("gated"), "{what}: {body}");
    }
    let (status, body) = readyz(&admin, Some(TOKEN)).await;
    assert_eq!(status, 503);
    assert!(body.contains("[-]bucket/gated/policy failed"), "{body}");
    gw.stop().await;
}

/// A request's status and JSON body (`null` when it is not JSON).
async fn call(method: reqwest::Method, url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls job `id` until it is no longer running; returns it.
async fn ended(admin: &str, id: &serde_json::Value) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, job) = call(reqwest::Method::GET, &format!("{admin}/jobs/{id}"), None).await;
        assert_eq!(status, 200, "{job}");
        if job["status"]["state"] != "running" {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job still running: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_console_is_served_and_reads_backends_and_buckets() {
    let (gw, admin, _dirs) = engine("admin_auth = \"all\"").await;
    let get = reqwest::Method::GET;
    // The console's files hold no data: a browser loads them without a token.
    for (path, kind) in [
        ("/", "text/html"),
        ("/console.js", "text/javascript"),
        ("/console.css", "text/css"),
    ] {
        let resp = reqwest::get(format!("{admin}{path}")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"),
            "{path}"
        );
    }
    assert_eq!(
        status(reqwest::Method::POST, &format!("{admin}/"), Some(TOKEN)).await,
        405
    );
    for path in ["/backends", "/buckets"] {
        let url = format!("{admin}{path}");
        assert_eq!(status(get.clone(), &url, None).await, 401, "{path}");
    }
    let (_, backends) = call(get.clone(), &format!("{admin}/backends"), Some(TOKEN)).await;
    assert_eq!(
        backends,
        serde_json::json!([
            {"name": "a", "kind": "fs", "labels": {}, "healthy": true, "latency_us": null},
            {"name": "b", "kind": "fs", "labels": {}, "healthy": true, "latency_us": null},
        ])
    );
    let (_, buckets) = call(get, &format!("{admin}/buckets"), Some(TOKEN)).await;
    let data = &buckets[0];
    assert_eq!(
        (
            &data["name"],
            &data["members"],
            &data["policy"],
            &data["failure"],
            &data["tiering_every"],
            &data["dynamic"]
        ),
        (
            &serde_json::json!("data"),
            &serde_json::json!(["a", "b"]),
            &serde_json::json!("default"),
            &serde_json::json!("fail-closed"),
            &serde_json::Value::Null,
            &serde_json::json!(false)
        ),
        "{buckets}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_inventory_counts_each_member_and_the_bucket() {
    let (gw, admin, dirs) = engine("").await;
    let s3 = gw.client();
    for (key, len) in [("k1", 10), ("k2", 20)] {
        s3.put_object()
            .bucket("data")
            .key(key)
            .body(vec![b'x'; len].into())
            .send()
            .await
            .unwrap();
    }
    // Written into the second member before the gateway: k2 there is hidden by a's.
    std::fs::write(dirs[1].0.join("k2"), vec![b'y'; 200]).unwrap();
    std::fs::write(dirs[1].0.join("k3"), vec![b'y'; 300]).unwrap();

    let post = reqwest::Method::POST;
    let url = |q: &str| format!("{admin}/jobs/inventory?{q}");
    assert_eq!(status(post.clone(), &url("bucket=data"), None).await, 401);
    assert_eq!(
        status(
            post.clone(),
            &url("bucket=data"),
            Some("wrong-token-0123456789")
        )
        .await,
        401
    );
    let (_, jobs) = call(reqwest::Method::GET, &format!("{admin}/jobs"), None).await;
    assert_eq!(
        jobs,
        serde_json::json!([]),
        "a refused request started a job"
    );
    let (code, refused) = call(post.clone(), &url("bucket=data&dry_run=true"), Some(TOKEN)).await;
    assert_eq!(
        (code, refused["error"].as_str()),
        (400, Some("unknown parameter \"dry_run\""))
    );
    let (code, refused) = call(post.clone(), &url("bucket=nope"), Some(TOKEN)).await;
    assert_eq!(code, 400, "{refused}");
    let (code, job) = call(post.clone(), &url("bucket=data"), Some(TOKEN)).await;
    assert_eq!(code, 202, "{job}");
    assert_eq!(job["kind"], "inventory");
    let job = ended(&admin, &job["id"]).await;
    assert_eq!(job["status"]["state"], "done", "{job}");
    assert_eq!(
        job["inventory"],
        serde_json::json!({
            "bucket": {"objects": 3, "bytes": 10 + 20 + 300},
            "members": [
                {"name": "a", "objects": 2, "bytes": 30},
                {"name": "b", "objects": 2, "bytes": 500},
            ],
        })
    );
    assert_eq!(job["progress"]["listed"], 4, "{job}");

    // Shards of the key space add up to the whole.
    let mut sum = (0, 0);
    for shard in ["0/3", "1/3", "2/3"] {
        let (code, job) = call(
            post.clone(),
            &url(&format!("bucket=data&shard={shard}")),
            Some(TOKEN),
        )
        .await;
        assert_eq!(code, 202, "{job}");
        let job = ended(&admin, &job["id"]).await;
        assert_eq!(job["params"]["shard"], shard);
        let part = &job["inventory"]["bucket"];
        sum.0 += part["objects"].as_u64().unwrap();
        sum.1 += part["bytes"].as_u64().unwrap();
    }
    assert_eq!(sum, (3, 330));
    gw.stop().await;
}

#[tokio::test]
async fn a_running_job_can_be_cancelled_and_stays_cancelled() {
    let (gw, admin, dirs) = engine("").await;
    // Four reads of 256 KiB at 256 KiB/s: the copy lands after about 3 s unless the job
    // is stopped.
    std::fs::write(dirs[1].0.join("big"), vec![b'z'; 1 << 20]).unwrap();
    let post = reqwest::Method::POST;
    let (code, job) = call(
        post.clone(),
        &format!("{admin}/jobs/migrate?bucket=data&from=b&to=a&bandwidth=256KiB/s"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 202, "{job}");
    let cancel = format!("{admin}/jobs/{}/cancel", job["id"]);
    assert_eq!(status(post.clone(), &cancel, None).await, 401);
    assert_eq!(
        status(reqwest::Method::GET, &cancel, Some(TOKEN)).await,
        405
    );
    let (code, cancelled) = call(post.clone(), &cancel, Some(TOKEN)).await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"]["state"], "cancelled");
    assert!(cancelled["finished"].is_string(), "{cancelled}");
    // Past the time the copy needed: a job only marked cancelled would have landed it.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let job = ended(&admin, &job["id"]).await;
    assert_eq!(job["status"]["state"], "cancelled", "{job}");
    assert!(
        !dirs[0].0.join("big").exists(),
        "the cancelled job went on copying"
    );
    let (code, again) = call(post.clone(), &cancel, Some(TOKEN)).await;
    assert_eq!(
        (code, &again["error"]),
        (
            409,
            &serde_json::json!(format!("job {} is not running", job["id"]))
        )
    );
    assert_eq!(
        status(post, &format!("{admin}/jobs/999/cancel"), Some(TOKEN)).await,
        404
    );
    gw.stop().await;
}
