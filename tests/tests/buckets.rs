//! Buckets made and removed through the S3 API (`[dynamic_buckets]`): DeleteBucket as AWS
//! does it, and what it must never do to writes racing it.

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use object_store::ObjectStoreExt as _;
use switchyard_tests::harness::{Fixture, Gateway, Kind, TempDir, anonymous_client, err_of};

fn fs_config(root: &TempDir) -> String {
    format!(
        "version = 1\n[dynamic_buckets]\nkind = \"fs\"\nroot = {:?}\n",
        root.0.display().to_string()
    )
}

const MEMORY_CONFIG: &str = "version = 1\n[dynamic_buckets]\nkind = \"memory\"\n";

/// An incomplete multipart upload does not keep a bucket alive: DeleteBucket aborts it
/// (every tool's cleanup is "empty the bucket, delete it"); objects still do.
async fn uploads_do_not_keep_a_bucket(config: &str) {
    let gw = Gateway::start(config).await.unwrap();
    let c = gw.client();
    c.create_bucket().bucket("mpu-only").send().await.unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("mpu-only")
        .key("big")
        .send()
        .await
        .unwrap();
    c.upload_part()
        .bucket("mpu-only")
        .key("big")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("mpu-only").send().await.unwrap();
    let e = c.head_bucket().bucket("mpu-only").send().await.unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    let e = c
        .list_multipart_uploads()
        .bucket("mpu-only")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchBucket".into()));

    c.create_bucket().bucket("full").send().await.unwrap();
    c.put_object()
        .bucket("full")
        .key("a/b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let e = c.delete_bucket().bucket("full").send().await.unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketNotEmpty".into()));
    c.delete_object()
        .bucket("full")
        .key("a/b")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("full").send().await.unwrap();
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_aborts_uploads_fs() {
    let root = TempDir::new("dyn-mpu");
    uploads_do_not_keep_a_bucket(&fs_config(&root)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_aborts_uploads_memory() {
    uploads_do_not_keep_a_bucket(MEMORY_CONFIG).await;
}

/// DeleteBucket (through `deleter`) racing PUTs into the bucket (through `writer`): a
/// delete that succeeds saw no acknowledged write (each PUT either landed first, and then
/// the delete is refused, or fails with NoSuchBucket); a refused delete leaves every
/// acknowledged object readable.
/// Round `r` starts the delete `r * step_us` µs after the PUTs are sent.
async fn delete_racing_puts(
    deleter: &Gateway,
    writer: &Gateway,
    tag: &str,
    rounds: u64,
    step_us: u64,
) {
    let (c, w) = (deleter.client(), writer.client());
    let mut deleted_rounds = 0;
    let mut refused_rounds = 0;
    for round in 0..rounds {
        let bucket = format!("race-{tag}-{round}");
        c.create_bucket().bucket(&bucket).send().await.unwrap();
        let puts = futures::stream::iter(0..24)
            .map(|i| {
                let (c, bucket) = (w.clone(), bucket.clone());
                async move {
                    // Spread over the delete's moment; nested keys make directories.
                    tokio::time::sleep(std::time::Duration::from_micros(2000 + i * 150)).await;
                    let key = format!("p{}/q/k{i}", i % 3);
                    let r = c
                        .put_object()
                        .bucket(&bucket)
                        .key(&key)
                        .body(ByteStream::from(format!("body {i}").into_bytes()))
                        .send()
                        .await;
                    (key, r.is_ok())
                }
            })
            .buffer_unordered(24)
            .collect::<Vec<_>>();
        let delete = async {
            tokio::time::sleep(std::time::Duration::from_micros(round * step_us)).await;
            c.delete_bucket().bucket(&bucket).send().await
        };
        let (puts, deleted) = tokio::join!(puts, delete);
        let acked: Vec<&String> = puts.iter().filter(|(_, ok)| *ok).map(|(k, _)| k).collect();
        match deleted {
            Ok(_) => {
                deleted_rounds += 1;
                assert!(
                    acked.is_empty(),
                    "round {round}: DeleteBucket succeeded, yet PUTs of {acked:?} were acknowledged"
                );
                let e = c.head_bucket().bucket(&bucket).send().await.unwrap_err();
                assert_eq!(err_of(&e).0, 404, "round {round}: the bucket came back");
            }
            Err(e) => {
                refused_rounds += 1;
                assert_eq!(err_of(&e), (409, "BucketNotEmpty".into()), "round {round}");
                for key in acked {
                    let got = c.get_object().bucket(&bucket).key(key).send().await;
                    assert!(got.is_ok(), "round {round}: acknowledged {key} is gone");
                }
            }
        }
    }
    println!("{deleted_rounds} deletes went through, {refused_rounds} were refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_racing_puts_loses_nothing_fs() {
    let root = TempDir::new("dyn-race");
    let config = fs_config(&root);
    let (a, b) = (
        Gateway::start(&config).await.unwrap(),
        Gateway::start(&config).await.unwrap(),
    );
    delete_racing_puts(&a, &a, "one", 40, 150).await;
    delete_racing_puts(&a, &b, "two", 40, 150).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_racing_puts_loses_nothing_memory() {
    let gw = Gateway::start(MEMORY_CONFIG).await.unwrap();
    delete_racing_puts(&gw, &gw, "one", 40, 150).await;
    gw.stop().await;
}

/// CompleteMultipartUpload racing DeleteBucket, from two engines (`a` deletes, `b`
/// completes; in one engine the bucket's write gate orders them): either the upload
/// completes first and the delete is refused (the object stays readable), or the delete
/// goes first, taking the upload with it, and the completion fails with 404
/// (NoSuchUpload or NoSuchBucket) leaving nothing. Never both acknowledged, never a 500.
/// Round `r` starts the delete `r * step_us` µs after the completion's moment.
async fn complete_racing_delete(a: &Gateway, b: &Gateway, rounds: u64, step_us: u64) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let (ca, cb) = (a.client(), b.client());
    let (mut completed, mut deleted) = (0, 0);
    for round in 0..rounds {
        let bucket = format!("mpu-race-{round}");
        ca.create_bucket().bucket(&bucket).send().await.unwrap();
        let up = cb
            .create_multipart_upload()
            .bucket(&bucket)
            .key("k/obj")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_owned();
        let part = cb
            .upload_part()
            .bucket(&bucket)
            .key("k/obj")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(vec![7u8; 300_000]))
            .send()
            .await
            .unwrap();
        // The delete comes at a moment anywhere from before the completion starts to
        // after it ends.
        let complete = async {
            tokio::time::sleep(std::time::Duration::from_micros(1000)).await;
            cb.complete_multipart_upload()
                .bucket(&bucket)
                .key("k/obj")
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .parts(
                            CompletedPart::builder()
                                .part_number(1)
                                .e_tag(part.e_tag().unwrap())
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
        };
        let delete = async {
            tokio::time::sleep(std::time::Duration::from_micros(round * step_us)).await;
            ca.delete_bucket().bucket(&bucket).send().await
        };
        let (completion, deletion) = tokio::join!(complete, delete);
        match (&completion, &deletion) {
            (Ok(_), Err(e)) => {
                completed += 1;
                assert_eq!(err_of(e), (409, "BucketNotEmpty".into()), "round {round}");
                let got = ca.get_object().bucket(&bucket).key("k/obj").send().await;
                assert!(got.is_ok(), "round {round}: the completed object is gone");
                ca.delete_object()
                    .bucket(&bucket)
                    .key("k/obj")
                    .send()
                    .await
                    .unwrap();
                ca.delete_bucket().bucket(&bucket).send().await.unwrap();
            }
            (Err(e), Ok(_)) => {
                deleted += 1;
                let (status, code) = err_of(e);
                assert!(
                    status == 404 && (code == "NoSuchUpload" || code == "NoSuchBucket"),
                    "round {round}: the completion of an upload whose bucket was deleted answered {status} {code}"
                );
                let e = ca.head_bucket().bucket(&bucket).send().await.unwrap_err();
                assert_eq!(err_of(&e).0, 404, "round {round}: the bucket came back");
            }
            (c, d) => panic!("round {round}: completion {c:?}, deletion {d:?}"),
        }
    }
    println!("{completed} completions went first, {deleted} deletes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_racing_a_completion_fs() {
    let root = TempDir::new("dyn-mpu-race");
    let config = fs_config(&root);
    let (a, b) = (
        Gateway::start(&config).await.unwrap(),
        Gateway::start(&config).await.unwrap(),
    );
    complete_racing_delete(&a, &a, 30, 500).await;
    complete_racing_delete(&a, &b, 30, 500).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_racing_a_completion_memory() {
    let gw = Gateway::start(MEMORY_CONFIG).await.unwrap();
    complete_racing_delete(&gw, &gw, 30, 500).await;
    gw.stop().await;
}

/// `a` and `b` making each of `rounds` names at once: exactly one makes it, the other
/// answers as for a bucket that exists (the same user: BucketAlreadyOwnedByYou).
async fn create_racing(a: &Gateway, b: &Gateway, rounds: usize, what: &str) {
    let (ca, cb) = (a.client(), b.client());
    for round in 0..rounds {
        let name = format!("both-{round}");
        let (ra, rb) = tokio::join!(
            ca.create_bucket().bucket(&name).send(),
            cb.create_bucket().bucket(&name).send()
        );
        let lost = match (ra, rb) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            (ra, rb) => panic!("{what} round {round}: {ra:?} / {rb:?}"),
        };
        assert_eq!(
            err_of(&lost),
            (409, "BucketAlreadyOwnedByYou".into()),
            "{what} round {round}"
        );
    }
}

/// Two engines sharing an fs root making one bucket at once: exactly one makes it, the
/// other answers as for a bucket that exists (the same user: BucketAlreadyOwnedByYou).
/// Was: both made it, and each answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_bucket_racing_across_engines_fs() {
    let root = TempDir::new("dyn-create-race");
    let config = fs_config(&root);
    let (a, b) = (
        Gateway::start(&config).await.unwrap(),
        Gateway::start(&config).await.unwrap(),
    );
    create_racing(&a, &b, 20, "fs").await;
    let names: Vec<_> = std::fs::read_dir(&root.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "left beside the buckets: {names:?}");
    a.stop().await;
    b.stop().await;
}

// ---------------------------------------------------------------------------------------
// Remote templates: a prefix per bucket inside one S3 bucket, Azure container or GCS
// bucket, the bucket being its record (`<prefix>/<bucket>/.switchyard/bucket-creator`).
// ---------------------------------------------------------------------------------------

/// A `[dynamic_buckets]` template over a fresh bucket/container of `kind`'s emulator.
async fn remote(kind: Kind) -> (Fixture, String) {
    let fx = Fixture::new(kind).await.unwrap();
    let config = format!(
        "version = 1\n[[users]]\naccess_key = \"other\"\nsecret_key = \"other-secret\"\npolicy = \"full-access\"\n[dynamic_buckets]\n{}prefix = \"buckets\"\n",
        fx.toml
    );
    (fx, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_aborts_uploads_remote() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        uploads_do_not_keep_a_bucket(&config).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_racing_puts_loses_nothing_remote() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        let (a, b) = (
            Gateway::start(&config).await.unwrap(),
            Gateway::start(&config).await.unwrap(),
        );
        // Fewer rounds than on `fs`, in longer steps over the PUTs' first 3 ms: each
        // costs some 40 requests to an emulator.
        delete_racing_puts(&a, &a, "one", 12, 250).await;
        // Across engines: the writer's engine is not fenced by the deleter's write gate.
        delete_racing_puts(&a, &b, "two", 12, 250).await;
        a.stop().await;
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_bucket_racing_a_completion_remote() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        let gw = Gateway::start(&config).await.unwrap();
        // Fewer rounds, in longer steps over the same 15 ms: a round is a few dozen
        // requests to an emulator.
        complete_racing_delete(&gw, &gw, 20, 750).await;
        gw.stop().await;
    }
}

/// Two engines over one remote template making one bucket at once: the record is
/// written only if absent, so exactly one makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_bucket_racing_across_engines_remote() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        let (a, b) = (
            Gateway::start(&config).await.unwrap(),
            Gateway::start(&config).await.unwrap(),
        );
        create_racing(&a, &b, 10, &format!("{kind:?}")).await;
        a.stop().await;
        b.stop().await;
    }
}

/// A bucket made again after a DeleteBucket inherits nothing from the one before: not
/// its policy (which opened it to anonymous reads), uploads or owner.
async fn made_again_inherits_nothing(config: &str) {
    let gw = Gateway::start(config).await.unwrap();
    let c = gw.client();
    let other = switchyard_tests::harness::s3_client(&gw.endpoint, "other", "other-secret");
    let anonymous = anonymous_client(&gw.endpoint);
    c.create_bucket().bucket("reused").send().await.unwrap();
    c.put_bucket_policy()
        .bucket("reused")
        .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::reused/*"}]}"#)
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("reused")
        .key("k")
        .body(ByteStream::from_static(b"public"))
        .send()
        .await
        .unwrap();
    anonymous
        .get_object()
        .bucket("reused")
        .key("k")
        .send()
        .await
        .unwrap();
    c.create_multipart_upload()
        .bucket("reused")
        .key("half")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("reused")
        .key("k")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("reused").send().await.unwrap();

    other.create_bucket().bucket("reused").send().await.unwrap();
    let e = other
        .get_bucket_policy()
        .bucket("reused")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchBucketPolicy".into()));
    let uploads = other
        .list_multipart_uploads()
        .bucket("reused")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    other
        .put_object()
        .bucket("reused")
        .key("k")
        .body(ByteStream::from_static(b"private"))
        .send()
        .await
        .unwrap();
    let e = anonymous
        .get_object()
        .bucket("reused")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 403);
    let e = c.create_bucket().bucket("reused").send().await.unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketAlreadyExists".into()));
    other
        .delete_object()
        .bucket("reused")
        .key("k")
        .send()
        .await
        .unwrap();
    other.delete_bucket().bucket("reused").send().await.unwrap();
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_made_again_inherits_nothing() {
    let root = TempDir::new("dyn-reuse");
    made_again_inherits_nothing(&format!(
        "{}[[users]]\naccess_key = \"other\"\nsecret_key = \"other-secret\"\npolicy = \"full-access\"\n",
        fs_config(&root)
    ))
    .await;
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        made_again_inherits_nothing(&config).await;
    }
}

/// DeleteBucket stopped at each step (as by a crash there: what follows never runs)
/// leaves a bucket that exists, with its record, for this engine and a fresh one; asked
/// again, the delete finishes, and the name made again inherits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_cut_short_leaves_a_bucket_remote() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        for point in [
            "router::bucket_uploads_aborted",
            "router::bucket_record_next",
        ] {
            let gw = Gateway::start(&config).await.unwrap();
            let c = gw.client();
            let bucket = format!("cut-{}", point.len());
            c.create_bucket().bucket(&bucket).send().await.unwrap();
            c.put_bucket_policy()
                .bucket(&bucket)
                .policy(format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#))
                .send()
                .await
                .unwrap();
            c.create_multipart_upload()
                .bucket(&bucket)
                .key("half")
                .send()
                .await
                .unwrap();
            fail::cfg(point, &format!("return({bucket})")).unwrap();
            let e = c.delete_bucket().bucket(&bucket).send().await.unwrap_err();
            fail::remove(point);
            assert_eq!(err_of(&e).0, 500, "{kind:?} {point}");
            let fresh = Gateway::start(&config).await.unwrap();
            for ec in [c.clone(), fresh.client()] {
                ec.head_bucket().bucket(&bucket).send().await.unwrap();
                let listed = ec.list_buckets().send().await.unwrap();
                assert!(
                    listed
                        .buckets()
                        .iter()
                        .any(|b| b.name() == Some(bucket.as_str())),
                    "{kind:?} {point}: {listed:?}"
                );
            }
            fresh.stop().await;
            c.delete_bucket().bucket(&bucket).send().await.unwrap();
            let e = c.head_bucket().bucket(&bucket).send().await.unwrap_err();
            assert_eq!(err_of(&e).0, 404, "{kind:?} {point}");
            c.create_bucket().bucket(&bucket).send().await.unwrap();
            let e = c
                .get_bucket_policy()
                .bucket(&bucket)
                .send()
                .await
                .unwrap_err();
            assert_eq!(
                err_of(&e),
                (404, "NoSuchBucketPolicy".into()),
                "{kind:?} {point}"
            );
            let uploads = c
                .list_multipart_uploads()
                .bucket(&bucket)
                .send()
                .await
                .unwrap();
            assert!(uploads.uploads().is_empty(), "{kind:?} {point}");
            c.delete_bucket().bucket(&bucket).send().await.unwrap();
            gw.stop().await;
        }
    }
}

/// Objects below the prefix of a name that is no bucket (what a write through another
/// engine racing a DeleteBucket leaves) make no bucket: ListBuckets and HeadBucket do not
/// show one, and CreateBucket of the name is refused (409 OperationAborted) rather than
/// handing them to a new owner or deleting what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leftovers_of_a_deleted_bucket_make_no_bucket() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (fx, config) = remote(kind).await;
        let direct = fx.direct.clone().unwrap();
        direct
            .put(
                &object_store::path::Path::from("buckets/ghost/k"),
                object_store::PutPayload::from_static(b"left"),
            )
            .await
            .unwrap();
        let gw = Gateway::start(&config).await.unwrap();
        let c = gw.client();
        let listed = c.list_buckets().send().await.unwrap();
        assert!(listed.buckets().is_empty(), "{kind:?}: {listed:?}");
        let e = c.head_bucket().bucket("ghost").send().await.unwrap_err();
        assert_eq!(err_of(&e).0, 404, "{kind:?}");
        let e = c.create_bucket().bucket("ghost").send().await.unwrap_err();
        assert_eq!(err_of(&e), (409, "OperationAborted".into()), "{kind:?}");
        let e = c
            .get_object()
            .bucket("ghost")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (404, "NoSuchBucket".into()), "{kind:?}");
        gw.stop().await;
    }
}

/// An engine that knew a bucket, deleted and made again by another user through another
/// engine less than a second ago (before it looked again): a write it takes meant for
/// the old bucket is taken back (404 NoSuchBucket), not acknowledged into the new
/// owner's bucket; the next request finds the new bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_never_lands_in_a_bucket_made_again_remote() {
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let (_fx, config) = remote(kind).await;
        let (a, b) = (
            Gateway::start(&config).await.unwrap(),
            Gateway::start(&config).await.unwrap(),
        );
        let ca = a.client();
        let other = switchyard_tests::harness::s3_client(&a.endpoint, "other", "other-secret");
        let cb = b.client();
        ca.create_bucket().bucket("again").send().await.unwrap();
        cb.head_bucket().bucket("again").send().await.unwrap();
        ca.delete_bucket().bucket("again").send().await.unwrap();
        other.create_bucket().bucket("again").send().await.unwrap();
        let e = cb
            .put_object()
            .bucket("again")
            .key("meant-for-the-old-one")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (404, "NoSuchBucket".into()), "{kind:?}");
        let listed = other
            .list_objects_v2()
            .bucket("again")
            .send()
            .await
            .unwrap();
        assert!(listed.contents().is_empty(), "{kind:?}: {listed:?}");
        // The new bucket is the other user's; b serves it now.
        let e = cb.create_bucket().bucket("again").send().await.unwrap_err();
        assert_eq!(err_of(&e), (409, "BucketAlreadyExists".into()), "{kind:?}");
        other.delete_bucket().bucket("again").send().await.unwrap();
        a.stop().await;
        b.stop().await;
    }
}
