//! The migration guarantee checked against a model: clients write, overwrite, delete and
//! read through the gateway while a `switchyard migrate --mode move` process copies the
//! bucket, and the copier is killed with SIGKILL in the middle and started again. At the
//! end the destination holds exactly the model's final state, byte for byte, and the
//! source is empty.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::{Rng, SeedableRng};
use switchyard_tests::emulators::Moto;
use switchyard_tests::harness::{Gateway, TempDir, err_of, switchyard_bin};

const KEYS: usize = 400;
const CLIENTS: usize = 4;
const OPS_PER_CLIENT: usize = 250;

fn copier(config: &std::path::Path) -> Child {
    Command::new(switchyard_bin().unwrap())
        .args(["migrate", "--config"])
        .arg(config)
        .args([
            "--bucket",
            "data",
            "--from",
            "old",
            "--to",
            "new",
            "--mode",
            "move",
            "--concurrency",
            "4",
            // Slow enough that the kill lands mid-run.
            "--bandwidth",
            "400KiB/s",
        ])
        .env("SWITCHYARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the copier")
}

fn body(key: usize, version: u32, rng: &mut impl Rng) -> Vec<u8> {
    let len = rng.random_range(0..12 * 1024);
    let mut b = format!("key {key} version {version}\n").into_bytes();
    b.extend((0..len).map(|i| (i as u8).wrapping_mul(version as u8 | 1)));
    b
}

/// One client: owns the keys `i % CLIENTS == id`, so its view of them is the truth.
async fn client(
    gw_client: aws_sdk_s3::Client,
    id: usize,
    seed: u64,
    stale_reads: Arc<std::sync::atomic::AtomicU64>,
) -> BTreeMap<usize, Option<Vec<u8>>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mine: Vec<usize> = (0..KEYS).filter(|k| k % CLIENTS == id).collect();
    let mut model: BTreeMap<usize, Option<Vec<u8>>> =
        mine.iter().map(|&k| (k, Some(seed_body(k)))).collect();
    let mut version = 1u32;
    for _ in 0..OPS_PER_CLIENT {
        let k = mine[rng.random_range(0..mine.len())];
        let key = format!("k/{k:04}");
        match rng.random_range(0..10) {
            // Overwrite (or re-create after a delete).
            0..=3 => {
                version += 1;
                let b = body(k, version, &mut rng);
                gw_client
                    .put_object()
                    .bucket("data")
                    .key(&key)
                    .body(ByteStream::from(b.clone()))
                    .content_type("application/x-model")
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
                model.insert(k, Some(b));
            }
            4..=5 => {
                gw_client
                    .delete_object()
                    .bucket("data")
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("DELETE {key}: {e:?}"));
                model.insert(k, None);
            }
            // Read: a live key reads exactly as last written, wherever it is.
            _ => {
                let got = gw_client.get_object().bucket("data").key(&key).send().await;
                match (&model[&k], got) {
                    (Some(want), Ok(o)) => {
                        let b = o.body.collect().await.unwrap().into_bytes();
                        assert_eq!(b.as_ref(), want.as_slice(), "GET {key} during migration");
                    }
                    (Some(_), Err(e)) => panic!("GET {key}: {:?}", err_of(&e)),
                    (None, Err(e)) => assert_eq!(err_of(&e), (404, "NoSuchKey".into())),
                    // A read racing the copy of a key just deleted may see the old
                    // object until the copier's check removes it (docs/migration.md).
                    (None, Ok(_)) => {
                        stale_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..6))).await;
    }
    model
}

fn seed_body(k: usize) -> Vec<u8> {
    format!("seed {k} ").repeat(1 + k % 700).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_and_a_killed_copier_end_in_the_model_state() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("new").await.unwrap();
    let old = TempDir::new("model-old");
    let work = TempDir::new("model-cfg");
    let cfg = format!(
        "version = 1\n[backends.old]\nkind = \"fs\"\nroot = {:?}\n[backends.new]\nkind = \"s3\"\nbucket = \"new\"\nendpoint = {:?}\nallow_http = true\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\n[buckets.data]\nmembers = [\"new\", \"old\"]\n[buckets.seed]\nmembers = [\"old\"]\n",
        old.0.display().to_string(),
        moto.endpoint
    );
    let cfg_path = work.0.join("switchyard.toml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();

    // The source before the migration.
    futures::stream::iter(0..KEYS)
        .map(|k| {
            let c = c.clone();
            async move {
                c.put_object()
                    .bucket("seed")
                    .key(format!("k/{k:04}"))
                    .body(ByteStream::from(seed_body(k)))
                    .content_type("application/x-seed")
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    let seed: u64 = rand::rng().random();
    println!("model seed {seed}");
    let stale_reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client(
                c.clone(),
                id,
                seed.wrapping_add(id as u64),
                stale_reads.clone(),
            ))
        })
        .collect();

    // The copier, killed with SIGKILL part-way, then started again.
    let mut first = copier(&cfg_path);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        first.try_wait().unwrap().is_none(),
        "the copier ended before the kill: slow it down"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let second = copier(&cfg_path);

    let mut model = BTreeMap::new();
    for c in clients {
        model.extend(c.await.unwrap());
    }
    let out = tokio::task::spawn_blocking(move || second.wait_with_output().unwrap())
        .await
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "second copier: {summary}");
    assert!(summary.contains("failed 0"), "{summary}");

    // A full pass after the last client operation leaves nothing behind.
    let started = Instant::now();
    let last = copier(&cfg_path).wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&last.stdout);
    assert!(last.status.success(), "final copier: {summary}");
    println!("final pass in {:?}: {summary}", started.elapsed());

    // The destination, read with its own client, is exactly the model.
    let direct = moto.store("new").unwrap();
    let listed: Vec<String> = direct
        .list(None)
        .map(|o| o.unwrap().location.to_string())
        .collect::<Vec<_>>()
        .await;
    let want: Vec<String> = model
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| format!("k/{k:04}"))
        .collect();
    assert_eq!(listed, want, "the destination's keys");
    for (k, v) in &model {
        let Some(v) = v else { continue };
        let got = direct
            .get(&object_store::path::Path::from(format!("k/{k:04}")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), v.as_slice(), "k/{k:04} in the destination");
    }
    // Moved: nothing is left in the source.
    let left: Vec<_> = walk(&old.0.join("k"));
    assert!(left.is_empty(), "left in the source: {left:?}");
    println!(
        "{} live keys, {} deleted, {} stale reads of deleted keys",
        want.len(),
        model.len() - want.len(),
        stale_reads.load(std::sync::atomic::Ordering::Relaxed)
    );
    gw.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}
