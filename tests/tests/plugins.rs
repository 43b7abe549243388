//! The example policies in `plugins/` (Rust, C, JavaScript, Python), built by
//! `plugins/build-all.sh` (which `scripts/test.sh` runs first), inside the gateway against
//! real backends: objects land where each policy says, checked in the backends directly.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use object_store::ObjectStoreExt;
use switchyard_tests::emulators::Moto;
use switchyard_tests::harness::{Gateway, TempDir, repo_root};

fn plugin(name: &str) -> PathBuf {
    let path = repo_root()
        .join("plugins")
        .join(name)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the example policies with plugins/build-all.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

fn install(dir: &Path, name: &str) {
    std::fs::copy(plugin(name), dir.join(format!("{name}.wasm"))).unwrap();
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>, principal_note: &str) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{bucket}/{key} ({principal_note}): {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn example_policies_place_objects_in_real_backends() {
    let plugins = TempDir::new("example-plugins");
    for name in [
        "tenant-residency",
        "age-tiering",
        "latency-routing",
        "size-placement",
        "prefix-placement",
    ] {
        install(&plugins.0, name);
    }
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("eu-data").await.unwrap();
    let us = TempDir::new("us");
    let hot = TempDir::new("hot");
    let cold = TempDir::new("cold");
    let config = format!(
        r#"version = 1
[server]
admin_listen = "127.0.0.1:0"
[plugins]
dir = {plugins:?}
timeout = "2s"
memory_limit = 268435456

[policies.tenant-residency]
config = '{{"prefixes": {{"eu": "eu", "us": "us"}}, "default": "us"}}'
[policies.size-placement]
config = '{{"threshold_bytes": 4096}}'
[policies.age-tiering]
config = '{{"cold_after_seconds": 86400}}'
[policies.prefix-placement]
config = """
logs/ = tier=cold
* = tier=hot
"""

[backends.eu]
kind = "s3"
bucket = "eu-data"
endpoint = {moto:?}
allow_http = true
access_key_id = "x"
secret_access_key = "y"
labels = {{ region = "eu" }}
[backends.us]
kind = "fs"
root = {us:?}
labels = {{ region = "us" }}
[backends.hot]
kind = "fs"
root = {hot:?}
labels = {{ tier = "hot" }}
[backends.cold]
kind = "fs"
root = {cold:?}
labels = {{ tier = "cold" }}

[buckets.residency]
members = ["us", "eu"]
policy = "tenant-residency"
[buckets.sized]
members = ["hot", "cold"]
policy = "size-placement"
[buckets.aged]
members = ["cold", "hot"]
policy = "age-tiering"
[buckets.fast]
members = ["hot", "cold"]
policy = "latency-routing"
[buckets.prefixed]
members = ["hot", "cold"]
policy = "prefix-placement"
"#,
        plugins = plugins.0.display().to_string(),
        moto = moto.endpoint,
        us = us.0.display().to_string(),
        hot = hot.0.display().to_string(),
        cold = cold.0.display().to_string(),
    );
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();

    // Rust: residency by key prefix. eu/ lands in the S3 server, us/ in the us directory.
    put(
        &c,
        "residency",
        "eu/report.pdf",
        b"eu bytes".to_vec(),
        "eu prefix",
    )
    .await;
    put(
        &c,
        "residency",
        "us/report.pdf",
        b"us bytes".to_vec(),
        "us prefix",
    )
    .await;
    let eu = moto.store("eu-data").unwrap();
    let got = eu
        .get(&object_store::path::Path::from("eu/report.pdf"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), b"eu bytes");
    assert!(
        eu.head(&object_store::path::Path::from("us/report.pdf"))
            .await
            .is_err()
    );
    assert_eq!(
        std::fs::read(us.0.join("us/report.pdf")).unwrap(),
        b"us bytes"
    );
    assert!(!us.0.join("eu/report.pdf").exists());

    // Python: size-based placement; the threshold comes from the policy's config.
    put(&c, "sized", "small.txt", vec![1; 100], "small").await;
    put(&c, "sized", "large.bin", vec![2; 10_000], "large").await;
    assert!(hot.0.join("small.txt").exists() && !cold.0.join("small.txt").exists());
    assert!(cold.0.join("large.bin").exists() && !hot.0.join("large.bin").exists());

    // Rust: the age-tiering policy places new writes on the hot member even though the
    // cold one comes first in the bucket.
    put(&c, "aged", "fresh.log", b"new".to_vec(), "fresh").await;
    assert!(hot.0.join("fresh.log").exists() && !cold.0.join("fresh.log").exists());

    // C: placement by key prefix rules naming labels.
    put(
        &c,
        "prefixed",
        "logs/app.log",
        b"log line".to_vec(),
        "logs prefix",
    )
    .await;
    put(&c, "prefixed", "img/a.png", b"png".to_vec(), "catch-all").await;
    assert!(cold.0.join("logs/app.log").exists() && !hot.0.join("logs/app.log").exists());
    assert!(hot.0.join("img/a.png").exists() && !cold.0.join("img/a.png").exists());

    // JavaScript: latency routing decides reads (and places on the fastest member).
    put(&c, "fast", "routed.txt", b"route me".to_vec(), "fast").await;
    let got = c
        .get_object()
        .bucket("fast")
        .key("routed.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"route me"
    );

    let addr = gw.server.as_ref().unwrap().admin_addr().unwrap();
    let m = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (policy, call) in [
        ("tenant-residency", "place"),
        ("size-placement", "place"),
        ("age-tiering", "place"),
        ("latency-routing", "route"),
        ("prefix-placement", "place"),
    ] {
        assert!(
            m.contains(&format!(r#"switchyard_policy_decisions_total{{policy="{policy}",call="{call}",outcome="ok"}}"#)),
            "{policy} {call} not decided by the policy:\n{m}"
        );
    }
    gw.stop().await;
}

/// A `PutObject`/`GetObject`/... request builder's customisation that adds the tenant header.
fn tenant_header(
    tenant: &'static str,
) -> impl Fn(&mut aws_smithy_runtime_api::client::orchestrator::HttpRequest) + Send + Sync + 'static
{
    move |r| {
        r.headers_mut().insert("x-tenant", tenant);
    }
}

/// The WIT 0.2 example (tenant-gate) in the gateway: admission by code on the header it asked
/// for (refusals are the S3 errors it chose, and write nothing), strict routing that keeps
/// reads off a foreign region even when that region holds the key, per-key admission in
/// DeleteObjects, the source of a copy admitted too, and the policy's own counters on
/// `/metrics`. A fail-closed bucket whose policy cannot admit refuses even listings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_0_2_policy_admits_by_header_and_routes_strictly() {
    use switchyard_tests::harness::{err_of, s3_client};
    let plugins = TempDir::new("gate-plugins");
    install(&plugins.0, "tenant-gate");
    let (eu, us) = (TempDir::new("gate-eu"), TempDir::new("gate-us"));
    let config = format!(
        r#"version = 1
[server]
admin_listen = "127.0.0.1:0"
[plugins]
dir = {plugins:?}
timeout = "2s"

[[users]]
access_key = "ALICEKEY"
secret_key = "alice-secret-key-0123"
policy = "full-access"
[[users]]
access_key = "BOBKEY"
secret_key = "bob-secret-key-0123456"
policy = "full-access"

[policies.tenant-gate]
config = '{{"tenants": {{"acme": {{"region": "eu", "principals": ["ALICEKEY"], "max_object_bytes": 1000}}, "globex": {{"region": "us", "principals": ["BOBKEY"]}}}}}}'
headers = ["x-tenant"]
[policies.broken-gate]
config = 'not json'

[backends.eu]
kind = "fs"
root = {eu:?}
labels = {{ region = "eu" }}
[backends.us]
kind = "fs"
root = {us:?}
labels = {{ region = "us" }}

[buckets.shared]
members = ["us", "eu"]
policy = "tenant-gate"
[buckets.closed]
members = ["us"]
policy = "broken-gate"
"#,
        plugins = plugins.0.display().to_string(),
        eu = eu.0.display().to_string(),
        us = us.0.display().to_string(),
    );
    std::fs::copy(
        plugins.0.join("tenant-gate.wasm"),
        plugins.0.join("broken-gate.wasm"),
    )
    .unwrap();
    let gw = Gateway::start(&config).await.unwrap();
    let alice = s3_client(&gw.endpoint, "ALICEKEY", "alice-secret-key-0123");
    let bob = s3_client(&gw.endpoint, "BOBKEY", "bob-secret-key-0123456");

    // Admitted: written to the tenant's region, whatever the bucket's member order.
    alice
        .put_object()
        .bucket("shared")
        .key("acme/a.txt")
        .body(ByteStream::from_static(b"acme data"))
        .customize()
        .mutate_request(tenant_header("acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(eu.0.join("acme/a.txt")).unwrap(),
        b"acme data"
    );
    assert!(!us.0.join("acme/a.txt").exists());

    // Refused with the error the policy chose, before anything is written.
    let refusals = [
        (
            "ALICEKEY",
            Some("acme"),
            "globex/x.txt",
            10,
            (403, "AccessDenied"),
        ),
        (
            "ALICEKEY",
            Some("globex"),
            "globex/x.txt",
            10,
            (403, "AccessDenied"),
        ),
        ("ALICEKEY", None, "acme/y.txt", 10, (400, "InvalidRequest")),
        (
            "ALICEKEY",
            Some("acme"),
            "acme/big.bin",
            1001,
            (400, "EntityTooLarge"),
        ),
        (
            "BOBKEY",
            Some("acme"),
            "acme/z.txt",
            10,
            (403, "AccessDenied"),
        ),
    ];
    for (who, tenant, key, size, want) in refusals {
        let client = if who == "ALICEKEY" { &alice } else { &bob };
        let req = client
            .put_object()
            .bucket("shared")
            .key(key)
            .body(ByteStream::from(vec![7u8; size]));
        let e = match tenant {
            Some(t) => {
                req.customize()
                    .mutate_request(tenant_header(t))
                    .send()
                    .await
            }
            None => req.send().await,
        }
        .expect_err(key);
        let (status, code) = err_of(&e);
        assert_eq!((status, code.as_str()), want, "{who} {tenant:?} {key}");
        assert!(
            !eu.0.join(key).exists() && !us.0.join(key).exists(),
            "{key} written"
        );
    }

    // Strict routing: a copy of globex's key in the eu member (put there behind the
    // gateway's back) is never read; globex reads from us only.
    std::fs::create_dir_all(eu.0.join("globex")).unwrap();
    std::fs::write(eu.0.join("globex/only-in-eu.txt"), b"foreign copy").unwrap();
    let e = bob
        .get_object()
        .bucket("shared")
        .key("globex/only-in-eu.txt")
        .customize()
        .mutate_request(tenant_header("globex"))
        .send()
        .await
        .expect_err("a strict route must not read another region");
    assert_eq!(err_of(&e), (404, "NoSuchKey".to_owned()));
    // Bob writes his own key, and reads it from us.
    bob.put_object()
        .bucket("shared")
        .key("globex/b.txt")
        .body(ByteStream::from_static(b"globex data"))
        .customize()
        .mutate_request(tenant_header("globex"))
        .send()
        .await
        .unwrap();
    assert!(us.0.join("globex/b.txt").exists());

    // The source of a copy is admitted too: alice cannot copy globex's object into acme/.
    let e = alice
        .copy_object()
        .bucket("shared")
        .key("acme/stolen.txt")
        .copy_source("shared/globex/b.txt")
        .customize()
        .mutate_request(tenant_header("acme"))
        .send()
        .await
        .expect_err("copy from another tenant");
    assert_eq!(err_of(&e), (403, "AccessDenied".to_owned()));
    assert!(!eu.0.join("acme/stolen.txt").exists());

    // DeleteObjects admits each key: acme's goes, globex's is refused in the answer.
    let delete = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("acme/a.txt")
                .build()
                .unwrap(),
        )
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("globex/b.txt")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = alice
        .delete_objects()
        .bucket("shared")
        .delete(delete)
        .customize()
        .mutate_request(tenant_header("acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 1, "{out:?}");
    assert_eq!(out.errors().len(), 1, "{out:?}");
    assert_eq!(out.errors()[0].key(), Some("globex/b.txt"));
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    assert!(!eu.0.join("acme/a.txt").exists());
    assert!(us.0.join("globex/b.txt").exists());

    // A fail-closed bucket whose policy cannot admit (its configuration does not parse)
    // refuses everything, listings included.
    let e = alice
        .list_objects_v2()
        .bucket("closed")
        .send()
        .await
        .expect_err("fail-closed admission");
    assert_eq!(err_of(&e), (503, "ServiceUnavailable".to_owned()));

    let addr = gw.server.as_ref().unwrap().admin_addr().unwrap();
    let m = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        r#"switchyard_policy_counter_total{policy="tenant-gate",counter="admissions",tenant="acme",verdict="allow"}"#,
        r#"switchyard_policy_counter_total{policy="tenant-gate",counter="admissions",tenant="acme",verdict="deny"}"#,
        r#"switchyard_policy_decisions_total{policy="tenant-gate",call="admit",outcome="ok"}"#,
        r#"switchyard_policy_decisions_total{policy="broken-gate",call="admit",outcome="refused"}"#,
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    gw.stop().await;
}

/// `policy check` asks a 0.2 policy for admissions too, with the headers given by
/// `--header`: tenant-gate admits its tenant's principal on the tenant's keys only and
/// denies the rest with the S3 errors it chose, and each answer is printed.
#[tokio::test]
async fn policy_check_asks_a_0_2_policy_for_admissions_with_headers() {
    let config = r#"{"tenants": {"acme": {"region": "eu", "principals": ["alice"]}}}"#;
    let wasm = plugin("tenant-gate");
    let wasm = wasm.to_str().unwrap();
    let run = switchyard_tests::harness::run_switchyard(
        &[
            "policy",
            "check",
            wasm,
            "--policy-config",
            config,
            "--header",
            "X-Tenant=acme",
        ],
        &[],
        std::time::Duration::from_secs(120),
    )
    .await
    .unwrap();
    let out = format!("{}\n{}", run.stdout, run.stderr);
    assert!(run.status.success(), "{out}");
    assert!(
        out.contains("switchyard:policy@0.2.0 world policy"),
        "{out}"
    );
    assert!(out.contains("--header"), "{out}");
    // Six sample requests, one admission each; none is by alice on an acme/ key, so the
    // tenant's header reached the policy and each is denied with its own reason.
    let admits: Vec<&str> = out.lines().filter(|l| l.contains(" admit ")).collect();
    assert_eq!(admits.len(), 6, "{out}");
    assert!(
        admits
            .iter()
            .all(|l| l.trim_start().starts_with("ok") && l.contains("deny access-denied")),
        "{out}"
    );
    assert!(
        out.contains("is outside tenant acme's prefix acme/"),
        "the header named the tenant: {out}"
    );
    // Without the header, the policy cannot name a tenant.
    let run = switchyard_tests::harness::run_switchyard(
        &["policy", "check", wasm, "--policy-config", config],
        &[],
        std::time::Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(run.status.success(), "{}", run.stdout);
    assert!(
        !run.stdout.contains("outside tenant acme"),
        "{}",
        run.stdout
    );
}
