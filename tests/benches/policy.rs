//! Policy cost, measured against a baseline in the same run (not a timed test):
//!
//! 1. Per-decision latency of `place`: the built-in default (native) against each example
//!    policy component (Rust, JavaScript, Python) and a minimal WAT policy, median and p99.
//! 2. The same decisions as a request makes them, through the router's decider; last,
//!    also under the engine's own logging.
//! 3. Gateway PUT throughput on 1 MiB objects with the built-in policy and with a Rust
//!    policy component, and their ratio.
//! 4. Isolation: a bucket's GETs while another bucket's policy loops.
//!
//! Run: `cargo bench -p switchyard-tests --bench policy` after `plugins/build-all.sh`.
//! `-- --profile NAME` (an example policy, or `fixed`) runs only that policy's warm `place`
//! for 10 s and prints the medians of successive blocks of calls, for `perf record`;
//! `--profile NAME --decider` runs an in-server row's call through the decider instead,
//! under the engine's logging. `--perf-map` (with `--profile`) names the policy's compiled
//! functions for `perf report` (`[plugins] perf_map`).
//! Targets: a Rust policy decides in under 5 µs (median); policies cost under 3% of PUT
//! throughput on 1 MiB objects.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use switchyard::model::MemberView;
use switchyard::policy::wasm::{CallSettings, EngineSettings, WasmEngine, WasmPolicy};
use switchyard::policy::{DefaultPolicy, ObjectView, Policy, RequestView};
use switchyard_tests::harness::{Gateway, TempDir, repo_root};
use switchyard_tests::wasm::{Misbehaviour, fixed_policy};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn members() -> Vec<MemberView<'static>> {
    vec![
        MemberView {
            name: "us-s3".into(),
            kind: "s3",
            labels: vec![
                ("region".into(), "us".into()),
                ("tier".into(), "hot".into()),
            ]
            .into(),
            healthy: true,
            latency_us: Some(900),
        },
        MemberView {
            name: "eu-s3".into(),
            kind: "s3",
            labels: vec![
                ("region".into(), "eu".into()),
                ("tier".into(), "hot".into()),
            ]
            .into(),
            healthy: true,
            latency_us: Some(1800),
        },
        MemberView {
            name: "cold".into(),
            kind: "gcs",
            labels: vec![("tier".into(), "cold".into())].into(),
            healthy: true,
            latency_us: None,
        },
    ]
}

fn inputs() -> (RequestView, ObjectView) {
    let req = RequestView {
        operation: "PutObject".into(),
        principal: Some("app".into()),
        source_ip: Some("10.0.0.7".into()),
        ..RequestView::default()
    };
    let obj = ObjectView {
        bucket: "data".into(),
        key: "eu/2026/11/report.pdf".into(),
        size: Some(1 << 20),
        content_type: Some("application/pdf".into()),
        metadata: vec![("owner".into(), "finance".into())],
        age_seconds: None,
        tags: Vec::new(),
    };
    (req, obj)
}

/// `--perf-map`: the engine writes a perf map naming the policy's compiled functions
/// (`[plugins] perf_map`), for `perf report` on a `--profile` run.
fn perf_map_requested() -> bool {
    std::env::args().any(|a| a == "--perf-map")
}

/// Runs `f` `n` times after a warm-up and returns (median, p99).
fn measure(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn profile(name: &str) {
    let bytes = if name == "fixed" {
        fixed_policy("us-s3", Misbehaviour::None)
    } else {
        std::fs::read(repo_root().join(format!("plugins/{name}/{name}.wasm")))
            .expect("the policy, built (plugins/build-all.sh)")
    };
    let engine = WasmEngine::new(&EngineSettings {
        perf_map: perf_map_requested(),
        ..EngineSettings::default()
    })
    .expect("engine");
    let settings = CallSettings {
        config: r#"{"prefixes": {"eu": "eu"}, "default": "us"}"#.into(),
        timeout: Duration::from_secs(1),
        ..CallSettings::default()
    };
    let policy = WasmPolicy::load(&engine, "bench", &bytes, settings).expect("policy");
    let (req, obj) = inputs();
    let ms = members();
    let started = Instant::now();
    let mut times = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        for _ in 0..1000 {
            let t = Instant::now();
            let _ = std::hint::black_box(policy.place(&req, &obj, &ms));
            times.push(t.elapsed());
        }
    }
    report_profile(name, times);
}

/// Prints the medians of successive blocks of `times` (in the order they were taken), then
/// the whole run's figures.
fn report_profile(name: &str, mut times: Vec<Duration>) {
    let window = |w: &[Duration]| {
        let mut w = w.to_vec();
        w.sort();
        percentile(&w, 0.5)
    };
    let medians: Vec<String> = times
        .chunks(50_000)
        .map(|c| format!("{:.1}", window(c).as_secs_f64() * 1e6))
        .collect();
    println!("medians of 50000 calls in turn, µs: {}", medians.join(" "));
    let total: Duration = times.iter().sum();
    let mean = total / u32::try_from(times.len()).unwrap_or(u32::MAX);
    times.sort();
    println!(
        "{name}: {} calls, mean {mean:?}, median {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        times[times.len() - 1]
    );
}

fn decision_latency() {
    println!(
        "## Per-decision latency (place), {} members",
        members().len()
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "policy", "median", "p99", "x native"
    );
    let (req, obj) = inputs();
    let ms = members();
    let (native_med, native_p99) = measure(20_000, || {
        let _ = std::hint::black_box(DefaultPolicy.place(&req, &obj, &ms));
    });
    println!(
        "{:<34} {:>12?} {:>12?} {:>10}",
        "built-in default (native)", native_med, native_p99, "1.0"
    );
    let engine = WasmEngine::new(&EngineSettings::default()).expect("engine");
    let mut candidates: Vec<(String, Vec<u8>, String, usize)> = vec![(
        "fixed answer (WAT)".into(),
        fixed_policy("us-s3", Misbehaviour::None),
        String::new(),
        5_000,
    )];
    for (name, lang, config, n) in [
        (
            "tenant-residency",
            "Rust",
            r#"{"prefixes": {"eu": "eu"}, "default": "us"}"#,
            5_000,
        ),
        (
            "age-tiering",
            "Rust",
            r#"{"cold_after_seconds": 86400}"#,
            5_000,
        ),
        ("prefix-placement", "C", "eu/ = eu-s3\n* = tier=hot", 5_000),
        ("latency-routing", "JavaScript", "", 2_000),
        ("size-placement", "Python", "", 500),
    ] {
        let path = repo_root()
            .join("plugins")
            .join(name)
            .join(format!("{name}.wasm"));
        match std::fs::read(&path) {
            Ok(bytes) => candidates.push((format!("{name} ({lang})"), bytes, config.to_owned(), n)),
            Err(_) => println!("{name}: not built (run plugins/build-all.sh); skipped"),
        }
    }
    for (label, bytes, config, n) in candidates {
        let settings = CallSettings {
            config: config.into(),
            timeout: Duration::from_secs(1),
            memory_bytes: 256 << 20,
            ..CallSettings::default()
        };
        let warm = match WasmPolicy::load(&engine, "bench", &bytes, settings) {
            Ok(p) => p,
            Err(e) => {
                println!("{label}: {e}");
                continue;
            }
        };
        assert!(
            matches!(warm.place(&req, &obj, &ms), Ok(Ok(_))),
            "{label} does not decide the benchmark input"
        );
        let row = |label: &str, policy: &WasmPolicy| {
            let (med, p99) = measure(n, || {
                let _ = std::hint::black_box(policy.place(&req, &obj, &ms));
            });
            let ratio = med.as_secs_f64() / native_med.as_secs_f64().max(1e-9);
            println!("{label:<34} {med:>12?} {p99:>12?} {ratio:>10.0}");
        };
        // Warm instances (the default), and small guests also with a fresh instance per
        // call (`warm_instances = 0`); large ones (JavaScript, Python) take milliseconds
        // to set up and only make sense warm.
        row(&label, &warm);
        if !warm.info().uses_wasi && warm.info().size < 1 << 20 {
            let fresh = warm.reconfigured(CallSettings {
                warm_instances: Some(0),
                ..policy_settings(&warm)
            });
            row("  same, a fresh instance per call", &fresh);
        }
    }
}

async fn put_throughput(
    policy_dir: &Path,
    policy: &str,
    objects: usize,
    concurrency: usize,
) -> f64 {
    let config = format!(
        "version = 1\n[plugins]\ndir = {:?}\n[policies.tenant-residency]\nconfig = '{{\"prefixes\": {{\"eu\": \"eu\"}}, \"default\": \"us\"}}'\n[backends.us-s3]\nkind = \"memory\"\nlabels = {{ region = \"us\" }}\n[backends.eu-s3]\nkind = \"memory\"\nlabels = {{ region = \"eu\" }}\n[buckets.bench]\nmembers = [\"us-s3\", \"eu-s3\"]\npolicy = \"{policy}\"\n",
        policy_dir.display().to_string()
    );
    let gw = Gateway::start(&config).await.expect("gateway");
    let c = gw.client();
    let body = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let c = c.clone();
        let body = body.clone();
        let n = objects / concurrency;
        tasks.spawn(async move {
            for i in 0..n {
                c.put_object()
                    .bucket("bench")
                    .key(format!("w{w}/o{i}"))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .expect("put");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    gw.stop().await;
    (objects as f64) / secs
}

/// GET latencies (sorted) of 4 KiB objects in a bucket with the built-in policy, with
/// `loopers` clients meanwhile writing to another bucket whose policy loops until its
/// deadline (fail-open, so each of their writes waits for a timeout, then lands).
async fn neighbour_latency(policy_dir: &Path, loopers: usize, gets: usize) -> Vec<Duration> {
    let config = format!(
        "version = 1\n[plugins]\ndir = {:?}\n[policies.looper]\ntimeout = \"50ms\"\n[backends.m]\nkind = \"memory\"\n[backends.n]\nkind = \"memory\"\n[buckets.calm]\nmembers = [\"m\"]\n[buckets.looping]\nmembers = [\"n\"]\npolicy = \"looper\"\nfailure = \"fail-open\"\n",
        policy_dir.display().to_string()
    );
    let gw = Gateway::start(&config).await.expect("gateway");
    let c = gw.client();
    let body = bytes::Bytes::from(vec![7u8; 4096]);
    for i in 0..16 {
        c.put_object()
            .bucket("calm")
            .key(format!("k{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut noise = tokio::task::JoinSet::new();
    for w in 0..loopers {
        let (c, stop) = (c.clone(), stop.clone());
        noise.spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Keys starting with `evil` make the policy loop.
                let _ = c
                    .put_object()
                    .bucket("looping")
                    .key(format!("evil-{w}-{i}"))
                    .body(ByteStream::from_static(b"x"))
                    .send()
                    .await;
                i += 1;
            }
        });
    }
    if loopers > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut lat = Vec::with_capacity(gets);
    for i in 0..gets {
        let t = Instant::now();
        let got = c
            .get_object()
            .bucket("calm")
            .key(format!("k{}", i % 16))
            .send()
            .await
            .expect("get");
        got.body.collect().await.expect("body");
        lat.push(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while noise.join_next().await.is_some() {}
    gw.stop().await;
    lat.sort();
    lat
}

/// The example policies of the in-server rows: (row label, policy, its configuration,
/// whether the call is `admit` rather than `place`).
const IN_SERVER: [(&str, &str, &str, bool); 3] = [
    (
        "tenant-residency place (Rust)",
        "tenant-residency",
        r#"{"prefixes": {"eu": "eu"}, "default": "us"}"#,
        false,
    ),
    (
        "prefix-placement place (C)",
        "prefix-placement",
        "eu/ = eu-s3\n* = tier=hot",
        false,
    ),
    (
        "tenant-gate admit (Rust, 0.2)",
        "tenant-gate",
        r#"{"tenants": {"acme": {"region": "eu", "principals": ["alice"]}}}"#,
        true,
    ),
];

/// A router as an engine builds it from `dir` (which gets a copy of `wasm`): one bucket
/// `data` on three memory members, whose policy is `name`.
fn router_with(
    dir: &Path,
    wasm: &Path,
    name: &str,
    config: &str,
) -> (
    switchyard::router::Router,
    std::sync::Arc<switchyard::policy::set::PolicySet>,
) {
    use std::sync::Arc;
    std::fs::copy(wasm, dir.join(format!("{name}.wasm"))).unwrap();
    let toml = format!(
        r#"version = 1
[plugins]
dir = {dir:?}
timeout = "1s"
perf_map = {perf_map}
[policies.{name}]
config = {config:?}
headers = ["x-tenant"]
[backends.us-s3]
kind = "memory"
labels = {{ region = "us", tier = "hot" }}
[backends.eu-s3]
kind = "memory"
labels = {{ region = "eu", tier = "hot" }}
[backends.cold]
kind = "memory"
labels = {{ tier = "cold" }}
[buckets.data]
members = ["us-s3", "eu-s3", "cold"]
policy = "{name}"
"#,
        dir = dir.display().to_string(),
        perf_map = perf_map_requested(),
    );
    let config = Arc::new(switchyard::Config::from_toml(&toml).expect("bench config"));
    let metrics = Arc::new(switchyard::metrics::Metrics::default());
    let policies = switchyard::policy::set::PolicySet::new(&config, metrics.clone()).unwrap();
    let router = switchyard::router::Router::new(config, Some(policies.clone()), metrics).unwrap();
    (router, policies)
}

/// The request and object of the in-server rows: an `admit` call gets a tenant's
/// principal, header and key, which the tenant-gate example admits.
fn in_server_inputs(admit: bool) -> (RequestView, ObjectView) {
    let (mut req, mut obj) = inputs();
    if admit {
        req.principal = Some("alice".into());
        req.headers = vec![("x-tenant".into(), "acme".into())];
        obj.key = "acme/report.pdf".into();
    }
    (req, obj)
}

/// A decision as a request makes it: through the router's decider (a slot of the
/// policy's, a thread of its own, the answer's checks, the decision's log line and
/// metrics), sequentially, against the same component called directly in a loop.
async fn in_server(rt_label: &str, wasm: &Path, name: &str, config: &str, admit: bool, n: usize) {
    let dir = TempDir::new("bench-in-server");
    let (router, policies) = router_with(&dir.0, wasm, name, config);
    let vb = router.bucket("data").await.unwrap();
    let (req, obj) = in_server_inputs(admit);
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        if admit {
            router.decider.admit(&vb, &req, &obj).await.unwrap();
        } else {
            router.decider.place(&vb, &req, &obj).await.unwrap();
        }
        if i >= n / 10 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    let policy = policies.get(name).unwrap();
    let ms = members();
    let (direct50, direct99) = measure(n, || {
        let _ = std::hint::black_box(if admit {
            policy.admit(&req, &obj).map(|_| ())
        } else {
            policy.place(&req, &obj, &ms).map(|_| ())
        });
    });
    println!(
        "{rt_label:<34} {:>12?} {:>12?} {direct50:>12?} {direct99:>12?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    // The same call on this thread, with the runtime told it blocks (block_in_place),
    // against the decider's path: what the hop to a policy thread costs.
    let mut inline = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = tokio::task::block_in_place(|| {
            if admit {
                policy.admit(&req, &obj).map(|_| ())
            } else {
                policy.place(&req, &obj, &ms).map(|_| ())
            }
        });
        std::hint::black_box(r).ok();
        inline.push(t.elapsed());
    }
    inline.sort();
    println!(
        "{:<34} {:>12?} {:>12?}",
        "  same, block_in_place",
        percentile(&inline, 0.5),
        percentile(&inline, 0.99)
    );
}

/// `--profile NAME --decider`: the in-server call of one of [`IN_SERVER`]'s policies,
/// through the decider and under the engine's own logging (to a sink), for 10 s.
fn profile_decider(name: &str) {
    let Some((_, _, config, admit)) = IN_SERVER.iter().find(|row| row.1 == name) else {
        panic!("--decider profiles one of the in-server rows' policies");
    };
    let _logging = switchyard::logging::init(false, false, std::io::sink());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new("bench-profile");
    let wasm = repo_root().join(format!("plugins/{name}/{name}.wasm"));
    let (router, _policies) = router_with(&dir.0, &wasm, name, config);
    let (req, obj) = in_server_inputs(*admit);
    let times = rt.block_on(async {
        let vb = router.bucket("data").await.unwrap();
        let started = Instant::now();
        let mut times = Vec::new();
        while started.elapsed() < Duration::from_secs(10) {
            for _ in 0..1000 {
                let t = Instant::now();
                if *admit {
                    router.decider.admit(&vb, &req, &obj).await.unwrap();
                } else {
                    router.decider.place(&vb, &req, &obj).await.unwrap();
                }
                times.push(t.elapsed());
            }
        }
        times
    });
    report_profile(name, times);
}

fn policy_settings(p: &WasmPolicy) -> CallSettings {
    p.settings().clone()
}

fn main() {
    // `--profile NAME` (an example policy, or `fixed` for the WAT one): nothing but that
    // policy's warm `place` in a loop for 10 s, to run under `perf record`.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let name = args.get(i + 1).map_or("fixed", String::as_str);
        if args.iter().any(|a| a == "--decider") {
            profile_decider(name);
        } else {
            profile(name);
        }
        return;
    }
    decision_latency();

    let dir = TempDir::new("bench-plugins");
    let rust = repo_root().join("plugins/tenant-residency/tenant-residency.wasm");
    let with_policy = if rust.exists() {
        std::fs::copy(&rust, dir.0.join("tenant-residency.wasm")).unwrap();
        "tenant-residency"
    } else {
        std::fs::write(
            dir.0.join("fixed.wasm"),
            fixed_policy("us-s3", Misbehaviour::None),
        )
        .unwrap();
        "fixed"
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!();
    println!(
        "## In the server: decisions through the router's decider, sequential, warm instances"
    );
    in_server_rows(&rt);

    println!();
    println!("## Gateway PUT throughput, 1 MiB objects, memory backends, concurrency 16");
    // Alternate the two configurations so drift on a shared machine hits both alike.
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        off.push(rt.block_on(put_throughput(&dir.0, "default", 320, 16)));
        on.push(rt.block_on(put_throughput(&dir.0, with_policy, 320, 16)));
    }
    off.sort_by(f64::total_cmp);
    on.sort_by(f64::total_cmp);
    let (off, on) = (off[1], on[1]);
    println!(
        "{:<34} {:>10.1} objects/s  {:>8.1} MiB/s",
        "policy off (built-in default)", off, off
    );
    println!(
        "{:<34} {:>10.1} objects/s  {:>8.1} MiB/s",
        format!("policy on ({with_policy})"),
        on,
        on
    );
    println!("ratio on/off: {:.3} (target >= 0.97)", on / off);

    println!();
    println!(
        "## Isolation: 4 KiB GETs on a bucket with the built-in policy, while 4 clients write to a bucket whose policy loops until its 50 ms deadline"
    );
    let looper = TempDir::new("bench-looper");
    std::fs::write(
        looper.0.join("looper.wasm"),
        fixed_policy("n", Misbehaviour::Loop),
    )
    .unwrap();
    let (mut calm, mut noisy) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        calm.push(rt.block_on(neighbour_latency(&looper.0, 0, 400)));
        noisy.push(rt.block_on(neighbour_latency(&looper.0, 4, 400)));
    }
    let pick = |runs: &[Vec<Duration>], p: f64| {
        let mut v: Vec<Duration> = runs.iter().map(|r| percentile(r, p)).collect();
        v.sort();
        v[1]
    };
    let (calm50, calm99) = (pick(&calm, 0.5), pick(&calm, 0.99));
    let (noisy50, noisy99) = (pick(&noisy, 0.5), pick(&noisy, 0.99));
    println!("{:<34} {:>12} {:>12}", "", "median", "p99");
    println!("{:<34} {calm50:>12?} {calm99:>12?}", "no looping neighbour");
    println!(
        "{:<34} {noisy50:>12?} {noisy99:>12?}",
        "4 clients on the looping bucket"
    );
    println!(
        "ratio p99 noisy/calm: {:.2} (target < 2), median {:.2}",
        noisy99.as_secs_f64() / calm99.as_secs_f64().max(1e-9),
        noisy50.as_secs_f64() / calm50.as_secs_f64().max(1e-9)
    );

    // Last, as the subscriber's access log stays installed: the same decisions as a
    // server makes them, its subscriber (`SWITCHYARD_LOG`, `info` unless set) writing to
    // a sink, so that what the engine logs per decision is in the figure.
    println!();
    println!("## In the server, under the engine's logging (lines to a sink)");
    let (dispatch, _access, _writer) = switchyard::logging::dispatch(false, false, std::io::sink());
    let _default = tracing::dispatcher::set_default(&dispatch);
    in_server_rows(&rt);
}

/// The in-server rows ([`IN_SERVER`]), each example policy that is built.
fn in_server_rows(rt: &tokio::runtime::Runtime) {
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>12}",
        "policy", "median", "p99", "direct med", "direct p99"
    );
    for (label, name, config, admit) in IN_SERVER {
        let wasm = repo_root().join(format!("plugins/{name}/{name}.wasm"));
        if wasm.exists() {
            rt.block_on(in_server(label, &wasm, name, config, admit, 5_000));
        } else {
            println!("{name}: not built (run plugins/build-all.sh); skipped");
        }
    }
}
