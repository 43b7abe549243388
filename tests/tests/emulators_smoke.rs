//! Drives `object_store` clients against the real servers of `switchyard_tests::emulators`
//! (moto, Azurite, fake-gcs-server behind the GCS shim) and checks the behaviour the
//! gateway relies on: attributes, conditional puts, listing order and offsets, multipart,
//! copy, delete, conditional gets and NotFound.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, CopyMode, CopyOptions, Error, GetOptions, ObjectStore, ObjectStoreExt,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, UpdateVersion,
};
use switchyard_tests::emulators::{Azurite, FakeGcs, Moto};

/// What a backend is expected to support, where `object_store`'s clients differ.
struct Expect {
    name: &'static str,
    /// `create_multipart_opts` takes attributes (Azure's block lists cannot).
    multipart_attributes: bool,
    /// `copy_opts` with `CopyMode::Create` is supported (S3 needs extra client config).
    copy_create: bool,
    /// `list_with_offset` filters on the server (Azurite ignores `startFrom`).
    server_side_offset: bool,
}

fn attributes() -> Attributes {
    Attributes::from_iter([
        (Attribute::ContentType, "text/html; charset=utf-8"),
        (Attribute::CacheControl, "max-age=604800"),
        (
            Attribute::ContentDisposition,
            r#"attachment; filename="report.html""#,
        ),
        (Attribute::ContentEncoding, "gzip"),
        (Attribute::ContentLanguage, "en-US"),
        (Attribute::Metadata("k".into()), "some value"),
    ])
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

async fn exercise<S: ObjectStore + MultipartStore>(store: &S, expect: &Expect) {
    let name = expect.name;

    // --- put with attributes; head and get return them -------------------------------
    let path = Path::from("attrs/object one.html");
    let body = Bytes::from_static(b"<p>hello</p>");
    let put = store
        .put_opts(&path, body.clone().into(), PutOptions::from(attributes()))
        .await
        .unwrap_or_else(|e| panic!("{name}: put with attributes: {e}"));
    assert!(put.e_tag.is_some(), "{name}: put returned no ETag");

    let head = store
        .get_opts(&path, GetOptions::new().with_head(true))
        .await
        .unwrap();
    assert_eq!(head.attributes, attributes(), "{name}: head attributes");
    assert_eq!(head.meta.size, body.len() as u64, "{name}: head size");
    assert_eq!(head.meta.e_tag, put.e_tag, "{name}: head ETag vs put ETag");

    let got = store.get(&path).await.unwrap();
    assert_eq!(got.attributes, attributes(), "{name}: get attributes");
    assert_eq!(got.bytes().await.unwrap(), body, "{name}: get body");

    let ranged = store.get_range(&path, 3..8).await.unwrap();
    assert_eq!(ranged, body.slice(3..8), "{name}: range");

    // --- conditional get ------------------------------------------------------------------
    let etag = put.e_tag.clone().unwrap();
    let err = store
        .get_opts(
            &path,
            GetOptions::new().with_if_none_match(Some(etag.clone())),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotModified { .. }),
        "{name}: If-None-Match: {err}"
    );
    let err = store
        .get_opts(&path, GetOptions::new().with_if_match(Some("\"nope\"")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Precondition { .. }),
        "{name}: If-Match: {err}"
    );
    store
        .get_opts(&path, GetOptions::new().with_if_match(Some(etag.as_str())))
        .await
        .unwrap();

    // --- conditional put ------------------------------------------------------------------
    let err = store
        .put_opts(&path, "other".into(), PutMode::Create.into())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlreadyExists { .. } | Error::Precondition { .. }
        ),
        "{name}: create over an existing key: {err}"
    );
    assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), body);

    let fresh = Path::from("attrs/created");
    let v1 = store
        .put_opts(&fresh, "v1".into(), PutMode::Create.into())
        .await
        .unwrap();
    let v2 = store
        .put_opts(
            &fresh,
            "v2".into(),
            PutMode::Update(UpdateVersion::from(v1.clone())).into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: update with the current version: {e}"));
    let err = store
        .put_opts(
            &fresh,
            "v3".into(),
            PutMode::Update(UpdateVersion::from(v1)).into(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Precondition { .. }),
        "{name}: stale update: {err}"
    );
    assert_eq!(
        store.get(&fresh).await.unwrap().bytes().await.unwrap(),
        "v2"
    );
    assert_ne!(v2.e_tag, None);

    // --- listing order and offset -----------------------------------------------------------
    for key in [
        "list/b", "list/a", "list/d/x", "list/c", "list/a0", "list/d/y",
    ] {
        store
            .put(&Path::from(key), key.as_bytes().to_vec().into())
            .await
            .unwrap();
    }
    let prefix = Path::from("list");
    let all: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all.len(), 6, "{name}: list {all:?}");
    let offset: Vec<String> = store
        .list_with_offset(Some(&prefix), &Path::from("list/a0"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let after: Vec<String> = ["list/b", "list/c", "list/d/x", "list/d/y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if expect.server_side_offset {
        assert_eq!(offset, after, "{name}: list_with_offset");
        assert_eq!(all, sorted, "{name}: list order");
    } else {
        // Azurite ignores startFrom; what comes back is the whole listing, in order.
        assert_eq!(
            offset, sorted,
            "{name}: list_with_offset (Azurite ignores the offset)"
        );
    }
    let delimited = store.list_with_delimiter(Some(&prefix)).await.unwrap();
    let objects: Vec<String> = delimited
        .objects
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    let dirs: Vec<String> = delimited
        .common_prefixes
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        objects,
        ["list/a", "list/a0", "list/b", "list/c"],
        "{name}: delimited objects"
    );
    assert_eq!(dirs, ["list/d"], "{name}: common prefixes");

    // --- multipart ------------------------------------------------------------------------
    let mp = Path::from("multipart/big.bin");
    let id = if expect.multipart_attributes {
        store
            .create_multipart_opts(&mp, PutMultipartOptions::from(attributes()))
            .await
            .unwrap_or_else(|e| panic!("{name}: create_multipart_opts: {e}"))
    } else {
        store.create_multipart(&mp).await.unwrap()
    };
    let part1 = data(5 * 1024 * 1024 + 17, 1);
    let part2 = data(1000, 2);
    // Upload out of order: part numbers, not arrival, decide the layout.
    let p2 = store
        .put_part(&mp, &id, 1, PutPayload::from(part2.clone()))
        .await
        .unwrap();
    let p1 = store
        .put_part(&mp, &id, 0, PutPayload::from(part1.clone()))
        .await
        .unwrap();
    let done = store
        .complete_multipart(&mp, &id, vec![p1, p2])
        .await
        .unwrap();
    let got = store.get(&mp).await.unwrap();
    if expect.multipart_attributes {
        assert_eq!(got.attributes, attributes(), "{name}: multipart attributes");
    }
    assert_eq!(
        got.meta.e_tag, done.e_tag,
        "{name}: multipart ETag vs get ETag"
    );
    let bytes = got.bytes().await.unwrap();
    assert_eq!(
        bytes.len(),
        part1.len() + part2.len(),
        "{name}: multipart size"
    );
    assert!(bytes[..part1.len()] == part1[..] && bytes[part1.len()..] == part2[..]);

    // An aborted upload leaves nothing behind.
    let gone = Path::from("multipart/aborted");
    let id = store.create_multipart(&gone).await.unwrap();
    store.put_part(&gone, &id, 0, "x".into()).await.unwrap();
    store.abort_multipart(&gone, &id).await.unwrap();
    let err = store.head(&gone).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{name}: aborted upload: {err}"
    );

    // --- copy -----------------------------------------------------------------------------
    let copy = Path::from("copy/of attrs");
    store.copy(&path, &copy).await.unwrap();
    let got = store.get(&copy).await.unwrap();
    assert_eq!(got.attributes, attributes(), "{name}: copied attributes");
    assert_eq!(got.bytes().await.unwrap(), body, "{name}: copied body");
    let create = CopyOptions::new().with_mode(CopyMode::Create);
    let result = store.copy_opts(&fresh, &copy, create.clone()).await;
    if expect.copy_create {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { .. }),
            "{name}: copy-if-not-exists: {err}"
        );
        let new = Path::from("copy/new");
        store.copy_opts(&fresh, &new, create).await.unwrap();
        assert_eq!(store.get(&new).await.unwrap().bytes().await.unwrap(), "v2");
    } else {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::NotSupported { .. }),
            "{name}: copy create: {err}"
        );
    }
    let err = store
        .copy(&Path::from("copy/missing"), &Path::from("copy/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{name}: copy of a missing key: {err}"
    );

    // Keys with characters that need escaping survive put, copy, list and get.
    let odd = Path::from("odd/a?b#c+d %25 é");
    store.put(&odd, "odd".into()).await.unwrap();
    let odd_copy = Path::from("odd/copy of a?b#c+d %25 é");
    store.copy(&odd, &odd_copy).await.unwrap();
    let listed: Vec<Path> = store
        .list(Some(&Path::from("odd")))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, [odd.clone(), odd_copy.clone()], "{name}: odd keys");
    assert_eq!(
        store.get(&odd_copy).await.unwrap().bytes().await.unwrap(),
        "odd"
    );

    // --- delete and NotFound ----------------------------------------------------------------
    store.delete(&copy).await.unwrap();
    let err = store.get(&copy).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{name}: get after delete: {err}"
    );
    let err = store.head(&Path::from("never/there")).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{name}: head of a missing key: {err}"
    );
    let err = store.get(&Path::from("never/there")).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{name}: get of a missing key: {err}"
    );
}

#[tokio::test]
async fn moto_s3() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("smoke").await.unwrap();
    let store = moto.store("smoke").unwrap();
    let expect = Expect {
        name: "moto",
        multipart_attributes: true,
        copy_create: false,
        server_side_offset: true,
    };
    exercise(&store, &expect).await;
}

#[tokio::test]
async fn azurite_blob() {
    let azurite = Azurite::start().await.unwrap();
    azurite.create_container("smoke").await.unwrap();
    let store = azurite.store("smoke").unwrap();
    let expect = Expect {
        name: "azurite",
        multipart_attributes: false,
        copy_create: true,
        server_side_offset: false,
    };
    exercise(&store, &expect).await;
}

#[tokio::test]
async fn fake_gcs_through_shim() {
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket("smoke").await.unwrap();
    let store = gcs.store("smoke").unwrap();
    let expect = Expect {
        name: "fake-gcs",
        multipart_attributes: true,
        copy_create: true,
        server_side_offset: true,
    };
    exercise(&store, &expect).await;

    // What the shim wrote is stored natively: the JSON API shows it.
    for key in ["attrs/object one.html", "multipart/big.bin"] {
        let o = gcs.object_json("smoke", key).await.unwrap();
        assert_eq!(o["contentType"], "text/html; charset=utf-8", "{key}: {o}");
        assert_eq!(o["cacheControl"], "max-age=604800", "{key}: {o}");
        assert_eq!(
            o["contentDisposition"], r#"attachment; filename="report.html""#,
            "{key}"
        );
        assert_eq!(o["contentEncoding"], "gzip", "{key}: {o}");
        assert_eq!(o["contentLanguage"], "en-US", "{key}: {o}");
        assert_eq!(o["metadata"]["k"], "some value", "{key}: {o}");
    }
    let o = gcs.object_json("smoke", "multipart/big.bin").await.unwrap();
    assert_eq!(o["size"], (5 * 1024 * 1024 + 17 + 1000).to_string());
}

/// A metadata PATCH conditional on a generation leaves a newer generation alone, as GCS
/// does. The gateway keeps a multipart upload's S3 ETag with its object this way; when
/// fake-gcs-server patched the current object whatever the condition said, a completion
/// that lost a race gave its ETag and metadata to the newer object (torture saw a GET of
/// one version's bytes with another's `x-amz-meta-*` and ETag).
#[tokio::test]
async fn fake_gcs_metadata_patch_keeps_its_generation_condition() {
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket("patch").await.unwrap();
    let store = gcs.store("patch").unwrap();
    let path = Path::from("k");
    let put = |v: &'static str| {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata("v".into()), v.into());
        store.put_opts(
            &path,
            PutPayload::from_static(v.as_bytes()),
            PutOptions {
                attributes,
                ..Default::default()
            },
        )
    };
    let first = put("first").await.unwrap();
    let first_generation = first.version.expect("GCS answers a generation");
    put("second").await.unwrap();
    let client = reqwest::Client::new();
    let patch = |query: String, v: &'static str| {
        client
            .patch(format!("{}/storage/v1/b/patch/o/{query}", gcs.endpoint))
            .header("content-type", "application/json")
            .body(format!(r#"{{"metadata":{{"v":"{v}"}}}}"#))
            .send()
    };
    let stale = patch(format!("k?ifGenerationMatch={first_generation}"), "stale")
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 412);
    let selected = patch(format!("k?generation={first_generation}"), "stale")
        .await
        .unwrap();
    assert_eq!(selected.status().as_u16(), 404);
    let o = gcs.object_json("patch", "k").await.unwrap();
    assert_eq!(o["metadata"]["v"], "second", "{o}");
    // The current generation is patched, and a missing object is a 404.
    let current = o["generation"].as_str().unwrap().to_owned();
    let ok = patch(format!("k?ifGenerationMatch={current}"), "patched")
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let o = gcs.object_json("patch", "k").await.unwrap();
    assert_eq!(o["metadata"]["v"], "patched", "{o}");
    let missing = patch(format!("nothing?ifGenerationMatch={current}"), "x")
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn servers_are_independent_and_stop_on_drop() {
    let (a, b) = tokio::join!(FakeGcs::start(), FakeGcs::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.endpoint, b.endpoint);
    a.create_bucket("same").await.unwrap();
    b.create_bucket("same").await.unwrap();
    let sa = a.store("same").unwrap();
    sa.put(&Path::from("k"), "a".into()).await.unwrap();
    let err = b
        .store("same")
        .unwrap()
        .head(&Path::from("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let endpoint = a.endpoint.clone();
    let raw = a.raw_endpoint.clone();
    drop(a);
    for url in [endpoint, raw] {
        let addr = url.trim_start_matches("http://").to_string();
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "{addr} still accepts connections after drop"
        );
    }
}
