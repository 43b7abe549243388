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

/// A proxy in front of an S3 server that answers chosen PUTs with `500 InternalError`
/// once each: `after` ones once the server has stored the object (an answer lost after
/// the commit, which S3 can give), `before` ones without passing them on.
async fn failing_once(
    upstream: String,
    after: &[&str],
    before: &[&str],
) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pending: Arc<std::sync::Mutex<Vec<(String, bool)>>> = Arc::new(std::sync::Mutex::new(
        after
            .iter()
            .map(|p| (p.to_string(), true))
            .chain(before.iter().map(|p| (p.to_string(), false)))
            .collect(),
    ));
    let (http, log) = (reqwest::Client::new(), failed.clone());
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let (http, upstream, pending, log) =
                (http.clone(), upstream.clone(), pending.clone(), log.clone());
            let svc = hyper::service::service_fn(
                move |req: http::Request<hyper::body::Incoming>| {
                    let (http, upstream, pending, log) =
                        (http.clone(), upstream.clone(), pending.clone(), log.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let path = parts.uri.path().to_owned();
                        let body = body.collect().await?.to_bytes();
                        let fail = {
                            let mut p = pending.lock().unwrap();
                            let hit = (parts.method == http::Method::PUT)
                                .then(|| p.iter().position(|(k, _)| *k == path))
                                .flatten();
                            hit.map(|i| p.remove(i).1)
                        };
                        let internal = || {
                            log.lock().unwrap().push(path.clone());
                            http::Response::builder()
                            .status(500)
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                b"<Error><Code>InternalError</Code><Message>injected</Message></Error>",
                            )))
                            .unwrap()
                        };
                        if fail == Some(false) {
                            return Ok::<_, hyper::Error>(internal());
                        }
                        let url = format!(
                            "{upstream}{}",
                            parts.uri.path_and_query().map_or("/", |p| p.as_str())
                        );
                        let mut out = http.request(parts.method.clone(), url).body(body);
                        for (name, value) in &parts.headers {
                            if name != http::header::HOST {
                                out = out.header(name, value);
                            }
                        }
                        let resp = out.send().await.unwrap();
                        if fail == Some(true) {
                            return Ok(internal());
                        }
                        let mut answer = http::Response::builder().status(resp.status());
                        for (name, value) in resp.headers() {
                            answer = answer.header(name, value);
                        }
                        let bytes = resp.bytes().await.unwrap();
                        Ok(answer.body(http_body_util::Full::new(bytes)).unwrap())
                    }
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc),
            );
        }
    });
    (addr, failed)
}

/// A destination that answers 500 to a copy's write, once after storing it and once
/// without: the copier retries the whole copy (the body cannot be replayed), ends with
/// nothing failed, and the destination holds every object as the source had it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_answered_500_is_retried_whether_or_not_it_was_stored() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("new").await.unwrap();
    let (proxy, failed) = failing_once(
        moto.endpoint.clone(),
        &["/new/obj/0005", "/new/obj/0077"],
        &["/new/obj/0006", "/new/obj/0100"],
    )
    .await;
    let old = TempDir::new("old");
    let s3 = |endpoint: &str| {
        format!(
            "kind = \"s3\"\nbucket = \"new\"\nendpoint = {endpoint:?}\nallow_http = true\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\n"
        )
    };
    let cfg = format!(
        "version = 1\n[backends.old]\nkind = \"fs\"\nroot = {:?}\n[backends.new]\n{}[backends.direct]\n{}[buckets.data]\nmembers = [\"new\", \"old\"]\n[buckets.seed]\nmembers = [\"old\"]\n[buckets.check]\nmembers = [\"direct\"]\n",
        old.0.display().to_string(),
        s3(&format!("http://{proxy}")),
        s3(&moto.endpoint),
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    seed(&gw).await;
    let router = gw.server.as_ref().unwrap().router();
    let p = Arc::new(Progress::default());
    migrate(&router, &spec(Mode::Move, Shard::ALL), &p)
        .await
        .unwrap();
    let mut injected = failed.lock().unwrap().clone();
    injected.sort();
    assert_eq!(
        injected,
        [
            "/new/obj/0005",
            "/new/obj/0006",
            "/new/obj/0077",
            "/new/obj/0100"
        ]
    );
    assert_eq!(p.failed.load(Ordering::Relaxed), 0);
    let c = gw.client();
    for i in 0..KEYS {
        let got = c
            .get_object()
            .bucket("check")
            .key(format!("obj/{i:04}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("obj/{i:04}: {e:?}"));
        assert_eq!(
            got.metadata().and_then(|m| m.get("n")),
            Some(&i.to_string())
        );
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.as_ref(), format!("body of {i}").as_bytes());
    }
    // Moved: the source is empty.
    let left = std::fs::read_dir(old.0.join("obj")).map_or(0, |d| d.count());
    assert_eq!(left, 0);
    gw.stop().await;
}
