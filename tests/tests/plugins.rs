//! The example policies in `plugins/` (Rust, JavaScript, Python), built by
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
        ("tenant-residency", "Place"),
        ("size-placement", "Place"),
        ("age-tiering", "Place"),
        ("latency-routing", "Route"),
    ] {
        assert!(
            m.contains(&format!(r#"switchyard_policy_decisions_total{{policy="{policy}",call="{call}",outcome="Ok"}}"#)),
            "{policy} {call} not decided by the policy:\n{m}"
        );
    }
    gw.stop().await;
}
