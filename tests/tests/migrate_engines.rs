//! Three engines as three processes: `switchyard migrate --shard 0/3`, `1/3` and `2/3` run
//! at once over one bucket (a local directory to moto S3) with no coordination, and
//! together copy every key exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use switchyard::mover::Shard;
use switchyard_tests::harness::{Fixture, Kind, MigrateSummary, TempDir, run_switchyard};

const KEYS: usize = 1500;
const ENGINES: u64 = 3;
const LIMIT: Duration = Duration::from_secs(120);

/// Key -> bytes: small files under a few directories.
fn data() -> BTreeMap<String, Vec<u8>> {
    (0..KEYS)
        .map(|i| {
            let key = format!("part{}/n{}/key-{i:05}.txt", i % 7, i % 2);
            let body = format!("object {i} ").repeat(i % 50).into_bytes();
            (key, body)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_engines_cover_every_key_exactly_once() {
    let start = Instant::now();
    let new = Fixture::new(Kind::S3).await.unwrap();
    let old = TempDir::new("engines-old");
    // The source as another tool left it: plain files, served as objects at once.
    let data = data();
    for (key, body) in &data {
        let path = old.0.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let cfg = format!(
        "version = 1\n[backends.old]\nkind = \"fs\"\nroot = {:?}\n[backends.new]\n{}\n\
         [buckets.data]\nmembers = [\"new\", \"old\"]\n",
        old.0.display().to_string(),
        new.toml
    );
    let dir = TempDir::new("engines");
    let cfg_path = dir.0.join("switchyard.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let cfg_arg = cfg_path.to_str().unwrap();
    let base = [
        "migrate", "--config", cfg_arg, "--bucket", "data", "--from", "old", "--to", "new",
    ];

    // What each shard should take, by the published hash.
    let owned: Vec<u64> = (0..ENGINES)
        .map(|index| {
            let shard = Shard {
                index,
                count: ENGINES,
            };
            data.keys().filter(|k| shard.owns(k)).count() as u64
        })
        .collect();

    let t = Instant::now();
    let shards: Vec<String> = (0..ENGINES).map(|i| format!("{i}/{ENGINES}")).collect();
    let runs = futures::future::join_all(shards.iter().map(|shard| {
        let mut args = base.to_vec();
        args.extend(["--shard", shard.as_str(), "--concurrency", "8"]);
        async move { run_switchyard(&args, &[], LIMIT).await }
    }))
    .await;
    eprintln!("three engines at once: {:.1} s", t.elapsed().as_secs_f64());
    let mut total = MigrateSummary::default();
    for (i, run) in runs.into_iter().enumerate() {
        let run = run.unwrap();
        let s = run.summary().unwrap();
        eprintln!("shard {i}/{ENGINES}: {s:?}");
        assert!(
            run.status.success(),
            "shard {i}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(s.failed, 0, "shard {i}: {}", run.stderr);
        assert!(s.copied > 0, "shard {i} copied nothing");
        assert_eq!(
            (s.listed, s.copied, s.skipped),
            (owned[i], owned[i], 0),
            "shard {i} takes the keys the hash gives it"
        );
        total.listed += s.listed;
        total.copied += s.copied;
        total.bytes += s.bytes;
    }
    let bytes: u64 = data.values().map(|b| b.len() as u64).sum();
    assert_eq!(
        (total.listed, total.copied, total.bytes),
        (KEYS as u64, KEYS as u64, bytes),
        "together the shards copy every key once"
    );

    // The destination holds every key, with its size; a sample is read back whole.
    let direct = new.direct.as_ref().unwrap();
    let listed: BTreeMap<String, u64> = direct
        .list(None)
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .unwrap();
    let want: BTreeMap<String, u64> = data
        .iter()
        .map(|(k, b)| (k.clone(), b.len() as u64))
        .collect();
    assert!(listed == want, "the destination differs from the source");
    for (key, body) in data.iter().step_by(50) {
        let got = direct
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), body.as_slice(), "{key}");
    }

    // One engine again, its shard from SWITCHYARD_SHARD: everything is there already.
    let again = run_switchyard(&base, &[("SWITCHYARD_SHARD", "1/3")], LIMIT)
        .await
        .unwrap();
    let s = again.summary().unwrap();
    assert!(again.status.success(), "{}", again.stderr);
    assert!(
        again.stdout.contains("(shard 1/3)"),
        "the shard comes from SWITCHYARD_SHARD: {}",
        again.stdout
    );
    assert_eq!(
        (s.listed, s.copied, s.skipped, s.failed),
        (owned[1], 0, owned[1], 0)
    );
    eprintln!("in all: {:.1} s", start.elapsed().as_secs_f64());
}
