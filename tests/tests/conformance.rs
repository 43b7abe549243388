//! One S3 conformance suite, run through the gateway against every backend kind: fs,
//! memory, a real S3 server (moto), Azurite and fake-gcs-server. Clients are aws-sdk-s3.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier, Tag,
    Tagging, TaggingDirective,
};
use futures::StreamExt;
use switchyard_tests::compat;
use switchyard_tests::harness::{
    ACCESS_KEY, Fixture, Gateway, Kind, SECRET_KEY, TempDir, anonymous_client, err_of,
    list_all_versions, sign_unsigned_payload, versioning_config,
};

const BUCKET: &str = "conformance";

async fn body_of(c: &Client, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn run_suite(kind: Kind) {
    let fx = Fixture::new(kind).await.unwrap();
    let gw = Gateway::start(&fx.single_bucket_config(BUCKET))
        .await
        .unwrap();
    let c = gw.client();
    // The steps run, by name, for the compatibility table (tests/src/compat.rs).
    let mut ran: Vec<&str> = Vec::new();
    macro_rules! step {
        ($name:ident($($arg:expr),*)) => {{
            $name($($arg),*).await;
            ran.push(stringify!($name));
        }};
    }

    step!(put_get_attributes(&c));
    step!(ranges(&c));
    step!(conditional_reads(&c));
    step!(conditional_writes(&c));
    step!(listing(&c));
    step!(backend_pages(&fx, &c));
    step!(copies(&c));
    step!(deletes(&c));
    step!(version_ids(&c));
    step!(multipart(&c));
    step!(integrity(&c));
    step!(keys(&c, kind));
    step!(etags(&fx, &c));
    step!(object_attributes(&c, &gw.endpoint));
    step!(stored_checksums(&c));
    if kind != Kind::S3 {
        step!(multipart_checksums(&c));
    }
    step!(folder_markers(&c));
    step!(buckets(&c));
    step!(request_ids(&gw, &c));
    step!(chunked_bodies(&gw.endpoint, &c));
    step!(checked_before_not_implemented(&gw, &c, kind));
    step!(acls(&c));
    step!(tagging(&c, kind));
    if kind == Kind::S3 {
        step!(versioning_native(&fx));
    } else {
        step!(versioning(&fx));
        step!(versioned_copies(&fx));
        if kind == Kind::Gcs {
            step!(versioned_multipart_refused(&fx));
        } else {
            step!(versioned_multipart(&fx));
        }
        step!(versioned_tags(&fx));
        if kind == Kind::Fs || kind == Kind::Memory {
            step!(versioned_acls(&fx));
        } else {
            step!(versioned_acls_refused(&fx));
        }
        step!(versioned_conditional_writes(&fx));
        step!(versioned_bucket_delete(&fx));
    }
    gw.stop().await;
    step!(dynamic_buckets(&fx));
    step!(dynamic_acls(&fx));
    step!(bucket_acls(&fx));
    if matches!(kind, Kind::Fs | Kind::Memory) {
        step!(object_acls(&fx));
    } else {
        step!(object_acls_refused(&fx));
    }
    step!(declared_digest(&fx.single_bucket_config(BUCKET)));
    if kind == Kind::S3 {
        step!(content_md5_of_encrypted_objects(&fx));
    }
    compat::check_ran(kind, &ran);
}

/// docs/compatibility.md is the table of tests/src/compat.rs, rendered; `UPDATE_DOCS=1`
/// writes it.
#[test]
fn compatibility_table_in_the_docs_is_current() {
    let path = switchyard_tests::harness::repo_root().join("docs/compatibility.md");
    let want = compat::render();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} differs from the table in tests/src/compat.rs: run `UPDATE_DOCS=1 cargo test -p switchyard-tests --test suite conformance::compatibility`",
        path.display()
    );
}

/// An SSE-KMS object's ETag is not the MD5 of its content (on AWS; moto keeps the MD5,
/// which makes the header, not the ETag, what is tested): the store must not offer it
/// as one, or the mover would refuse to copy every such object.
async fn content_md5_of_encrypted_objects(fx: &Fixture) {
    use md5::{Digest, Md5};
    use switchyard::model::ReadConditions;
    let raw = switchyard_tests::harness::s3_client(fx.endpoint.as_deref().unwrap(), "test", "test");
    let bucket = fx.bucket.as_deref().unwrap();
    let body = data(2000, 9);
    for (key, kms) in [("md5/plain", false), ("md5/kms", true)] {
        let mut put = raw
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.clone()));
        if kms {
            put = put.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms);
        }
        put.send().await.unwrap();
    }
    let config = switchyard::Config::from_toml(&fx.single_bucket_config(BUCKET)).unwrap();
    let registry = switchyard::backends::Registry::build(&config, &Default::default()).unwrap();
    let store = &registry.get("main").unwrap().store;
    let none = ReadConditions::default();
    let md5: [u8; 16] = Md5::digest(&body).into();
    let (plain, _) = store.get("md5/plain", None, &none, true).await.unwrap();
    assert_eq!(plain.info.content_md5, Some(md5));
    let (kms, stream) = store.get("md5/kms", None, &none, false).await.unwrap();
    assert_eq!(kms.info.content_md5, None);
    let read: Vec<u8> = stream.unwrap().map(|c| c.unwrap().to_vec()).concat().await;
    assert!(read == body);
}

/// The mover leaves the MD5 check to an S3 server that refuses a body failing its
/// Content-MD5 before storing it (moto and s3s-fs do not: the conformance suites above
/// take the hashing path). Switchyard itself is such a server; the member's prefix keeps
/// the probe's key out of the origin's own reserved namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declared_digest_checked_by_the_s3_server() {
    let origin = Gateway::start(&format!(
        "version = 1\n[backends.mem]\nkind = \"memory\"\n[buckets.{BUCKET}]\nmembers = [\"mem\"]\n"
    ))
    .await
    .unwrap();
    let config = format!(
        "version = 1\n[backends.main]\nkind = \"s3\"\nprefix = \"p\"\nbucket = {BUCKET:?}\nendpoint = {:?}\nallow_http = true\naccess_key_id = {ACCESS_KEY:?}\nsecret_access_key = {SECRET_KEY:?}\nnetwork = {{ max_retries = 0 }}\n[buckets.{BUCKET}]\nmembers = [\"main\"]\n",
        origin.endpoint
    );
    declared_digest(&config).await;
    let listed = origin
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    origin.stop().await;
}

/// `Store::put` with a declared MD5, as the mover uses it: a body that does not match
/// fails with BadDigest and leaves nothing, on every path a store has (S3's streamed PUT
/// with Content-MD5 when the length is known, buffered and multipart otherwise).
async fn declared_digest(config: &str) {
    use md5::{Digest, Md5};
    use switchyard::model::{Attrs, Declared, Error, ReadConditions, WriteCondition};
    let config = switchyard::Config::from_toml(config).unwrap();
    let registry = switchyard::backends::Registry::build(&config, &Default::default()).unwrap();
    let store = &registry.get("main").unwrap().store;
    let part_size = 5 << 20;
    let attrs = Attrs::default();
    for (n, size) in [(0, 3000), (1, (5 << 20) + 300_000)] {
        let bytes = bytes::Bytes::from(data(size, 40 + n));
        let md5: [u8; 16] = Md5::digest(&bytes).into();
        let mut wrong = md5;
        wrong[0] ^= 1;
        for known_len in [true, false] {
            let len = known_len.then_some(size as u64);
            let body = || {
                let chunks: Vec<_> = bytes
                    .chunks(64 << 10)
                    .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                    .collect();
                futures::stream::iter(chunks).boxed()
            };
            let key = format!("declared/{n}-{known_len}");
            let what = format!("{key}: {size} bytes");
            let bad = Declared {
                len,
                md5: Some(wrong),
                ..Declared::default()
            };
            let put = store.put(&key, body(), bad, &attrs, &WriteCondition::None, part_size);
            let put = put.await;
            assert!(matches!(put, Err(Error::BadDigest)), "{what}: {put:?}");
            let none = ReadConditions::default();
            let got = store.get(&key, None, &none, true).await;
            assert!(
                matches!(got, Err(Error::NotFound)),
                "{what}: a bad body was kept"
            );
            let good = Declared {
                len,
                md5: Some(md5),
                ..Declared::default()
            };
            store
                .put(
                    &key,
                    body(),
                    good,
                    &attrs,
                    &WriteCondition::IfAbsent,
                    part_size,
                )
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let (got, stream) = store.get(&key, None, &none, false).await.unwrap();
            assert_eq!(got.info.size, size as u64, "{what}");
            let read: Vec<u8> = stream.unwrap().map(|c| c.unwrap().to_vec()).concat().await;
            assert!(read == bytes, "{what}: bytes differ");
        }
    }
}

async fn put_get_attributes(c: &Client) {
    let body = data(10_000, 1);
    let put = c
        .put_object()
        .bucket(BUCKET)
        .key("attrs/object.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"o.bin\"")
        .content_language("fr")
        .metadata("colour", "blue")
        .metadata("Mixed-Case", "Value")
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    let head = c
        .head_object()
        .bucket(BUCKET)
        .key("attrs/object.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(10_000));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"o.bin\"")
    );
    assert_eq!(head.content_language(), Some("fr"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("mixed-case").map(String::as_str), Some("Value"));
    assert_eq!(body_of(c, "attrs/object.bin").await, body);

    // response-* overrides change the response, not the object.
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("attrs/object.bin")
        .response_content_type("text/plain")
        .response_content_disposition("inline")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.content_disposition(), Some("inline"));

    // Missing keys.
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("attrs/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("attrs/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);

    // Empty object.
    c.put_object()
        .bucket(BUCKET)
        .key("attrs/empty")
        .body(ByteStream::from(Vec::new()))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, "attrs/empty").await, Vec::<u8>::new());
}

async fn ranges(c: &Client) {
    let body = data(1000, 2);
    c.put_object()
        .bucket(BUCKET)
        .key("range/r")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    for (spec, want) in [
        ("bytes=2-5", &body[2..6]),
        ("bytes=990-", &body[990..]),
        ("bytes=-3", &body[997..]),
        ("bytes=995-5000", &body[995..]),
    ] {
        let got = c
            .get_object()
            .bucket(BUCKET)
            .key("range/r")
            .range(spec)
            .send()
            .await
            .unwrap();
        let range = got.content_range().map(str::to_owned);
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&bytes[..], want, "{spec}");
        assert!(range.unwrap().ends_with("/1000"), "{spec}");
    }
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("range/r")
        .range("bytes=1000-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (416, "InvalidRange".into()));
}

async fn conditional_reads(c: &Client) {
    let put = c
        .put_object()
        .bucket(BUCKET)
        .key("cond/r")
        .body(ByteStream::from_static(b"v1"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("cond/r")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 304);
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("cond/r")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (412, "PreconditionFailed".into()));
    c.get_object()
        .bucket(BUCKET)
        .key("cond/r")
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    let future = aws_smithy_types::DateTime::from_secs(4_000_000_000);
    let past = aws_smithy_types::DateTime::from_secs(1_000_000_000);
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("cond/r")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 304);
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("cond/r")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 412);
    c.get_object()
        .bucket(BUCKET)
        .key("cond/r")
        .if_modified_since(past)
        .send()
        .await
        .unwrap();
}

async fn conditional_writes(c: &Client) {
    c.put_object()
        .bucket(BUCKET)
        .key("cond/w")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("cond/w")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (412, "PreconditionFailed".into()));
    assert_eq!(body_of(c, "cond/w").await, b"first");
    let etag = c
        .head_object()
        .bucket(BUCKET)
        .key("cond/w")
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("cond/w")
        .if_match("\"0000\"")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 412);
    c.put_object()
        .bucket(BUCKET)
        .key("cond/w")
        .if_match(&etag)
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, "cond/w").await, b"third");
}

async fn list_all_v2(
    c: &Client,
    prefix: &str,
    delimiter: Option<&str>,
    max: i32,
) -> (Vec<String>, Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(max)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.key_count().unwrap() <= max);
        keys.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_owned);
            assert!(token.is_some());
        } else {
            break;
        }
        assert!(pages < 100, "listing does not end");
    }
    (keys, prefixes, pages)
}

async fn listing(c: &Client) {
    let mut want = Vec::new();
    for d in ["a", "b", "c"] {
        for i in 0..7 {
            let k = format!("list/{d}/{i:02}");
            c.put_object()
                .bucket(BUCKET)
                .key(&k)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap();
            want.push(k);
        }
    }
    for k in ["list/top-1", "list/top-2", "list/a-sibling"] {
        c.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from_static(b"y"))
            .send()
            .await
            .unwrap();
        want.push(k.to_owned());
    }
    want.sort();
    let (keys, prefixes, pages) = list_all_v2(c, "list/", None, 5).await;
    assert_eq!(keys, want);
    assert!(prefixes.is_empty());
    assert_eq!(pages, want.len().div_ceil(5));

    let (keys, prefixes, _) = list_all_v2(c, "list/", Some("/"), 2).await;
    assert_eq!(keys, ["list/a-sibling", "list/top-1", "list/top-2"]);
    assert_eq!(prefixes, ["list/a/", "list/b/", "list/c/"]);

    let (keys, _, _) = list_all_v2(c, "list/b/0", None, 1000).await;
    assert_eq!(keys.len(), 7);

    let out = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("list/")
        .start_after("list/c/05")
        .send()
        .await
        .unwrap();
    let got: Vec<_> = out.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(got, ["list/c/06", "list/top-1", "list/top-2"]);

    let out = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("list/")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_count(), Some(0));
    assert!(out.contents().is_empty());

    // V1 with markers.
    let mut marker: Option<String> = None;
    let mut v1 = Vec::new();
    loop {
        let out = c
            .list_objects()
            .bucket(BUCKET)
            .prefix("list/")
            .max_keys(4)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        v1.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if out.is_truncated() != Some(true) {
            break;
        }
        marker = out
            .next_marker()
            .map(str::to_owned)
            .or_else(|| v1.last().cloned());
    }
    assert_eq!(v1, want);

    // encoding-type=url.
    c.put_object()
        .bucket(BUCKET)
        .key("enc/a key+é")
        .body(ByteStream::from_static(b"z"))
        .send()
        .await
        .unwrap();
    let out = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("enc/")
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents()[0].key(), Some("enc/a key+é"));

    let e = c
        .list_objects_v2()
        .bucket(BUCKET)
        .continuation_token("not-a-token!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));
}

/// A listing longer than one page of the backend's own (1000 keys on S3 and GCS): the
/// gateway follows the backend's continuation tokens, also from a start-after that
/// falls on the boundary. The keys are written straight into the store, as if it had
/// been filled before the gateway was put in front of it.
async fn backend_pages(fx: &Fixture, c: &Client) {
    const KEYS: usize = 1205;
    let Some(store) = fx.direct.clone() else {
        return;
    };
    let want: Vec<String> = (0..KEYS).map(|i| format!("pages/{i:04}")).collect();
    futures::stream::iter(want.clone())
        .map(|k| {
            let store = store.clone();
            async move {
                let path = object_store::path::Path::from(k.as_str());
                object_store::ObjectStoreExt::put(&store, &path, b"p".to_vec().into())
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let (keys, _, pages) = list_all_v2(c, "pages/", None, 1000).await;
    assert_eq!(keys, want);
    assert_eq!(pages, 2);
    for after in [998, 999, 1000, 1203] {
        let out = c
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("pages/")
            .start_after(&want[after])
            .max_keys(3)
            .send()
            .await
            .unwrap();
        let got: Vec<_> = out.contents().iter().map(|o| o.key().unwrap()).collect();
        let end = (after + 4).min(KEYS);
        assert_eq!(got, want[after + 1..end], "after {}", want[after]);
        assert_eq!(out.contents()[0].size(), Some(1));
    }
}

async fn copies(c: &Client) {
    c.put_object()
        .bucket(BUCKET)
        .key("copy/src")
        .body(ByteStream::from_static(b"copy me"))
        .content_type("text/x-src")
        .metadata("m", "1")
        .send()
        .await
        .unwrap();
    c.copy_object()
        .bucket(BUCKET)
        .key("copy/same")
        .copy_source(format!("{BUCKET}/copy/src"))
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket(BUCKET)
        .key("copy/same")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("text/x-src"));
    assert_eq!(
        h.metadata().unwrap().get("m").map(String::as_str),
        Some("1")
    );
    assert_eq!(body_of(c, "copy/same").await, b"copy me");

    c.copy_object()
        .bucket(BUCKET)
        .key("copy/replaced")
        .copy_source(format!("{BUCKET}/copy/src"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/x-new")
        .metadata("n", "2")
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket(BUCKET)
        .key("copy/replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("text/x-new"));
    assert_eq!(
        h.metadata().unwrap().get("n").map(String::as_str),
        Some("2")
    );
    assert!(h.metadata().unwrap().get("m").is_none());

    let e = c
        .copy_object()
        .bucket(BUCKET)
        .key("copy/src")
        .copy_source(format!("{BUCKET}/copy/src"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidRequest".into()));
    let e = c
        .copy_object()
        .bucket(BUCKET)
        .key("copy/x")
        .copy_source(format!("{BUCKET}/copy/missing"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    let e = c
        .copy_object()
        .bucket(BUCKET)
        .key("copy/x")
        .copy_source(format!("{BUCKET}/copy/src"))
        .copy_source_if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 412);
}

async fn deletes(c: &Client) {
    c.put_object()
        .bucket(BUCKET)
        .key("del/one")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket(BUCKET)
        .key("del/one")
        .send()
        .await
        .unwrap();
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("del/one")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    // Idempotent.
    c.delete_object()
        .bucket(BUCKET)
        .key("del/one")
        .send()
        .await
        .unwrap();

    let mut ids = Vec::new();
    for i in 0..3 {
        let k = format!("del/many/{i}");
        c.put_object()
            .bucket(BUCKET)
            .key(&k)
            .body(ByteStream::from_static(b"m"))
            .send()
            .await
            .unwrap();
        ids.push(ObjectIdentifier::builder().key(k).build().unwrap());
    }
    ids.push(
        ObjectIdentifier::builder()
            .key("del/many/never-existed")
            .build()
            .unwrap(),
    );
    let out = c
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 4);
    assert!(out.errors().is_empty());
    let left = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("del/")
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0));
}

/// Without versioning an object's one version is `null`: naming it reads, copies and
/// deletes the object; naming any other is refused and changes nothing (it used to read
/// the current object, as if it were the version asked for).
async fn version_ids(c: &Client) {
    c.put_object()
        .bucket(BUCKET)
        .key("ver/k")
        .body(ByteStream::from_static(b"current"))
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("ver/k")
        .version_id("null")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"current");
    c.head_object()
        .bucket(BUCKET)
        .key("ver/k")
        .version_id("null")
        .send()
        .await
        .unwrap();
    let bogus = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY";
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("ver/k")
        .version_id(bogus)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()), "GET");
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("ver/k")
        .version_id(bogus)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 400, "HEAD");
    let e = c
        .copy_object()
        .bucket(BUCKET)
        .key("ver/copy")
        .copy_source(format!("{BUCKET}/ver/k?versionId={bogus}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()), "copy");
    let e = c
        .delete_object()
        .bucket(BUCKET)
        .key("ver/k")
        .version_id(bogus)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()), "DELETE");
    let out = c
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("ver/k")
                        .version_id(bogus)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    // Nothing changed: the object is there, no copy was made.
    assert_eq!(body_of(c, "ver/k").await, b"current");
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("ver/copy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    c.copy_object()
        .bucket(BUCKET)
        .key("ver/copy")
        .copy_source(format!("{BUCKET}/ver/k?versionId=null"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, "ver/copy").await, b"current");
    for k in ["ver/k", "ver/copy"] {
        c.delete_object()
            .bucket(BUCKET)
            .key(k)
            .version_id("null")
            .send()
            .await
            .unwrap();
    }
    let left = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("ver/")
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0));
}

async fn multipart(c: &Client) {
    let key = "mpu/object";
    let part1 = data(5 * 1024 * 1024, 3);
    let part2 = data(1024, 4);
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/x-mpu")
        .metadata("kind", "multipart")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let e1 = c
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(part1.clone()))
        .send()
        .await
        .unwrap();
    let e2 = c
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from(part2.clone()))
        .send()
        .await
        .unwrap();
    // A part whose bytes do not match its Content-MD5 is refused and not recorded: the
    // part streams to the backend (on Azure as a staged blob of several blocks), and the
    // check fails before its last bytes are sent.
    {
        use base64::Engine as _;
        let wrong = base64::engine::general_purpose::STANDARD
            .encode(<md5::Md5 as md5::Digest>::digest(b"something else"));
        let e = c
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(3)
            .content_md5(wrong)
            .body(ByteStream::from(part1.clone()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (400, "BadDigest".into()));
    }

    let parts = c
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 2);
    assert_eq!(parts.parts()[0].size(), Some(part1.len() as i64));
    assert_eq!(parts.parts()[1].e_tag(), e2.e_tag());
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(
        uploads
            .uploads()
            .iter()
            .any(|u| u.upload_id() == Some(id.as_str()) && u.key() == Some(key))
    );
    // The reserved namespace stays out of listings.
    let listed = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("")
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .contents()
            .iter()
            .all(|o| !o.key().unwrap().starts_with(".switchyard"))
    );

    let e = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(2)
                        .e_tag(e2.e_tag().unwrap())
                        .build(),
                )
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(e1.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidPartOrder".into()));
    let e = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag("\"bad\"")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidPart".into()));

    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(e1.e_tag().unwrap())
                        .build(),
                )
                .parts(
                    CompletedPart::builder()
                        .part_number(2)
                        .e_tag(e2.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert!(body_of(c, key).await == whole);
    let h = c
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("application/x-mpu"));
    assert_eq!(
        h.metadata().unwrap().get("kind").map(String::as_str),
        Some("multipart")
    );
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "completed upload still listed"
    );

    // UploadPartCopy from the completed object, then abort.
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mpu/copy")
        .send()
        .await
        .unwrap();
    let id2 = up.upload_id().unwrap().to_owned();
    // A range reaching past the source's end is refused, as S3 refuses it, not clipped:
    // the part would be shorter than asked, and the assembled object silently wrong.
    let size = part1.len() + part2.len();
    for range in [
        format!("bytes=0-{size}"),
        format!("bytes={}-{}", size - 10, size + 10),
        format!("bytes={size}-{}", size + 10),
    ] {
        let e = c
            .upload_part_copy()
            .bucket(BUCKET)
            .key("mpu/copy")
            .upload_id(&id2)
            .part_number(1)
            .copy_source(format!("{BUCKET}/{key}"))
            .copy_source_range(&range)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (400, "InvalidArgument".into()), "{range}");
    }
    let parts = c
        .list_parts()
        .bucket(BUCKET)
        .key("mpu/copy")
        .upload_id(&id2)
        .send()
        .await
        .unwrap();
    assert!(parts.parts().is_empty(), "a refused copy left a part");
    let cp = c
        .upload_part_copy()
        .bucket(BUCKET)
        .key("mpu/copy")
        .upload_id(&id2)
        .part_number(1)
        .copy_source(format!("{BUCKET}/{key}"))
        .copy_source_range("bytes=0-5242879")
        .send()
        .await
        .unwrap();
    let e3 = c
        .upload_part()
        .bucket(BUCKET)
        .key("mpu/copy")
        .upload_id(&id2)
        .part_number(2)
        .body(ByteStream::from_static(b"tail"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("mpu/copy")
        .upload_id(&id2)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(cp.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .parts(
                    CompletedPart::builder()
                        .part_number(2)
                        .e_tag(e3.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut want = part1.clone();
    want.extend_from_slice(b"tail");
    assert!(body_of(c, "mpu/copy").await == want);

    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mpu/aborted")
        .send()
        .await
        .unwrap();
    let id3 = up.upload_id().unwrap().to_owned();
    c.upload_part()
        .bucket(BUCKET)
        .key("mpu/aborted")
        .upload_id(&id3)
        .part_number(1)
        .body(ByteStream::from_static(b"gone"))
        .send()
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket(BUCKET)
        .key("mpu/aborted")
        .upload_id(&id3)
        .send()
        .await
        .unwrap();
    let e = c
        .list_parts()
        .bucket(BUCKET)
        .key("mpu/aborted")
        .upload_id(&id3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchUpload".into()));
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("mpu/aborted")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    let e = c
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("mpu/aborted")
        .upload_id("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchUpload".into()));
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "aborted upload still listed");
}

async fn integrity(c: &Client) {
    use base64::Engine as _;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let good = b64(&<md5::Md5 as md5::Digest>::digest(b"payload"));
    c.put_object()
        .bucket(BUCKET)
        .key("integrity/ok")
        .content_md5(&good)
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap();
    let bad = b64(&<md5::Md5 as md5::Digest>::digest(b"other"));
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("integrity/bad-md5")
        .content_md5(&bad)
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "BadDigest".into()));
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("integrity/bad-md5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e).0,
        404,
        "a body that failed its digest must not be stored"
    );
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("integrity/bad-md5")
        .content_md5("not base64!")
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap_err();
    // As AWS: a malformed digest is InvalidDigest (BadDigest is a well-formed one that
    // does not match).
    assert_eq!(err_of(&e), (400, "InvalidDigest".into()));

    // A wrong CRC32 in a header.
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("integrity/bad-crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "BadDigest".into()));
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("integrity/bad-crc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    // The SDK's own flexible checksums (aws-chunked with a trailer) are accepted.
    c.put_object()
        .bucket(BUCKET)
        .key("integrity/crc32c")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(data(100_000, 5)))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, "integrity/crc32c").await, data(100_000, 5));
    // The answer carries the checksum the body was checked against, from the trailer too,
    // with its type (a single PUT's checksum is of the full object), for every algorithm.
    use aws_sdk_s3::types::{ChecksumAlgorithm as Alg, ChecksumType};
    for alg in [
        Alg::Crc32,
        Alg::Crc32C,
        Alg::Sha1,
        Alg::Sha256,
        Alg::Crc64Nvme,
    ] {
        let put = c
            .put_object()
            .bucket(BUCKET)
            .key("integrity/answered")
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(data(10_000, 6)))
            .send()
            .await
            .unwrap();
        let answered = match alg {
            Alg::Crc32 => put.checksum_crc32(),
            Alg::Crc32C => put.checksum_crc32_c(),
            Alg::Sha1 => put.checksum_sha1(),
            Alg::Sha256 => put.checksum_sha256(),
            _ => put.checksum_crc64_nvme(),
        };
        assert!(answered.is_some(), "{alg:?}: no checksum in the answer");
        assert_eq!(
            put.checksum_type(),
            Some(&ChecksumType::FullObject),
            "{alg:?}"
        );
        if alg == Alg::Sha256 {
            use base64::Engine as _;
            use sha2::Digest as _;
            let want = base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(data(10_000, 6)));
            assert_eq!(answered, Some(want.as_str()));
        }
    }
}

async fn keys(c: &Client, kind: Kind) {
    for key in [
        "keys/ünïcødé/日本語 ✓",
        "keys/with space+plus&amp",
        "keys/percent%20sign",
    ] {
        c.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"k"))
            .send()
            .await
            .unwrap();
        assert_eq!(body_of(c, key).await, b"k", "{key}");
        let out = c
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(key)
            .send()
            .await
            .unwrap();
        assert_eq!(out.contents()[0].key(), Some(key));
    }
    // 1024 bytes is S3's limit; a filesystem limits each segment to 255 bytes.
    let long = if kind == Kind::Fs {
        let seg = "s".repeat(200);
        let mut k = format!("keys/{seg}/{seg}/{seg}/{seg}/{seg}/");
        while k.len() < 1024 {
            k.push('z');
        }
        k
    } else {
        format!("keys/{}", "l".repeat(1019))
    };
    assert_eq!(long.len(), 1024);
    c.put_object()
        .bucket(BUCKET)
        .key(&long)
        .body(ByteStream::from_static(b"long"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, &long).await, b"long");
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key(format!("{long}x"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "KeyTooLongError".into()));
    for bad in [
        "keys/../escape",
        "keys/./dot",
        "keys//empty",
        ".switchyard/mpu/x",
    ] {
        let e = c
            .put_object()
            .bucket(BUCKET)
            .key(bad)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (400, "InvalidArgument".into()), "{bad}");
    }
}

/// The ETag an S3 client expects for `body` written in one request: the quoted hex MD5.
fn md5_etag(body: &[u8]) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The ETag S3 gives a multipart upload of `parts`: the MD5 of the parts' binary MD5s,
/// then `-` and their number.
fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::{Digest, Md5};
    let mut all = Md5::new();
    for p in parts {
        all.update(Md5::digest(p));
    }
    let hex: String = all.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}-{}\"", parts.len())
}

/// The ETag of `key` in a listing of exactly that key.
async fn listed_etag(c: &Client, key: &str) -> Option<String> {
    let out = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(key)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .find(|o| o.key() == Some(key))
        .and_then(|o| o.e_tag().map(str::to_owned))
}

/// Asserts that PUT (or completion), HEAD, GET and LIST all answer `want` for `key`.
async fn assert_etag_everywhere(c: &Client, key: &str, want: &str, what: &str) {
    let head = c
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(want), "{what}: HEAD");
    let get = c.get_object().bucket(BUCKET).key(key).send().await.unwrap();
    assert_eq!(get.e_tag(), Some(want), "{what}: GET");
    let ranged = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range("bytes=0-0")
        .send()
        .await;
    if let Ok(ranged) = ranged {
        assert_eq!(ranged.e_tag(), Some(want), "{what}: ranged GET");
    }
    assert_eq!(
        listed_etag(c, key).await.as_deref(),
        Some(want),
        "{what}: LIST"
    );
}

/// GetObjectAttributes: what was asked, as HEAD knows it; a multipart upload's part count;
/// the errors of S3 for an unknown attribute, a missing key, a version that cannot exist
/// and a client without access.
async fn object_attributes(c: &Client, endpoint: &str) {
    use aws_sdk_s3::types::{ObjectAttributes as A, StorageClass};
    let body = data(3000, 4);
    c.put_object()
        .bucket(BUCKET)
        .key("attrs/single")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let all = [A::Etag, A::ObjectSize, A::StorageClass, A::ObjectParts];
    let got = c
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/single")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.e_tag().map(|e| e.trim_matches('"')),
        Some(md5_etag(&body).trim_matches('"'))
    );
    assert_eq!(got.object_size(), Some(3000));
    assert_eq!(got.storage_class(), Some(&StorageClass::Standard));
    assert!(got.object_parts().is_none(), "a single PUT has no parts");
    assert!(got.last_modified().is_some());
    // Only what was asked.
    let got = c
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/single")
        .object_attributes(A::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(got.object_size(), Some(3000));
    assert_eq!(got.e_tag(), None);
    assert_eq!(got.storage_class(), None);

    // A multipart upload of two parts.
    let (p1, p2) = (data(5 << 20, 1), data(1024, 2));
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("attrs/multi")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (n, p) in [(1, &p1), (2, &p2)] {
        let part = c
            .upload_part()
            .bucket(BUCKET)
            .key("attrs/multi")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("attrs/multi")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = c
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/multi")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.e_tag().map(|e| e.trim_matches('"')),
        Some(multipart_etag(&[&p1, &p2]).trim_matches('"'))
    );
    assert_eq!(got.object_size(), Some((5 << 20) + 1024));
    assert_eq!(
        got.object_parts().and_then(|p| p.total_parts_count()),
        Some(2)
    );

    // Errors, as S3 gives them.
    let e = c
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/none")
        .object_attributes(A::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    let e = c
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/single")
        .object_attributes(A::from("Colour"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));
    let e = c
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/single")
        .version_id("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
        .object_attributes(A::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 400);
    let e = c
        .get_object_attributes()
        .bucket("no-such-bucket-here")
        .key("attrs/single")
        .object_attributes(A::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchBucket".into()));
    let anon = anonymous_client(endpoint);
    let e = anon
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs/single")
        .object_attributes(A::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
}

/// ETags as S3 gives them, whatever the member: the hex MD5 of a single-request PUT's
/// content (small, larger than a part, empty), the MD5 of the part MD5s and the part
/// count for a multipart upload, the same in PUT, HEAD, GET, LIST, CopyObject and
/// CompleteMultipartUpload answers, and conditional requests compare against it.
async fn etags(fx: &Fixture, c: &Client) {
    // One request; larger than `part_size` (8 MiB), which object_store streams as a
    // multipart upload of its own; empty.
    for (key, body) in [
        ("etag/small", data(3000, 11)),
        ("etag/large", data((8 << 20) + 123_457, 12)),
        ("etag/empty", Vec::new()),
    ] {
        let want = md5_etag(&body);
        let put = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(put.e_tag(), Some(want.as_str()), "{key}: PUT");
        assert_etag_everywhere(c, key, &want, key).await;
    }
    let small = md5_etag(&data(3000, 11));

    // Conditional reads and writes compare against that ETag.
    c.get_object()
        .bucket(BUCKET)
        .key("etag/small")
        .if_match(&small)
        .send()
        .await
        .unwrap();
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("etag/small")
        .if_none_match(&small)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 304, "HEAD If-None-Match: <its MD5>");
    let replaced = data(500, 13);
    let put = c
        .put_object()
        .bucket(BUCKET)
        .key("etag/small")
        .if_match(&small)
        .body(ByteStream::from(replaced.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.e_tag(), Some(md5_etag(&replaced).as_str()));
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("etag/small")
        .if_match(&small)
        .body(ByteStream::from_static(b"stale"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e).0,
        412,
        "PUT If-Match: the replaced version's MD5"
    );

    // CopyObject: the copy's ETag in the answer is the one it is read and listed with,
    // and the source's MD5 names the source version.
    let copied = c
        .copy_object()
        .bucket(BUCKET)
        .key("etag/copy")
        .copy_source(format!("{BUCKET}/etag/small"))
        .copy_source_if_match(md5_etag(&replaced))
        .send()
        .await
        .unwrap();
    let copy_etag = copied.copy_object_result().unwrap().e_tag().unwrap();
    assert_eq!(copy_etag, md5_etag(&replaced), "CopyObject");
    assert_etag_everywhere(c, "etag/copy", copy_etag, "copy").await;
    let copied = c
        .copy_object()
        .bucket(BUCKET)
        .key("etag/copy-replaced")
        .copy_source(format!("{BUCKET}/etag/small"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/x-other")
        .send()
        .await
        .unwrap();
    let copy_etag = copied.copy_object_result().unwrap().e_tag().unwrap();
    assert_eq!(
        copy_etag,
        md5_etag(&replaced),
        "CopyObject, attributes replaced"
    );
    assert_etag_everywhere(c, "etag/copy-replaced", copy_etag, "copy, replaced").await;
    let e = c
        .copy_object()
        .bucket(BUCKET)
        .key("etag/copy-stale")
        .copy_source(format!("{BUCKET}/etag/small"))
        .copy_source_if_match(&small)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e).0,
        412,
        "copy-source If-Match: a replaced version"
    );

    // Multipart: MD5 of the part MD5s, dash, part count.
    let part1 = data(5 << 20, 14);
    let part2 = data(777, 15);
    let key = "etag/multipart";
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut completed = CompletedMultipartUpload::builder();
    for (n, part) in [(1, &part1), (2, &part2)] {
        let p = c
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(p.e_tag(), Some(md5_etag(part).as_str()), "part {n}");
        completed = completed.parts(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    let done = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .multipart_upload(completed.build())
        .send()
        .await
        .unwrap();
    let want = multipart_etag(&[&part1, &part2]);
    assert_eq!(done.e_tag(), Some(want.as_str()), "CompleteMultipartUpload");
    assert_etag_everywhere(c, key, &want, "multipart").await;
    c.get_object()
        .bucket(BUCKET)
        .key(key)
        .if_match(&want)
        .send()
        .await
        .unwrap();

    // Objects written behind the gateway's back answer what their backend stored: the
    // MD5 where the backend has one (Azure computes Content-MD5 for a blob put in one
    // request), else their native ETag, the same in HEAD and LIST.
    if let Some(store) = fx.direct.clone() {
        use object_store::ObjectStoreExt as _;
        let body = data(2000, 16);
        let path = object_store::path::Path::from("etag/foreign-single");
        store.put(&path, body.clone().into()).await.unwrap();
        let want = md5_etag(&body);
        assert_etag_everywhere(c, "etag/foreign-single", &want, "foreign single").await;
        let path = object_store::path::Path::from("etag/foreign-blocks");
        let mut up = store.put_multipart(&path).await.unwrap();
        up.put_part(body.clone().into()).await.unwrap();
        up.complete().await.unwrap();
        let head = c
            .head_object()
            .bucket(BUCKET)
            .key("etag/foreign-blocks")
            .send()
            .await
            .unwrap();
        let native = head.e_tag().unwrap().to_owned();
        assert_etag_everywhere(c, "etag/foreign-blocks", &native, "foreign blocks").await;
    }
}

/// Keys ending in `/` ("folder markers", as the AWS console's Create folder, rclone
/// mkdir, Hadoop s3a and s3fs write them) are keys like any other: written (empty or
/// not), read, listed with and without a delimiter, copied and deleted, without touching
/// the keys under them.
async fn folder_markers(c: &Client) {
    let put = |key: &'static str, body: &'static [u8]| async move {
        c.put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/x-directory")
            .body(ByteStream::from_static(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"))
    };
    let keys = |prefix: &'static str, delimiter: Option<&'static str>| async move {
        list_all_v2(c, prefix, delimiter, 1000).await
    };
    let out = put("fold/", b"").await;
    assert_eq!(out.e_tag(), Some(md5_etag(b"").as_str()));
    let head = c
        .head_object()
        .bucket(BUCKET)
        .key("fold/")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(0));
    assert_eq!(head.content_type(), Some("application/x-directory"));
    assert_eq!(body_of(c, "fold/").await, b"");
    // Before any key under it, and after.
    assert_eq!(keys("fold/", None).await.0, ["fold/"]);
    assert_eq!(
        keys("fold", Some("/")).await,
        (vec![], vec!["fold/".to_owned()], 1)
    );
    put("fold/a", b"a").await;
    put("fold/sub/b", b"b").await;
    put("fold/sub/", b"").await;
    put("folder-sibling", b"s").await;
    assert_eq!(
        keys("fold/", None).await.0,
        ["fold/", "fold/a", "fold/sub/", "fold/sub/b"]
    );
    // A common prefix once, whether a marker, keys under it, or both make it.
    let (objs, prefixes, _) = keys("fold", Some("/")).await;
    assert_eq!(objs, ["folder-sibling"]);
    assert_eq!(prefixes, ["fold/"]);
    let (objs, prefixes, _) = keys("fold/", Some("/")).await;
    assert_eq!(objs, ["fold/", "fold/a"]);
    assert_eq!(prefixes, ["fold/sub/"]);
    let (objs, prefixes, _) = keys("fold/sub/", Some("/")).await;
    assert_eq!(objs, ["fold/sub/", "fold/sub/b"]);
    assert!(prefixes.is_empty());
    // Pages that end on the marker go on after it.
    let (objs, _, pages) = list_all_v2(c, "fold/", None, 1).await;
    assert_eq!(objs, ["fold/", "fold/a", "fold/sub/", "fold/sub/b"]);
    assert_eq!(pages, 4);
    let after = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("fold/")
        .start_after("fold/")
        .send()
        .await
        .unwrap();
    let got: Vec<_> = after.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, ["fold/a", "fold/sub/", "fold/sub/b"]);

    // A marker may hold bytes, as in S3.
    put("withdata/", b"not empty").await;
    assert_eq!(body_of(c, "withdata/").await, b"not empty");
    let listed = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("withdata/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents()[0].size(), Some(9));
    assert_eq!(
        listed.contents()[0].e_tag(),
        Some(md5_etag(b"not empty").as_str())
    );
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("withdata/")
        .if_none_match("*")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 412, "a marker that exists");

    // Copied, to a marker and from one.
    c.copy_object()
        .bucket(BUCKET)
        .key("copied-fold/")
        .copy_source(format!("{BUCKET}/withdata/"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, "copied-fold/").await, b"not empty");
    c.copy_object()
        .bucket(BUCKET)
        .key("copied-from-marker")
        .copy_source(format!("{BUCKET}/fold/"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(c, "copied-from-marker").await, b"");

    // Deleting the marker leaves the keys under it; deleting them leaves the marker.
    c.delete_object()
        .bucket(BUCKET)
        .key("fold/")
        .send()
        .await
        .unwrap();
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("fold/")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    assert_eq!(
        keys("fold/", None).await.0,
        ["fold/a", "fold/sub/", "fold/sub/b"]
    );
    c.delete_object()
        .bucket(BUCKET)
        .key("fold/sub/b")
        .send()
        .await
        .unwrap();
    assert_eq!(keys("fold/", None).await.0, ["fold/a", "fold/sub/"]);
    assert_eq!(body_of(c, "fold/sub/").await, b"");
    let (_, prefixes, _) = keys("fold/", Some("/")).await;
    assert_eq!(prefixes, ["fold/sub/"]);
    // DeleteObjects takes markers too.
    let ids = ["fold/sub/", "fold/a", "withdata/", "copied-fold/"]
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap());
    let out = c
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .set_objects(Some(ids.to_vec()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert!(keys("fold/", None).await.0.is_empty());
    assert!(keys("withdata/", None).await.0.is_empty());
    for k in ["folder-sibling", "copied-from-marker"] {
        c.delete_object()
            .bucket(BUCKET)
            .key(k)
            .send()
            .await
            .unwrap();
    }
}

async fn buckets(c: &Client) {
    c.head_bucket().bucket(BUCKET).send().await.unwrap();
    let e = c
        .head_bucket()
        .bucket("no-such-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    let e = c
        .get_object()
        .bucket("no-such-bucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchBucket".into()));
    let loc = c.get_bucket_location().bucket(BUCKET).send().await.unwrap();
    assert!(
        loc.location_constraint()
            .is_none_or(|l| l.as_str().is_empty())
    );
    let listed = c.list_buckets().send().await.unwrap();
    assert!(listed.buckets().iter().any(|b| b.name() == Some(BUCKET)));
    // Configured buckets cannot be created or deleted through the API.
    let e = c
        .create_bucket()
        .bucket("new-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 501);
    // A configured bucket is the gateway's, given to its users: creating it again is
    // what S3 answers its owner.
    let e = c.create_bucket().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketAlreadyOwnedByYou".into()));
}

/// The request id of an answer: its `x-amz-request-id`, which must be 16 hex digits, and
/// must be the `<RequestId>` of its error body, if it has one. The `x-amz-id-2` too.
fn request_id_of(raw: &aws_smithy_runtime_api::http::Response, what: &str) -> String {
    let header = |name: &str| {
        raw.headers()
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} (status {})", raw.status()))
            .to_owned()
    };
    let id = header("x-amz-request-id");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{what}: request id {id:?}"
    );
    assert!(!header("x-amz-id-2").is_empty(), "{what}: empty x-amz-id-2");
    if let Some(body) = raw.body().bytes().filter(|b| !b.is_empty()) {
        let body = String::from_utf8_lossy(body);
        let in_body = body
            .split_once("<RequestId>")
            .and_then(|(_, rest)| rest.split_once("</RequestId>"))
            .map(|(id, _)| id.to_owned());
        assert_eq!(in_body.as_deref(), Some(id.as_str()), "{what}: {body}");
    }
    id
}

/// Every answer carries `x-amz-request-id` and `x-amz-id-2`, success or error, whoever
/// made the error (an operation, the access check, the signature check, an operation
/// not implemented); an error body names the same id. Ids are not reused.
async fn request_ids(gw: &Gateway, c: &Client) {
    use aws_sdk_s3::operation::{RequestId, RequestIdExt};
    let mut ids = std::collections::HashSet::new();
    let mut seen = |id: String, what: &str| assert!(ids.insert(id), "{what}: id seen before");

    let put = c
        .put_object()
        .bucket(BUCKET)
        .key("ids/k")
        .body(ByteStream::from_static(b"id"))
        .send()
        .await
        .unwrap();
    let id = put
        .request_id()
        .expect("PutObject: no request id")
        .to_owned();
    assert!(put.extended_request_id().is_some_and(|h| !h.is_empty()));
    seen(id, "PutObject");
    for _ in 0..3 {
        let got = c
            .head_object()
            .bucket(BUCKET)
            .key("ids/k")
            .send()
            .await
            .unwrap();
        seen(
            got.request_id().expect("HeadObject: no id").to_owned(),
            "HeadObject",
        );
    }
    let listed = c.list_buckets().send().await.unwrap();
    seen(
        listed.request_id().expect("ListBuckets: no id").to_owned(),
        "ListBuckets",
    );

    fn error_id<E>(
        e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
        what: &str,
    ) -> String {
        let raw = e
            .raw_response()
            .unwrap_or_else(|| panic!("{what}: no response"));
        assert!(raw.status().as_u16() >= 400, "{what}: {}", raw.status());
        request_id_of(raw, what)
    }
    let what = "GetObject of a missing key";
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("ids/missing")
        .send()
        .await
        .unwrap_err();
    seen(error_id(&e, what), what);
    let what = "HeadObject of a missing key";
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("ids/missing")
        .send()
        .await
        .unwrap_err();
    seen(error_id(&e, what), what);
    let what = "a wrong signature";
    let wrong = switchyard_tests::harness::s3_client(&gw.endpoint, ACCESS_KEY, "wrong-secret");
    let e = wrong
        .get_object()
        .bucket(BUCKET)
        .key("ids/k")
        .send()
        .await
        .unwrap_err();
    seen(error_id(&e, what), what);
    let what = "an anonymous request denied";
    let e = anonymous_client(&gw.endpoint)
        .get_object()
        .bucket(BUCKET)
        .key("ids/k")
        .send()
        .await
        .unwrap_err();
    seen(error_id(&e, what), what);
    let what = "an operation not implemented";
    let e = c
        .get_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    seen(error_id(&e, what), what);
    c.delete_object()
        .bucket(BUCKET)
        .key("ids/k")
        .send()
        .await
        .unwrap();
}

/// A body sent with `Transfer-Encoding: chunked` and no Content-Length (plain HTTP
/// chunking, not aws-chunked), signed with UNSIGNED-PAYLOAD as streaming clients do:
/// stored whole, by PutObject and by UploadPart.
async fn chunked_bodies(endpoint: &str, c: &Client) {
    let send = |path: String, body: Vec<u8>| async move {
        let headers = sign_unsigned_payload(endpoint, (ACCESS_KEY, SECRET_KEY), "PUT", &path);
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
            .chunks(100_000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let mut req = reqwest::Client::new()
            .put(format!("{endpoint}{path}"))
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 200, "PUT {path} (chunked): {text}");
        etag.unwrap_or_else(|| panic!("PUT {path} (chunked): no ETag"))
    };
    // Larger than `part_size`: of unknown length, it goes to most backends in parts.
    let body = data(9_000_000, 11);
    send(format!("/{BUCKET}/chunked/put"), body.clone()).await;
    assert!(body_of(c, "chunked/put").await == body);

    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("chunked/mpu")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
    let part = data(700_000, 12);
    let etag = send(
        format!("/{BUCKET}/chunked/mpu?partNumber=1&uploadId={encoded}"),
        part.clone(),
    )
    .await;
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("chunked/mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(body_of(c, "chunked/mpu").await == part);
    for k in ["chunked/put", "chunked/mpu"] {
        c.delete_object()
            .bucket(BUCKET)
            .key(k)
            .send()
            .await
            .unwrap();
    }
    // A request whose XML body s3s reads whole still needs its length (as on S3).
    let path = format!("/{BUCKET}?delete");
    let headers = sign_unsigned_payload(endpoint, (ACCESS_KEY, SECRET_KEY), "POST", &path);
    let xml = b"<Delete><Object><Key>chunked/put</Key></Object></Delete>".to_vec();
    let mut req = reqwest::Client::new()
        .post(format!("{endpoint}{path}"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            bytes::Bytes::from(xml),
        )])));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 411, "DeleteObjects (chunked)");
}

/// What the gateway does not implement answers `501 NotImplemented` only after what S3
/// checks first: the requester may (403 otherwise), the bucket exists (404), the key or
/// upload named exists (404).
async fn checked_before_not_implemented(gw: &Gateway, c: &Client, kind: Kind) {
    const MISSING: &str = "no-such-bucket";
    c.put_object()
        .bucket(BUCKET)
        .key("ni/k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    // Operations the gateway does not have: CORS, object lock, versioning, lifecycle.
    for (bucket, want) in [
        (MISSING, (404, "NoSuchBucket")),
        (BUCKET, (501, "NotImplemented")),
    ] {
        let want = (want.0, want.1.to_owned());
        let e = c.get_bucket_cors().bucket(bucket).send().await.unwrap_err();
        assert_eq!(err_of(&e), want, "GetBucketCors on {bucket}");
        let e = c
            .get_object_retention()
            .bucket(bucket)
            .key("ni/k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), want, "GetObjectRetention on {bucket}");
        // Versioning is kept by the gateway, or S3's passed through (the `versioning`
        // and `versioning_native` steps).
        let versioned = bucket == BUCKET;
        if !versioned {
            let e = c
                .list_object_versions()
                .bucket(bucket)
                .send()
                .await
                .unwrap_err();
            assert_eq!(err_of(&e), want, "ListObjectVersions on {bucket}");
        }
        let e = c
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err_of(&e),
            want,
            "GetBucketLifecycleConfiguration on {bucket}"
        );
        // An S3 member's versioning is its backend bucket's, which PutBucketVersioning
        // sets (the `versioning_native` step): not tried on the suite's bucket.
        if kind == Kind::S3 && versioned {
            continue;
        }
        let e = c
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(enabled())
            .send()
            .await
            .unwrap_err();
        // A configured bucket's versioning is in the configuration file.
        let want = if versioned {
            (400, "InvalidRequest".to_owned())
        } else {
            want
        };
        assert_eq!(err_of(&e), want, "PutBucketVersioning on {bucket}");
    }
    // Denied comes first, whether the bucket exists or not.
    let anonymous = anonymous_client(&gw.endpoint);
    for bucket in [MISSING, BUCKET] {
        let e = anonymous
            .get_bucket_acl()
            .bucket(bucket)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (403, "AccessDenied".into()), "{bucket}");
        let e = anonymous
            .get_object()
            .bucket(bucket)
            .key("ni/k")
            .part_number(1)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (403, "AccessDenied".into()), "{bucket}");
    }
    // Operations the gateway has, with an argument it does not support.
    for (bucket, key, want) in [
        (MISSING, "ni/k", (404, "NoSuchBucket")),
        (BUCKET, "ni/missing", (404, "NoSuchKey")),
        (BUCKET, "ni/k", (501, "NotImplemented")),
    ] {
        let want = (want.0, want.1.to_owned());
        let e = c
            .get_object()
            .bucket(bucket)
            .key(key)
            .part_number(1)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), want, "GetObject partNumber {bucket}/{key}");
        let e = c
            .head_object()
            .bucket(bucket)
            .key(key)
            .part_number(1)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e).0, want.0, "HeadObject partNumber {bucket}/{key}");
    }
    let e = c
        .put_object()
        .bucket(MISSING)
        .key("ni/k")
        .if_match("\"abc\"")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchBucket".into()), "conditional PUT");
    let e = c
        .put_object()
        .bucket(MISSING)
        .key("ni/k")
        .if_none_match("\"abc\"")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (404, "NoSuchBucket".into()),
        "If-None-Match: etag"
    );
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("ni/mpu")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    for (bucket, upload, want) in [
        (MISSING, id, (404, "NoSuchBucket")),
        (BUCKET, "garbage", (404, "NoSuchUpload")),
        (BUCKET, id, (501, "NotImplemented")),
    ] {
        let e = c
            .complete_multipart_upload()
            .bucket(bucket)
            .key("ni/mpu")
            .upload_id(upload)
            .if_none_match("*")
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag("\"x\"")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err_of(&e),
            (want.0, want.1.to_owned()),
            "conditional CompleteMultipartUpload {bucket} {upload}"
        );
    }
    c.abort_multipart_upload()
        .bucket(BUCKET)
        .key("ni/mpu")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket(BUCKET)
        .key("ni/k")
        .send()
        .await
        .unwrap();
}

/// A configuration with a `[dynamic_buckets]` template of the fixture's kind (in `dir` on
/// `fs`, below `prefix` on the remote kinds) and a second user, `other`, with full access.
fn dynamic_config(fx: &Fixture, dir: &TempDir, prefix: &str) -> String {
    let template = match fx.kind {
        Kind::Fs => format!("kind = \"fs\"\nroot = {:?}\n", dir.0.display().to_string()),
        Kind::Memory => "kind = \"memory\"\n".to_owned(),
        Kind::S3 | Kind::Azure | Kind::Gcs => format!("{}prefix = {prefix:?}\n", fx.toml),
    };
    format!(
        "version = 1\n[[users]]\naccess_key = \"other\"\nsecret_key = \"other-secret\"\npolicy = \"full-access\"\n[dynamic_buckets]\n{template}"
    )
}

/// Buckets made by CreateBucket (`[dynamic_buckets]`: a directory per bucket on `fs`, a
/// store on memory, a prefix per bucket in the fixture's bucket or container on the
/// remote kinds): who owns one, ListBuckets, and DeleteBucket as AWS does it.
async fn dynamic_buckets(fx: &Fixture) {
    let dir = TempDir::new("dyn-conformance");
    let config = format!(
        "{}[backends.mem]\nkind = \"memory\"\n[buckets.configured]\nmembers = [\"mem\"]\n",
        dynamic_config(fx, &dir, "dynamic")
    );
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    let other = switchyard_tests::harness::s3_client(&gw.endpoint, "other", "other-secret");
    let anonymous = anonymous_client(&gw.endpoint);

    // CreateBucket on a bucket that exists: its creator owns it; another user may not
    // have the name (us-east-1's answers). A configured bucket is every user's.
    c.create_bucket().bucket("owned").send().await.unwrap();
    let names = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| {
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(c.list_buckets().send().await.unwrap()),
        ["configured", "owned"]
    );
    // Another engine over the same template (not memory: a store per engine) finds it,
    // and sees it go.
    let peer = match fx.kind {
        Kind::Memory => None,
        _ => Some(Gateway::start(&config).await.unwrap()),
    };
    if let Some(peer) = &peer {
        let pc = peer.client();
        assert_eq!(
            names(pc.list_buckets().send().await.unwrap()),
            ["configured", "owned"]
        );
        pc.head_bucket().bucket("owned").send().await.unwrap();
    }
    let e = c.create_bucket().bucket("owned").send().await.unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketAlreadyOwnedByYou".into()));
    let e = other
        .create_bucket()
        .bucket("owned")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketAlreadyExists".into()));
    for client in [&c, &other] {
        let e = client
            .create_bucket()
            .bucket("configured")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (409, "BucketAlreadyOwnedByYou".into()));
    }
    let e = anonymous
        .create_bucket()
        .bucket("owned")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 403);
    // Ownership goes with the bucket: deleted and made again by the other user, it is
    // theirs.
    c.delete_bucket().bucket("owned").send().await.unwrap();
    assert_eq!(
        names(c.list_buckets().send().await.unwrap()),
        ["configured"]
    );
    if let Some(peer) = peer {
        let pc = peer.client();
        assert_eq!(
            names(pc.list_buckets().send().await.unwrap()),
            ["configured"]
        );
        let e = pc.head_bucket().bucket("owned").send().await.unwrap_err();
        assert_eq!(err_of(&e).0, 404);
        peer.stop().await;
    }
    other.create_bucket().bucket("owned").send().await.unwrap();
    let e = other
        .create_bucket()
        .bucket("owned")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketAlreadyOwnedByYou".into()));
    let e = c.create_bucket().bucket("owned").send().await.unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketAlreadyExists".into()));
    other.delete_bucket().bucket("owned").send().await.unwrap();

    // Two users creating one name at once: one gets it, the other is told whose it is.
    for round in 0..10 {
        let name = format!("contended-{round}");
        let (a, b) = tokio::join!(
            c.create_bucket().bucket(&name).send(),
            other.create_bucket().bucket(&name).send()
        );
        let (winner, loser) = match (a.is_ok(), b.is_ok()) {
            (true, false) => (&c, b.unwrap_err()),
            (false, true) => (&other, a.unwrap_err()),
            both => panic!("round {round}: both or neither created it: {both:?}"),
        };
        assert_eq!(
            err_of(&loser),
            (409, "BucketAlreadyExists".into()),
            "round {round}"
        );
        let e = winner
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err_of(&e),
            (409, "BucketAlreadyOwnedByYou".into()),
            "round {round}"
        );
        winner.delete_bucket().bucket(&name).send().await.unwrap();
    }

    // An incomplete multipart upload does not keep a bucket: DeleteBucket aborts it.
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
    let e = c
        .list_multipart_uploads()
        .bucket("mpu-only")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchBucket".into()));
    // Made again, the bucket has no upload of the old one's.
    c.create_bucket().bucket("mpu-only").send().await.unwrap();
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu-only")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    // Objects do keep it.
    c.put_object()
        .bucket("mpu-only")
        .key("a/b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let e = c
        .delete_bucket()
        .bucket("mpu-only")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (409, "BucketNotEmpty".into()));
    c.delete_object()
        .bucket("mpu-only")
        .key("a/b")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("mpu-only").send().await.unwrap();
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_fs() {
    run_suite(Kind::Fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_memory() {
    run_suite(Kind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_s3() {
    run_suite(Kind::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_azure() {
    run_suite(Kind::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_gcs() {
    run_suite(Kind::Gcs).await;
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

fn crc32(data: &[u8]) -> Vec<u8> {
    crc32fast::hash(data).to_be_bytes().to_vec()
}

/// The checksum of algorithm `alg` an answer carries (`None` for none).
macro_rules! checksum_of {
    ($out:expr, $alg:expr) => {{
        use aws_sdk_s3::types::ChecksumAlgorithm as Alg;
        match $alg {
            Alg::Crc32 => $out.checksum_crc32(),
            Alg::Crc32C => $out.checksum_crc32_c(),
            Alg::Sha1 => $out.checksum_sha1(),
            Alg::Sha256 => $out.checksum_sha256(),
            _ => $out.checksum_crc64_nvme(),
        }
        .map(str::to_owned)
    }};
}

/// An answer's checksum of `alg` is `want`, of type `kind`.
macro_rules! assert_checksum {
    ($out:expr, $alg:expr, $want:expr, $kind:expr, $what:expr) => {{
        let out = &$out;
        assert_eq!(checksum_of!(out, $alg.clone()), $want, "{}", $what);
        assert_eq!(out.checksum_type(), $kind, "{}", $what);
    }};
}

/// HEAD with checksum mode.
async fn head_checksum(
    c: &Client,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    c.head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap()
}

/// GetObjectAttributes' `Checksum`.
async fn attributes_checksum(c: &Client, key: &str) -> aws_sdk_s3::types::Checksum {
    c.get_object_attributes()
        .bucket(BUCKET)
        .key(key)
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::Checksum)
        .send()
        .await
        .unwrap()
        .checksum
        .expect("GetObjectAttributes Checksum")
}

/// Every checksum an answer carries, whatever the algorithm.
macro_rules! any_checksum_of {
    ($out:expr) => {
        [
            $out.checksum_crc32(),
            $out.checksum_crc32_c(),
            $out.checksum_sha1(),
            $out.checksum_sha256(),
            $out.checksum_crc64_nvme(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
    };
}

/// A PUT's checksum (any algorithm; header or trailer) is kept with the object: HEAD and
/// GET answer it with `x-amz-checksum-mode: ENABLED`, only then, and not for a range; it
/// is not the client's metadata; copies keep it or compute a new one.
async fn stored_checksums(c: &Client) {
    use aws_sdk_s3::types::{ChecksumAlgorithm as Alg, ChecksumMode, ChecksumType};
    let body = data(10_000, 7);
    for alg in [
        Alg::Crc32,
        Alg::Crc32C,
        Alg::Sha1,
        Alg::Sha256,
        Alg::Crc64Nvme,
    ] {
        let key = format!("sums/{}", alg.as_str());
        let put = c
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let want = checksum_of!(put, alg.clone());
        assert!(want.is_some(), "{alg:?}");
        let full = Some(&ChecksumType::FullObject);
        let head = head_checksum(c, &key).await;
        assert_checksum!(head, alg, want, full, &key);
        assert!(
            head.metadata().is_none_or(|m| m.is_empty()),
            "{:?}",
            head.metadata()
        );
        let get = c
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_checksum!(get, alg, want, full, &key);
        assert!(get.body.collect().await.unwrap().into_bytes() == body);
        // Without checksum mode, none.
        let head = c
            .head_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert!(any_checksum_of!(head).is_empty(), "{alg:?}");
        assert_eq!(head.checksum_type(), None);
        // A range is not what the checksum covers.
        let ranged = c
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .range("bytes=0-99")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert!(any_checksum_of!(ranged).is_empty(), "{alg:?} ranged");
        let sum = attributes_checksum(c, &key).await;
        assert_checksum!(sum, alg, want, full, &key);
    }
    // A checksum in a header (no trailer), computed here.
    let want = b64(&sha256(&body));
    c.put_object()
        .bucket(BUCKET)
        .key("sums/header")
        .checksum_sha256(&want)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let head = head_checksum(c, "sums/header").await;
    assert_eq!(head.checksum_sha256(), Some(want.as_str()));
    // The metadata name is Switchyard's.
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("sums/forged")
        .metadata("switchyard-checksum", "CRC32:FULL_OBJECT:AAAAAA==")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 400);
    // A copy keeps the checksum with the metadata; a replaced one has none, unless the
    // copy asks for an algorithm, which is computed over the bytes.
    let crc = b64(&crc32(&body));
    let copy = |to: &'static str| {
        c.copy_object()
            .bucket(BUCKET)
            .key(to)
            .copy_source(format!("{BUCKET}/sums/CRC32"))
    };
    copy("sums/copy").send().await.unwrap();
    copy("sums/replaced")
        .metadata_directive(MetadataDirective::Replace)
        .send()
        .await
        .unwrap();
    copy("sums/recomputed")
        .metadata_directive(MetadataDirective::Replace)
        .checksum_algorithm(Alg::Sha256)
        .send()
        .await
        .unwrap();
    for (key, crc32_want, sha_want) in [
        ("sums/copy", Some(crc.as_str()), None),
        ("sums/replaced", None, None),
        ("sums/recomputed", None, Some(want.as_str())),
    ] {
        let head = head_checksum(c, key).await;
        assert_eq!(head.checksum_crc32(), crc32_want, "{key}");
        assert_eq!(head.checksum_sha256(), sha_want, "{key}");
    }
}

/// A multipart upload with a checksum algorithm keeps the parts' checksums combined:
/// COMPOSITE (the checksum of the parts' binary checksums, `-N`) or, for CRCs,
/// FULL_OBJECT (the CRC of the whole); a part checksum in the completion that is not
/// the uploaded one is InvalidPart.
async fn multipart_checksums(c: &Client) {
    use aws_sdk_s3::types::{ChecksumAlgorithm as Alg, ChecksumType};
    let parts = [data(5 * 1024 * 1024, 1), data(1000, 2)];
    let whole = parts.concat();
    for (alg, kind) in [
        (Alg::Crc32, ChecksumType::Composite),
        (Alg::Sha256, ChecksumType::Composite),
        (Alg::Crc32, ChecksumType::FullObject),
    ] {
        let hash = |d: &[u8]| match alg {
            Alg::Crc32 => crc32(d),
            _ => sha256(d),
        };
        let want = if kind == ChecksumType::Composite {
            let raw: Vec<u8> = parts.iter().flat_map(|p| hash(p)).collect();
            format!("{}-2", b64(&hash(&raw)))
        } else {
            b64(&hash(&whole))
        };
        let key = format!("sums/mpu-{}-{}", alg.as_str(), kind.as_str());
        let id = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .checksum_algorithm(alg.clone())
            .checksum_type(kind.clone())
            .send()
            .await
            .unwrap()
            .upload_id
            .unwrap();
        let mut done = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let up = c
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .checksum_algorithm(alg.clone())
                .body(ByteStream::from(p.clone()))
                .send()
                .await
                .unwrap();
            let sum = checksum_of!(up, alg.clone()).unwrap();
            assert_eq!(sum, b64(&hash(p)), "{key}: part {n}");
            let part = CompletedPart::builder()
                .part_number(n)
                .e_tag(up.e_tag().unwrap());
            done.push(match alg {
                Alg::Crc32 => part.checksum_crc32(sum),
                _ => part.checksum_sha256(sum),
            });
        }
        // A part checksum that is not the uploaded one.
        let complete = |parts: Vec<CompletedPart>| {
            c.complete_multipart_upload()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
        };
        let mut wrong: Vec<CompletedPart> = done.iter().map(|p| p.clone().build()).collect();
        wrong[0] = done[0]
            .clone()
            .checksum_crc32("AAAAAA==")
            .checksum_sha256(b64(&[0; 32]))
            .build();
        let e = complete(wrong).await.unwrap_err();
        assert_eq!(err_of(&e), (400, "InvalidPart".into()), "{key}");
        let out = complete(done.into_iter().map(|p| p.build()).collect())
            .await
            .unwrap();
        let want = Some(want);
        assert_checksum!(out, alg, want, Some(&kind), &key);
        let head = head_checksum(c, &key).await;
        assert_checksum!(head, alg, want, Some(&kind), &key);
        let sum = attributes_checksum(c, &key).await;
        assert_checksum!(sum, alg, want, Some(&kind), &key);
    }
    // SHA-256 has no full-object type; CRC64NVME no composite one.
    for (alg, kind) in [
        (Alg::Sha256, ChecksumType::FullObject),
        (Alg::Crc64Nvme, ChecksumType::Composite),
    ] {
        let e = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("sums/refused")
            .checksum_algorithm(alg)
            .checksum_type(kind)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e).0, 400);
    }
}

/// The canonical id of the requester, as ListBuckets' Owner shows it.
async fn my_id(c: &Client) -> String {
    let out = c.list_buckets().send().await.unwrap();
    let id = out.owner().and_then(|o| o.id()).unwrap().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    id
}

/// `grants` are FULL_CONTROL to `owner` alone: the ACL of everything under
/// BucketOwnerEnforced.
fn owner_only(grants: &[aws_sdk_s3::types::Grant], owner: &str) {
    assert_eq!(grants.len(), 1, "{grants:?}");
    let g = &grants[0];
    assert_eq!(
        g.permission(),
        Some(&aws_sdk_s3::types::Permission::FullControl)
    );
    let grantee = g.grantee().unwrap();
    assert_eq!(grantee.id(), Some(owner));
    assert_eq!(grantee.r#type(), &aws_sdk_s3::types::Type::CanonicalUser);
}

/// ACLs as S3 has them on a bucket made today (object ownership BucketOwnerEnforced): the
/// owner's FULL_CONTROL is read back, ACLs that change nothing are accepted, any other is
/// refused with 400 AccessControlListNotSupported and writes nothing. A configured bucket's
/// ownership and public access block are the configuration file's.
async fn acls(c: &Client) {
    use aws_sdk_s3::types::{
        AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, ObjectOwnership,
        OwnershipControls, OwnershipControlsRule, Permission, PublicAccessBlockConfiguration, Type,
    };
    let me = my_id(c).await;
    let not_supported = (400, "AccessControlListNotSupported".to_owned());
    let acl = c.get_bucket_acl().bucket(BUCKET).send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(me.as_str()));
    owner_only(acl.grants(), &me);
    let own = c
        .get_bucket_ownership_controls()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let rules = own.ownership_controls().unwrap().rules();
    assert_eq!(
        rules[0].object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );
    c.put_bucket_acl()
        .bucket(BUCKET)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let e = c
        .put_bucket_acl()
        .bucket(BUCKET)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), not_supported, "PutBucketAcl public-read");
    for canned in [
        ObjectCannedAcl::Private,
        ObjectCannedAcl::BucketOwnerFullControl,
    ] {
        c.put_object()
            .bucket(BUCKET)
            .key("acl/k")
            .acl(canned)
            .body(ByteStream::from_static(b"acl"))
            .send()
            .await
            .unwrap();
    }
    let acl = c
        .get_object_acl()
        .bucket(BUCKET)
        .key("acl/k")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(me.as_str()));
    owner_only(acl.grants(), &me);
    let e = c
        .get_object_acl()
        .bucket(BUCKET)
        .key("acl/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    // Writes with an ACL that grants more are refused before anything is written.
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("acl/refused")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), not_supported, "PutObject public-read");
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("acl/refused")
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), not_supported, "PutObject x-amz-grant-read");
    let e = c
        .copy_object()
        .bucket(BUCKET)
        .key("acl/refused")
        .copy_source(format!("{BUCKET}/acl/k"))
        .acl(ObjectCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), not_supported, "CopyObject public-read-write");
    let e = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("acl/refused")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), not_supported, "CreateMultipartUpload");
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("acl/refused")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404, "a refused write wrote nothing");
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix("acl/")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    // PutObjectAcl: the owner's FULL_CONTROL in the body changes nothing; a grant to
    // everyone is refused.
    let grant =
        |grantee: Grantee, p: Permission| Grant::builder().grantee(grantee).permission(p).build();
    let mine = Grantee::builder()
        .r#type(Type::CanonicalUser)
        .id(&me)
        .build()
        .unwrap();
    let everyone = Grantee::builder()
        .r#type(Type::Group)
        .uri("http://acs.amazonaws.com/groups/global/AllUsers")
        .build()
        .unwrap();
    let owner = aws_sdk_s3::types::Owner::builder().id(&me).build();
    let body = AccessControlPolicy::builder()
        .owner(owner.clone())
        .grants(grant(mine.clone(), Permission::FullControl))
        .build();
    c.put_object_acl()
        .bucket(BUCKET)
        .key("acl/k")
        .access_control_policy(body)
        .send()
        .await
        .unwrap();
    let body = AccessControlPolicy::builder()
        .owner(owner)
        .grants(grant(mine, Permission::FullControl))
        .grants(grant(everyone, Permission::Read))
        .build();
    let e = c
        .put_object_acl()
        .bucket(BUCKET)
        .key("acl/k")
        .access_control_policy(body)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), not_supported, "PutObjectAcl AllUsers READ");
    let e = c
        .put_object_acl()
        .bucket(BUCKET)
        .key("acl/missing")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    // A configured bucket's settings are the configuration file's.
    let e = c
        .put_bucket_ownership_controls()
        .bucket(BUCKET)
        .ownership_controls(
            OwnershipControls::builder()
                .rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidRequest".into()));
    let e = c
        .put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_policy(true)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidRequest".into()));
    let e = c
        .get_public_access_block()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (404, "NoSuchPublicAccessBlockConfiguration".into())
    );
    c.delete_object()
        .bucket(BUCKET)
        .key("acl/k")
        .send()
        .await
        .unwrap();
}

/// On buckets made by CreateBucket: the creator owns the bucket (whoever asks), CreateBucket
/// refuses ACLs under BucketOwnerEnforced and unknown ownerships, and a public access block is stored in the bucket,
/// blocks public policies and takes a public policy's grants from anonymous requests.
async fn dynamic_acls(fx: &Fixture) {
    use aws_sdk_s3::types::{
        BucketCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
        PublicAccessBlockConfiguration,
    };
    let dir = TempDir::new("dyn-acls");
    let config = dynamic_config(fx, &dir, "dynacl");
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    let other = switchyard_tests::harness::s3_client(&gw.endpoint, "other", "other-secret");
    let anonymous = anonymous_client(&gw.endpoint);
    let me = my_id(&c).await;
    assert_ne!(me, my_id(&other).await);
    const B: &str = "acl-owned";

    let e = c
        .create_bucket()
        .bucket(B)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (400, "InvalidBucketAclWithObjectOwnership".into())
    );
    let e = c
        .create_bucket()
        .bucket(B)
        .object_ownership(ObjectOwnership::from("Everyone"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));
    let e = c.head_bucket().bucket(B).send().await.unwrap_err();
    assert_eq!(err_of(&e).0, 404, "a refused CreateBucket made nothing");
    c.create_bucket()
        .bucket(B)
        .acl(BucketCannedAcl::Private)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .unwrap();
    // The creator owns it, whoever asks.
    for client in [&c, &other] {
        let acl = client.get_bucket_acl().bucket(B).send().await.unwrap();
        assert_eq!(acl.owner().and_then(|o| o.id()), Some(me.as_str()));
        owner_only(acl.grants(), &me);
    }
    let rule = |o: ObjectOwnership| {
        OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(o)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    c.put_bucket_ownership_controls()
        .bucket(B)
        .ownership_controls(rule(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .unwrap();
    let e = c
        .put_bucket_ownership_controls()
        .bucket(B)
        .ownership_controls(rule(ObjectOwnership::from("Everyone")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));

    // Block Public Access.
    let e = c
        .get_public_access_block()
        .bucket(B)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (404, "NoSuchPublicAccessBlockConfiguration".into())
    );
    let block = |policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(false)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block(true, true))
        .send()
        .await
        .unwrap();
    let got = c.get_public_access_block().bucket(B).send().await.unwrap();
    assert_eq!(
        got.public_access_block_configuration(),
        Some(&block(true, true))
    );
    let public = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{B}/*"}}]}}"#
    );
    let e = c
        .put_bucket_policy()
        .bucket(B)
        .policy(&public)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (403, "AccessDenied".into()),
        "BlockPublicPolicy"
    );
    let e = c.get_bucket_policy().bucket(B).send().await.unwrap_err();
    assert_eq!(
        err_of(&e),
        (404, "NoSuchBucketPolicy".into()),
        "nothing stored"
    );
    // Without BlockPublicPolicy the policy is stored; RestrictPublicBuckets keeps it from
    // anonymous requests, not from the gateway's users.
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    c.put_bucket_policy()
        .bucket(B)
        .policy(&public)
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket(B)
        .key("k")
        .body(ByteStream::from_static(b"public"))
        .send()
        .await
        .unwrap();
    let status = |c: Client| async move {
        c.get_bucket_policy_status()
            .bucket(B)
            .send()
            .await
            .unwrap()
            .policy_status()
            .and_then(|s| s.is_public())
    };
    let e = anonymous
        .get_object()
        .bucket(B)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (403, "AccessDenied".into()),
        "RestrictPublicBuckets"
    );
    other.get_object().bucket(B).key("k").send().await.unwrap();
    assert_eq!(status(c.clone()).await, Some(false));
    c.delete_public_access_block()
        .bucket(B)
        .send()
        .await
        .unwrap();
    let got = anonymous
        .get_object()
        .bucket(B)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"public"
    );
    assert_eq!(status(c.clone()).await, Some(true));
    let e = c
        .get_public_access_block()
        .bucket(B)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    // The block is stored in the bucket: another engine over the same template sees it.
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    if fx.kind != Kind::Memory {
        let peer = Gateway::start(&config).await.unwrap();
        let got = peer
            .client()
            .get_public_access_block()
            .bucket(B)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.public_access_block_configuration(),
            Some(&block(false, true))
        );
        let e = anonymous_client(&peer.endpoint)
            .get_object()
            .bucket(B)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (403, "AccessDenied".into()), "through a peer");
        peer.stop().await;
    }
    // Anonymous requests may not touch the settings.
    let e = anonymous
        .get_bucket_acl()
        .bucket(B)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    let e = anonymous
        .delete_public_access_block()
        .bucket(B)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    c.delete_object().bucket(B).key("k").send().await.unwrap();
    c.delete_bucket().bucket(B).send().await.unwrap();
    gw.stop().await;
}

/// Runs a long step on a thread of its own, with a runtime of its own: in a debug build
/// the polling of its state machine needs more than a test thread's 2 MiB of stack.
fn on_big_stack(step: impl std::future::Future<Output = ()> + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(32 << 20)
            .spawn_scoped(s, || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(step)
            })
            .unwrap()
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
}

/// Users with no policy of their own, beside the tests' (full-access) and "other"
/// (full-access): what they may do, ACLs alone give them.
const ACL_USERS: &str = "[[users]]\naccess_key = \"reader\"\nsecret_key = \"reader-secret\"\nname = \"reader\"\n[[users]]\naccess_key = \"carol\"\nsecret_key = \"carol-secret\"\nname = \"carol\"\n";

fn ownership_rule(o: aws_sdk_s3::types::ObjectOwnership) -> aws_sdk_s3::types::OwnershipControls {
    use aws_sdk_s3::types::{OwnershipControls, OwnershipControlsRule};
    OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(o)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn set_ownership(c: &Client, bucket: &str, o: aws_sdk_s3::types::ObjectOwnership) {
    c.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(ownership_rule(o))
        .send()
        .await
        .unwrap();
}

fn block_acls(block: bool, ignore: bool) -> aws_sdk_s3::types::PublicAccessBlockConfiguration {
    aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(block)
        .ignore_public_acls(ignore)
        .block_public_policy(false)
        .restrict_public_buckets(false)
        .build()
}

/// `id="..."` of a configured user, as grant headers name it.
fn id_of(user: &str) -> String {
    format!("id=\"{}\"", switchyard::frontend::canonical_id(user))
}

/// (grantee id or group URI, permission) of an ACL's grants, sorted.
fn grant_list(grants: &[aws_sdk_s3::types::Grant]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = grants
        .iter()
        .map(|g| {
            let e = g.grantee().unwrap();
            let who = e.id().or(e.uri()).unwrap_or_default().to_owned();
            (who, g.permission().unwrap().as_str().to_owned())
        })
        .collect();
    out.sort();
    out
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// Whether `client` may list `bucket` (else the answer must be 403 AccessDenied).
async fn may_list(client: &Client, bucket: &str) -> bool {
    match client.list_objects_v2().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(err_of(&e), (403, "AccessDenied".into()));
            false
        }
    }
}

/// Whether `client` may read `key` of `bucket` (else the answer must be 403).
async fn may_read(client: &Client, bucket: &str, key: &str) -> bool {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(err_of(&e), (403, "AccessDenied".into()), "{bucket}/{key}");
            false
        }
    }
}

/// Bucket ACLs on a bucket made by CreateBucket with ACLs enabled (ObjectWriter), as AWS
/// has them: canned ACLs, grant headers and the AccessControlPolicy body; AllUsers READ lets
/// anonymous requests list, AuthenticatedUsers only the gateway's users, a grant by
/// canonical id that user; WRITE lets its grantee write. An explicit Deny in the bucket
/// policy beats a grant; BlockPublicAcls refuses a public ACL, IgnorePublicAcls makes it
/// count for nothing; under BucketOwnerEnforced the ACL is kept and ignored. Stored in
/// the bucket, so another engine over the same template sees it.
async fn bucket_acls(fx: &Fixture) {
    on_big_stack(bucket_acls_steps(fx));
}

async fn bucket_acls_steps(fx: &Fixture) {
    use aws_sdk_s3::types::{
        AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectOwnership, Permission, Type,
    };
    let dir = TempDir::new("bucket-acls");
    let config = format!("{}{ACL_USERS}", dynamic_config(fx, &dir, "bucketacl"));
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    let reader = switchyard_tests::harness::s3_client(&gw.endpoint, "reader", "reader-secret");
    let carol = switchyard_tests::harness::s3_client(&gw.endpoint, "carol", "carol-secret");
    let anonymous = anonymous_client(&gw.endpoint);
    let me = my_id(&c).await;
    const B: &str = "acl-enabled";

    c.create_bucket()
        .bucket(B)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let own = c
        .get_bucket_ownership_controls()
        .bucket(B)
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.ownership_controls().unwrap().rules()[0].object_ownership(),
        &ObjectOwnership::ObjectWriter
    );
    let acl = c.get_bucket_acl().bucket(B).send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(me.as_str()));
    assert_eq!(
        grant_list(acl.grants()),
        [
            (me.clone(), "FULL_CONTROL".to_owned()),
            (ALL_USERS.to_owned(), "READ".to_owned())
        ]
    );
    // public-read: anyone lists, nobody else writes.
    assert!(may_list(&anonymous, B).await);
    assert!(may_list(&reader, B).await);
    let e = anonymous
        .put_object()
        .bucket(B)
        .key("k")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    // private: the owner alone.
    c.put_bucket_acl()
        .bucket(B)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert!(!may_list(&anonymous, B).await);
    assert!(!may_list(&reader, B).await);
    // authenticated-read: the gateway's users, not anonymous requests.
    c.put_bucket_acl()
        .bucket(B)
        .acl(BucketCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap();
    assert!(may_list(&reader, B).await);
    assert!(!may_list(&anonymous, B).await);
    // A grant by canonical id: WRITE to carol, who may write but not list; reader nothing.
    c.put_bucket_acl()
        .bucket(B)
        .grant_full_control(format!("id=\"{me}\""))
        .grant_write(id_of("carol"))
        .send()
        .await
        .unwrap();
    carol
        .put_object()
        .bucket(B)
        .key("by-carol")
        .body(ByteStream::from_static(b"carol"))
        .send()
        .await
        .unwrap();
    assert!(!may_list(&carol, B).await);
    assert!(!may_list(&reader, B).await);
    let e = reader
        .put_object()
        .bucket(B)
        .key("by-reader")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    // The body form, read back as given.
    let grant = |id: &str, p: Permission| {
        Grant::builder()
            .grantee(
                Grantee::builder()
                    .r#type(Type::CanonicalUser)
                    .id(id)
                    .build()
                    .unwrap(),
            )
            .permission(p)
            .build()
    };
    let reader_id = switchyard::frontend::canonical_id("reader");
    let body = AccessControlPolicy::builder()
        .owner(aws_sdk_s3::types::Owner::builder().id(&me).build())
        .grants(grant(&me, Permission::FullControl))
        .grants(grant(&reader_id, Permission::Read))
        .grants(grant(&reader_id, Permission::ReadAcp))
        .build();
    c.put_bucket_acl()
        .bucket(B)
        .access_control_policy(body)
        .send()
        .await
        .unwrap();
    assert!(may_list(&reader, B).await);
    let got = reader.get_bucket_acl().bucket(B).send().await.unwrap();
    assert_eq!(grant_list(got.grants()), {
        let mut want = vec![
            (me.clone(), "FULL_CONTROL".to_owned()),
            (reader_id.clone(), "READ".to_owned()),
            (reader_id.clone(), "READ_ACP".to_owned()),
        ];
        want.sort();
        want
    });
    // READ_ACP is not WRITE_ACP.
    let e = reader
        .put_bucket_acl()
        .bucket(B)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    // A grant to nobody the gateway knows, or by e-mail, is refused.
    let e = c
        .put_bucket_acl()
        .bucket(B)
        .grant_read(format!("id=\"{}\"", "0".repeat(64)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));
    let e = c
        .put_bucket_acl()
        .bucket(B)
        .grant_read("emailAddress=\"someone@example.com\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 400);
    assert!(may_list(&reader, B).await, "a refused ACL changed nothing");

    // An explicit Deny in the bucket policy beats the grant.
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"reader"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::{B}"}}]}}"#
    );
    c.put_bucket_policy()
        .bucket(B)
        .policy(deny)
        .send()
        .await
        .unwrap();
    assert!(!may_list(&reader, B).await, "Deny beats the ACL");
    c.delete_bucket_policy().bucket(B).send().await.unwrap();
    assert!(may_list(&reader, B).await);

    // Block Public Access: BlockPublicAcls refuses a public ACL and stores nothing...
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block_acls(true, false))
        .send()
        .await
        .unwrap();
    for canned in [
        BucketCannedAcl::PublicRead,
        BucketCannedAcl::AuthenticatedRead,
    ] {
        let e = c
            .put_bucket_acl()
            .bucket(B)
            .acl(canned.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (403, "AccessDenied".into()), "{canned:?}");
    }
    let e = c
        .put_bucket_acl()
        .bucket(B)
        .grant_read(format!("uri=\"{ALL_USERS}\""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    assert!(!may_list(&anonymous, B).await);
    // ...IgnorePublicAcls lets it be stored and count for nothing.
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block_acls(false, true))
        .send()
        .await
        .unwrap();
    c.put_bucket_acl()
        .bucket(B)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert!(!may_list(&anonymous, B).await, "IgnorePublicAcls");
    assert!(!may_list(&reader, B).await, "IgnorePublicAcls");
    c.delete_public_access_block()
        .bucket(B)
        .send()
        .await
        .unwrap();
    assert!(may_list(&anonymous, B).await);

    // BucketOwnerEnforced is refused while the ACL is public (as AWS); once it is not, the
    // ACL is kept and ignored, and counts again when ACLs are enabled again.
    let e = c
        .put_bucket_ownership_controls()
        .bucket(B)
        .ownership_controls(ownership_rule(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (400, "InvalidBucketAclWithObjectOwnership".into())
    );
    c.put_bucket_acl()
        .bucket(B)
        .grant_full_control(format!("id=\"{me}\""))
        .grant_read(id_of("reader"))
        .send()
        .await
        .unwrap();
    assert!(may_list(&reader, B).await);
    set_ownership(&c, B, ObjectOwnership::BucketOwnerEnforced).await;
    assert!(
        !may_list(&reader, B).await,
        "ignored under BucketOwnerEnforced"
    );
    owner_only(
        c.get_bucket_acl().bucket(B).send().await.unwrap().grants(),
        &me,
    );
    let e = c
        .put_bucket_acl()
        .bucket(B)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "AccessControlListNotSupported".into()));
    set_ownership(&c, B, ObjectOwnership::BucketOwnerPreferred).await;
    assert!(may_list(&reader, B).await, "kept, and counted again");
    // Without ownership controls S3 treats the bucket as ObjectWriter: ACLs count.
    c.delete_bucket_ownership_controls()
        .bucket(B)
        .send()
        .await
        .unwrap();
    let e = c
        .get_bucket_ownership_controls()
        .bucket(B)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "OwnershipControlsNotFoundError".into()));
    assert!(may_list(&reader, B).await);
    // Stored in the bucket: another engine over the same template sees it.
    if fx.kind != Kind::Memory {
        let peer = Gateway::start(&config).await.unwrap();
        let reader =
            switchyard_tests::harness::s3_client(&peer.endpoint, "reader", "reader-secret");
        assert!(may_list(&reader, B).await, "through a peer");
        assert!(!may_list(&anonymous_client(&peer.endpoint), B).await);
        peer.stop().await;
    }
    // Only the owner's grants decide who changes the ACL and the controls.
    let e = anonymous
        .put_bucket_ownership_controls()
        .bucket(B)
        .ownership_controls(ownership_rule(ObjectOwnership::ObjectWriter))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    c.delete_object()
        .bucket(B)
        .key("by-carol")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket(B).send().await.unwrap();
    gw.stop().await;
}

/// Object ACLs, kept with the object (`fs`: in its extended attribute beside its tags;
/// memory: with the object), on a bucket with ACLs enabled: `x-amz-acl` and grant headers
/// on PutObject, CopyObject (never the source's ACL) and CreateMultipartUpload;
/// Get/PutObjectAcl; public-read lets anonymous requests read, private takes it back,
/// authenticated-read is for the gateway's users, a grant by canonical id for that user.
/// The writer owns what it writes under ObjectWriter, the bucket owner under
/// BucketOwnerPreferred with bucket-owner-full-control. An explicit Deny beats a grant;
/// BlockPublicAcls refuses and writes nothing; IgnorePublicAcls and BucketOwnerEnforced
/// make the grants count for nothing, until ACLs count again.
async fn object_acls(fx: &Fixture) {
    on_big_stack(object_acls_steps(fx));
}

async fn object_acls_steps(fx: &Fixture) {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, ObjectOwnership};
    let dir = TempDir::new("object-acls");
    let config = format!("{}{ACL_USERS}", dynamic_config(fx, &dir, "objectacl"));
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    let reader = switchyard_tests::harness::s3_client(&gw.endpoint, "reader", "reader-secret");
    let carol = switchyard_tests::harness::s3_client(&gw.endpoint, "carol", "carol-secret");
    let anonymous = anonymous_client(&gw.endpoint);
    let me = my_id(&c).await;
    const B: &str = "object-acls";
    c.create_bucket()
        .bucket(B)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    let put = |client: &Client, key: &str, acl: Option<ObjectCannedAcl>| {
        client
            .put_object()
            .bucket(B)
            .key(key)
            .set_acl(acl)
            .body(ByteStream::from(key.as_bytes().to_vec()))
            .send()
    };

    // public-read, then private.
    put(&c, "pub", Some(ObjectCannedAcl::PublicRead))
        .await
        .unwrap();
    assert!(may_read(&anonymous, B, "pub").await);
    assert!(
        !may_list(&anonymous, B).await,
        "an object's ACL is not the bucket's"
    );
    let acl = c
        .get_object_acl()
        .bucket(B)
        .key("pub")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(me.as_str()));
    assert_eq!(
        grant_list(acl.grants()),
        [
            (me.clone(), "FULL_CONTROL".to_owned()),
            (ALL_USERS.to_owned(), "READ".to_owned())
        ]
    );
    let before = c.head_object().bucket(B).key("pub").send().await.unwrap();
    c.put_object_acl()
        .bucket(B)
        .key("pub")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert!(!may_read(&anonymous, B, "pub").await);
    owner_only(
        c.get_object_acl()
            .bucket(B)
            .key("pub")
            .send()
            .await
            .unwrap()
            .grants(),
        &me,
    );
    let after = c.head_object().bucket(B).key("pub").send().await.unwrap();
    assert_eq!(
        (before.e_tag(), before.last_modified()),
        (after.e_tag(), after.last_modified()),
        "PutObjectAcl leaves the bytes, ETag and Last-Modified"
    );
    // authenticated-read: the gateway's users, not anonymous requests.
    put(&c, "auth", Some(ObjectCannedAcl::AuthenticatedRead))
        .await
        .unwrap();
    assert!(may_read(&reader, B, "auth").await);
    assert!(!may_read(&anonymous, B, "auth").await);
    // A grant by canonical id: carol reads, reader no longer does.
    c.put_object_acl()
        .bucket(B)
        .key("auth")
        .grant_full_control(format!("id=\"{me}\""))
        .grant_read(id_of("carol"))
        .send()
        .await
        .unwrap();
    assert!(may_read(&carol, B, "auth").await);
    assert!(!may_read(&reader, B, "auth").await);
    let e = carol
        .get_object_acl()
        .bucket(B)
        .key("auth")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (403, "AccessDenied".into()),
        "READ is not READ_ACP"
    );
    let e = c
        .put_object_acl()
        .bucket(B)
        .key("missing")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));

    // A copy gets its own ACL, never its source's.
    c.put_object_acl()
        .bucket(B)
        .key("pub")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    c.copy_object()
        .bucket(B)
        .key("copy-private")
        .copy_source(format!("{B}/pub"))
        .send()
        .await
        .unwrap();
    assert!(!may_read(&anonymous, B, "copy-private").await);
    c.copy_object()
        .bucket(B)
        .key("copy-public")
        .copy_source(format!("{B}/auth"))
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert!(may_read(&anonymous, B, "copy-public").await);
    // A multipart upload's ACL is the completed object's.
    let up = c
        .create_multipart_upload()
        .bucket(B)
        .key("mpu")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let part = c
        .upload_part()
        .bucket(B)
        .key("mpu")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"parts"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket(B)
        .key("mpu")
        .upload_id(up.upload_id().unwrap())
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
        .unwrap();
    assert!(may_read(&anonymous, B, "mpu").await);

    // ObjectWriter: carol (WRITE on the bucket) owns what she writes, and may read it.
    c.put_bucket_acl()
        .bucket(B)
        .grant_full_control(format!("id=\"{me}\""))
        .grant_write(id_of("carol"))
        .send()
        .await
        .unwrap();
    put(&carol, "carols", None).await.unwrap();
    assert!(may_read(&carol, B, "carols").await);
    assert!(!may_read(&reader, B, "carols").await);
    let acl = c
        .get_object_acl()
        .bucket(B)
        .key("carols")
        .send()
        .await
        .unwrap();
    let carol_id = switchyard::frontend::canonical_id("carol");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(carol_id.as_str()));
    // BucketOwnerPreferred: with bucket-owner-full-control the bucket's owner owns it.
    set_ownership(&c, B, ObjectOwnership::BucketOwnerPreferred).await;
    put(
        &carol,
        "preferred",
        Some(ObjectCannedAcl::BucketOwnerFullControl),
    )
    .await
    .unwrap();
    let acl = c
        .get_object_acl()
        .bucket(B)
        .key("preferred")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(me.as_str()));
    owner_only(acl.grants(), &me);
    assert!(!may_read(&carol, B, "preferred").await);
    put(&carol, "carols2", Some(ObjectCannedAcl::BucketOwnerRead))
        .await
        .unwrap();
    let acl = c
        .get_object_acl()
        .bucket(B)
        .key("carols2")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(carol_id.as_str()));
    assert_eq!(grant_list(acl.grants()), {
        let mut want = vec![
            (carol_id.clone(), "FULL_CONTROL".to_owned()),
            (me.clone(), "READ".to_owned()),
        ];
        want.sort();
        want
    });

    // An explicit Deny beats the grant.
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{B}/pub"}}]}}"#
    );
    c.put_bucket_policy()
        .bucket(B)
        .policy(deny)
        .send()
        .await
        .unwrap();
    assert!(!may_read(&anonymous, B, "pub").await, "Deny beats the ACL");
    assert!(may_read(&anonymous, B, "mpu").await);
    c.delete_bucket_policy().bucket(B).send().await.unwrap();
    assert!(may_read(&anonymous, B, "pub").await);

    // BlockPublicAcls: refused, nothing written or changed.
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block_acls(true, false))
        .send()
        .await
        .unwrap();
    let e = put(&c, "blocked", Some(ObjectCannedAcl::PublicRead))
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    let e = c
        .head_object()
        .bucket(B)
        .key("blocked")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404, "a refused write wrote nothing");
    let e = c
        .put_object_acl()
        .bucket(B)
        .key("auth")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));
    assert!(may_read(&carol, B, "auth").await, "unchanged");
    assert!(!may_read(&reader, B, "auth").await, "unchanged");
    // IgnorePublicAcls: public grants count for nothing, the users' still count.
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(block_acls(false, true))
        .send()
        .await
        .unwrap();
    assert!(!may_read(&anonymous, B, "pub").await, "IgnorePublicAcls");
    assert!(may_read(&carol, B, "auth").await);
    c.delete_public_access_block()
        .bucket(B)
        .send()
        .await
        .unwrap();
    assert!(may_read(&anonymous, B, "pub").await);

    // BucketOwnerEnforced: the object ACLs are kept and ignored (the bucket's must not be
    // public, it is not), and count again once ACLs do.
    c.put_bucket_acl()
        .bucket(B)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    set_ownership(&c, B, ObjectOwnership::BucketOwnerEnforced).await;
    assert!(!may_read(&anonymous, B, "pub").await, "ignored");
    assert!(!may_read(&carol, B, "carols").await, "ignored");
    owner_only(
        c.get_object_acl()
            .bucket(B)
            .key("carols")
            .send()
            .await
            .unwrap()
            .grants(),
        &me,
    );
    let e = c
        .put_object_acl()
        .bucket(B)
        .key("pub")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "AccessControlListNotSupported".into()));
    set_ownership(&c, B, ObjectOwnership::ObjectWriter).await;
    assert!(may_read(&anonymous, B, "pub").await, "kept with the object");
    for k in [
        "pub",
        "auth",
        "copy-private",
        "copy-public",
        "mpu",
        "carols",
        "preferred",
        "carols2",
    ] {
        c.delete_object().bucket(B).key(k).send().await.unwrap();
    }
    c.delete_bucket().bucket(B).send().await.unwrap();
    gw.stop().await;
}

/// Object ACLs in a versioned bucket with ACLs enabled, as AWS keeps them: each version
/// has its own (set by `x-amz-acl` on its write, changed by PutObjectAcl with its
/// `versionId`, or without one on the current version), which decides reads of that
/// version; an ACL change makes no version and leaves the ETag and Last-Modified. A
/// version the request names is authorized with the version actions
/// (`s3:PutObjectVersionAcl`, `s3:PutObjectVersionTagging`...), not the current
/// object's: a user allowed the latter only is refused. Kinds that keep no ACLs take
/// the default ACL on any version and refuse another with 501, writing nothing.
async fn versioned_acls(fx: &Fixture) {
    on_big_stack(versioned_acls_steps(fx));
}

/// Kinds that keep no ACLs, in a versioned bucket with ACLs enabled: the default ACL on
/// any version, and `501` with nothing written for any other.
async fn versioned_acls_refused(fx: &Fixture) {
    on_big_stack(versioned_acls_refused_steps(fx));
}

async fn versioned_acls_refused_steps(fx: &Fixture) {
    use aws_sdk_s3::types::ObjectCannedAcl;
    let dir = TempDir::new("versioned-acls");
    const B: &str = VACL;
    let gw = versioned_acl_gateway(fx, &dir, B).await;
    let c = gw.client();
    let anonymous = anonymous_client(&gw.endpoint);
    let me = my_id(&c).await;
    let e = put_acl_version(&c, ObjectCannedAcl::PublicRead, b"no")
        .await
        .unwrap_err();
    assert_eq!(e, (501, "NotImplemented".into()));
    let e = c.head_object().bucket(B).key("k").send().await.unwrap_err();
    assert_eq!(err_of(&e).0, 404, "a refused write wrote nothing");
    let v = put_acl_version(&c, ObjectCannedAcl::Private, b"one")
        .await
        .unwrap();
    put_acl_version(&c, ObjectCannedAcl::Private, b"two")
        .await
        .unwrap();
    let e = c
        .put_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (501, "NotImplemented".into()));
    c.put_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v)
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    owner_only(version_acl(&c, Some(&v)).await.unwrap().grants(), &me);
    let e = read_version(&anonymous, &v).await.unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()));
    gw.stop().await;
}

/// The bucket of the `versioned_acls` steps, and its one key.
const VACL: &str = "versioned-acls";

/// Writes a version of `k` in [`VACL`] with `acl`; answers its version id.
async fn put_acl_version(
    c: &Client,
    acl: aws_sdk_s3::types::ObjectCannedAcl,
    body: &'static [u8],
) -> Result<String, (u16, String)> {
    match c
        .put_object()
        .bucket(VACL)
        .key("k")
        .acl(acl)
        .body(ByteStream::from_static(body))
        .send()
        .await
    {
        Ok(o) => Ok(o.version_id().unwrap().to_owned()),
        Err(e) => Err(err_of(&e)),
    }
}

/// GetObjectAcl of `k` in [`VACL`] (`version`, or the current one).
async fn version_acl(
    c: &Client,
    version: Option<&str>,
) -> Result<aws_sdk_s3::operation::get_object_acl::GetObjectAclOutput, (u16, String)> {
    c.get_object_acl()
        .bucket(VACL)
        .key("k")
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map_err(|e| err_of(&e))
}

/// GetObject of one version of `k` in [`VACL`].
async fn read_version(c: &Client, version: &str) -> Result<Vec<u8>, (u16, String)> {
    match c
        .get_object()
        .bucket(VACL)
        .key("k")
        .version_id(version)
        .send()
        .await
    {
        Ok(o) => Ok(o.body.collect().await.unwrap().to_vec()),
        Err(e) => Err(err_of(&e)),
    }
}

/// A gateway over `fx`'s kind with a bucket made by CreateBucket (ObjectWriter, ACLs
/// enabled), versioned.
async fn versioned_acl_gateway(fx: &Fixture, dir: &TempDir, bucket: &str) -> Gateway {
    use aws_sdk_s3::types::ObjectOwnership;
    let config = format!("{}{ACL_USERS}", dynamic_config(fx, dir, "vacl"));
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    c.create_bucket()
        .bucket(bucket)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    gw
}

async fn versioned_acls_steps(fx: &Fixture) {
    use aws_sdk_s3::types::ObjectCannedAcl;
    let dir = TempDir::new("versioned-acls");
    const B: &str = VACL;
    let gw = versioned_acl_gateway(fx, &dir, B).await;
    let c = gw.client();
    let anonymous = anonymous_client(&gw.endpoint);
    let me = my_id(&c).await;
    let carol = switchyard_tests::harness::s3_client(&gw.endpoint, "carol", "carol-secret");

    // Each version its own ACL: v1 public, v2 (current) private.
    let v1 = put_acl_version(&c, ObjectCannedAcl::PublicRead, b"one")
        .await
        .unwrap();
    let v2 = put_acl_version(&c, ObjectCannedAcl::Private, b"two")
        .await
        .unwrap();
    assert!(!may_read(&anonymous, B, "k").await);
    assert_eq!(read_version(&anonymous, &v1).await.unwrap(), b"one");
    let public = vec![
        (me.clone(), "FULL_CONTROL".to_owned()),
        (ALL_USERS.to_owned(), "READ".to_owned()),
    ];
    assert_eq!(
        grant_list(version_acl(&c, Some(&v1)).await.unwrap().grants()),
        public
    );
    owner_only(version_acl(&c, None).await.unwrap().grants(), &me);
    owner_only(version_acl(&c, Some(&v2)).await.unwrap().grants(), &me);

    // PutObjectAcl on the older version: the current one keeps its ACL.
    let before = c
        .head_object()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    c.put_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let e = read_version(&anonymous, &v1).await.unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()));
    owner_only(version_acl(&c, Some(&v1)).await.unwrap().grants(), &me);
    owner_only(version_acl(&c, None).await.unwrap().grants(), &me);
    let after = c
        .head_object()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (before.e_tag(), before.last_modified()),
        (after.e_tag(), after.last_modified()),
        "PutObjectAcl leaves a version's ETag and Last-Modified"
    );

    // Without a version id: the current version's, and the key's copy of it.
    c.put_object_acl()
        .bucket(B)
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert!(may_read(&anonymous, B, "k").await);
    assert!(read_version(&anonymous, &v2).await.is_ok());
    assert_eq!(
        grant_list(version_acl(&c, Some(&v2)).await.unwrap().grants()),
        public
    );
    owner_only(version_acl(&c, Some(&v1)).await.unwrap().grants(), &me);
    let versions = c.list_object_versions().bucket(B).send().await.unwrap();
    assert_eq!(
        versions.versions().len(),
        2,
        "an ACL change makes no version: {versions:?}"
    );

    // Version ids that name nothing, or nothing well formed.
    let missing = format!("{}0", &v1[..v1.len() - 1]);
    let missing = if missing == v1 {
        format!("{}1", &v1[..v1.len() - 1])
    } else {
        missing
    };
    let e = c
        .put_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&missing)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchVersion".into()));
    let e = version_acl(&c, Some("no-such-id")).await.unwrap_err();
    assert_eq!(e.0, 400, "{e:?}");
    owner_only(version_acl(&c, Some(&v1)).await.unwrap().grants(), &me);

    // A grant on one version lets its grantee read that version's ACL, not another's.
    c.put_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .grant_full_control(format!("id=\"{me}\""))
        .grant_read_acp(id_of("carol"))
        .send()
        .await
        .unwrap();
    carol
        .get_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    let e = carol
        .get_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "AccessDenied".into()));

    // Allowed the current object's actions only: a named version is refused.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"carol"}},"Action":["s3:PutObjectAcl","s3:PutObjectTagging","s3:GetObject"],"Resource":"arn:aws:s3:::{B}/*"}}]}}"#
    );
    c.put_bucket_policy()
        .bucket(B)
        .policy(policy)
        .send()
        .await
        .unwrap();
    carol
        .put_object_tagging()
        .bucket(B)
        .key("k")
        .tagging(one_tag("by", "carol"))
        .send()
        .await
        .unwrap();
    let e = carol
        .put_object_tagging()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .tagging(one_tag("by", "carol"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (403, "AccessDenied".into()),
        "s3:PutObjectVersionTagging"
    );
    assert_eq!(version_tags(&c, B, "k", Some(&v1)).await.0, vec![]);
    let e = carol
        .put_object_acl()
        .bucket(B)
        .key("k")
        .version_id(&v1)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (403, "AccessDenied".into()),
        "s3:PutObjectVersionAcl"
    );
    let e = read_version(&anonymous, &v1).await.unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()), "nothing changed");

    // A delete marker has no ACL.
    let marker = c
        .delete_object()
        .bucket(B)
        .key("k")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let e = version_acl(&c, None).await.unwrap_err();
    assert_eq!(e.0, 404, "{e:?}");
    let e = version_acl(&c, Some(&marker)).await.unwrap_err();
    assert_eq!(e, (405, "MethodNotAllowed".into()));
    assert_eq!(
        grant_list(version_acl(&c, Some(&v2)).await.unwrap().grants()),
        public
    );
    gw.stop().await;
}

/// Object ACLs on the kinds that have no place for them with the object: a non-default
/// one answers 501 NotImplemented and writes nothing; the default is accepted.
async fn object_acls_refused(fx: &Fixture) {
    on_big_stack(object_acls_refused_steps(fx));
}

async fn object_acls_refused_steps(fx: &Fixture) {
    use aws_sdk_s3::types::{ObjectCannedAcl, ObjectOwnership};
    let dir = TempDir::new("object-acls-refused");
    let config = dynamic_config(fx, &dir, "objectaclno");
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    const B: &str = "object-acls-refused";
    c.create_bucket()
        .bucket(B)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket(B)
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (501, "NotImplemented".into()));
    let e = c.head_object().bucket(B).key("k").send().await.unwrap_err();
    assert_eq!(err_of(&e).0, 404, "a refused write wrote nothing");
    c.put_object()
        .bucket(B)
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"yes"))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object_acl()
        .bucket(B)
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (501, "NotImplemented".into()));
    c.put_object_acl()
        .bucket(B)
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    c.delete_object().bucket(B).key("k").send().await.unwrap();
    c.delete_bucket().bucket(B).send().await.unwrap();
    gw.stop().await;
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

fn tag_set(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(pairs.iter().map(|(k, v)| tag(k, v)).collect()))
        .build()
        .unwrap()
}

async fn tags_of(c: &Client, key: &str) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = c
        .get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .tag_set
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    t.sort();
    t
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Object tagging: set with the object, changed alone (bytes, ETag and Last-Modified
/// kept), copied or replaced by CopyObject, given to a multipart upload's object; and
/// every tag set S3 refuses refused with its error, with nothing changed.
async fn tagging(c: &Client, kind: Kind) {
    c.put_object()
        .bucket(BUCKET)
        .key("tg/a")
        .tagging("team=blue&note=two%20words+here")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(c, "tg/a").await,
        pairs(&[("note", "two words here"), ("team", "blue")])
    );
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("tg/a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count, Some(2));
    let before = c
        .head_object()
        .bucket(BUCKET)
        .key("tg/a")
        .send()
        .await
        .unwrap();

    // Azure's blob index tags take ASCII letters, digits, spaces and `+ - . / : = _`
    // only, where S3 takes any letter and `@`: an Azure member refuses the others
    // (InvalidTag) before anything is written, and its tags here are ones Azure takes.
    // Not an empty value either: Azurite 3.35 answers 400 to Set Blob Tags with one
    // (Azure takes values of 0 to 256 characters; empty ones set with an object pass).
    let changed: &[(&str, &str)] = if kind == Kind::Azure {
        &[("etat", "ete"), ("k", "v")]
    } else {
        &[("état", "été"), ("k", "")]
    };
    let mut changed_pairs = pairs(changed);
    changed_pairs.sort();
    if kind == Kind::Azure {
        let invalid_tag = (400, "InvalidTag".to_owned());
        let e = c
            .put_object_tagging()
            .bucket(BUCKET)
            .key("tg/a")
            .tagging(tag_set(&[("état", "été")]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), invalid_tag);
        assert_eq!(
            tags_of(c, "tg/a").await,
            pairs(&[("note", "two words here"), ("team", "blue")])
        );
        for header in ["k=%C3%A9t%C3%A9", "mail=a%40b"] {
            let e = c
                .put_object()
                .bucket(BUCKET)
                .key("tg/azure")
                .tagging(header)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(err_of(&e), invalid_tag, "{header}");
            let e = c
                .create_multipart_upload()
                .bucket(BUCKET)
                .key("tg/azure")
                .tagging(header)
                .send()
                .await
                .unwrap_err();
            assert_eq!(err_of(&e), invalid_tag, "{header}");
        }
        let e = c
            .head_object()
            .bucket(BUCKET)
            .key("tg/azure")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e).0, 404, "a refused PutObject wrote nothing");
    }

    // Changing the tags keeps the bytes, the ETag and Last-Modified.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    c.put_object_tagging()
        .bucket(BUCKET)
        .key("tg/a")
        .tagging(tag_set(changed))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(c, "tg/a").await, changed_pairs);
    let after = c
        .head_object()
        .bucket(BUCKET)
        .key("tg/a")
        .send()
        .await
        .unwrap();
    assert_eq!(after.e_tag, before.e_tag);
    // GCS counts a change of the metadata entry that holds the tags as a metadata
    // update, which moves the object's `updated` time (docs/configuration.md): kept by
    // fake-gcs-server, so asserting it here would test the emulator, not GCS.
    if kind != Kind::Gcs {
        assert_eq!(after.last_modified, before.last_modified);
    }
    assert_eq!(body_of(c, "tg/a").await, b"tagged");

    // Refused tag sets change nothing.
    let too_many: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let too_many: Vec<(&str, &str)> = too_many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    for (set, want) in [
        (too_many.clone(), (400, "BadRequest")),
        (vec![(long_key.as_str(), "v")], (400, "InvalidTag")),
        (vec![("k", long_value.as_str())], (400, "InvalidTag")),
        (vec![("k", "1"), ("k", "2")], (400, "InvalidTag")),
        (vec![("aws:k", "1")], (400, "InvalidTag")),
    ] {
        let e = c
            .put_object_tagging()
            .bucket(BUCKET)
            .key("tg/a")
            .tagging(tag_set(&set))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (want.0, want.1.to_owned()), "{set:?}");
    }
    assert_eq!(tags_of(c, "tg/a").await, changed_pairs);
    let header_many = (0..11)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    for (header, want) in [
        ("a=%ZZ", (400, "InvalidArgument")),
        ("a=%FF", (400, "InvalidArgument")),
        ("a=1&a=2", (400, "InvalidTag")),
        (header_many.as_str(), (400, "BadRequest")),
    ] {
        let e = c
            .put_object()
            .bucket(BUCKET)
            .key("tg/refused")
            .tagging(header)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (want.0, want.1.to_owned()), "{header}");
        let e = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("tg/refused")
            .tagging(header)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (want.0, want.1.to_owned()), "{header}");
    }
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("tg/refused")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404, "a refused PutObject wrote nothing");

    // Missing keys and buckets.
    let nosuchkey = (404, "NoSuchKey".to_owned());
    let e = c
        .get_object_tagging()
        .bucket(BUCKET)
        .key("tg/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), nosuchkey);
    let e = c
        .put_object_tagging()
        .bucket(BUCKET)
        .key("tg/none")
        .tagging(tag_set(&[("k", "v")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), nosuchkey);
    let e = c
        .delete_object_tagging()
        .bucket(BUCKET)
        .key("tg/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), nosuchkey);
    let e = c
        .head_object()
        .bucket(BUCKET)
        .key("tg/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404, "tagging a missing key made it");
    let nosuchbucket = (404, "NoSuchBucket".to_owned());
    let e = c
        .get_object_tagging()
        .bucket("no-such-bucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), nosuchbucket);
    let e = c
        .put_object_tagging()
        .bucket("no-such-bucket")
        .key("k")
        .tagging(tag_set(&[("k", "v")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), nosuchbucket);

    // CopyObject: the source's tags (COPY, the default), or the request's (REPLACE).
    c.copy_object()
        .bucket(BUCKET)
        .key("tg/copy")
        .copy_source(format!("{BUCKET}/tg/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(c, "tg/copy").await, changed_pairs);
    c.copy_object()
        .bucket(BUCKET)
        .key("tg/copy")
        .copy_source(format!("{BUCKET}/tg/a"))
        .tagging_directive(TaggingDirective::Replace)
        .tagging("c=3")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(c, "tg/copy").await, pairs(&[("c", "3")]));
    c.copy_object()
        .bucket(BUCKET)
        .key("tg/copy2")
        .copy_source(format!("{BUCKET}/tg/a"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/x-new")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(c, "tg/copy2").await,
        changed_pairs,
        "replacing the metadata keeps the tags"
    );

    // DeleteObjectTagging: none left, and GET says no count.
    c.delete_object_tagging()
        .bucket(BUCKET)
        .key("tg/a")
        .send()
        .await
        .unwrap();
    assert!(tags_of(c, "tg/a").await.is_empty());
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("tg/a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count, None);

    // A multipart upload's tags land with the completed object.
    let id = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("tg/mp")
        .tagging("m=1")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let part = c
        .upload_part()
        .bucket(BUCKET)
        .key("tg/mp")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("tg/mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag.unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(c, "tg/mp").await, pairs(&[("m", "1")]));
}

fn enabled() -> aws_sdk_s3::types::VersioningConfiguration {
    versioning_config(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
}

async fn put_body(c: &Client, bucket: &str, key: &str, body: &'static [u8]) -> Option<String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap()
        .version_id()
        .map(str::to_owned)
}

async fn get_body(
    c: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> (Vec<u8>, Option<String>) {
    let got = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap();
    let id = got.version_id().map(str::to_owned);
    (got.body.collect().await.unwrap().to_vec(), id)
}

/// Versioning kept by the gateway (fs, memory): bucket state, version ids on writes and
/// reads, delete markers, permanent deletes of one version, the null version (objects
/// from before versioning, writes while suspended), ListObjectVersions with pages and
/// delimiters, DeleteObjects with version ids, a configured bucket's state, and on fs the
/// latest data readable at its path without the gateway.
async fn versioning(fx: &Fixture) {
    let dir = TempDir::new("versioning-conformance");
    let template = match fx.kind {
        Kind::Fs => format!("kind = \"fs\"\nroot = {:?}\n", dir.0.display().to_string()),
        Kind::Memory => "kind = \"memory\"\n".to_owned(),
        // Azure, GCS: a prefix per bucket in the fixture's container or bucket.
        _ => format!("{}prefix = \"versioned\"\n", fx.toml),
    };
    // The configured bucket: the fixture's member, below a prefix of its own where the
    // template's buckets are prefixes of the same container or bucket.
    let fixed = match fx.kind {
        Kind::Fs | Kind::Memory => fx.toml.clone(),
        _ => format!("{}prefix = \"fixed\"\n", fx.toml),
    };
    let config = format!(
        "version = 1\n[dynamic_buckets]\n{template}[backends.main]\n{fixed}\n[buckets.fixed]\nmembers = [\"main\"]\nversioning = \"enabled\"\n"
    );
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    let b = "vers";
    c.create_bucket().bucket(b).send().await.unwrap();
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status(), None, "a new bucket is unversioned");
    // Written before versioning: the null version, and no version id answered.
    assert_eq!(put_body(&c, b, "k", b"before").await, None);
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status().map(|s| s.as_str()), Some("Enabled"));
    // The object from before answers version id null now.
    assert_eq!(
        get_body(&c, b, "k", None).await,
        (b"before".to_vec(), Some("null".into()))
    );
    let v1 = put_body(&c, b, "k", b"one").await.unwrap();
    let v2 = put_body(&c, b, "k", b"two").await.unwrap();
    assert!(v1 != "null" && v1 != v2, "{v1} {v2}");
    assert_eq!(
        get_body(&c, b, "k", None).await,
        (b"two".to_vec(), Some(v2.clone()))
    );
    assert_eq!(
        get_body(&c, b, "k", Some(&v1)).await,
        (b"one".to_vec(), Some(v1.clone()))
    );
    assert_eq!(get_body(&c, b, "k", Some("null")).await.0, b"before");
    let head = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (head.content_length(), head.version_id()),
        (Some(3), Some(v1.as_str()))
    );
    let rows = list_all_versions(&c, b, "k", 1000).await;
    assert_eq!(
        rows,
        [
            ("k".into(), v2.clone(), false, true),
            ("k".into(), v1.clone(), false, false),
            ("k".into(), "null".into(), false, false),
        ]
    );
    // A delete marker hides the key; naming the marker is 405; removing it shows the
    // newest version again.
    let del = c.delete_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let m = del.version_id().unwrap().to_owned();
    let e = c.get_object().bucket(b).key("k").send().await.unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    let headers = e.raw_response().unwrap().headers();
    assert_eq!(headers.get("x-amz-delete-marker"), Some("true"));
    assert_eq!(headers.get("x-amz-version-id"), Some(m.as_str()));
    let e = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&m)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (405, "MethodNotAllowed".into()));
    assert_eq!(
        e.raw_response()
            .unwrap()
            .headers()
            .get("x-amz-delete-marker"),
        Some("true")
    );
    let listed = c.list_objects_v2().bucket(b).send().await.unwrap();
    assert!(listed.contents().is_empty(), "a deleted key is listed");
    let rows = list_all_versions(&c, b, "", 1000).await;
    assert_eq!(rows[0], ("k".into(), m.clone(), true, true));
    assert_eq!(rows.len(), 4);
    let undo = c
        .delete_object()
        .bucket(b)
        .key("k")
        .version_id(&m)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (undo.delete_marker(), undo.version_id()),
        (Some(true), Some(m.as_str()))
    );
    assert_eq!(get_body(&c, b, "k", None).await.0, b"two");
    // Deleting the current version for good makes the one before it current.
    c.delete_object()
        .bucket(b)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_body(&c, b, "k", None).await,
        (b"one".to_vec(), Some(v1.clone()))
    );
    let e = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchVersion".into()));
    let e = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("not-an-id")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));
    // Suspended: writes are the null version, replacing the one before.
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(versioning_config(
            aws_sdk_s3::types::BucketVersioningStatus::Suspended,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put_body(&c, b, "k", b"suspended").await.as_deref(),
        Some("null")
    );
    assert_eq!(get_body(&c, b, "k", Some("null")).await.0, b"suspended");
    let rows = list_all_versions(&c, b, "k", 1000).await;
    assert_eq!(
        rows,
        [
            ("k".into(), "null".into(), false, true),
            ("k".into(), v1.clone(), false, false),
        ]
    );
    // Never back to unversioned.
    let e = c
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(aws_sdk_s3::types::VersioningConfiguration::builder().build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "MalformedXML".into()));
    // Pages: with a page of one row, two, or all, the same rows in the same order.
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    for (key, n) in [("p/a", 3), ("p/b", 2), ("p/c/d", 1), ("q", 2)] {
        for _ in 0..n {
            put_body(&c, b, key, b"x").await;
        }
    }
    c.delete_object().bucket(b).key("p/b").send().await.unwrap();
    let whole = list_all_versions(&c, b, "", 1000).await;
    assert_eq!(whole.len(), 2 + 3 + 3 + 1 + 2);
    for page in [1, 2, 3] {
        assert_eq!(
            list_all_versions(&c, b, "", page).await,
            whole,
            "pages of {page}"
        );
    }
    assert_eq!(
        whole
            .iter()
            .filter(|r| r.3)
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["k", "p/a", "p/b", "p/c/d", "q"],
        "one latest row per key"
    );
    let grouped = c
        .list_object_versions()
        .bucket(b)
        .prefix("p/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["p/c/"]);
    assert_eq!(grouped.versions().len() + grouped.delete_markers().len(), 6);
    // DeleteObjects: a marker for a key without a version id, a version for good with one.
    let a_versions: Vec<String> = whole
        .iter()
        .filter(|r| r.0 == "p/a")
        .map(|r| r.1.clone())
        .collect();
    let out = c
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("q").build().unwrap())
                .objects(
                    ObjectIdentifier::builder()
                        .key("p/a")
                        .version_id(&a_versions[0])
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let q = out.deleted().iter().find(|d| d.key() == Some("q")).unwrap();
    assert_eq!(q.delete_marker(), Some(true));
    assert!(q.delete_marker_version_id().is_some());
    let a = out
        .deleted()
        .iter()
        .find(|d| d.key() == Some("p/a"))
        .unwrap();
    assert_eq!(a.version_id(), Some(a_versions[0].as_str()));
    assert_eq!(
        get_body(&c, b, "p/a", None).await.1.as_deref(),
        Some(a_versions[1].as_str())
    );
    // A configured bucket: the file sets it, the API may not change it.
    let got = c
        .get_bucket_versioning()
        .bucket("fixed")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().map(|s| s.as_str()), Some("Enabled"));
    let e = c
        .put_bucket_versioning()
        .bucket("fixed")
        .versioning_configuration(versioning_config(
            aws_sdk_s3::types::BucketVersioningStatus::Suspended,
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidRequest".into()));
    let f1 = put_body(&c, "fixed", "f", b"1").await.unwrap();
    put_body(&c, "fixed", "f", b"2").await.unwrap();
    assert_eq!(get_body(&c, "fixed", "f", Some(&f1)).await.0, b"1");
    // Without the gateway, the directory holds the latest data at its keys.
    if fx.kind == Kind::Fs {
        let root = dir.0.join(b);
        assert_eq!(std::fs::read(root.join("k")).unwrap(), b"suspended");
        assert_eq!(std::fs::read(root.join("p/c/d")).unwrap(), b"x");
        assert!(
            !root.join("p/b").exists(),
            "a key whose latest is a delete marker"
        );
    }
    gw.stop().await;
}

/// A gateway over a fresh directory (fs) or store (memory) of `fx`'s kind, with the
/// buckets `versioned` (versioning enabled) and `plain` (unversioned), made by
/// CreateBucket.
async fn versioned_gateway(fx: &Fixture, dir: &TempDir, versioned: &str, plain: &str) -> Gateway {
    let template = match fx.kind {
        Kind::Fs => format!("kind = \"fs\"\nroot = {:?}\n", dir.0.display().to_string()),
        Kind::Memory => "kind = \"memory\"\n".to_owned(),
        // Azure, GCS: a prefix per bucket in the fixture's container or bucket.
        _ => format!("{}prefix = \"versioned\"\n", fx.toml),
    };
    let gw = Gateway::start(&format!("version = 1\n[dynamic_buckets]\n{template}"))
        .await
        .unwrap();
    let c = gw.client();
    for b in [versioned, plain] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    c.put_bucket_versioning()
        .bucket(versioned)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    gw
}

/// CopyObject into a versioned bucket makes a new version (answered, with the source's
/// version), a `versionId` on the source copies that version (to any bucket, over its own
/// key too: a restore), and a delete marker, a missing version or a bad id as the source
/// is refused with nothing written.
async fn versioned_copies(fx: &Fixture) {
    let dir = TempDir::new("versioned-copies");
    let (b, plain) = ("vcopy", "vcopy-plain");
    let gw = versioned_gateway(fx, &dir, b, plain).await;
    let c = gw.client();
    let put = |key: &'static str, body: &'static [u8], ct: &'static str| {
        c.put_object()
            .bucket(b)
            .key(key)
            .content_type(ct)
            .body(ByteStream::from_static(body))
            .send()
    };
    let v1 = put("k", b"one", "text/one").await.unwrap();
    let v1 = v1.version_id().unwrap().to_owned();
    let v2 = put("k", b"two", "text/two").await.unwrap();
    let v2 = v2.version_id().unwrap().to_owned();
    // The current version: a new version of the target, both ids answered.
    let out = c
        .copy_object()
        .bucket(b)
        .key("c")
        .copy_source(format!("{b}/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.copy_source_version_id(), Some(v2.as_str()));
    let c1 = out.version_id().unwrap().to_owned();
    assert!(c1 != v2 && c1 != "null", "{c1}");
    assert_eq!(
        get_body(&c, b, "c", None).await,
        (b"two".to_vec(), Some(c1.clone()))
    );
    // An older version, with its own attributes.
    let out = c
        .copy_object()
        .bucket(b)
        .key("c")
        .copy_source(format!("{b}/k?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.copy_source_version_id(), Some(v1.as_str()));
    let c2 = out.version_id().unwrap().to_owned();
    let got = c.get_object().bucket(b).key("c").send().await.unwrap();
    assert_eq!(
        (got.content_type(), got.version_id()),
        (Some("text/one"), Some(c2.as_str()))
    );
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"one");
    assert_eq!(get_body(&c, b, "c", Some(&c1)).await.0, b"two");
    assert_eq!(
        list_all_versions(&c, b, "c", 1000).await,
        [
            ("c".into(), c2.clone(), false, true),
            ("c".into(), c1.clone(), false, false),
        ]
    );
    // Restoring an older version over its own key: allowed, a new current version.
    let out = c
        .copy_object()
        .bucket(b)
        .key("k")
        .copy_source(format!("{b}/k?versionId={v1}"))
        .send()
        .await
        .unwrap();
    let v3 = out.version_id().unwrap().to_owned();
    assert_eq!(
        get_body(&c, b, "k", None).await,
        (b"one".to_vec(), Some(v3))
    );
    assert_eq!(list_all_versions(&c, b, "k", 1000).await.len(), 3);
    // The current object onto itself, unchanged: refused as S3 does.
    let e = c
        .copy_object()
        .bucket(b)
        .key("k")
        .copy_source(format!("{b}/k"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidRequest".into()));
    // From a version into an unversioned bucket, and back.
    let out = c
        .copy_object()
        .bucket(plain)
        .key("p")
        .copy_source(format!("{b}/k?versionId={v2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (out.version_id(), out.copy_source_version_id()),
        (None, Some(v2.as_str()))
    );
    assert_eq!(
        get_body(&c, plain, "p", None).await,
        (b"two".to_vec(), None)
    );
    let out = c
        .copy_object()
        .bucket(b)
        .key("from-plain")
        .copy_source(format!("{plain}/p"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.copy_source_version_id(), None);
    let fp = out.version_id().unwrap().to_owned();
    assert_eq!(
        get_body(&c, b, "from-plain", None).await,
        (b"two".to_vec(), Some(fp))
    );
    // Refusals write nothing.
    let del = c.delete_object().bucket(b).key("k").send().await.unwrap();
    let marker = del.version_id().unwrap().to_owned();
    let before = list_all_versions(&c, b, "", 1000).await;
    for (source, want) in [
        (format!("{b}/k"), (404, "NoSuchKey")),
        (format!("{b}/k?versionId={marker}"), (400, "InvalidRequest")),
        (
            format!("{b}/k?versionId=main.000000000000000000000000"),
            (404, "NoSuchVersion"),
        ),
        (
            format!("{b}/k?versionId=not-an-id"),
            (400, "InvalidArgument"),
        ),
        (
            format!("{plain}/p?versionId={v2}"),
            (400, "InvalidArgument"),
        ),
    ] {
        let e = c
            .copy_object()
            .bucket(b)
            .key("refused")
            .copy_source(&source)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (want.0, want.1.into()), "{source}");
    }
    assert_eq!(list_all_versions(&c, b, "", 1000).await, before);
    gw.stop().await;
}

/// CompleteMultipartUpload into a versioned bucket makes a new version (its id answered,
/// the multipart ETag kept on the version and on the key), the one before stays
/// readable, a failed completion changes nothing, and while suspended it is the null
/// version.
async fn versioned_multipart(fx: &Fixture) {
    let dir = TempDir::new("versioned-multipart");
    let (b, plain) = ("vmpu", "vmpu-plain");
    let gw = versioned_gateway(fx, &dir, b, plain).await;
    let c = gw.client();
    let v0 = put_body(&c, b, "k", b"before").await.unwrap();
    let parts = [data(5 * 1024 * 1024, 1), data(1000, 2)];
    let upload = |parts: Vec<Vec<u8>>| {
        let c = c.clone();
        async move {
            let id = c
                .create_multipart_upload()
                .bucket(b)
                .key("k")
                .send()
                .await
                .unwrap()
                .upload_id()
                .unwrap()
                .to_owned();
            let mut done = Vec::new();
            for (i, p) in parts.into_iter().enumerate() {
                let n = i as i32 + 1;
                let etag = c
                    .upload_part()
                    .bucket(b)
                    .key("k")
                    .upload_id(&id)
                    .part_number(n)
                    .body(ByteStream::from(p))
                    .send()
                    .await
                    .unwrap()
                    .e_tag()
                    .unwrap()
                    .to_owned();
                done.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
            }
            (id, done)
        }
    };
    // A completion naming a part never uploaded: refused, nothing changed.
    let (id, done) = upload(parts.to_vec()).await;
    let bad = CompletedPart::builder()
        .part_number(1)
        .e_tag("\"00000000000000000000000000000000\"")
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket(b)
        .key("k")
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(bad).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidPart".into()));
    assert_eq!(
        list_all_versions(&c, b, "k", 1000).await,
        [("k".into(), v0.clone(), false, true)]
    );
    let out = c
        .complete_multipart_upload()
        .bucket(b)
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v1 = out.version_id().unwrap().to_owned();
    let etag = out.e_tag().unwrap().to_owned();
    assert!(etag.ends_with("-2\""), "{etag}");
    assert!(v1 != v0 && v1 != "null", "{v1}");
    let whole = parts.concat();
    let got = c.get_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(
        (got.e_tag(), got.version_id()),
        (Some(etag.as_str()), Some(v1.as_str()))
    );
    assert!(got.body.collect().await.unwrap().to_vec() == whole);
    let head = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(get_body(&c, b, "k", Some(&v0)).await.0, b"before");
    let listed = c
        .list_object_versions()
        .bucket(b)
        .prefix("k")
        .send()
        .await
        .unwrap();
    let newest = &listed.versions()[0];
    assert_eq!(
        (newest.version_id(), newest.e_tag(), newest.size()),
        (
            Some(v1.as_str()),
            Some(etag.as_str()),
            Some(whole.len() as i64)
        )
    );
    assert_eq!(listed.versions().len(), 2);
    if fx.kind == Kind::Fs {
        assert!(std::fs::read(dir.0.join(b).join("k")).unwrap() == whole);
    }
    // Suspended: the completion is the null version.
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(versioning_config(
            aws_sdk_s3::types::BucketVersioningStatus::Suspended,
        ))
        .send()
        .await
        .unwrap();
    let (id, done) = upload(vec![data(100, 3)]).await;
    let out = c
        .complete_multipart_upload()
        .bucket(b)
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some("null"));
    assert_eq!(
        get_body(&c, b, "k", None).await,
        (data(100, 3), Some("null".into()))
    );
    assert_eq!(list_all_versions(&c, b, "k", 1000).await.len(), 3);
    gw.stop().await;
}

async fn version_tags(
    c: &Client,
    b: &str,
    key: &str,
    version: Option<&str>,
) -> (Vec<(String, String)>, Option<String>) {
    let got = c
        .get_object_tagging()
        .bucket(b)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap();
    let tags = got
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    (tags, got.version_id().map(str::to_owned))
}

fn one_tag(k: &str, v: &str) -> Tagging {
    Tagging::builder()
        .tag_set(Tag::builder().key(k).value(v).build().unwrap())
        .build()
        .unwrap()
}

/// Object tags in a versioned bucket belong to a version: Get/Put/DeleteObjectTagging
/// with a `versionId` read and change that version's, without one the current version's
/// (its ETag and Last-Modified stay), each answering the version id; a delete marker, a
/// missing version and a bad id are refused.
async fn versioned_tags(fx: &Fixture) {
    let dir = TempDir::new("versioned-tags");
    let (b, plain) = ("vtags", "vtags-plain");
    let gw = versioned_gateway(fx, &dir, b, plain).await;
    let c = gw.client();
    let v1 = c
        .put_object()
        .bucket(b)
        .key("k")
        .tagging("a=1")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let v2 = put_body(&c, b, "k", b"two").await.unwrap();
    let pair = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    // The key's copy of the current version has its tags: a GET, which reads the key,
    // counts them (on Azure, whose reads only count tags, the copy lost them once).
    c.put_object()
        .bucket(b)
        .key("t")
        .tagging("c=3&d=4")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    let got = c.get_object().bucket(b).key("t").send().await.unwrap();
    assert_eq!(got.tag_count(), Some(2));
    assert_eq!(
        version_tags(&c, b, "k", None).await,
        (vec![], Some(v2.clone()))
    );
    assert_eq!(
        version_tags(&c, b, "k", Some(&v1)).await,
        (pair("a", "1"), Some(v1.clone()))
    );
    // An older version's tags: the current version's stay.
    let out = c
        .put_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .tagging(one_tag("b", "2"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert_eq!(version_tags(&c, b, "k", Some(&v1)).await.0, pair("b", "2"));
    assert_eq!(version_tags(&c, b, "k", None).await.0, vec![]);
    // The current version's, without a version id: bytes, ETag and time stay.
    let before = c.head_object().bucket(b).key("k").send().await.unwrap();
    let out = c
        .put_object_tagging()
        .bucket(b)
        .key("k")
        .tagging(one_tag("c", "3"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(v2.as_str()));
    assert_eq!(
        version_tags(&c, b, "k", None).await,
        (pair("c", "3"), Some(v2.clone()))
    );
    assert_eq!(version_tags(&c, b, "k", Some(&v2)).await.0, pair("c", "3"));
    let after = c.head_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(
        (after.e_tag(), after.last_modified(), after.version_id()),
        (before.e_tag(), before.last_modified(), Some(v2.as_str()))
    );
    assert_eq!(get_body(&c, b, "k", None).await.0, b"two");
    assert_eq!(version_tags(&c, b, "k", Some(&v1)).await.0, pair("b", "2"));
    // DeleteObjectTagging of one version.
    let out = c
        .delete_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert_eq!(version_tags(&c, b, "k", Some(&v1)).await.0, vec![]);
    assert_eq!(version_tags(&c, b, "k", None).await.0, pair("c", "3"));
    // Refusals change nothing.
    let m = c.delete_object().bucket(b).key("k").send().await.unwrap();
    let m = m.version_id().unwrap().to_owned();
    for (version, want) in [
        (None, (404, "NoSuchKey")),
        (Some(m.as_str()), (405, "MethodNotAllowed")),
        (
            Some("main.000000000000000000000000"),
            (404, "NoSuchVersion"),
        ),
        (Some("not-an-id"), (400, "InvalidArgument")),
    ] {
        let e = c
            .put_object_tagging()
            .bucket(b)
            .key("k")
            .set_version_id(version.map(str::to_owned))
            .tagging(one_tag("d", "4"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (want.0, want.1.into()), "{version:?}");
    }
    assert_eq!(version_tags(&c, b, "k", Some(&v2)).await.0, pair("c", "3"));
    assert_eq!(version_tags(&c, b, "k", Some(&v1)).await.0, vec![]);
    // An unversioned bucket has the one version null.
    put_body(&c, plain, "p", b"p").await;
    let out = c
        .put_object_tagging()
        .bucket(plain)
        .key("p")
        .version_id("null")
        .tagging(one_tag("e", "5"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), None);
    assert_eq!(
        version_tags(&c, plain, "p", None).await,
        (pair("e", "5"), None)
    );
    let e = c
        .put_object_tagging()
        .bucket(plain)
        .key("p")
        .version_id(&v1)
        .tagging(one_tag("e", "6"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "InvalidArgument".into()));
    gw.stop().await;
}

/// Conditional PUT in a versioned bucket is decided on the current version:
/// `If-None-Match: *` fails while it is an object (a delete marker counts as none),
/// `If-Match` unless it is one with that ETag; a refused write keeps no version; of
/// writers racing on one condition through one engine, exactly one wins.
async fn versioned_conditional_writes(fx: &Fixture) {
    let dir = TempDir::new("versioned-conditional");
    let (b, plain) = ("vcond", "vcond-plain");
    let gw = versioned_gateway(fx, &dir, b, plain).await;
    let c = gw.client();
    let put = |key: &'static str, body: &'static [u8]| {
        c.put_object()
            .bucket(b)
            .key(key)
            .body(ByteStream::from_static(body))
    };
    let v1 = put("k", b"one").if_none_match("*").send().await.unwrap();
    let (v1, e1) = (
        v1.version_id().unwrap().to_owned(),
        v1.e_tag().unwrap().to_owned(),
    );
    let e = put("k", b"again")
        .if_none_match("*")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (412, "PreconditionFailed".into()));
    let e = put("k", b"again")
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (412, "PreconditionFailed".into()));
    let e = put("missing", b"x").if_match(&e1).send().await.unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    assert_eq!(
        list_all_versions(&c, b, "", 1000).await,
        [("k".into(), v1.clone(), false, true)],
        "a refused write kept a version"
    );
    let v2 = put("k", b"two").if_match(&e1).send().await.unwrap();
    let v2 = v2.version_id().unwrap().to_owned();
    assert_eq!(
        get_body(&c, b, "k", None).await,
        (b"two".to_vec(), Some(v2))
    );
    // Behind a delete marker the key is absent.
    c.delete_object().bucket(b).key("k").send().await.unwrap();
    let e = put("k", b"x").if_match(&e1).send().await.unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    let v3 = put("k", b"three").if_none_match("*").send().await.unwrap();
    assert!(v3.version_id().is_some());
    assert_eq!(get_body(&c, b, "k", None).await.0, b"three");
    // Racing creates: one wins, the others are refused and keep nothing.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            c.put_object()
                .bucket(b)
                .key("race")
                .if_none_match("*")
                .body(ByteStream::from(format!("racer {i}").into_bytes()))
                .send()
        })
        .collect();
    let results = futures::future::join_all(racers).await;
    let won: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|o| o.version_id().unwrap().to_owned())
        .collect();
    for r in &results {
        if let Err(e) = r {
            assert_eq!(err_of(e), (412, "PreconditionFailed".into()));
        }
    }
    assert_eq!(won.len(), 1, "{results:?}");
    assert_eq!(
        list_all_versions(&c, b, "race", 1000).await,
        [("race".into(), won[0].clone(), false, true)]
    );
    gw.stop().await;
}

/// DeleteBucket of a versioned bucket is refused (409 BucketNotEmpty) while any version
/// or delete marker is left, as in S3, and succeeds once they are all deleted.
async fn versioned_bucket_delete(fx: &Fixture) {
    let dir = TempDir::new("versioned-bucket-delete");
    let (b, plain) = ("vdel", "vdel-plain");
    let gw = versioned_gateway(fx, &dir, b, plain).await;
    let c = gw.client();
    let v = put_body(&c, b, "k", b"one").await.unwrap();
    let m = c.delete_object().bucket(b).key("k").send().await.unwrap();
    let m = m.version_id().unwrap().to_owned();
    assert!(
        c.list_objects_v2()
            .bucket(b)
            .send()
            .await
            .unwrap()
            .contents()
            .is_empty()
    );
    for left in [&v, &m] {
        let e = c.delete_bucket().bucket(b).send().await.unwrap_err();
        assert_eq!(err_of(&e), (409, "BucketNotEmpty".into()));
        c.head_bucket().bucket(b).send().await.unwrap();
        c.delete_object()
            .bucket(b)
            .key("k")
            .version_id(left)
            .send()
            .await
            .unwrap();
    }
    assert!(list_all_versions(&c, b, "", 1000).await.is_empty());
    c.delete_bucket().bucket(b).send().await.unwrap();
    let e = c.head_bucket().bucket(b).send().await.unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    gw.stop().await;
}

/// GCS members: a multipart upload into a versioned bucket is refused when it starts
/// (`501`, naming the member), before any part is sent, and nothing is written; an
/// unversioned bucket's uploads work as ever.
async fn versioned_multipart_refused(fx: &Fixture) {
    let dir = TempDir::new("versioned-multipart-refused");
    let (b, plain) = ("vmpu-no", "vmpu-no-plain");
    let gw = versioned_gateway(fx, &dir, b, plain).await;
    let c = gw.client();
    let e = c
        .create_multipart_upload()
        .bucket(b)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (501, "NotImplemented".into()));
    let message = e
        .as_service_error()
        .and_then(|s| s.meta().message())
        .unwrap_or("");
    assert!(message.contains("gcs"), "{message:?} names no kind");
    assert!(list_all_versions(&c, b, "", 1000).await.is_empty());
    let up = c
        .create_multipart_upload()
        .bucket(plain)
        .key("k")
        .send()
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket(plain)
        .key("k")
        .upload_id(up.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    gw.stop().await;
}

/// A moto bucket of its own for a step that changes a bucket's versioning, with the
/// `[backends.NAME]` body naming it (the fixture's settings otherwise).
async fn own_s3_bucket(fx: &Fixture, suffix: &str) -> (String, String) {
    let raw = switchyard_tests::harness::s3_client(fx.endpoint.as_deref().unwrap(), "test", "test");
    let of_fixture = fx.bucket.as_deref().unwrap();
    let name = format!("{of_fixture}-{suffix}");
    raw.create_bucket().bucket(&name).send().await.unwrap();
    let toml = fx.toml.replace(
        &format!("bucket = {of_fixture:?}"),
        &format!("bucket = {name:?}"),
    );
    assert!(toml.contains(&name), "{}", fx.toml);
    (name, toml)
}

/// S3 members keep their own versions, passed through: the bucket's versioning is its
/// backend bucket's (PutBucketVersioning sets it there; the file may not), version ids
/// are `<member>.<S3's id>`, delete markers and permanent deletes are S3's, and what
/// the gateway wrote is what S3's own client lists on the backend bucket, and the
/// reverse. Over two members, ids name the member; a delete hides every member's copy.
/// Boxed: the suite's future is polled on the test's thread, whose stack this step's
/// future would not fit in a debug build.
fn versioning_native(
    fx: &Fixture,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
    Box::pin(versioning_native_steps(fx))
}

async fn versioning_native_steps(fx: &Fixture) {
    let raw = switchyard_tests::harness::s3_client(fx.endpoint.as_deref().unwrap(), "test", "test");
    let (nat, nat_toml) = own_s3_bucket(fx, "nat").await;
    let (n2, n2_toml) = own_s3_bucket(fx, "n2").await;
    let (n3, n3_toml) = own_s3_bucket(fx, "n3").await;
    let config = format!(
        "version = 1\n[dynamic_buckets]\n{}prefix = \"dyn\"\n[backends.nat]\n{nat_toml}\n[backends.n2]\n{n2_toml}\n[backends.n3]\n{n3_toml}\n[buckets.vers]\nmembers = [\"nat\"]\n[buckets.two]\nmembers = [\"n2\", \"n3\"]\n",
        fx.toml
    );
    // The file may not set an S3 member's versioning: the backend bucket has its own.
    let err = switchyard::Config::from_toml(&config.replace(
        "members = [\"nat\"]\n",
        "members = [\"nat\"]\nversioning = \"enabled\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("buckets.vers.versioning"), "{err}");
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    // In parts: one async fn of all of it needs more stack than a test thread has in a
    // debug build.
    let endpoint = fx.endpoint.as_deref().unwrap();
    let (v1, v2) = Box::pin(native_basics(&c, &raw, endpoint, &nat)).await;
    Box::pin(native_deletes(&c, &raw, &nat, &v1, &v2)).await;
    Box::pin(native_pages(&c)).await;
    Box::pin(native_members(&c, &raw, endpoint, &n2, &n3)).await;
    gw.stop().await;
}

/// The versioning status of a bucket as moto answers it (read as text: the root element
/// of moto's answer is not the one the SDK expects).
async fn backend_versioning(endpoint: &str, bucket: &str) -> Option<String> {
    let text = reqwest::Client::new()
        .get(format!("{endpoint}/{bucket}?versioning"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, rest) = text.split_once("<Status>")?;
    rest.split_once("</Status>").map(|(s, _)| s.to_owned())
}

/// The state on the backend bucket, ids on writes and reads, and S3's client listing the
/// same versions.
async fn native_basics(c: &Client, raw: &Client, endpoint: &str, nat: &str) -> (String, String) {
    let nat = nat.to_owned();
    use switchyard_tests::harness::list_all_versions_by_time as versions_of;
    let b = "vers";
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status(), None, "a never versioned S3 bucket");
    assert_eq!(put_body(c, b, "k", b"before").await, None);
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status().map(|s| s.as_str()), Some("Enabled"));
    assert_eq!(
        backend_versioning(endpoint, &nat).await.as_deref(),
        Some("Enabled"),
        "set on the backend bucket"
    );
    assert_eq!(
        get_body(c, b, "k", None).await,
        (b"before".to_vec(), Some("null".into()))
    );
    let v1 = put_body(c, b, "k", b"one").await.unwrap();
    let v2 = put_body(c, b, "k", b"two").await.unwrap();
    assert!(
        v1.starts_with("nat.") && v2.starts_with("nat.") && v1 != v2,
        "{v1} {v2}"
    );
    assert_eq!(
        get_body(c, b, "k", None).await,
        (b"two".to_vec(), Some(v2.clone()))
    );
    assert_eq!(
        get_body(c, b, "k", Some(&v1)).await,
        (b"one".to_vec(), Some(v1.clone()))
    );
    assert_eq!(get_body(c, b, "k", Some("null")).await.0, b"before");
    let head = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (head.content_length(), head.version_id()),
        (Some(3), Some(v1.as_str()))
    );
    let rows = versions_of(c, b, "k", 1000).await;
    assert_eq!(
        rows,
        [
            ("k".into(), v2.clone(), false, true),
            ("k".into(), v1.clone(), false, false),
            ("k".into(), "null".into(), false, false),
        ]
    );
    // Eject: S3's own client lists the same versions on the backend bucket.
    let direct = raw
        .list_object_versions()
        .bucket(&nat)
        .prefix("k")
        .send()
        .await
        .unwrap();
    let mut native: Vec<String> = direct
        .versions()
        .iter()
        .map(|v| v.version_id().unwrap().to_owned())
        .collect();
    native.sort();
    let mut ours: Vec<String> = rows
        .iter()
        .map(|r| r.1.strip_prefix("nat.").unwrap_or(&r.1).to_owned())
        .collect();
    ours.sort();
    assert_eq!(native, ours);
    (v1, v2)
}

/// Delete markers, permanent deletes, writes straight into the backend, copies and
/// uploads, and a suspended bucket.
async fn native_deletes(c: &Client, raw: &Client, nat: &str, v1: &str, v2: &str) {
    let (nat, v1, v2) = (nat.to_owned(), v1.to_owned(), v2.to_owned());
    use switchyard_tests::harness::list_all_versions_by_time as versions_of;
    let b = "vers";
    // ACLs per version: S3 members keep none, so each version has the owner's, which
    // PutObjectAcl may set again; a grant beyond it is 501, an unknown version 404.
    let me = my_id(c).await;
    let acl = c
        .get_object_acl()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    owner_only(acl.grants(), &me);
    c.put_object_acl()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .acl(aws_sdk_s3::types::ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let e = c
        .get_object_acl()
        .bucket(b)
        .key("k")
        .version_id("nat.no-such-version")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404, "{e:?}");
    // A delete marker hides the key; naming it is 405; removing it shows the key again.
    let del = c.delete_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let m = del.version_id().unwrap().to_owned();
    assert!(m.starts_with("nat."), "{m}");
    let e = c.get_object().bucket(b).key("k").send().await.unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    let headers = e.raw_response().unwrap().headers();
    assert_eq!(headers.get("x-amz-delete-marker"), Some("true"));
    assert_eq!(headers.get("x-amz-version-id"), Some(m.as_str()));
    let e = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&m)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (405, "MethodNotAllowed".into()));
    let e = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&m)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 405);
    let listed = c.list_objects_v2().bucket(b).send().await.unwrap();
    assert!(listed.contents().is_empty(), "a deleted key is listed");
    let rows = versions_of(c, b, "", 1000).await;
    assert_eq!(rows.len(), 4);
    assert!(
        rows.contains(&("k".into(), m.clone(), true, true)),
        "{rows:?}"
    );
    let markers = raw
        .list_object_versions()
        .bucket(&nat)
        .send()
        .await
        .unwrap();
    assert_eq!(
        markers
            .delete_markers()
            .iter()
            .map(|d| format!("nat.{}", d.version_id().unwrap()))
            .collect::<Vec<_>>(),
        std::slice::from_ref(&m),
        "the marker is S3's own"
    );
    let undo = c
        .delete_object()
        .bucket(b)
        .key("k")
        .version_id(&m)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (undo.delete_marker(), undo.version_id()),
        (Some(true), Some(m.as_str()))
    );
    assert_eq!(get_body(c, b, "k", None).await.0, b"two");
    // Deleting the current version for good makes the one before it current.
    c.delete_object()
        .bucket(b)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_body(c, b, "k", None).await,
        (b"one".to_vec(), Some(v1.clone()))
    );
    let e = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchVersion".into()));
    for bad in ["not-an-id", "other.x"] {
        let e = c
            .get_object()
            .bucket(b)
            .key("k")
            .version_id(bad)
            .send()
            .await
            .unwrap_err();
        let want = if bad.contains('.') {
            (404, "NoSuchVersion".to_owned())
        } else {
            (400, "InvalidArgument".to_owned())
        };
        assert_eq!(err_of(&e), want, "{bad}");
    }
    // Written directly into the backend: readable through the gateway by its own id.
    let direct = raw
        .put_object()
        .bucket(&nat)
        .key("k")
        .body(ByteStream::from_static(b"direct"))
        .send()
        .await
        .unwrap();
    let d = format!("nat.{}", direct.version_id().unwrap());
    assert_eq!(
        get_body(c, b, "k", None).await,
        (b"direct".to_vec(), Some(d.clone()))
    );
    assert_eq!(get_body(c, b, "k", Some(&v1)).await.0, b"one");
    // Tags are S3's, per version: set on v1 by id, read back through the gateway and
    // by S3's own client; a delete marker's are refused as S3 refuses them.
    let tagged = tag_set(&[("v", "one")]);
    let out = c
        .put_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .tagging(tagged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(v1.as_str()));
    let tags_of = |version: Option<String>| {
        let c = c.clone();
        async move {
            let got = c
                .get_object_tagging()
                .bucket(b)
                .key("k")
                .set_version_id(version)
                .send()
                .await
                .unwrap();
            let pairs: Vec<(String, String)> = got
                .tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            (pairs, got.version_id().map(str::to_owned))
        }
    };
    assert_eq!(
        tags_of(Some(v1.clone())).await,
        (vec![("v".to_owned(), "one".to_owned())], Some(v1.clone()))
    );
    assert_eq!(
        tags_of(None).await,
        (vec![], Some(d.clone())),
        "the current version keeps its own tags"
    );
    let native_tags = raw
        .get_object_tagging()
        .bucket(&nat)
        .key("k")
        .version_id(v1.strip_prefix("nat.").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(native_tags.tag_set().len(), 1, "the tags are S3's own");
    put_body(c, b, "gone", b"gone").await.unwrap();
    let marker = c
        .delete_object()
        .bucket(b)
        .key("gone")
        .send()
        .await
        .unwrap();
    assert_eq!(marker.delete_marker(), Some(true));
    let e = c
        .put_object_tagging()
        .bucket(b)
        .key("gone")
        .version_id(marker.version_id().unwrap())
        .tagging(tagged)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (405, "MethodNotAllowed".into()));
    // Copies and multipart uploads into a versioned S3 bucket are versioned by S3, and
    // answer the version made; a copy of v1 by id takes its bytes and tags.
    let copied = c
        .copy_object()
        .bucket(b)
        .key("k")
        .copy_source(format!("{b}/k"))
        .metadata_directive(MetadataDirective::Replace)
        .send()
        .await
        .unwrap();
    let cv = copied.version_id().unwrap().to_owned();
    assert!(cv.starts_with("nat.") && cv != d, "{cv}");
    assert_eq!(get_body(c, b, "k", Some(&cv)).await.0, b"direct");
    let restored = c
        .copy_object()
        .bucket(b)
        .key("k2")
        .copy_source(format!("{b}/k?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.copy_source_version_id(), Some(v1.as_str()));
    let rv = restored.version_id().unwrap().to_owned();
    let got = c.get_object().bucket(b).key("k2").send().await.unwrap();
    assert_eq!(got.version_id(), Some(rv.as_str()));
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"one");
    let k2_tags = c
        .get_object_tagging()
        .bucket(b)
        .key("k2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        k2_tags.tag_set().len(),
        1,
        "a copy takes its source version's tags"
    );
    let e = c
        .copy_object()
        .bucket(b)
        .key("k3")
        .copy_source(format!(
            "{b}/gone?versionId={}",
            marker.version_id().unwrap()
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err_of(&e),
        (400, "InvalidRequest".into()),
        "a marker as the source"
    );
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key("k")
        .send()
        .await
        .unwrap();
    let part = c
        .upload_part()
        .bucket(b)
        .key("k")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"parts"))
        .send()
        .await
        .unwrap();
    let done = c
        .complete_multipart_upload()
        .bucket(b)
        .key("k")
        .upload_id(up.upload_id().unwrap())
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
        .unwrap();
    let uv = done.version_id().unwrap().to_owned();
    assert!(uv.starts_with("nat.") && uv != cv, "{uv}");
    let rows = versions_of(c, b, "k", 1000).await;
    assert_eq!(rows.iter().filter(|r| r.0 == "k").count(), 5, "{rows:?}");
    assert_eq!(
        get_body(c, b, "k", None).await,
        (b"parts".to_vec(), Some(uv.clone()))
    );
    assert_eq!(get_body(c, b, "k", Some(&d)).await.0, b"direct");
    // Suspended: writes are the null version, replacing the one before.
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(versioning_config(
            aws_sdk_s3::types::BucketVersioningStatus::Suspended,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put_body(c, b, "k", b"suspended").await.as_deref(),
        Some("null")
    );
    assert_eq!(get_body(c, b, "k", Some("null")).await.0, b"suspended");
    // S3 keeps the key's other versions; moto (5.2) drops them at a write while
    // suspended, so they are not looked at here.
    let e = c
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(aws_sdk_s3::types::VersioningConfiguration::builder().build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (400, "MalformedXML".into()));
}

/// ListObjectVersions pages and delimiters, DeleteObjects with and without version ids.
async fn native_pages(c: &Client) {
    use switchyard_tests::harness::list_all_versions_by_time as versions_of;
    let b = "vers";
    // Pages: with a page of one row, two, or all, the same rows in the same order.
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    for (key, n) in [("p/a", 3), ("p/b", 2), ("p/c/d", 1), ("q", 2)] {
        for _ in 0..n {
            put_body(c, b, key, b"x").await;
        }
    }
    c.delete_object().bucket(b).key("p/b").send().await.unwrap();
    let whole = versions_of(c, b, "p/", 1000).await;
    assert_eq!(whole.len(), 3 + 3 + 1, "{whole:?}");
    for page in [1, 2, 3] {
        let paged = versions_of(c, b, "p/", page).await;
        let mut sorted = paged.clone();
        sorted.sort();
        let mut want = whole.clone();
        want.sort();
        assert_eq!(sorted, want, "pages of {page}");
    }
    let grouped = c
        .list_object_versions()
        .bucket(b)
        .prefix("p/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["p/c/"]);
    assert_eq!(grouped.versions().len() + grouped.delete_markers().len(), 6);
    // DeleteObjects: a marker for a key without a version id, a version for good with one.
    let a_version = whole.iter().find(|r| r.0 == "p/a").unwrap().1.clone();
    let out = c
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("q").build().unwrap())
                .objects(
                    ObjectIdentifier::builder()
                        .key("p/a")
                        .version_id(&a_version)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let q = out.deleted().iter().find(|d| d.key() == Some("q")).unwrap();
    assert_eq!(q.delete_marker(), Some(true));
    assert!(
        q.delete_marker_version_id()
            .is_some_and(|v| v.starts_with("nat."))
    );
    let e = c
        .get_object()
        .bucket(b)
        .key("p/a")
        .version_id(&a_version)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchVersion".into()));
}

/// Two members, and a bucket made by CreateBucket.
async fn native_members(c: &Client, raw: &Client, endpoint: &str, n2: &str, n3: &str) {
    let (n2, n3) = (n2.to_owned(), n3.to_owned());
    use switchyard_tests::harness::list_all_versions_by_time as versions_of;
    // Two members: PutBucketVersioning sets both backend buckets; ids name the member.
    let two = "two";
    c.put_bucket_versioning()
        .bucket(two)
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap();
    for bucket in [&n2, &n3] {
        assert_eq!(
            backend_versioning(endpoint, bucket).await.as_deref(),
            Some("Enabled"),
            "{bucket}"
        );
    }
    let w = put_body(c, two, "t", b"new").await.unwrap();
    assert!(w.starts_with("n2."), "{w}");
    let old = raw
        .put_object()
        .bucket(&n3)
        .key("old")
        .body(ByteStream::from_static(b"old"))
        .send()
        .await
        .unwrap();
    let o = format!("n3.{}", old.version_id().unwrap());
    assert_eq!(
        get_body(c, two, "old", None).await,
        (b"old".to_vec(), Some(o.clone()))
    );
    assert_eq!(get_body(c, two, "old", Some(&o)).await.0, b"old");
    let e = c
        .get_object()
        .bucket(two)
        .key("old")
        .version_id(format!("n2.{}", old.version_id().unwrap()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404, "an id names its member");
    let rows = versions_of(c, two, "", 1000).await;
    assert_eq!(
        rows,
        [
            ("old".into(), o.clone(), false, true),
            ("t".into(), w.clone(), false, true),
        ]
    );
    assert_eq!(versions_of(c, two, "", 1).await, rows);
    let del = c
        .delete_object()
        .bucket(two)
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let e = c
        .get_object()
        .bucket(two)
        .key("old")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    assert_eq!(get_body(c, two, "old", Some(&o)).await.0, b"old");

    // A bucket made by CreateBucket is a prefix of a shared S3 bucket: its versioning is
    // that bucket's, and not changed through it.
    c.create_bucket().bucket("made").send().await.unwrap();
    let e = c
        .put_bucket_versioning()
        .bucket("made")
        .versioning_configuration(enabled())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (501, "NotImplemented".into()));
    let got = c
        .get_bucket_versioning()
        .bucket("made")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), None);
    assert_eq!(put_body(c, "made", "x", b"x").await, None);
    c.delete_object()
        .bucket("made")
        .key("x")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("made").send().await.unwrap();
}
