//! Migrations across backend kinds, against real servers: S3 (moto) to Azure (Azurite)
//! with the `switchyard migrate` binary, and Azure to GCS (fake-gcs-server) with the
//! library's mover in `move` mode. The source is seeded through the gateway (so metadata is
//! stored the way Switchyard stores it) with 1200 small objects and three multipart-sized
//! ones; afterwards the destination is checked object by object with the backend's own
//! client (tests/python/verify_manifest.py) and the bucket is read through the gateway.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::ObjectStore;
use switchyard::mover::{MigrateSpec, Mode, Progress, Shard, migrate};
use switchyard_tests::harness::{Fixture, Gateway, Kind, TempDir, repo_root, run_switchyard};

/// Past one listing page of S3 and GCS (1000 keys), so the copier and the checks page.
/// (2000 until 7 December: the same pages, for more of the CI run, whose slowest binary
/// this is.)
const SMALL: usize = 1200;
/// Multipart-sized objects: each a few times `[server] part_size` (5 MiB here) and above
/// 8 MiB, so both the seeding PUT through the gateway and the mover's copy go in parts.
const BIG: [usize; 3] = [12 * 1024 * 1024 + 3, 16 * 1024 * 1024, 20 * 1024 * 1024 - 1];
const PART_SIZE: usize = 5 * 1024 * 1024;
const CONTENT_TYPES: [&str; 6] = [
    "text/plain",
    "application/json",
    "image/png",
    "application/octet-stream",
    "text/csv; charset=utf-8",
    "application/x-switchyard-test",
];

/// Migrations run one at a time: two at once on a 2-core machine (each with its own
/// emulators) take longer than both in turn.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Obj {
    key: String,
    body: Bytes,
    content_type: &'static str,
    metadata: BTreeMap<String, String>,
}

/// Bytes that differ from key to key (xorshift64*), so a mixed-up copy shows in the MD5.
fn body(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The data set: small objects of 0..=4096 bytes under a few prefixes (a handful with
/// spaces, `+`, `=` and non-ASCII in their keys), varied content types, zero to three
/// metadata entries with lowercase alphanumeric names; then the multipart-sized ones.
fn objects() -> Vec<Obj> {
    let mut out = Vec::with_capacity(SMALL + BIG.len());
    for i in 0..SMALL {
        let key = match i % 100 {
            7 => format!("odd names/file {i} + more=été.txt"),
            _ => format!("d{}/sub{}/obj-{i:04}.dat", i % 10, i % 3),
        };
        let mut metadata = BTreeMap::new();
        if i % 4 >= 1 {
            metadata.insert("n".into(), i.to_string());
        }
        if i % 4 >= 2 {
            metadata.insert("owner".into(), format!("team{}", i % 7));
        }
        if i % 4 == 3 {
            metadata.insert("batch2".into(), format!("b{}", i % 13));
        }
        out.push(Obj {
            key,
            body: body(i as u64, (i * 7919) % 4097),
            content_type: CONTENT_TYPES[i % CONTENT_TYPES.len()],
            metadata,
        });
    }
    for (i, len) in BIG.iter().enumerate() {
        out.push(Obj {
            key: format!("big/blob-{i}.bin"),
            body: body(1_000_000 + i as u64, *len),
            content_type: "application/octet-stream",
            metadata: BTreeMap::from([("kind".into(), "big".into()), ("n".into(), i.to_string())]),
        });
    }
    out
}

fn md5_hex(b: &[u8]) -> String {
    hex(&Md5::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The manifest verify_manifest.py reads: key -> size, md5, content type, metadata.
fn write_manifest(objs: &[Obj], path: &Path) {
    let m: serde_json::Map<String, serde_json::Value> = objs
        .iter()
        .map(|o| {
            (
                o.key.clone(),
                serde_json::json!({
                    "size": o.body.len(),
                    "md5": md5_hex(&o.body),
                    "content_type": o.content_type,
                    "metadata": o.metadata,
                }),
            )
        })
        .collect();
    std::fs::write(path, serde_json::to_vec(&m).unwrap()).unwrap();
}

/// Moves bucket `data` from member `old` to `new` with the library, `concurrency` keys at
/// a time.
async fn move_data(gw: &Gateway, concurrency: usize) -> Arc<Progress> {
    let router = gw.server.as_ref().unwrap().router();
    let spec = MigrateSpec {
        bucket: "data".into(),
        from: "old".into(),
        to: "new".into(),
        mode: Mode::Move,
        shard: Shard::ALL,
        dry_run: false,
        concurrency,
        bandwidth: None,
    };
    let p = Arc::new(Progress::default());
    migrate(&router, &spec, &p).await.unwrap();
    p
}

/// Bucket `data` over `new` (first: where writes go) and `old`; bucket `seed` over `old`
/// alone, to fill the source the way clients would have.
fn config(old: &Fixture, new: &Fixture) -> String {
    format!(
        "version = 1\n[server]\npart_size = {PART_SIZE}\n[backends.old]\n{}\n[backends.new]\n{}\n\
         [buckets.data]\nmembers = [\"new\", \"old\"]\n[buckets.seed]\nmembers = [\"old\"]\n",
        old.toml, new.toml
    )
}

async fn seed(gw: &Gateway, objs: &[Obj]) {
    let c = gw.client();
    futures::stream::iter(objs)
        .map(|o| {
            let c = c.clone();
            async move {
                let mut put = c
                    .put_object()
                    .bucket("seed")
                    .key(&o.key)
                    .body(ByteStream::from(o.body.clone()))
                    .content_type(o.content_type);
                for (k, v) in &o.metadata {
                    put = put.metadata(k, v);
                }
                put.send()
                    .await
                    .unwrap_or_else(|e| panic!("seeding {}: {e:?}", o.key));
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
}

async fn count(store: &Arc<dyn ObjectStore>) -> usize {
    store
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len()
}

/// Every object, checked in the destination with the backend's own client.
fn verify_native(kind: &str, endpoint: &str, bucket: &str, manifest: &Path) {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/python/verify_manifest.py"))
        .args([
            kind,
            "--endpoint",
            endpoint,
            "--bucket",
            bucket,
            "--manifest",
        ])
        .arg(manifest)
        .output()
        .expect("python3 (run scripts/install-test-tools.sh)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "verify_manifest.py {kind} failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{}", stdout.trim());
}

/// Through the gateway: the merged listing holds every key once, and a sample of objects
/// (every 40th small one and all the big ones) reads back with its attributes.
async fn verify_gateway(gw: &Gateway, objs: &[Obj]) {
    let c = gw.client();
    let mut listed = Vec::new();
    let mut pages = c.list_objects_v2().bucket("data").into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.expect("listing through the gateway");
        listed.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    let mut want: Vec<&str> = objs.iter().map(|o| o.key.as_str()).collect();
    want.sort_unstable();
    assert_eq!(listed.len(), objs.len(), "keys listed through the gateway");
    assert!(
        listed.iter().map(String::as_str).eq(want.iter().copied()),
        "the gateway's listing is the set of keys, in order"
    );
    for o in objs
        .iter()
        .enumerate()
        .filter(|(i, o)| i % 40 == 0 || o.key.starts_with("big/"))
        .map(|(_, o)| o)
    {
        let got = c
            .get_object()
            .bucket("data")
            .key(&o.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {} through the gateway: {e:?}", o.key));
        assert_eq!(got.content_type(), Some(o.content_type), "{}", o.key);
        let meta: BTreeMap<String, String> = got
            .metadata()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        assert_eq!(meta, o.metadata, "{}", o.key);
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes == o.body, "{}: bytes differ", o.key);
    }
}

fn elapsed(t: Instant, what: &str) {
    eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_to_azure_with_the_cli_while_clients_read() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let start = Instant::now();
    let (old, new) = (
        Fixture::new(Kind::S3).await.unwrap(),
        Fixture::new(Kind::Azure).await.unwrap(),
    );
    let cfg = config(&old, &new);
    let dir = TempDir::new("migrate-cross");
    let cfg_path = dir.0.join("switchyard.toml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let manifest = dir.0.join("manifest.json");
    let objs = objects();
    write_manifest(&objs, &manifest);
    let gw = Gateway::start(&cfg).await.unwrap();
    seed(&gw, &objs).await;
    elapsed(start, "started and seeded");
    assert_eq!(count(old.direct.as_ref().unwrap()).await, objs.len());

    // Clients keep reading through the gateway while the migration runs (the objects are
    // found in one member or the other, never missing).
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (c, done, reads) = (gw.client(), done.clone(), reads.clone());
        let sample: Vec<(String, Bytes)> = objs
            .iter()
            .step_by(97)
            .map(|o| (o.key.clone(), o.body.clone()))
            .collect();
        tokio::spawn(async move {
            // Bounded: the migration takes seconds; this stops well after any timeout.
            for (key, want) in sample.iter().cycle().take(100_000) {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let got = c.get_object().bucket("data").key(key).send().await;
                let got = got.unwrap_or_else(|e| panic!("GET {key} during the migration: {e:?}"));
                let bytes = got.body.collect().await.unwrap().into_bytes();
                assert!(bytes == want, "{key}: bytes differ during the migration");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let t = Instant::now();
    let cfg_arg = cfg_path.to_str().unwrap();
    let args = [
        "migrate", "--config", cfg_arg, "--bucket", "data", "--from", "old", "--to", "new",
    ];
    let run = run_switchyard(&args, &[], Duration::from_secs(180))
        .await
        .unwrap();
    done.store(true, Ordering::Relaxed);
    reader.await.expect("reads during the migration");
    elapsed(t, "switchyard migrate s3 -> azure");
    let s = run.summary().unwrap();
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let total: u64 = objs.iter().map(|o| o.body.len() as u64).sum();
    assert_eq!(
        (s.listed, s.copied, s.bytes, s.skipped, s.failed),
        (objs.len() as u64, objs.len() as u64, total, 0, 0),
        "{}",
        run.stdout
    );
    assert!(
        reads.load(Ordering::Relaxed) > 0,
        "no read ran during the migration"
    );

    let t = Instant::now();
    verify_native(
        "azure",
        new.endpoint.as_deref().unwrap(),
        new.bucket.as_deref().unwrap(),
        &manifest,
    );
    elapsed(t, "verified in Azurite with azure-storage-blob");
    // `copy` keeps the source.
    assert_eq!(count(old.direct.as_ref().unwrap()).await, objs.len());
    verify_gateway(&gw, &objs).await;

    // Run again: nothing left to copy.
    let again = run_switchyard(&args, &[], Duration::from_secs(180))
        .await
        .unwrap();
    let s = again.summary().unwrap();
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(
        (s.listed, s.copied, s.skipped, s.failed),
        (objs.len() as u64, 0, objs.len() as u64, 0)
    );
    gw.stop().await;
    elapsed(start, "s3 -> azure in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_to_gcs_move_with_the_library() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let start = Instant::now();
    let (old, new) = (
        Fixture::new(Kind::Azure).await.unwrap(),
        Fixture::new(Kind::Gcs).await.unwrap(),
    );
    let cfg = config(&old, &new);
    let dir = TempDir::new("migrate-cross");
    let manifest = dir.0.join("manifest.json");
    let objs = objects();
    write_manifest(&objs, &manifest);
    let gw = Gateway::start(&cfg).await.unwrap();
    seed(&gw, &objs).await;
    elapsed(start, "started and seeded");
    assert_eq!(count(old.direct.as_ref().unwrap()).await, objs.len());

    let t = Instant::now();
    let p = move_data(&gw, 16).await;
    elapsed(t, "mover azure -> gcs");
    let total: u64 = objs.iter().map(|o| o.body.len() as u64).sum();
    assert_eq!(
        (
            Progress::get(&p.listed),
            Progress::get(&p.copied),
            Progress::get(&p.bytes_copied),
            Progress::get(&p.deleted),
            Progress::get(&p.skipped),
            Progress::get(&p.failed)
        ),
        (
            objs.len() as u64,
            objs.len() as u64,
            total,
            objs.len() as u64,
            0,
            0
        )
    );
    // `move` empties the source.
    assert_eq!(count(old.direct.as_ref().unwrap()).await, 0);

    let t = Instant::now();
    verify_native(
        "gcs",
        new.raw_endpoint.as_deref().unwrap(),
        new.bucket.as_deref().unwrap(),
        &manifest,
    );
    elapsed(t, "verified in fake-gcs-server with google-cloud-storage");
    verify_gateway(&gw, &objs).await;

    // Nothing left to do.
    let p = move_data(&gw, 16).await;
    assert_eq!((Progress::get(&p.listed), Progress::get(&p.failed)), (0, 0));
    gw.stop().await;
    elapsed(start, "azure -> gcs in all");
}

/// An object's tags, as pairs.
type Tags = Vec<(&'static str, &'static str)>;

/// Tags travel with their objects through every kind: a few tagged objects (one above
/// `part_size`, so its copy streams in blocks or parts) move fs -> S3 -> Azure -> GCS ->
/// fs with the library's mover. After each hop every object answers its tags through the
/// gateway, and the destination's own client sees them where that kind keeps them. The
/// S3 and Azure sources answer a read with the tag count only: the mover asks for the
/// tags themselves. The tags are ones Azure takes (ASCII letters, digits, spaces and
/// `+ - . / : = _`), since Azure is on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tagged_objects_move_through_every_kind() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new("migrate-tags");
    let tagged: Vec<(String, Bytes, Tags)> = vec![
        (
            "t/one".into(),
            body(1, 100),
            vec![("team", "blue"), ("note", "two words")],
        ),
        ("t/empty-value".into(), body(2, 0), vec![("k", "")]),
        ("t/untagged".into(), body(3, 10), vec![]),
        (
            "t/ten".into(),
            body(4, 5000),
            (0..10)
                .map(|i| {
                    (
                        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"][i],
                        "v+-./:=_",
                    )
                })
                .collect(),
        ),
        (
            "t/big".into(),
            body(5, PART_SIZE + 1024 * 1024 + 7),
            vec![("size", "big")],
        ),
    ];
    let files: Vec<std::path::PathBuf> = tagged
        .iter()
        .enumerate()
        .map(|(i, (_, b, _))| {
            let f = dir.0.join(format!("body{i}"));
            std::fs::write(&f, b).unwrap();
            f
        })
        .collect();
    let kinds = [Kind::Fs, Kind::S3, Kind::Azure, Kind::Gcs, Kind::Fs];
    let mut old = Fixture::new(kinds[0]).await.unwrap();
    for (hop, next) in kinds.iter().skip(1).enumerate() {
        let new = Fixture::new(*next).await.unwrap();
        let gw = Gateway::start(&config(&old, &new)).await.unwrap();
        let c = gw.client();
        if hop == 0 {
            for (key, b, tags) in &tagged {
                let query = tags
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B").replace(' ', "%20")))
                    .collect::<Vec<_>>()
                    .join("&");
                let mut put = c
                    .put_object()
                    .bucket("seed")
                    .key(key)
                    .body(ByteStream::from(b.clone()));
                if !tags.is_empty() {
                    put = put.tagging(query);
                }
                put.send().await.unwrap();
            }
        }
        let p = move_data(&gw, 4).await;
        let what = format!("{:?} -> {next:?}", kinds[hop]);
        assert_eq!(
            (
                Progress::get(&p.copied),
                Progress::get(&p.deleted),
                Progress::get(&p.failed)
            ),
            (tagged.len() as u64, tagged.len() as u64, 0),
            "{what}"
        );
        for ((key, b, tags), file) in tagged.iter().zip(&files) {
            let mut want: Vec<(String, String)> = tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            want.sort();
            let got = c
                .get_object_tagging()
                .bucket("data")
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: tags of {key}: {e:?}"));
            let mut got: Vec<(String, String)> =
                got.tag_set.into_iter().map(|t| (t.key, t.value)).collect();
            got.sort();
            assert_eq!(got, want, "{what}: tags of {key}");
            let read = c.get_object().bucket("data").key(key).send().await.unwrap();
            assert_eq!(
                read.tag_count,
                (!tags.is_empty()).then_some(tags.len() as i32),
                "{what}: {key}"
            );
            let bytes = read.body.collect().await.unwrap().into_bytes();
            assert!(bytes == *b, "{what}: bytes of {key}");
            // The destination's own client sees them where the kind keeps them.
            let native = match next {
                Kind::S3 => Some("s3"),
                Kind::Azure => Some("azure"),
                Kind::Gcs => Some("gcs"),
                _ => None,
            };
            if let Some(native) = native {
                let endpoint = new.raw_endpoint.as_deref().unwrap();
                let mut cmd = Command::new("python3");
                cmd.arg(repo_root().join("tests/python/eject.py"))
                    .args([native, "read", "--endpoint", endpoint, "--bucket"])
                    .arg(new.bucket.as_deref().unwrap())
                    .args(["--key", key, "--body-file"])
                    .arg(file)
                    .arg("--tags")
                    .args(tags.iter().map(|(k, v)| format!("{k}={v}")))
                    .env("AWS_ACCESS_KEY_ID", "test")
                    .env("AWS_SECRET_ACCESS_KEY", "test")
                    .env("AWS_DEFAULT_REGION", "us-east-1");
                let out = cmd.output().expect("python3");
                assert!(
                    out.status.success(),
                    "{what}: eject.py {native} read {key}:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        gw.stop().await;
        old = new;
    }
}

/// A member kind that keeps no object ACLs (S3 here) never gets an object whose ACL grants
/// more than its owner's FULL_CONTROL: the move fails that key, which stays in the source
/// with its grants, readable as they say. An owner-only ACL is what the object has without
/// one, so it moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_keeps_object_acls_or_refuses_the_key() {
    use aws_sdk_s3::types::ObjectCannedAcl;
    use object_store::ObjectStoreExt as _;
    let _serial = ONE_AT_A_TIME.lock().await;
    let old = Fixture::new(Kind::Fs).await.unwrap();
    let new = Fixture::new(Kind::S3).await.unwrap();
    let toml = format!(
        "version = 1\n[server]\npart_size = {PART_SIZE}\n[backends.old]\n{}\n[backends.new]\n{}\n\
         [buckets.data]\nmembers = [\"new\", \"old\"]\nobject_ownership = \"ObjectWriter\"\n\
         [buckets.seed]\nmembers = [\"old\"]\nobject_ownership = \"ObjectWriter\"\n",
        old.toml, new.toml
    );
    let gw = Gateway::start(&toml).await.unwrap();
    let c = gw.client();
    let acls = [
        ("acl/public", Some(ObjectCannedAcl::PublicRead)),
        ("acl/owner-only", Some(ObjectCannedAcl::Private)),
        ("acl/none", None),
    ];
    for (key, acl) in &acls {
        let mut put = c
            .put_object()
            .bucket("seed")
            .key(*key)
            .body(ByteStream::from_static(b"acl body"));
        if let Some(acl) = acl {
            put = put.acl(acl.clone());
        }
        put.send().await.unwrap();
    }
    let p = move_data(&gw, 2).await;
    assert_eq!(
        (
            Progress::get(&p.copied),
            Progress::get(&p.deleted),
            Progress::get(&p.failed)
        ),
        (2, 2, 1)
    );
    let direct = new.direct.as_ref().unwrap();
    let at_new = |key: &str| {
        let direct = direct.clone();
        let path = object_store::path::Path::from(key);
        async move { direct.head(&path).await.is_ok() }
    };
    assert!(!at_new("acl/public").await, "the public object reached S3");
    assert!(at_new("acl/owner-only").await && at_new("acl/none").await);
    assert!(old.dir.as_ref().unwrap().join("acl/public").exists());
    // Still public, through the gateway, with its grant.
    let anon = switchyard_tests::harness::anonymous_client(&gw.endpoint);
    let read = anon
        .get_object()
        .bucket("data")
        .key("acl/public")
        .send()
        .await
        .expect("the public object stays readable anonymously");
    assert_eq!(
        read.body.collect().await.unwrap().into_bytes().as_ref(),
        b"acl body"
    );
    let acl = c
        .get_object_acl()
        .bucket("data")
        .key("acl/public")
        .send()
        .await
        .unwrap();
    assert!(
        acl.grants().iter().any(|g| g
            .grantee()
            .and_then(|g| g.uri())
            .is_some_and(|u| u.ends_with("/AllUsers"))),
        "{acl:?}"
    );
    // The moved ones are private, as they were.
    let e = anon
        .get_object()
        .bucket("data")
        .key("acl/owner-only")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));
}
