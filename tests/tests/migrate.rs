//! The mover: sharded, resumable, conditional copies between members of a bucket while
//! the bucket keeps serving (destination first in its members: writes go there, reads fall
//! through to the source).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use switchyard::mover::{MigrateSpec, Mode, Progress, Shard, migrate};
use switchyard_tests::emulators::Moto;
use switchyard_tests::harness::{Gateway, TempDir};

const KEYS: usize = 120;

fn spec(mode: Mode, shard: Shard) -> MigrateSpec {
    MigrateSpec {
        bucket: "data".into(),
        from: "old".into(),
        to: "new".into(),
        mode,
        shard,
        dry_run: false,
        concurrency: 8,
        bandwidth: None,
    }
}

async fn seed(gw: &Gateway) {
    // Written through a bucket whose only member is the source.
    let c = gw.client();
    for i in 0..KEYS {
        c.put_object()
            .bucket("seed")
            .key(format!("obj/{i:04}"))
            .body(ByteStream::from(format!("body of {i}").into_bytes()))
            .content_type("text/x-seed")
            .metadata("n", i.to_string())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharded_resumable_migration_from_fs_to_s3() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("new").await.unwrap();
    let old = TempDir::new("old");
    let cfg = format!(
        "version = 1\n[backends.old]\nkind = \"fs\"\nroot = {:?}\n[backends.new]\nkind = \"s3\"\nbucket = \"new\"\nendpoint = {:?}\nallow_http = true\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\n[buckets.data]\nmembers = [\"new\", \"old\"]\n[buckets.seed]\nmembers = [\"old\"]\n",
        old.0.display().to_string(),
        moto.endpoint
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    seed(&gw).await;
    let router = gw.server.as_ref().unwrap().router();

    // A dry run changes nothing.
    let p = Arc::new(Progress::default());
    migrate(
        &router,
        &MigrateSpec {
            dry_run: true,
            ..spec(Mode::Copy, Shard::ALL)
        },
        &p,
    )
    .await
    .unwrap();
    assert_eq!(p.copied.load(Ordering::Relaxed), KEYS as u64);
    let direct = moto.store("new").unwrap();
    assert!(
        direct
            .head(&object_store::path::Path::from("obj/0000"))
            .await
            .is_err()
    );

    // Shard 0/3 is interrupted part-way (as a kill would), then all three shards run.
    let first = Arc::new(Progress::default());
    let interrupted = {
        let (router, first) = (router.clone(), first.clone());
        tokio::spawn(async move {
            migrate(
                &router,
                &spec(Mode::Copy, Shard { index: 0, count: 3 }),
                &first,
            )
            .await
        })
    };
    while first.copied.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    interrupted.abort();
    let _ = interrupted.await;
    let before = first.copied.load(Ordering::Relaxed);
    let (mut copied, mut listed) = (before, 0);
    for i in 0..3 {
        let p = Arc::new(Progress::default());
        migrate(&router, &spec(Mode::Copy, Shard { index: i, count: 3 }), &p)
            .await
            .unwrap();
        assert_eq!(p.failed.load(Ordering::Relaxed), 0);
        copied += p.copied.load(Ordering::Relaxed);
        listed += p.listed.load(Ordering::Relaxed);
    }
    // The shards cover every key exactly once, and the resumed runs copied only what the
    // interrupted one had not: at most the copies in flight when it was stopped (whose
    // completion it could not count) are missing from the tally, none is counted twice.
    assert_eq!(listed, KEYS as u64);
    assert!(
        copied <= KEYS as u64 && copied + 8 >= KEYS as u64,
        "{before} + resumed = {copied}"
    );
    let in_s3 = direct.list(None).count().await;
    assert_eq!(in_s3, KEYS);

    // Bytes and metadata equal, checked in S3 directly.
    for i in [0usize, 57, KEYS - 1] {
        let r = direct
            .get(&object_store::path::Path::from(format!("obj/{i:04}")))
            .await
            .unwrap();
        let attrs = r.attributes.clone();
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            format!("body of {i}").as_bytes()
        );
        let ct = attrs
            .get(&object_store::Attribute::ContentType)
            .map(|v| v.as_ref().to_owned());
        assert_eq!(ct.as_deref(), Some("text/x-seed"));
        let n = attrs
            .get(&object_store::Attribute::Metadata("n".into()))
            .map(|v| v.as_ref().to_owned());
        assert_eq!(n.as_deref(), Some(i.to_string().as_str()));
    }

    // A second run copies nothing; a move run then empties the source.
    let p = Arc::new(Progress::default());
    migrate(&router, &spec(Mode::Copy, Shard::ALL), &p)
        .await
        .unwrap();
    assert_eq!(
        (
            p.copied.load(Ordering::Relaxed),
            p.skipped.load(Ordering::Relaxed)
        ),
        (0, KEYS as u64)
    );
    let p = Arc::new(Progress::default());
    migrate(&router, &spec(Mode::Move, Shard::ALL), &p)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_dir(old.0.join("obj"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    // Through the gateway, nothing changed for clients.
    let c = gw.client();
    let got = c
        .get_object()
        .bucket("data")
        .key("obj/0042")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/x-seed"));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"body of 42"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn newer_client_writes_and_deletes_win_over_the_copy() {
    let (old, new) = (TempDir::new("old"), TempDir::new("new"));
    let cfg = format!(
        "version = 1\n[backends.old]\nkind = \"fs\"\nroot = {:?}\n[backends.new]\nkind = \"fs\"\nroot = {:?}\n[buckets.data]\nmembers = [\"new\", \"old\"]\n[buckets.seed]\nmembers = [\"old\"]\n",
        old.0.display().to_string(),
        new.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    seed(&gw).await;
    let c = gw.client();
    // During the migration window: a client rewrites one key (it goes to the new member)
    // and deletes another (from both members).
    c.put_object()
        .bucket("data")
        .key("obj/0001")
        .body(ByteStream::from_static(b"newer"))
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("data")
        .key("obj/0002")
        .send()
        .await
        .unwrap();
    let router = gw.server.as_ref().unwrap().router();
    let p = Arc::new(Progress::default());
    migrate(&router, &spec(Mode::Move, Shard::ALL), &p)
        .await
        .unwrap();
    assert_eq!(p.failed.load(Ordering::Relaxed), 0);
    assert_eq!(
        std::fs::read(new.0.join("obj/0001")).unwrap(),
        b"newer",
        "the stale copy must not overwrite"
    );
    assert!(
        !new.0.join("obj/0002").exists(),
        "a deleted key must not come back"
    );
    assert_eq!(
        std::fs::read_dir(new.0.join("obj")).unwrap().count(),
        KEYS - 1
    );
    gw.stop().await;
}
