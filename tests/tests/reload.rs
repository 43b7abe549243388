//! Reloading the configuration of a running engine (a `switchyard serve --config FILE`
//! process) while clients keep it busy: a reload that adds a backend and a bucket, one
//! that adds a member to a bucket, one that removes a user, and invalid files, each
//! through `POST /config/reload`; then SIGHUP and an edit of the file on their own. The
//! clients that no reload concerns must see no failed request at all; the removed user's
//! next request is refused; an invalid file changes nothing and is counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use rand::{Rng, SeedableRng};
use switchyard_tests::harness::{TempDir, err_of, run_switchyard, s3_client, switchyard_bin};

const TOKEN: &str = "reload-test-token";
/// The clients that keep the engine busy, one user each.
const STEADY: usize = 3;
const LIMIT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// What a configuration of this test holds beyond the fixed part.
#[derive(Clone)]
struct Shape {
    /// Backend names (each an fs directory of the test's own).
    backends: Vec<&'static str>,
    /// Buckets and their members.
    buckets: Vec<(&'static str, Vec<&'static str>)>,
    /// Whether the user that a reload removes is still there.
    doomed: bool,
}

struct Engine {
    dir: TempDir,
    file: PathBuf,
    endpoint: String,
    admin: String,
    child: tokio::process::Child,
    http: reqwest::Client,
}

fn secret(user: &str) -> String {
    format!("{user}-secret")
}

fn steady_user(i: usize) -> String {
    format!("steady{i}")
}

impl Engine {
    fn config(&self, shape: &Shape) -> String {
        config_text(&self.dir.0, &self.listen(), &self.admin, shape)
    }

    fn listen(&self) -> String {
        self.endpoint.trim_start_matches("http://").to_owned()
    }

    /// Replaces the file as editors do: a new file renamed over the old one.
    fn write(&self, text: &str) {
        let tmp = self.dir.0.join(".switchyard.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    async fn reload(&self) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("http://{}/config/reload", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let answer = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, answer)
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series of `/metrics` (0 when absent).
    async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    fn client(&self, user: &str) -> Client {
        s3_client(&self.endpoint, user, &secret(user))
    }
}

fn config_text(dir: &Path, listen: &str, admin: &str, shape: &Shape) -> String {
    let mut t = format!(
        "version = 1\n[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nadmin_token = \"{TOKEN}\"\n"
    );
    let mut users: Vec<String> = (0..STEADY).map(steady_user).collect();
    if shape.doomed {
        users.push("doomed".into());
    }
    for u in users {
        t.push_str(&format!(
            "[[users]]\naccess_key = \"{u}\"\nsecret_key = \"{}\"\npolicy = \"full-access\"\n",
            secret(&u)
        ));
    }
    for b in &shape.backends {
        t.push_str(&format!(
            "[backends.{b}]\nkind = \"fs\"\nroot = {:?}\n",
            dir.join(b).display().to_string()
        ));
    }
    for (name, members) in &shape.buckets {
        t.push_str(&format!("[buckets.{name}]\nmembers = {members:?}\n"));
    }
    t
}

async fn start(shape: &Shape) -> Engine {
    let dir = TempDir::new("reload");
    let file = dir.0.join("switchyard.toml");
    let (listen, admin) = (free_addr(), free_addr());
    std::fs::write(&file, config_text(&dir.0, &listen, &admin, shape)).unwrap();
    let child = tokio::process::Command::new(switchyard_bin().unwrap())
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .env("SWITCHYARD_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut engine = Engine {
        dir,
        file,
        endpoint: format!("http://{listen}"),
        admin,
        child,
        http: reqwest::Client::new(),
    };
    let started = Instant::now();
    loop {
        let probe = engine
            .http
            .get(format!("http://{}/readyz", engine.admin))
            .send()
            .await;
        if probe.is_ok_and(|r| r.status() == 200)
            && tokio::net::TcpStream::connect(engine.listen())
                .await
                .is_ok()
        {
            break;
        }
        assert!(started.elapsed() < LIMIT, "the engine did not start");
        if let Some(status) = engine.child.try_wait().unwrap() {
            panic!("switchyard serve exited with {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine
}

/// One client's traffic on bucket `data`: PUT a new key, GET it back, GET an earlier one,
/// LIST its own prefix; every answer checked. Runs until `stop`, or a bounded number of
/// rounds. Returns the rounds done and what went wrong.
async fn keep_busy(client: Client, who: usize, stop: Arc<AtomicBool>) -> (usize, Vec<String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed + who as u64);
    let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) && round < 5000 && failures.len() < 10 {
        round += 1;
        let key = format!("c{who}/{round:05}");
        let len = rng.random_range(0..2048);
        let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if let Err(e) = client
            .put_object()
            .bucket("data")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
        {
            failures.push(format!("PUT {key}: {:?} {e:?}", err_of(&e)));
            continue;
        }
        written.insert(key.clone(), body);
        let earlier = written
            .keys()
            .nth(rng.random_range(0..written.len()))
            .unwrap()
            .clone();
        for k in [&key, &earlier] {
            match client.get_object().bucket("data").key(k).send().await {
                Ok(out) => {
                    let got = out.body.collect().await.unwrap().into_bytes();
                    if got.as_ref() != written[k].as_slice() {
                        failures.push(format!("GET {k}: other bytes"));
                    }
                }
                Err(e) => failures.push(format!("GET {k}: {:?} {e:?}", err_of(&e))),
            }
        }
        if round % 4 == 0 {
            let mut listed = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket("data")
                    .prefix(format!("c{who}/"))
                    .set_continuation_token(token.take())
                    .send()
                    .await;
                match page {
                    Ok(p) => {
                        listed.extend(
                            p.contents()
                                .iter()
                                .filter_map(|o| o.key().map(str::to_owned)),
                        );
                        match p.next_continuation_token() {
                            Some(t) => token = Some(t.to_owned()),
                            None => break,
                        }
                    }
                    Err(e) => {
                        failures.push(format!("LIST: {:?} {e:?}", err_of(&e)));
                        break;
                    }
                }
            }
            let want: Vec<&String> = written.keys().collect();
            let got: Vec<&String> = listed.iter().collect();
            if got != want && !failures.iter().any(|f| f.starts_with("LIST")) {
                failures.push(format!(
                    "LIST c{who}/: {} keys, {} written",
                    got.len(),
                    want.len()
                ));
            }
        }
    }
    (round, failures)
}

/// Waits until `probe` holds, or panics with `what` after [`LIMIT`].
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < LIMIT, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_load_fail_no_request() {
    let mut shape = Shape {
        backends: vec!["one"],
        buckets: vec![("data", vec!["one"])],
        doomed: true,
    };
    let engine = start(&shape).await;
    let doomed = engine.client("doomed");
    doomed
        .put_object()
        .bucket("data")
        .key("doomed/first")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..STEADY)
        .map(|i| tokio::spawn(keep_busy(engine.client(&steady_user(i)), i, stop.clone())))
        .collect();
    // Let the clients write something before the first reload.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applied = r#"switchyard_config_reloads_total{result="applied"}"#;
    let rejected = r#"switchyard_config_reloads_total{result="rejected"}"#;
    let steady = engine.client(&steady_user(0));

    // (a) A new backend, and a new bucket on it.
    shape.backends.push("two");
    shape.buckets.push(("fresh", vec!["two"]));
    engine.write(&engine.config(&shape));
    let (status, answer) = engine.reload().await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "applied", "{answer}");
    assert_eq!(answer["restart_needed"], serde_json::json!([]), "{answer}");
    steady
        .put_object()
        .bucket("fresh")
        .key("k")
        .body(ByteStream::from_static(b"fresh"))
        .send()
        .await
        .unwrap();
    assert!(engine.dir.0.join("two").join("k").is_file());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // (b) `data` gains a member, first: new objects go there, old ones are read from `one`.
    shape.buckets[0].1 = vec!["two", "one"];
    engine.write(&engine.config(&shape));
    let (status, answer) = engine.reload().await;
    assert_eq!(
        (status, &answer["result"]),
        (200, &"applied".into()),
        "{answer}"
    );
    let old = steady
        .get_object()
        .bucket("data")
        .key("doomed/first")
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.body.collect().await.unwrap().into_bytes().as_ref(),
        b"x"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // (c) The doomed user goes; its next request is refused.
    shape.doomed = false;
    engine.write(&engine.config(&shape));
    let (status, answer) = engine.reload().await;
    assert_eq!(
        (status, &answer["result"]),
        (200, &"applied".into()),
        "{answer}"
    );
    let refused = doomed
        .get_object()
        .bucket("data")
        .key("doomed/first")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&refused), (403, "InvalidAccessKeyId".to_owned()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // (d) Invalid files: a syntax error, then a bucket naming a backend that does not
    // exist. Each is refused with check-config's own words, counted, and changes nothing.
    let good = engine.config(&shape);
    let broken_syntax = good.replace("[buckets.data]", "[buckets.data");
    let mut unknown = shape.clone();
    unknown.buckets.push(("ghost", vec!["nowhere"]));
    let unknown_backend = engine.config(&unknown);
    for bad in [broken_syntax, unknown_backend] {
        let before = engine.metric(rejected).await;
        engine.write(&bad);
        let (status, answer) = engine.reload().await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["result"], "rejected", "{answer}");
        let check = run_switchyard(&["check-config", engine.file.to_str().unwrap()], &[], LIMIT)
            .await
            .unwrap();
        assert!(!check.status.success());
        assert_eq!(
            format!("error: {}\n", answer["error"].as_str().unwrap()),
            check.stderr,
            "the reload's error is not check-config's"
        );
        assert!(engine.metric(rejected).await > before);
        // The configuration in service stays: `fresh` still serves, `ghost` never came.
        steady.head_bucket().bucket("fresh").send().await.unwrap();
        let ghost = steady
            .head_bucket()
            .bucket("ghost")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&ghost).0, 404);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    engine.write(&good);

    stop.store(true, Ordering::Relaxed);
    for (i, task) in load.into_iter().enumerate() {
        let (rounds, failures) = task.await.unwrap();
        assert!(
            failures.is_empty(),
            "client {i}, {rounds} rounds, failed requests: {failures:#?}"
        );
        eprintln!("client {i}: {rounds} rounds, none failed");
        assert!(rounds >= 20, "client {i} did only {rounds} rounds");
    }
    // Every applied reload was counted (the file watcher may have applied the same
    // files as well: at least the three answered here).
    assert!(engine.metric(applied).await >= 3.0);
    assert!(
        engine
            .metric("switchyard_config_last_reload_success_timestamp_seconds")
            .await
            > 1.6e9
    );
}

/// SIGHUP reloads the file; so does an edit of it, with no signal and no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_an_edit_of_the_file_reload_it() {
    let mut shape = Shape {
        backends: vec!["one"],
        buckets: vec![("data", vec!["one"])],
        doomed: false,
    };
    let engine = start(&shape).await;
    let applied = r#"switchyard_config_reloads_total{result="applied"}"#;
    let client = engine.client(&steady_user(0));

    // The file as it is: SIGHUP reloads it all the same.
    let pid = engine.child.id().unwrap().to_string();
    let before = engine.metric(applied).await;
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    eventually("SIGHUP did not reload the file", || async {
        engine.metric(applied).await > before
    })
    .await;

    // An edit (a new file renamed over it, as editors save): a new bucket serves.
    shape.buckets.push(("edited", vec!["one"]));
    engine.write(&engine.config(&shape));
    eventually("the edited file was not reloaded", || async {
        client.head_bucket().bucket("edited").send().await.is_ok()
    })
    .await;

    // A restart-only setting changed in the file keeps its value in service, named in
    // the answer, and the rest applies.
    let mut more = shape.clone();
    more.buckets.push(("later", vec!["one"]));
    let elsewhere = free_addr();
    engine.write(&engine.config(&more).replace(&engine.listen(), &elsewhere));
    let (status, answer) = engine.reload().await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["restart_needed"],
        serde_json::json!(["server.listen"]),
        "{answer}"
    );
    client.head_bucket().bucket("later").send().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(&elsewhere).await.is_err(),
        "the engine listens on the new address"
    );
}
