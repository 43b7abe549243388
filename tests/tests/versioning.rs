//! Versioning kept by the gateway (fs, memory), and S3's own passed through (moto), against
//! a model: seeded concurrent clients put, complete multipart uploads, copy their own
//! versions (older ones too) to any key, delete (markers), delete versions for good,
//! change a version's tags and (fs, memory) its ACL, and read versions of a few shared
//! keys, on fs through two engines over one directory; every answer is checked as it comes
//! (a version's ACL by GetObjectAcl and by an anonymous read, which it alone decides), and
//! at the end every version any client kept must be listed, readable with its tags and ACL
//! and in its writer's order, the current object of each key must be its newest version,
//! and on fs the directory must hold that data at the key's path. A second test stops
//! writes (PUTs, multipart completions, markers, deletes) between their steps (as a crash
//! there would) and checks that nothing is lost.
//!
//! `VERSIONING_SEED=<n>` replays a seed (the interleaving of the clients is the machine's,
//! so a replay reproduces the operations, not necessarily the same race);
//! `VERSIONING_OPS` sets the operations per client (default 60).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectCannedAcl, Permission};
use rand::{Rng, SeedableRng};
use switchyard_tests::harness::{
    Fixture, Gateway, Kind, TempDir, anonymous_client, err_of, list_all_versions,
    list_all_versions_by_time, versioning_config,
};

const BUCKET: &str = "vers";
/// The crash test's buckets, one per kind: a crash point stops only its own bucket.
const CRASH_BUCKETS: [(&str, &str); 2] = [("fs", "crash-fs"), ("memory", "crash-memory")];
const KEYS: [&str; 4] = ["a", "b/c", "b/", "d/e/f"];
const CLIENTS: usize = 4;

fn config(kind: &str, root: &std::path::Path) -> String {
    config_of(kind, root, BUCKET)
}

fn config_of(kind: &str, root: &std::path::Path, bucket: &str) -> String {
    let backend = match kind {
        "fs" => format!("kind = \"fs\"\nroot = {:?}\n", root.display().to_string()),
        _ => "kind = \"memory\"\n".to_owned(),
    };
    format!(
        "version = 1\n[backends.main]\n{backend}\n[buckets.{bucket}]\nmembers = [\"main\"]\nversioning = \"enabled\"\nobject_ownership = \"ObjectWriter\"\n"
    )
}

/// What a client made: version id → (key, body (`None` for a delete marker), tags, whether
/// its ACL is `public-read` (else the owner's alone)).
type Made = BTreeMap<String, (String, Option<Vec<u8>>, Tags, bool)>;
type Tags = Vec<(String, String)>;

#[derive(Default)]
struct Shared {
    /// Every body ever sent to each key, before the PUT starts.
    bodies: HashMap<String, BTreeSet<Vec<u8>>>,
    /// Every version id answered, to catch one given twice.
    ids: BTreeSet<String>,
}

async fn read(
    c: &Client,
    key: &str,
    version: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), (u16, String)> {
    match c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
    {
        Ok(o) => {
            let id = o.version_id().map(str::to_owned);
            Ok((o.body.collect().await.unwrap().to_vec(), id))
        }
        Err(e) => Err(err_of(&e)),
    }
}

/// One client: a seeded sequence of operations on the shared keys. Returns what it
/// made and kept, in the order it made them (per key, oldest first).
async fn client(
    c: Client,
    seed: u64,
    id: usize,
    ops: usize,
    shared: Arc<Mutex<Shared>>,
    native: bool,
    anonymous: Client,
) -> (Made, Vec<String>) {
    // S3 members keep no ACLs but the owner's (limitations.md).
    let acls = !native;
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut made: Made = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for n in 0..ops {
        let key = KEYS[rng.random_range(0..KEYS.len())];
        let ctx = format!("seed {seed} client {id} op {n} key {key:?}");
        match rng.random_range(0..15) {
            0..=3 => {
                let body = format!("client {id} op {n} ")
                    .repeat(rng.random_range(1..200))
                    .into_bytes();
                let public = acls && rng.random_ratio(1, 3);
                shared
                    .lock()
                    .unwrap()
                    .bodies
                    .entry(key.to_owned())
                    .or_default()
                    .insert(body.clone());
                let out = c
                    .put_object()
                    .bucket(BUCKET)
                    .key(key)
                    .set_acl(public.then_some(ObjectCannedAcl::PublicRead))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: put: {e:?}"));
                let v = out
                    .version_id()
                    .unwrap_or_else(|| panic!("{ctx}: no version id"))
                    .to_owned();
                assert!(
                    shared.lock().unwrap().ids.insert(v.clone()),
                    "{ctx}: version id {v} given twice"
                );
                made.insert(v.clone(), (key.to_owned(), Some(body), Vec::new(), public));
                order.push(v);
            }
            4 => {
                let out = c
                    .delete_object()
                    .bucket(BUCKET)
                    .key(key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: delete: {e:?}"));
                // moto makes no marker for a key it holds no version of (S3 does), and
                // the gateway answers what the backend did.
                if native && out.delete_marker() != Some(true) {
                    assert_eq!(out.version_id(), None, "{ctx}");
                    continue;
                }
                assert_eq!(out.delete_marker(), Some(true), "{ctx}");
                let v = out.version_id().unwrap().to_owned();
                assert!(
                    shared.lock().unwrap().ids.insert(v.clone()),
                    "{ctx}: version id {v} given twice"
                );
                made.insert(v.clone(), (key.to_owned(), None, Vec::new(), false));
                order.push(v);
            }
            5 => {
                // One of its own versions, for good.
                let Some(v) = pick(&mut rng, &made) else {
                    continue;
                };
                let (k, body, _, _) = made.remove(&v).unwrap();
                let out = c
                    .delete_object()
                    .bucket(BUCKET)
                    .key(&k)
                    .version_id(&v)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: delete version {v}: {e:?}"));
                assert_eq!(out.version_id(), Some(v.as_str()), "{ctx}");
                assert_eq!(out.delete_marker() == Some(true), body.is_none(), "{ctx}");
                order.retain(|o| *o != v);
                let e = read(&c, &k, Some(&v)).await;
                assert!(
                    matches!(&e, Err((404, code)) if code == "NoSuchVersion"),
                    "{ctx}: version {v} read after its delete: {:?}",
                    e.map(|r| r.1)
                );
            }
            6..=7 => {
                // One of its own versions: exactly its bytes, or 405 for a marker.
                let Some(v) = pick(&mut rng, &made) else {
                    continue;
                };
                let (k, body, tags, public) = made[&v].clone();
                match (read(&c, &k, Some(&v)).await, body) {
                    (Ok((got, id)), Some(want)) => {
                        assert!(got == want, "{ctx}: version {v} of {k:?} has other bytes");
                        assert_eq!(id.as_deref(), Some(v.as_str()), "{ctx}");
                        assert_eq!(tags_of(&c, &k, &v).await, tags, "{ctx}: tags of {v}");
                        if acls {
                            check_acl(&c, &anonymous, &k, &v, Some(&want), public, &ctx).await;
                        }
                    }
                    (Err((405, code)), None) if code == "MethodNotAllowed" => {}
                    (got, want) => panic!(
                        "{ctx}: version {v} of {k:?}: got {:?}, want {}",
                        got.map(|g| g.1),
                        if want.is_some() { "its bytes" } else { "405" }
                    ),
                }
            }
            8 => {
                // One of its own versions, maybe an older one, copied to any key: a new
                // version with its bytes and tags; a delete marker is refused.
                let Some(v) = pick(&mut rng, &made) else {
                    continue;
                };
                let (src, body, tags, _) = made[&v].clone();
                if let Some(b) = &body {
                    shared
                        .lock()
                        .unwrap()
                        .bodies
                        .entry(key.to_owned())
                        .or_default()
                        .insert(b.clone());
                }
                let out = c
                    .copy_object()
                    .bucket(BUCKET)
                    .key(key)
                    .copy_source(format!("{BUCKET}/{src}?versionId={v}"))
                    .send()
                    .await;
                match (out, body) {
                    (Ok(out), Some(body)) => {
                        assert_eq!(out.copy_source_version_id(), Some(v.as_str()), "{ctx}");
                        let n = out
                            .version_id()
                            .unwrap_or_else(|| panic!("{ctx}: no version id"))
                            .to_owned();
                        assert!(
                            shared.lock().unwrap().ids.insert(n.clone()),
                            "{ctx}: version id {n} given twice"
                        );
                        // A copy never takes its source's ACL.
                        made.insert(n.clone(), (key.to_owned(), Some(body), tags, false));
                        order.push(n);
                    }
                    (Err(e), None) => {
                        assert_eq!(err_of(&e), (400, "InvalidRequest".into()), "{ctx}");
                    }
                    (got, want) => panic!(
                        "{ctx}: copy of {v}: got {:?}, want {}",
                        got.map(|o| o.version_id().map(str::to_owned)),
                        if want.is_some() { "a version" } else { "400" }
                    ),
                }
            }
            // Multipart uploads of a folder marker on S3 members are a 501
            // (limitations.md): not tried there.
            9 if native && key.ends_with('/') => {}
            9 => {
                // A multipart upload: its completion is a new version.
                let body = format!("client {id} upload {n} ")
                    .repeat(rng.random_range(1..200))
                    .into_bytes();
                shared
                    .lock()
                    .unwrap()
                    .bodies
                    .entry(key.to_owned())
                    .or_default()
                    .insert(body.clone());
                let v = upload(&c, key, body.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: multipart: {e}"));
                assert!(
                    shared.lock().unwrap().ids.insert(v.clone()),
                    "{ctx}: version id {v} given twice"
                );
                made.insert(v.clone(), (key.to_owned(), Some(body), Vec::new(), false));
                order.push(v);
            }
            10 => {
                // New tags on one of its own versions; a delete marker's are refused.
                let Some(v) = pick(&mut rng, &made) else {
                    continue;
                };
                let (k, body, _, _) = made[&v].clone();
                let tags = vec![
                    ("c".to_owned(), id.to_string()),
                    ("n".to_owned(), n.to_string()),
                ];
                let set = aws_sdk_s3::types::Tagging::builder()
                    .set_tag_set(Some(
                        tags.iter()
                            .map(|(k, v)| {
                                aws_sdk_s3::types::Tag::builder()
                                    .key(k)
                                    .value(v)
                                    .build()
                                    .unwrap()
                            })
                            .collect(),
                    ))
                    .build()
                    .unwrap();
                let out = c
                    .put_object_tagging()
                    .bucket(BUCKET)
                    .key(&k)
                    .version_id(&v)
                    .tagging(set)
                    .send()
                    .await;
                match (out, body.is_some()) {
                    (Ok(out), true) => {
                        assert_eq!(out.version_id(), Some(v.as_str()), "{ctx}");
                        made.get_mut(&v).unwrap().2 = tags;
                    }
                    (Err(e), false) => {
                        assert_eq!(err_of(&e), (405, "MethodNotAllowed".into()), "{ctx}");
                    }
                    (got, _) => panic!("{ctx}: tags of {v}: {:?}", got.map(|_| ())),
                }
            }
            11 if acls => {
                // A new ACL on one of its own versions (its bytes, tags and ETag stay);
                // a delete marker's is refused.
                let Some(v) = pick(&mut rng, &made) else {
                    continue;
                };
                let (k, body, _, _) = made[&v].clone();
                let public = rng.random_bool(0.5);
                let out = c
                    .put_object_acl()
                    .bucket(BUCKET)
                    .key(&k)
                    .version_id(&v)
                    .acl(if public {
                        ObjectCannedAcl::PublicRead
                    } else {
                        ObjectCannedAcl::Private
                    })
                    .send()
                    .await;
                match (out, &body) {
                    (Ok(_), Some(b)) => {
                        made.get_mut(&v).unwrap().3 = public;
                        check_acl(&c, &anonymous, &k, &v, Some(b), public, &ctx).await;
                    }
                    (Err(e), None) => {
                        assert_eq!(err_of(&e), (405, "MethodNotAllowed".into()), "{ctx}");
                    }
                    (got, _) => panic!("{ctx}: ACL of {v}: {:?}", got.map(|_| ())),
                }
            }
            _ => {
                // The current object: some body once written to the key, or a 404.
                match read(&c, key, None).await {
                    Ok((got, id)) => {
                        assert!(id.is_some(), "{ctx}: no version id");
                        assert!(
                            shared
                                .lock()
                                .unwrap()
                                .bodies
                                .get(key)
                                .is_some_and(|b| b.contains(&got)),
                            "{ctx}: read bytes never written to the key"
                        );
                    }
                    Err((404, code)) if code == "NoSuchKey" => {}
                    Err(e) => panic!("{ctx}: read: {e:?}"),
                }
            }
        }
    }
    (made, order)
}

/// The ACL of one version is `public-read` (`public`) or its owner's alone: as
/// GetObjectAcl gives it, and as it decides an anonymous read of the version (no policy
/// allows one), which gets `body` or `403`.
async fn check_acl(
    c: &Client,
    anonymous: &Client,
    key: &str,
    version: &str,
    body: Option<&Vec<u8>>,
    public: bool,
    ctx: &str,
) {
    let acl = c
        .get_object_acl()
        .bucket(BUCKET)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: ACL of {version}: {e:?}"));
    let owner = acl.owner().and_then(|o| o.id()).map(str::to_owned);
    let mut grants: Vec<(Option<String>, Option<String>, Permission)> = acl
        .grants()
        .iter()
        .map(|g| {
            let who = g.grantee().expect("a grantee");
            (
                who.id().map(str::to_owned),
                who.uri().map(str::to_owned),
                g.permission().expect("a permission").clone(),
            )
        })
        .collect();
    grants.sort_by_key(|g| format!("{g:?}"));
    let mut want = vec![(owner, None, Permission::FullControl)];
    if public {
        want.push((None, Some(ALL_USERS.to_owned()), Permission::Read));
    }
    want.sort_by_key(|g| format!("{g:?}"));
    assert_eq!(grants, want, "{ctx}: grants of {version}");
    let got = anonymous
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .version_id(version)
        .send()
        .await;
    match got {
        Ok(o) if public => {
            let bytes = o.body.collect().await.unwrap().into_bytes().to_vec();
            assert!(
                Some(&bytes) == body,
                "{ctx}: an anonymous read of {version} has other bytes"
            );
        }
        Err(e) if !public => {
            assert_eq!(err_of(&e), (403, "AccessDenied".into()), "{ctx}: {version}");
        }
        got => panic!(
            "{ctx}: an anonymous read of {version} (public: {public}) answered {:?}",
            got.map(|_| ()).map_err(|e| err_of(&e))
        ),
    }
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// The tags of one version.
async fn tags_of(c: &Client, key: &str, version: &str) -> Tags {
    let got = c
        .get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {key:?} {version}: {e:?}"));
    assert_eq!(got.version_id(), Some(version));
    let mut tags: Tags = got
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

/// A multipart upload of `body` (one part) to `key` of [`BUCKET`]: the version id of
/// its completion.
async fn upload(c: &Client, key: &str, body: Vec<u8>) -> Result<String, String> {
    upload_in(c, BUCKET, key, body)
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn upload_in(
    c: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<String, (u16, String)> {
    let id = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| err_of(&e))?
        .upload_id()
        .unwrap()
        .to_owned();
    let etag = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| err_of(&e))?
        .e_tag()
        .unwrap()
        .to_owned();
    let part = aws_sdk_s3::types::CompletedPart::builder()
        .part_number(1)
        .e_tag(etag)
        .build();
    let out = c
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(part)
                .build(),
        )
        .send()
        .await
        .map_err(|e| err_of(&e))?;
    Ok(out
        .version_id()
        .expect("a completion's version id")
        .to_owned())
}

fn pick(rng: &mut impl Rng, made: &Made) -> Option<String> {
    (!made.is_empty()).then(|| {
        made.keys()
            .nth(rng.random_range(0..made.len()))
            .unwrap()
            .clone()
    })
}

async fn run(kind: &str, seed: u64, ops: usize) {
    let dir = TempDir::new("versioning-model");
    // s3: moto's bucket, versioned through the gateway (S3 keeps the versions).
    let moto = match kind {
        "s3" => Some(Fixture::new(Kind::S3).await.unwrap()),
        _ => None,
    };
    let config = match &moto {
        Some(fx) => format!(
            "version = 1\n[backends.main]\n{}\n[buckets.{BUCKET}]\nmembers = [\"main\"]\n",
            fx.toml
        ),
        None => config(kind, &dir.0),
    };
    let first = Gateway::start(&config).await.unwrap();
    if moto.is_some() {
        first
            .client()
            .put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(versioning_config(
                aws_sdk_s3::types::BucketVersioningStatus::Enabled,
            ))
            .send()
            .await
            .unwrap();
    }
    // fs: a second engine over the same directory; memory keeps its objects per process.
    let second = if kind == "fs" {
        Some(Gateway::start(&config).await.unwrap())
    } else {
        None
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    let anonymous = anonymous_client(&first.endpoint);
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let c = match (&second, id % 2) {
            (Some(g), 1) => g.client(),
            _ => first.client(),
        };
        let native = moto.is_some();
        tasks.push(tokio::spawn(client(
            c,
            seed,
            id,
            ops,
            shared.clone(),
            native,
            anonymous.clone(),
        )));
    }
    let mut made: Made = BTreeMap::new();
    let mut orders = Vec::new();
    for t in tasks {
        let (m, o) = t
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}\nreplay: {}", replay(seed, ops)));
        made.extend(m);
        orders.push(o);
    }
    let c = first.client();
    // S3's ids do not sort by age, and moto's Last-Modified has whole seconds: its rows
    // come in the listing's order within versions and within markers (which the SDK
    // lists apart), so only those orders are compared there.
    let native = moto.is_some();
    let list = |page| {
        let c = c.clone();
        async move {
            if native {
                list_all_versions_by_time(&c, BUCKET, "", page).await
            } else {
                list_all_versions(&c, BUCKET, "", page).await
            }
        }
    };
    let rows = list(1000).await;
    // Exactly the versions the clients kept: none lost, none invented.
    let ids: BTreeSet<&String> = rows.iter().map(|r| &r.1).collect();
    let kept: BTreeSet<&String> = made.keys().collect();
    assert_eq!(
        ids, kept,
        "{kind} seed {seed}: listed versions differ from the kept ones"
    );
    assert_eq!(
        rows.len(),
        made.len(),
        "{kind} seed {seed}: a version listed twice"
    );
    for page in [1, 3] {
        let mut paged = list(page).await;
        let mut want = rows.clone();
        if native {
            paged.sort();
            want.sort();
        }
        assert_eq!(paged, want, "{kind} seed {seed}: pages of {page}");
    }
    // Each client's versions of a key, newest first, as it made them.
    let position: HashMap<&String, usize> =
        rows.iter().enumerate().map(|(i, r)| (&r.1, i)).collect();
    for order in &orders {
        for pair in order.windows(2) {
            let listed_apart = native && made[&pair[0]].1.is_some() != made[&pair[1]].1.is_some();
            if made[&pair[0]].0 == made[&pair[1]].0 && !listed_apart {
                assert!(
                    position[&pair[1]] < position[&pair[0]],
                    "{kind} seed {seed}: {} listed after the older {}",
                    pair[1],
                    pair[0]
                );
            }
        }
    }
    for r in &rows {
        let (key, body, tags, public) = &made[&r.1];
        assert_eq!(&r.0, key, "{kind} seed {seed}");
        assert_eq!(r.2, body.is_none(), "{kind} seed {seed}");
        if body.is_some() && !native {
            let ctx = format!("{kind} seed {seed} at the end");
            check_acl(&c, &anonymous, key, &r.1, body.as_ref(), *public, &ctx).await;
        }
        if body.is_some() {
            let mut want = tags.clone();
            want.sort();
            assert_eq!(
                tags_of(&c, key, &r.1).await,
                want,
                "{kind} seed {seed}: tags of {}",
                r.1
            );
        }
    }
    // The current object is the newest version (a marker: 404 with the header).
    for key in KEYS {
        let newest = rows.iter().find(|r| r.0 == key && r.3);
        let got = read(&c, key, None).await;
        let on_disk = std::fs::read(dir.0.join(key));
        match (newest, got) {
            (None, Err((404, _))) => {}
            (Some(n), Err((404, _))) if n.2 => {}
            (Some(n), Ok((bytes, id))) if !n.2 => {
                assert_eq!(
                    id.as_deref(),
                    Some(n.1.as_str()),
                    "{kind} seed {seed} key {key}"
                );
                assert!(
                    Some(&bytes) == made[&n.1].1.as_ref(),
                    "{kind} seed {seed} key {key}"
                );
                if kind == "fs" && !key.ends_with('/') {
                    assert!(
                        on_disk.ok().as_ref() == Some(&bytes),
                        "{kind} seed {seed}: {key} on disk is not its newest version"
                    );
                }
            }
            (n, got) => panic!(
                "{kind} seed {seed} key {key}: newest {n:?}, read {:?}",
                got.map(|g| g.1)
            ),
        }
    }
    first.stop().await;
    if let Some(g) = second {
        g.stop().await;
    }
}

/// Operations per client unless `VERSIONING_OPS` says otherwise.
const DEFAULT_OPS: usize = 60;

fn seed_and_ops() -> (u64, usize) {
    let seed = std::env::var("VERSIONING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let ops = std::env::var("VERSIONING_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_OPS);
    println!("versioning model: {}", replay(seed, ops));
    (seed, ops)
}

/// The command that runs the model tests again with this seed (and size).
fn replay(seed: u64, ops: usize) -> String {
    let ops = match ops {
        DEFAULT_OPS => String::new(),
        n => format!(" VERSIONING_OPS={n}"),
    };
    format!(
        "VERSIONING_SEED={seed}{ops} cargo test -p switchyard-tests --locked --test suite versioning::"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_against_a_model_fs() {
    let (seed, ops) = seed_and_ops();
    run("fs", seed, ops).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_against_a_model_memory() {
    let (seed, ops) = seed_and_ops();
    run("memory", seed, ops).await;
}

/// S3's own versioning through the gateway (moto): fewer operations, each a round trip
/// to the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_against_a_model_s3() {
    let (seed, ops) = seed_and_ops();
    run("s3", seed, ops.min(25)).await;
}

async fn get_in(
    c: &Client,
    bucket: &str,
    key: &str,
) -> Result<(Vec<u8>, Option<String>), (u16, String, Option<String>)> {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => {
            let id = o.version_id().map(str::to_owned);
            Ok((o.body.collect().await.unwrap().to_vec(), id))
        }
        Err(e) => {
            let (status, code) = err_of(&e);
            let marker = e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-delete-marker"))
                .map(str::to_owned);
            Err((status, code, marker))
        }
    }
}

/// The version ids of `key` in `bucket`, newest first (markers included).
async fn version_ids(c: &Client, bucket: &str, key: &str) -> Vec<String> {
    let got = c
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let mut rows: Vec<_> = got
        .versions()
        .iter()
        .map(|v| {
            (
                *v.last_modified().unwrap(),
                v.version_id().unwrap().to_owned(),
            )
        })
        .chain(got.delete_markers().iter().map(|d| {
            (
                *d.last_modified().unwrap(),
                d.version_id().unwrap().to_owned(),
            )
        }))
        .collect();
    // This gateway's ids of one member sort newest first.
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows.into_iter().map(|r| r.1).collect()
}

/// A write stopped after its version file and before publishing it (as the engine dying
/// there would), a delete marker stopped so, and a permanent delete stopped after
/// removing the newest file: the version is kept and listed, and the next read publishes
/// it, so the key shows its newest version (on fs, at its path too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stopped_between_its_steps_loses_nothing() {
    for (kind, bucket) in CRASH_BUCKETS {
        let dir = TempDir::new("versioning-crash");
        let gw = Gateway::start(&config_of(kind, &dir.0, bucket))
            .await
            .unwrap();
        let c = gw.client();
        let put = |body: &'static [u8]| {
            c.put_object()
                .bucket(bucket)
                .key("k")
                .body(ByteStream::from_static(body))
                .send()
        };
        let v1 = put(b"one").await.unwrap().version_id().unwrap().to_owned();
        fail::cfg("versions::written", &format!("return({bucket})")).unwrap();
        let e = put(b"two").await.unwrap_err();
        fail::remove("versions::written");
        assert_eq!(err_of(&e).0, 500, "{kind}");
        let ids = version_ids(&c, bucket, "k").await;
        assert_eq!(
            ids.len(),
            2,
            "{kind}: the stopped write's version is not kept"
        );
        assert_eq!(ids[1], v1, "{kind}");
        let v2 = ids[0].clone();
        assert_eq!(
            get_in(&c, bucket, "k").await,
            Ok((b"two".to_vec(), Some(v2.clone()))),
            "{kind}"
        );
        if kind == "fs" {
            assert_eq!(std::fs::read(dir.0.join("k")).unwrap(), b"two");
        }
        // A delete marker stopped before it hid the key.
        fail::cfg("versions::written", &format!("return({bucket})")).unwrap();
        let e = c
            .delete_object()
            .bucket(bucket)
            .key("k")
            .send()
            .await
            .unwrap_err();
        fail::remove("versions::written");
        assert_eq!(err_of(&e).0, 500, "{kind}");
        let ids = version_ids(&c, bucket, "k").await;
        assert_eq!(ids.len(), 3, "{kind}");
        let m = ids[0].clone();
        assert_eq!(
            get_in(&c, bucket, "k").await,
            Err((404, "NoSuchKey".into(), Some("true".into()))),
            "{kind}"
        );
        if kind == "fs" {
            assert!(
                !dir.0.join("k").exists(),
                "the marker did not remove the key's file"
            );
        }
        // Removing the marker, stopped before the key shows the version under it.
        fail::cfg("versions::removed", &format!("return({bucket})")).unwrap();
        let e = c
            .delete_object()
            .bucket(bucket)
            .key("k")
            .version_id(&m)
            .send()
            .await
            .unwrap_err();
        fail::remove("versions::removed");
        assert_eq!(err_of(&e).0, 500, "{kind}");
        assert_eq!(
            version_ids(&c, bucket, "k").await,
            [v2.clone(), v1.clone()],
            "{kind}"
        );
        assert_eq!(
            get_in(&c, bucket, "k").await,
            Ok((b"two".to_vec(), Some(v2.clone()))),
            "{kind}"
        );
        // Removing the newest version, stopped before the key falls back to the older.
        fail::cfg("versions::removed", &format!("return({bucket})")).unwrap();
        let e = c
            .delete_object()
            .bucket(bucket)
            .key("k")
            .version_id(&v2)
            .send()
            .await
            .unwrap_err();
        fail::remove("versions::removed");
        assert_eq!(err_of(&e).0, 500, "{kind}");
        assert_eq!(
            version_ids(&c, bucket, "k").await,
            vec![v1.clone()],
            "{kind}"
        );
        assert_eq!(
            get_in(&c, bucket, "k").await,
            Ok((b"one".to_vec(), Some(v1.clone()))),
            "{kind}"
        );
        if kind == "fs" {
            assert_eq!(std::fs::read(dir.0.join("k")).unwrap(), b"one");
        }
        // A multipart completion stopped after its version's file: kept, and published
        // by the next read.
        fail::cfg("versions::written", &format!("return({bucket})")).unwrap();
        let e = upload_in(&c, bucket, "k", b"three".to_vec())
            .await
            .unwrap_err();
        fail::remove("versions::written");
        assert_eq!(e.0, 500, "{kind}");
        let ids = version_ids(&c, bucket, "k").await;
        assert_eq!(
            ids.len(),
            2,
            "{kind}: the stopped completion's version is not kept"
        );
        assert_eq!(ids[1], v1, "{kind}");
        assert_eq!(
            get_in(&c, bucket, "k").await,
            Ok((b"three".to_vec(), Some(ids[0].clone()))),
            "{kind}"
        );
        if kind == "fs" {
            assert_eq!(std::fs::read(dir.0.join("k")).unwrap(), b"three");
        }
        gw.stop().await;
    }
}

/// The backend calls an engine made, by its metrics: every operation on member `main`.
async fn backend_calls(admin: std::net::SocketAddr) -> f64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(r#"switchyard_backend_requests_total{backend="main""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// ListObjectVersions takes each version's size, ETag and time from one listing of the
/// member's version files, not from a HEAD per version: the backend calls of one page of
/// 12 versions are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_versions_costs_no_request_per_version() {
    for (kind, bucket) in [("fs", "count-fs"), ("memory", "count-memory")] {
        let dir = TempDir::new("versioning-count");
        let config = format!(
            "{}[server]\nadmin_listen = \"127.0.0.1:0\"\n",
            config_of(kind, &dir.0, bucket)
        );
        let gw = Gateway::start(&config).await.unwrap();
        let admin = gw.server.as_ref().unwrap().admin_addr().unwrap();
        let c = gw.client();
        let mut etags = BTreeMap::new();
        for i in 0..12 {
            let key = if i % 3 == 0 { "b/c" } else { "a" };
            let body = format!("body {i}").repeat(i + 1);
            let out = c
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body.clone().into_bytes()))
                .send()
                .await
                .unwrap();
            etags.insert(
                out.version_id().unwrap().to_owned(),
                (out.e_tag().unwrap().to_owned(), body.len() as i64),
            );
        }
        let before = backend_calls(admin).await;
        let got = c
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let calls = backend_calls(admin).await - before;
        assert_eq!(got.versions().len(), 12, "{kind}");
        for v in got.versions() {
            assert_eq!(
                Some((v.e_tag().unwrap().to_owned(), v.size().unwrap())).as_ref(),
                etags.get(v.version_id().unwrap()),
                "{kind}"
            );
        }
        assert!(
            calls <= 3.0,
            "{kind}: {calls} backend calls for one page of 12 versions"
        );
        gw.stop().await;
    }
}
