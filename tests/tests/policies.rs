//! Policies inside the gateway: decisions drive placement and routing, hostile components
//! are refused or contained, and hot reload swaps policies under load without losing a
//! request.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use switchyard_tests::harness::{Gateway, TempDir, err_of};
use switchyard_tests::wasm::{Misbehaviour, fixed_policy, wrong_world};

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) {
    // As a ConfigMap update or `mv` would: the watcher never sees half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn metrics(gw: &Gateway) -> String {
    let addr = gw
        .server
        .as_ref()
        .unwrap()
        .admin_addr()
        .expect("admin listener");
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn loaded(gw: &Gateway) -> serde_json::Value {
    let addr = gw
        .server
        .as_ref()
        .unwrap()
        .admin_addr()
        .expect("admin listener");
    serde_json::from_str(
        &reqwest::get(format!("http://{addr}/policies"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap()
}

fn hash_of(list: &serde_json::Value, name: &str) -> Option<String> {
    list.as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["sha256"].as_str().unwrap().to_owned())
}

/// The plugins directory and the two fs members of [`config`].
fn dirs() -> (TempDir, TempDir, TempDir) {
    (
        TempDir::new("plugins"),
        TempDir::new("a"),
        TempDir::new("b"),
    )
}

fn config(plugins: &Path, a: &Path, b: &Path, buckets: &str) -> String {
    format!(
        r#"version = 1
[server]
admin_listen = "127.0.0.1:0"
[plugins]
dir = {:?}
timeout = "20ms"
memory_limit = 16777216
debounce = "50ms"
[backends.a]
kind = "fs"
root = {:?}
[backends.b]
kind = "fs"
root = {:?}
{buckets}
"#,
        plugins.display().to_string(),
        a.display().to_string(),
        b.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decisions_drive_placement_and_routing() {
    let (plugins, a, b) = dirs();
    write_atomic(
        &plugins.0,
        "to-b.wasm",
        &fixed_policy("b", Misbehaviour::None),
    );
    write_atomic(
        &plugins.0,
        "mirror.wasm",
        &fixed_policy("a,b", Misbehaviour::None),
    );
    let gw = Gateway::start(&config(
        &plugins.0,
        &a.0,
        &b.0,
        "[buckets.placed]\nmembers = [\"a\", \"b\"]\npolicy = \"to-b\"\n\
         [buckets.mirrored]\nmembers = [\"a\", \"b\"]\npolicy = \"mirror\"\n",
    ))
    .await
    .unwrap();
    let c = gw.client();
    c.put_object()
        .bucket("placed")
        .key("k")
        .body(ByteStream::from_static(b"to b"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("k").exists(), "the policy placed the object in b");
    assert!(!a.0.join("k").exists());

    // Routing: the same key in both members; the policy reads b first.
    std::fs::write(a.0.join("both"), b"from a").unwrap();
    std::fs::write(b.0.join("both"), b"from b").unwrap();
    let got = c
        .get_object()
        .bucket("placed")
        .key("both")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"from b"
    );
    // A key only in the member the policy left out is still found.
    std::fs::write(a.0.join("only-a"), b"a").unwrap();
    let got = c
        .get_object()
        .bucket("placed")
        .key("only-a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"a"
    );

    // A placement naming two members is a mirrored write: both have every byte.
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    c.put_object()
        .bucket("mirrored")
        .key("m/big")
        .body(ByteStream::from(big.clone()))
        .content_type("x/y")
        .send()
        .await
        .unwrap();
    assert!(std::fs::read(a.0.join("m/big")).unwrap() == big);
    assert!(std::fs::read(b.0.join("m/big")).unwrap() == big);
    let h = c
        .head_object()
        .bucket("mirrored")
        .key("m/big")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("x/y"));
    // A multipart upload (every `aws s3 cp` over 8 MiB) is mirrored too: it used to land
    // in the first member only, and the client got 200.
    let up = c
        .create_multipart_upload()
        .bucket("mirrored")
        .key("m/parts")
        .content_type("x/parts")
        .metadata("k", "v")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (n, chunk) in big.chunks(6 * 1024 * 1024).enumerate() {
        let n = i32::try_from(n + 1).unwrap();
        let p = c
            .upload_part()
            .bucket("mirrored")
            .key("m/parts")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("mirrored")
        .key("m/parts")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    for member in [&a.0, &b.0] {
        assert!(
            std::fs::read(member.join("m/parts")).unwrap() == big,
            "{}",
            member.display()
        );
    }
    let h = c
        .head_object()
        .bucket("mirrored")
        .key("m/parts")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("x/parts"));
    assert_eq!(
        h.metadata().and_then(|m| m.get("k")).map(String::as_str),
        Some("v")
    );

    let m = metrics(&gw).await;
    assert!(
        m.contains(
            r#"switchyard_policy_decisions_total{policy="to-b",call="place",outcome="ok"} 1"#
        ),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_policies_are_refused_or_contained() {
    let (plugins, a, b) = dirs();
    write_atomic(
        &plugins.0,
        "looper.wasm",
        &fixed_policy("b", Misbehaviour::Loop),
    );
    write_atomic(
        &plugins.0,
        "trapper.wasm",
        &fixed_policy("b", Misbehaviour::Trap),
    );
    write_atomic(
        &plugins.0,
        "bomber.wasm",
        &fixed_policy("b", Misbehaviour::MemoryBomb),
    );
    write_atomic(
        &plugins.0,
        "nowhere.wasm",
        &fixed_policy("nowhere", Misbehaviour::None),
    );
    // Sleepers wait an hour in a WASI call, in the host, where epoch ticks do not reach:
    // before, the request waited the hour with them.
    write_atomic(
        &plugins.0,
        "sleeper.wasm",
        &fixed_policy("b", Misbehaviour::SleepBlock),
    );
    write_atomic(
        &plugins.0,
        "poller.wasm",
        &fixed_policy("b", Misbehaviour::SleepPoll),
    );
    write_atomic(&plugins.0, "wrongworld.wasm", &wrong_world());
    write_atomic(&plugins.0, "garbage.wasm", b"this is not WebAssembly");
    const HOSTILE: [&str; 8] = [
        "looper",
        "trapper",
        "bomber",
        "sleeper",
        "poller",
        "nowhere",
        "wrongworld",
        "garbage",
    ];
    let mut buckets = String::new();
    for p in HOSTILE {
        buckets.push_str(&format!("[buckets.closed-{p}]\nmembers = [\"a\", \"b\"]\npolicy = \"{p}\"\nfailure = \"fail-closed\"\n"));
        buckets.push_str(&format!("[buckets.open-{p}]\nmembers = [\"a\", \"b\"]\npolicy = \"{p}\"\nfailure = \"fail-open\"\n"));
    }
    let gw = Gateway::start(&config(&plugins.0, &a.0, &b.0, &buckets))
        .await
        .unwrap();
    let c = gw.client();

    // Refused at load: the wrong world and the non-wasm file.
    let list = loaded(&gw).await;
    assert!(
        hash_of(&list, "wrongworld").is_none() && hash_of(&list, "garbage").is_none(),
        "{list}"
    );
    for p in [
        "looper", "trapper", "bomber", "sleeper", "poller", "nowhere",
    ] {
        assert!(
            hash_of(&list, p).is_some(),
            "{p} should have loaded: {list}"
        );
    }

    for p in HOSTILE {
        // The misbehaviour is triggered by the key; the probe and normal keys are fine.
        let key = "evil/object";
        let started = Instant::now();
        let put = c
            .put_object()
            .bucket(format!("closed-{p}"))
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send();
        let Ok(answer) = tokio::time::timeout(Duration::from_secs(30), put).await else {
            panic!("{p}: no answer in 30 s (the deadline is 20 ms)");
        };
        let e = answer.unwrap_err();
        assert_eq!(
            err_of(&e),
            (503, "ServiceUnavailable".into()),
            "{p} fail-closed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{p} took {:?}",
            started.elapsed()
        );
        // Fail-open: the built-in default writes to the first member.
        let put = c
            .put_object()
            .bucket(format!("open-{p}"))
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send();
        let Ok(answer) = tokio::time::timeout(Duration::from_secs(30), put).await else {
            panic!("{p}: no answer in 30 s (the deadline is 20 ms)");
        };
        answer.unwrap();
        let got = c
            .get_object()
            .bucket(format!("open-{p}"))
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().as_ref(),
            b"x"
        );
        std::fs::remove_file(a.0.join(key)).unwrap();
    }
    // Keys that do not trigger the misbehaviour are decided by the policy as usual.
    c.put_object()
        .bucket("closed-looper")
        .key("fine")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("fine").exists());

    let m = metrics(&gw).await;
    for (p, outcome) in [
        ("looper", "timeout"),
        ("trapper", "trap"),
        ("bomber", "memory_limit"),
        ("sleeper", "timeout"),
        ("poller", "timeout"),
        ("nowhere", "invalid_answer"),
        ("garbage", "not_loaded"),
    ] {
        assert!(
            m.contains(&format!(r#"switchyard_policy_decisions_total{{policy="{p}",call="place",outcome="{outcome}"}}"#)),
            "{p}: {outcome} not counted in\n{m}"
        );
    }
    assert!(
        m.contains(r#"switchyard_policy_reloads_total{policy="wrongworld",result="rejected"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"switchyard_policy_fallbacks_total{policy="looper"} 2"#),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_swaps_under_load_without_losing_a_request() {
    let (plugins, a, b) = dirs();
    let to_a = fixed_policy("a", Misbehaviour::None);
    let to_b = fixed_policy("b", Misbehaviour::None);
    write_atomic(&plugins.0, "router.wasm", &to_a);
    let gw = Gateway::start(&config(
        &plugins.0,
        &a.0,
        &b.0,
        "[buckets.live]\nmembers = [\"a\", \"b\"]\npolicy = \"router\"\nfailure = \"fail-closed\"\n",
    ))
    .await
    .unwrap();
    let c = gw.client();
    let first = hash_of(&loaded(&gw).await, "router").unwrap();

    // A writer that keeps going while the policy is replaced.
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..400u32 {
                let key = format!("w/{i:04}");
                if let Err(e) = c
                    .put_object()
                    .bucket("live")
                    .key(&key)
                    .body(ByteStream::from_static(b"w"))
                    .send()
                    .await
                {
                    failures.push(format!("{key}: {e:?}"));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_atomic(&plugins.0, "router.wasm", &to_b);
    let deadline = Instant::now() + Duration::from_secs(20);
    let swapped_at = loop {
        let h = hash_of(&loaded(&gw).await, "router");
        if h.as_deref() != Some(first.as_str()) && h.is_some() {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the new policy was not loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = swapped_at;
    // Written after the swap was visible: must follow the new policy.
    c.put_object()
        .bucket("live")
        .key("after-swap")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("after-swap").exists());
    let failures = writer.await.unwrap();
    assert!(
        failures.is_empty(),
        "requests failed during the swap: {failures:?}"
    );
    // Every write landed in exactly one member; both members got some.
    let count = |d: &Path| {
        std::fs::read_dir(d.join("w"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    assert_eq!(count(&a.0) + count(&b.0), 400);
    assert!(
        count(&a.0) > 0 && count(&b.0) > 0,
        "a={} b={}",
        count(&a.0),
        count(&b.0)
    );

    // A bad replacement is rejected and the last good version stays.
    let good = hash_of(&loaded(&gw).await, "router").unwrap();
    write_atomic(&plugins.0, "router.wasm", b"\0asm garbage");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !metrics(&gw)
        .await
        .contains(r#"switchyard_policy_reloads_total{policy="router",result="rejected"} 1"#)
    {
        assert!(Instant::now() < deadline, "the bad file was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hash_of(&loaded(&gw).await, "router"), Some(good));
    c.put_object()
        .bucket("live")
        .key("still-b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("still-b").exists());

    // Removing the file unloads the policy: the fail-closed bucket refuses writes.
    std::fs::remove_file(plugins.0.join("router.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hash_of(&loaded(&gw).await, "router").is_some() {
        assert!(Instant::now() < deadline, "the policy was not unloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = c
        .put_object()
        .bucket("live")
        .key("unloaded")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 503);
    gw.stop().await;
}

/// The entry of policy `name` in `/policies`, once `ready` holds for it (or after 10 s).
async fn entry_when(
    gw: &Gateway,
    name: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = loaded(gw).await;
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_default();
        if ready(&entry) || Instant::now() > deadline {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/policies` shows, beside the version in service, the version on disk that was
/// rejected: its hash, size, modification time, when it was judged and why. It showed
/// the version in service only, so nothing there said that a new version had been
/// written and refused. Once the file is the version in service again, the rejected one
/// is no longer shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_show_the_rejected_version_beside_the_kept_one() {
    let (plugins, a, b) = dirs();
    let good = fixed_policy("b", Misbehaviour::None);
    write_atomic(&plugins.0, "pick.wasm", &good);
    let gw = Gateway::start(&config(
        &plugins.0,
        &a.0,
        &b.0,
        "[buckets.data]\nmembers = [\"a\", \"b\"]\npolicy = \"pick\"\n",
    ))
    .await
    .unwrap();
    let kept = entry_when(&gw, "pick", |e| e["sha256"].is_string()).await;
    assert!(kept["rejected"].is_null(), "{kept}");
    let kept_hash = kept["sha256"].clone();

    let broken = wrong_world();
    let before = std::time::SystemTime::now();
    write_atomic(&plugins.0, "pick.wasm", &broken);
    let entry = entry_when(&gw, "pick", |e| !e["rejected"].is_null()).await;
    assert_eq!(
        entry["sha256"], kept_hash,
        "the version in service: {entry}"
    );
    let rejected = &entry["rejected"];
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&broken);
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(rejected["sha256"], hash, "{entry}");
    assert_eq!(rejected["size"], broken.len(), "{entry}");
    assert!(
        rejected["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("does not implement")),
        "{entry}"
    );
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{v} is not an RFC 3339 time: {e}"))
            .to_utc()
    };
    let on_disk: chrono::DateTime<chrono::Utc> = std::fs::metadata(plugins.0.join("pick.wasm"))
        .unwrap()
        .modified()
        .unwrap()
        .into();
    assert_eq!(time(&rejected["modified"]), on_disk, "{entry}");
    let seen = time(&rejected["seen"]);
    assert!(
        seen >= chrono::DateTime::<chrono::Utc>::from(before) && seen <= chrono::Utc::now(),
        "{entry}"
    );
    // The version in service still decides.
    gw.client()
        .put_object()
        .bucket("data")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("k").exists());

    write_atomic(&plugins.0, "pick.wasm", &good);
    let entry = entry_when(&gw, "pick", |e| e["rejected"].is_null()).await;
    assert!(entry["rejected"].is_null(), "{entry}");
    assert_eq!(entry["sha256"], kept_hash, "{entry}");
    gw.stop().await;
}

#[tokio::test]
async fn fixed_policies_pass_the_policy_check() {
    use switchyard::policy::wasm::{CallSettings, EngineSettings, WasmEngine, WasmPolicy};
    let engine = WasmEngine::new(&EngineSettings::default()).unwrap();
    let p = WasmPolicy::load(
        &engine,
        "t",
        &fixed_policy("probe-a", Misbehaviour::Trap),
        CallSettings::default(),
    )
    .unwrap();
    p.probe().unwrap();
    assert!(
        p.info().imports.iter().all(|i| !i.starts_with("wasi:")),
        "{:?}",
        p.info().imports
    );
    let e = WasmPolicy::load(&engine, "w", &wrong_world(), CallSettings::default()).unwrap_err();
    assert!(e.to_string().contains("does not implement"), "{e}");
    let e = WasmPolicy::load(&engine, "g", b"garbage", CallSettings::default()).unwrap_err();
    assert!(e.to_string().contains("not a WebAssembly component"), "{e}");
}

/// A policy that loops until its deadline holds its own slots, not the engine: while
/// several requests of its bucket wait on it, another bucket's requests are served. Policy
/// calls ran on the request threads, and four looping calls stopped every bucket until
/// their deadlines passed. The check is an order, not a time: the other bucket's requests
/// must be answered while every looping request is still waiting for its policy (each
/// waits up to its 3 s deadline, twice over in the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_looping_policy_does_not_hold_other_buckets() {
    let (plugins, a, b) = dirs();
    write_atomic(
        &plugins.0,
        "looper.wasm",
        &fixed_policy("b", Misbehaviour::Loop),
    );
    let buckets = "[policies.looper]\ntimeout = \"3s\"\n\
        [buckets.slow]\nmembers = [\"a\", \"b\"]\npolicy = \"looper\"\nfailure = \"fail-open\"\n\
        [buckets.other]\nmembers = [\"a\"]\n";
    let gw = Gateway::start(&config(&plugins.0, &a.0, &b.0, buckets))
        .await
        .unwrap();
    let c = gw.client();
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut slow = Vec::new();
    for i in 0..6 {
        let (c, finished) = (c.clone(), finished.clone());
        slow.push(tokio::spawn(async move {
            let r = c
                .put_object()
                .bucket("slow")
                .key(format!("evil-{i}"))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await;
            finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r
        }));
    }
    // Let the looping calls start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        let key = format!("k{i}");
        c.put_object()
            .bucket("other")
            .key(&key)
            .body(ByteStream::from(key.clone().into_bytes()))
            .send()
            .await
            .unwrap();
        let got = c
            .get_object()
            .bucket("other")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().to_vec(), key.as_bytes());
    }
    assert_eq!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the other bucket waited for the looping policy"
    );
    // Fail-open: each looping request is answered, by the built-in placement, once its
    // call ran past the deadline or found no free slot in time.
    for t in slow {
        t.await.unwrap().unwrap();
    }
    let m = metrics(&gw).await;
    assert!(
        m.contains(
            r#"switchyard_policy_decisions_total{policy="looper",call="place",outcome="timeout"} 6"#
        ),
        "{m}"
    );
}

/// A fixed-answer policy (answering `a`, looping for keys starting with `evil`) named
/// `name`, with the deadline `timeout`, and its engine: keep that, its epoch ticks end
/// calls.
fn policy_named(
    name: &str,
    timeout: Duration,
) -> (
    switchyard::policy::wasm::WasmEngine,
    std::sync::Arc<switchyard::policy::wasm::WasmPolicy>,
) {
    use switchyard::policy::wasm::{CallSettings, EngineSettings, WasmEngine, WasmPolicy};
    let engine = WasmEngine::new(&EngineSettings::default()).unwrap();
    let settings = CallSettings {
        timeout,
        ..CallSettings::default()
    };
    let policy = WasmPolicy::load(
        &engine,
        name,
        &fixed_policy("a", Misbehaviour::Loop),
        settings,
    )
    .unwrap();
    (engine, std::sync::Arc::new(policy))
}

/// Places `key` as a request does ([`WasmPolicy::call_off_thread`]): whether the call ran
/// on the caller's thread, and its answer.
async fn place_where(
    p: &std::sync::Arc<switchyard::policy::wasm::WasmPolicy>,
    key: &'static str,
) -> (
    bool,
    Result<
        Result<Vec<String>, switchyard::policy::PolicyError>,
        switchyard::policy::wasm::CallError,
    >,
) {
    use switchyard::model::MemberView;
    use switchyard::policy::{ObjectView, RequestView};
    let members = vec![MemberView {
        name: "a".into(),
        kind: "memory",
        labels: Vec::new().into(),
        healthy: true,
        latency_us: None,
    }];
    let caller = std::thread::current().id();
    p.clone()
        .call_off_thread(move |p| {
            let obj = ObjectView {
                bucket: "b".into(),
                key: key.into(),
                ..ObjectView::default()
            };
            let r = p.place(&RequestView::default(), &obj, &members);
            Ok((std::thread::current().id() == caller, r))
        })
        .await
        .unwrap()
}

/// A fast policy decides on the request's thread (no hop: a few µs a decision); once one
/// of its calls is slow (here: looping until its deadline), its calls hop to threads of
/// their own, so that it cannot hold request threads. With every call on the request
/// threads, a looping neighbour raised another bucket's p99 about sixfold (policy bench).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_policy_moves_off_the_request_threads() {
    use switchyard::policy::wasm::CallError;
    let (_engine, p) = policy_named("sometimes-loops", Duration::from_millis(30));
    let (same, answer) = place_where(&p, "fine").await;
    assert!(same, "a fast policy decides on the request's thread");
    assert_eq!(answer.unwrap().unwrap(), ["a"]);
    assert!(!p.runs_off_thread());
    // Keys starting with `evil` loop until the deadline.
    let (_, looped) = place_where(&p, "evil").await;
    assert!(matches!(looped, Err(CallError::Timeout)), "{looped:?}");
    assert!(p.runs_off_thread());
    let (same, answer) = place_where(&p, "fine").await;
    assert!(
        !same,
        "after a slow call, calls hop to a thread of their own"
    );
    assert_eq!(answer.unwrap().unwrap(), ["a"]);
}

/// A policy whose calls run into a deadline shorter than two epoch ticks (1 ms) moves
/// off the request threads like any slow one: such a call sees fewer than two ticks, so
/// by its ticks alone it would never count as slow, and would hold a request thread for
/// its whole deadline on every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_running_into_a_short_deadline_moves_off_the_request_threads() {
    use switchyard::policy::wasm::CallError;
    let (_engine, p) = policy_named("short-deadline", Duration::from_millis(1));
    for _ in 0..2 {
        let (_, looped) = place_where(&p, "evil").await;
        assert!(matches!(looped, Err(CallError::Timeout)), "{looped:?}");
    }
    assert!(p.runs_off_thread());
}

/// A fast policy whose calls are preempted (their thread descheduled for milliseconds,
/// as on a busy machine) stays on the request threads. Judged by wall time, two such
/// calls within a second, or one of 10 ms, moved it to threads of its own for ten
/// seconds, and every decision then paid a hop (20-40 µs against 5-10, policy bench
/// under `perf`). The fail point stalls the calls of the policy named `preempted` only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preempted_fast_policy_stays_on_the_request_threads() {
    fail::cfg("policy::preempted", "sleep(15)").unwrap();
    let (_engine, p) = policy_named("preempted", Duration::from_millis(30));
    for i in 0..4 {
        let started = Instant::now();
        let (same, answer) = place_where(&p, "fine").await;
        assert!(
            started.elapsed() >= Duration::from_millis(15),
            "the fail point stalls each call"
        );
        assert!(same, "call {i} hopped to a thread of its own");
        assert_eq!(answer.unwrap().unwrap(), ["a"]);
    }
    assert!(!p.runs_off_thread());
    fail::remove("policy::preempted");
}

/// `[plugins] perf_map` reaches the engine: the policies' compiled functions are named in
/// the process's perf map, which `perf report` reads (without it, a policy's samples are
/// unnamed JIT addresses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_map_names_the_policies_compiled_code() {
    let (plugins, a, b) = dirs();
    write_atomic(
        &plugins.0,
        "to-b.wasm",
        &fixed_policy("b", Misbehaviour::None),
    );
    let toml = config(
        &plugins.0,
        &a.0,
        &b.0,
        "[buckets.placed]\nmembers = [\"a\", \"b\"]\npolicy = \"to-b\"\n",
    )
    .replace(
        "debounce = \"50ms\"\n",
        "debounce = \"50ms\"\nperf_map = true\n",
    );
    assert!(toml.contains("perf_map = true"));
    let gw = Gateway::start(&toml).await.unwrap();
    gw.client()
        .put_object()
        .bucket("placed")
        .key("k")
        .body(ByteStream::from_static(b"to b"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("k").exists());
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
    let text = std::fs::read_to_string(&map).expect("the perf map, written by the engine");
    assert!(
        text.lines().any(|l| l.contains("wasm[0]::function[")),
        "no policy function in {}: {text:.400}",
        map.display()
    );
    gw.stop().await;
    let _ = std::fs::remove_file(&map);
}

/// A policy outlives the handle of the engine that loaded it (its owner dropped it while a
/// call still ran, as at shutdown, or a library user's function returned the policy): its
/// deadline still holds. Before, dropping the handle stopped the epoch ticker, and a
/// looping call never ended.
#[test]
fn a_policy_keeps_its_deadline_after_its_engine_handle_is_dropped() {
    use switchyard::model::MemberView;
    use switchyard::policy::wasm::{CallSettings, EngineSettings, WasmEngine, WasmPolicy};
    use switchyard::policy::{ObjectView, RequestView};
    let engine = WasmEngine::new(&EngineSettings::default()).unwrap();
    let policy = WasmPolicy::load(
        &engine,
        "loop",
        &fixed_policy("a", Misbehaviour::Loop),
        CallSettings {
            timeout: Duration::from_millis(50),
            warm_instances: Some(0),
            ..CallSettings::default()
        },
    )
    .unwrap();
    drop(engine);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let members = [MemberView {
            name: "a".into(),
            kind: "fs",
            labels: Vec::new().into(),
            healthy: true,
            latency_us: None,
        }];
        let obj = ObjectView {
            bucket: "b".into(),
            // fixed_policy misbehaves for keys starting with "evil".
            key: "evil".into(),
            ..ObjectView::default()
        };
        let started = Instant::now();
        let answer = policy.place(&RequestView::default(), &obj, &members);
        let _ = tx.send((answer.is_err(), started.elapsed()));
    });
    // Generous for a loaded machine; a call with no ticker never answers at all.
    let (failed, took) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a looping call ran 30 s past its 50 ms deadline: no epoch ticks");
    assert!(failed, "a looping policy's call fails at its deadline");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
