//! The attacker's suite, part two: bucket policies on buckets made by CreateBucket (the
//! API, what it refuses, where the policy is kept and who sees it), and the policy
//! language's conditions end to end (`${aws:username}` home directories, `aws:SourceIp`,
//! `aws:SecureTransport`), groups, and users without policies. Each test sends real
//! requests, signed or not, to a running engine, and checks both the answer and what it
//! left behind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use switchyard_tests::harness::{
    ACCESS_KEY, Gateway, SECRET_KEY, TempDir, anonymous_client, err_of, init_logging,
    presign_query, s3_client,
};

/// The documented cache of a stored bucket policy in each engine (router.rs).
const POLICY_CACHE: Duration = Duration::from_secs(2);

/// Carol may read, write and list everything, and read bucket policies, but not change
/// them.
const CAROL: (&str, &str) = ("carol-key", "carol-secret");
const CAROL_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Data","Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:ListBucket","s3:GetBucketPolicy","s3:GetBucketPolicyStatus"],"Resource":"*"}]}"#;

fn user(key: (&str, &str), name: &str, extra: &str) -> String {
    format!(
        "[[users]]\naccess_key = {:?}\nsecret_key = {:?}\nname = {name:?}\n{extra}",
        key.0, key.1
    )
}

/// `[dynamic_buckets]` of `kind`, a configured bucket `configured` beside them, and Carol.
fn dynamic_config(kind: &str, root: &TempDir) -> String {
    let template = match kind {
        "fs" => format!(
            "kind = \"fs\"\nroot = {:?}\n",
            root.0.join("dynamic").display().to_string()
        ),
        _ => "kind = \"memory\"\n".to_owned(),
    };
    format!(
        "version = 1\n[dynamic_buckets]\n{template}[backends.conf]\nkind = \"memory\"\n[buckets.configured]\nmembers = [\"conf\"]\n{}",
        user(CAROL, "carol", &format!("policy = '''{CAROL_POLICY}'''\n"))
    )
}

/// Anyone may read the bucket's objects. Laid out as a person writes it, so that a
/// round trip that reformatted it would show.
fn public_read(bucket: &str) -> String {
    format!(
        "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {{\n      \"Sid\": \"PublicRead\",\n      \"Effect\": \"Allow\",\n      \"Principal\": \"*\",\n      \"Action\": \"s3:GetObject\",\n      \"Resource\": \"arn:aws:s3:::{bucket}/*\"\n    }}\n  ]\n}}\n"
    )
}

/// Everyone is denied everything on the bucket.
fn deny_all(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"NoOne","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    )
}

/// Policies PutBucketPolicy must refuse with `400 MalformedPolicy`, with what is wrong.
fn malformed(bucket: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "invalid JSON",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow""#.to_owned(),
        ),
        (
            "a resource outside the bucket",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::another-bucket/*"}]}"#.to_owned(),
        ),
        (
            "an unknown operator",
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*","Condition":{{"StringRoughlyEquals":{{"aws:username":"alice"}}}}}}]}}"#
            ),
        ),
        (
            "a statement without Principal",
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
            ),
        ),
    ]
}

async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key}: {e:?}"));
}

/// The object's bytes, or the status and code of the refusal.
async fn get(c: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, (u16, String)> {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Ok(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(err_of(&e)),
    }
}

/// Status and code of a PutObject (`(200, "")` when it went through).
async fn try_put(c: &Client, bucket: &str, key: &str) -> (u16, String) {
    match c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"attempt"))
        .send()
        .await
    {
        Ok(_) => (200, String::new()),
        Err(e) => err_of(&e),
    }
}

/// The keys of a ListObjectsV2, or the status and code of the refusal.
async fn list(
    c: &Client,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), (u16, String)> {
    match c
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix(prefix.map(str::to_owned))
        .set_delimiter(delimiter.map(str::to_owned))
        .send()
        .await
    {
        Ok(out) => Ok((
            out.contents()
                .iter()
                .map(|o| o.key().unwrap().to_owned())
                .collect(),
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned())
                .collect(),
        )),
        Err(e) => Err(err_of(&e)),
    }
}

fn denied<T: std::fmt::Debug>(r: Result<T, (u16, String)>, what: &str) {
    match r {
        Err((403, code)) if code == "AccessDenied" => {}
        other => panic!("{what}: expected 403 AccessDenied, got {other:?}"),
    }
}

async fn get_policy(c: &Client, bucket: &str) -> Result<String, (u16, String)> {
    match c.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => Ok(out.policy().unwrap_or_default().to_owned()),
        Err(e) => Err(err_of(&e)),
    }
}

async fn put_policy(c: &Client, bucket: &str, json: &str) -> Result<(), (u16, String)> {
    c.put_bucket_policy()
        .bucket(bucket)
        .policy(json)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err_of(&e))
}

async fn delete_policy(c: &Client, bucket: &str) -> Result<(), (u16, String)> {
    c.delete_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err_of(&e))
}

fn no_policy<T: std::fmt::Debug>(r: Result<T, (u16, String)>, what: &str) {
    match r {
        Err((404, code)) if code == "NoSuchBucketPolicy" => {}
        other => panic!("{what}: expected 404 NoSuchBucketPolicy, got {other:?}"),
    }
}

/// Polls `check` every 50 ms until it holds; how long that took, or `None` after `bound`.
async fn within<F: Future<Output = bool>>(
    bound: Duration,
    check: impl Fn() -> F,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts an engine with exactly the users of `toml` (the harness adds its own
/// full-access user, which would change what a policy-less user may do).
async fn start_exact(toml: &str) -> Gateway {
    init_logging();
    let mut config = switchyard::Config::from_toml(toml).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let server = switchyard::start(config).await.unwrap();
    let endpoint = format!("http://{}", server.local_addr());
    Gateway {
        server: Some(server),
        endpoint,
    }
}

/// Where an fs bucket made by CreateBucket keeps its policy.
fn stored_policy_file(root: &TempDir, bucket: &str) -> PathBuf {
    root.0
        .join("dynamic")
        .join(bucket)
        .join(".switchyard/bucket-policy.json")
}

// ---------------------------------------------------------------------------------------
// The bucket policy API on buckets made by CreateBucket
// ---------------------------------------------------------------------------------------

/// Put/Get/Delete/GetBucketPolicyStatus round trip; what PutBucketPolicy refuses leaves
/// nothing stored; configured buckets refuse the API; the policy takes effect at once,
/// and goes with its bucket.
async fn policy_api(kind: &str) {
    let root = TempDir::new(&format!("policy-api-{kind}"));
    let gw = Gateway::start(&dynamic_config(kind, &root)).await.unwrap();
    let owner = gw.client();
    let carol = s3_client(&gw.endpoint, CAROL.0, CAROL.1);
    let anon = anonymous_client(&gw.endpoint);
    owner.create_bucket().bucket("pol").send().await.unwrap();
    put(&owner, "pol", "k", b"the object").await;

    no_policy(get_policy(&owner, "pol").await, "before any put");
    let status = owner
        .get_bucket_policy_status()
        .bucket("pol")
        .send()
        .await
        .unwrap();
    assert_eq!(status.policy_status().unwrap().is_public(), Some(false));
    denied(get(&anon, "pol", "k").await, "anonymous GET, no policy");

    let policy = public_read("pol");
    put_policy(&owner, "pol", &policy).await.unwrap();
    assert_eq!(get_policy(&owner, "pol").await.unwrap(), policy, "as put");
    assert_eq!(get_policy(&carol, "pol").await.unwrap(), policy, "to Carol");
    let status = owner
        .get_bucket_policy_status()
        .bucket("pol")
        .send()
        .await
        .unwrap();
    assert_eq!(status.policy_status().unwrap().is_public(), Some(true));
    if kind == "fs" {
        let on_disk = std::fs::read_to_string(stored_policy_file(&root, "pol")).unwrap();
        assert_eq!(on_disk, policy, "kept in the bucket's member as put");
    }
    // In effect at once: anonymous reads, and only reads.
    assert_eq!(get(&anon, "pol", "k").await.unwrap(), b"the object");
    denied(
        Err::<(), _>(try_put(&anon, "pol", "anon-write").await),
        "anonymous PUT",
    );
    denied(list(&anon, "pol", None, None).await, "anonymous list");

    // Refused policies, and a refused user, leave the stored one as it was.
    for (what, bad) in malformed("pol") {
        let e = put_policy(&owner, "pol", &bad).await.unwrap_err();
        assert_eq!(e, (400, "MalformedPolicy".into()), "{what}");
        assert_eq!(get_policy(&owner, "pol").await.unwrap(), policy, "{what}");
    }
    let e = put_policy(&carol, "pol", &deny_all("pol"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        (403, "AccessDenied".into()),
        "Carol may not put policies"
    );
    let e = delete_policy(&carol, "pol").await.unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()), "Carol may not delete them");
    assert_eq!(get_policy(&owner, "pol").await.unwrap(), policy);
    if kind == "fs" {
        let on_disk = std::fs::read_to_string(stored_policy_file(&root, "pol")).unwrap();
        assert_eq!(on_disk, policy, "the refused puts reached the disk");
    }
    assert_eq!(get(&anon, "pol", "k").await.unwrap(), b"the object");

    delete_policy(&owner, "pol").await.unwrap();
    no_policy(get_policy(&owner, "pol").await, "after delete");
    denied(get(&anon, "pol", "k").await, "anonymous GET after delete");
    if kind == "fs" {
        assert!(!stored_policy_file(&root, "pol").exists());
    }
    // Deleting what is not there is not an error (as in AWS), and a refused put with no
    // policy stored stores none.
    delete_policy(&owner, "pol").await.unwrap();
    for (what, bad) in malformed("pol") {
        let e = put_policy(&owner, "pol", &bad).await.unwrap_err();
        assert_eq!(e, (400, "MalformedPolicy".into()), "{what}");
        no_policy(get_policy(&owner, "pol").await, what);
    }
    denied(
        get(&anon, "pol", "k").await,
        "anonymous GET after refused puts",
    );

    // A configured bucket's policy is the configuration's.
    for e in [
        put_policy(&owner, "configured", &public_read("configured"))
            .await
            .unwrap_err(),
        delete_policy(&owner, "configured").await.unwrap_err(),
    ] {
        assert_eq!(e, (400, "InvalidRequest".into()));
    }
    no_policy(get_policy(&owner, "configured").await, "configured bucket");
    // A bucket that does not exist.
    let e = put_policy(&owner, "no-such-bucket", &public_read("no-such-bucket"))
        .await
        .unwrap_err();
    assert_eq!(e, (404, "NoSuchBucket".into()));

    // A policy goes with its bucket: one made again under the same name has none.
    owner.create_bucket().bucket("reborn").send().await.unwrap();
    put_policy(&owner, "reborn", &public_read("reborn"))
        .await
        .unwrap();
    owner.delete_bucket().bucket("reborn").send().await.unwrap();
    owner.create_bucket().bucket("reborn").send().await.unwrap();
    put(&owner, "reborn", "k", b"private again").await;
    no_policy(get_policy(&owner, "reborn").await, "a bucket made again");
    denied(
        get(&anon, "reborn", "k").await,
        "anonymous GET, bucket made again",
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bucket_policy_api_fs() {
    policy_api("fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bucket_policy_api_memory() {
    policy_api("memory").await;
}

/// A policy put through one engine reaches another on the same fs root within the
/// documented cache time (both ways: put and delete), and an engine started later sees it
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_policies_reach_every_engine_on_the_root() {
    let root = TempDir::new("policy-engines");
    let config = dynamic_config("fs", &root);
    let a = Gateway::start(&config).await.unwrap();
    let b = Gateway::start(&config).await.unwrap();
    let owner_a = a.client();
    owner_a
        .create_bucket()
        .bucket("shared")
        .send()
        .await
        .unwrap();
    put(&owner_a, "shared", "k", b"shared bytes").await;
    let anon_b = anonymous_client(&b.endpoint);
    // B reads (and caches) "no policy" first.
    denied(get(&anon_b, "shared", "k").await, "B before the put");
    no_policy(get_policy(&b.client(), "shared").await, "B before the put");

    // Some slack over the cache time for a loaded machine, and the bound is reported.
    let bound = POLICY_CACHE + Duration::from_millis(1500);
    let policy = public_read("shared");
    put_policy(&owner_a, "shared", &policy).await.unwrap();
    let anon = &anon_b;
    let took = within(
        bound,
        || async move { get(anon, "shared", "k").await.is_ok() },
    )
    .await;
    let took = took.unwrap_or_else(|| panic!("B did not apply A's policy within {bound:?}"));
    println!("B applied the policy put through A after {took:?}");
    assert_eq!(get_policy(&b.client(), "shared").await.unwrap(), policy);

    delete_policy(&owner_a, "shared").await.unwrap();
    let took = within(
        bound,
        || async move { get(anon, "shared", "k").await.is_err() },
    )
    .await;
    let took = took.unwrap_or_else(|| panic!("B still applied a deleted policy after {bound:?}"));
    println!("B dropped the policy deleted through A after {took:?}");
    denied(get(&anon_b, "shared", "k").await, "B after the delete");

    // Put through B this time; both stop; an engine started later sees it at once.
    put_policy(&b.client(), "shared", &policy).await.unwrap();
    a.stop().await;
    b.stop().await;
    let c = Gateway::start(&config).await.unwrap();
    assert_eq!(
        get(&anonymous_client(&c.endpoint), "shared", "k")
            .await
            .unwrap(),
        b"shared bytes"
    );
    assert_eq!(get_policy(&c.client(), "shared").await.unwrap(), policy);
    c.stop().await;
}

/// A bucket policy that denies everyone locks out every user and anonymous requests, the
/// full-access user included, from the bucket's data; but that user may still read,
/// replace and delete the policy (as AWS's account root may), so no policy locks everyone
/// out for good.
async fn deny_all_is_recoverable(kind: &str) {
    let root = TempDir::new(&format!("policy-deny-all-{kind}"));
    let gw = Gateway::start(&dynamic_config(kind, &root)).await.unwrap();
    let owner = gw.client();
    let carol = s3_client(&gw.endpoint, CAROL.0, CAROL.1);
    let anon = anonymous_client(&gw.endpoint);
    owner.create_bucket().bucket("locked").send().await.unwrap();
    put(&owner, "locked", "k", b"locked bytes").await;
    assert!(get(&carol, "locked", "k").await.is_ok());

    let policy = deny_all("locked");
    put_policy(&owner, "locked", &policy).await.unwrap();
    for (who, c) in [("owner", &owner), ("Carol", &carol), ("anonymous", &anon)] {
        denied(get(c, "locked", "k").await, &format!("{who} GET"));
        denied(
            Err::<(), _>(try_put(c, "locked", "w").await),
            &format!("{who} PUT"),
        );
        denied(list(c, "locked", None, None).await, &format!("{who} list"));
    }
    let e = put_policy(&carol, "locked", &public_read("locked"))
        .await
        .unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()), "Carol replacing it");
    let e = delete_policy(&carol, "locked").await.unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()), "Carol deleting it");
    let e = get_policy(&carol, "locked").await.unwrap_err();
    assert_eq!(e, (403, "AccessDenied".into()), "Carol reading it");
    denied(get_policy(&anon, "locked").await, "anonymous reading it");

    // The owner reads it, replaces it with another deny-all, then deletes it.
    assert_eq!(get_policy(&owner, "locked").await.unwrap(), policy);
    put_policy(&owner, "locked", &policy).await.unwrap();
    delete_policy(&owner, "locked").await.unwrap();
    assert_eq!(get(&owner, "locked", "k").await.unwrap(), b"locked bytes");
    assert_eq!(get(&carol, "locked", "k").await.unwrap(), b"locked bytes");
    denied(get(&anon, "locked", "k").await, "anonymous, no policy");
    let (keys, _) = list(&owner, "locked", None, None).await.unwrap();
    assert_eq!(keys, ["k"], "the refused PUTs wrote nothing");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deny_all_policy_leaves_full_access_its_management_fs() {
    deny_all_is_recoverable("fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deny_all_policy_leaves_full_access_its_management_memory() {
    deny_all_is_recoverable("memory").await;
}

/// A stored policy that no longer parses (edited by hand, or written by a later version
/// with a condition this one refuses) denies every request to the bucket, to everyone,
/// except policy management by full-access users, who can put it right.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_stored_policy_denies_all_but_its_management() {
    let root = TempDir::new("policy-corrupt");
    let config = dynamic_config("fs", &root);
    let gw = Gateway::start(&config).await.unwrap();
    let owner = gw.client();
    owner
        .create_bucket()
        .bucket("damaged")
        .send()
        .await
        .unwrap();
    put(&owner, "damaged", "k", b"damaged bytes").await;
    put_policy(&owner, "damaged", &public_read("damaged"))
        .await
        .unwrap();
    gw.stop().await;

    let file = stored_policy_file(&root, "damaged");
    let corruptions: [(&str, &[u8]); 4] = [
        ("cut short", br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","#),
        ("not UTF-8", &[0x7b, 0xff, 0xfe, 0x00]),
        (
            "an operator this version refuses",
            br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::damaged/*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}]}"#,
        ),
        ("empty", b""),
    ];
    for (what, bytes) in corruptions {
        std::fs::write(&file, bytes).unwrap();
        // A fresh engine: no cached copy of the good policy.
        let gw = Gateway::start(&config).await.unwrap();
        let owner = gw.client();
        let carol = s3_client(&gw.endpoint, CAROL.0, CAROL.1);
        let anon = anonymous_client(&gw.endpoint);
        for (who, c) in [("owner", &owner), ("Carol", &carol), ("anonymous", &anon)] {
            denied(get(c, "damaged", "k").await, &format!("{what}: {who} GET"));
            denied(
                Err::<(), _>(try_put(c, "damaged", "w").await),
                &format!("{what}: {who} PUT"),
            );
            denied(
                list(c, "damaged", None, None).await,
                &format!("{what}: {who} list"),
            );
        }
        let e = get_policy(&carol, "damaged").await.unwrap_err();
        assert_eq!(e, (403, "AccessDenied".into()), "{what}: Carol reading it");
        let e = put_policy(&carol, "damaged", &public_read("damaged"))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            (403, "AccessDenied".into()),
            "{what}: Carol replacing it"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bytes,
            "{what}: the refused requests changed the file"
        );
        // The owner may read it (the deny-all it stands for) and put it right.
        let shown = get_policy(&owner, "damaged").await.unwrap();
        assert!(
            shown.contains("\"Deny\""),
            "{what}: GetBucketPolicy shows {shown}"
        );
        put_policy(&owner, "damaged", &public_read("damaged"))
            .await
            .unwrap();
        assert_eq!(
            get(&anon, "damaged", "k").await.unwrap(),
            b"damaged bytes",
            "{what}: after the owner replaced it"
        );
        assert!(!root.0.join("dynamic/damaged/w").exists(), "{what}");
        gw.stop().await;
    }
    // Deleting a damaged policy works too.
    std::fs::write(&file, b"{").unwrap();
    let gw = Gateway::start(&config).await.unwrap();
    delete_policy(&gw.client(), "damaged").await.unwrap();
    assert_eq!(
        get(&gw.client(), "damaged", "k").await.unwrap(),
        b"damaged bytes"
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Conditions, groups and users without policies, end to end
// ---------------------------------------------------------------------------------------

/// AWS's home-directory policy: list the top level and `home/`, list and use one's own
/// home, nothing else.
const HOME_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"ListRootAndHome","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::homes",
   "Condition":{"StringLike":{"s3:prefix":["","home/"]},"StringEquals":{"s3:delimiter":["/"]}}},
  {"Sid":"ListOwnHome","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::homes",
   "Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*"]}}},
  {"Sid":"OwnHome","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::homes/home/${aws:username}/*"}]}"#;

const ALICE: (&str, &str) = ("alice-key", "alice-secret");
const BOB: (&str, &str) = ("bob-key", "bob-secret");
/// A user whose name is a prefix of Alice's.
const ALI: (&str, &str) = ("ali-key", "ali-secret");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn home_directories_by_user_name() {
    let root = TempDir::new("policy-homes");
    let mut config = format!(
        "version = 1\n[backends.homes]\nkind = \"fs\"\nroot = {:?}\n[buckets.homes]\nmembers = [\"homes\"]\n[groups.homes]\npolicy = '''{HOME_POLICY}'''\n",
        root.0.display().to_string()
    );
    for (key, name) in [(ALICE, "alice"), (BOB, "bob"), (ALI, "ali")] {
        config.push_str(&user(key, name, "groups = [\"homes\"]\n"));
    }
    let gw = Gateway::start(&config).await.unwrap();
    let owner = gw.client();
    for key in [
        "home/alice/a.txt",
        "home/alice/sub/deep.txt",
        "home/bob/b.txt",
        "top.txt",
    ] {
        put(&owner, "homes", key, key.as_bytes()).await;
    }
    let alice = s3_client(&gw.endpoint, ALICE.0, ALICE.1);
    let bob = s3_client(&gw.endpoint, BOB.0, BOB.1);
    let ali = s3_client(&gw.endpoint, ALI.0, ALI.1);

    // Her own home: listed, read, written.
    let (keys, _) = list(&alice, "homes", Some("home/alice/"), None)
        .await
        .unwrap();
    assert_eq!(keys, ["home/alice/a.txt", "home/alice/sub/deep.txt"]);
    let (keys, dirs) = list(&alice, "homes", Some("home/alice/"), Some("/"))
        .await
        .unwrap();
    assert_eq!(
        (keys, dirs),
        (
            vec!["home/alice/a.txt".to_owned()],
            vec!["home/alice/sub/".to_owned()]
        )
    );
    assert_eq!(
        get(&alice, "homes", "home/alice/a.txt").await.unwrap(),
        b"home/alice/a.txt"
    );
    assert_eq!(try_put(&alice, "homes", "home/alice/new.txt").await.0, 200);
    // The top level and home/, one level at a time.
    let (keys, dirs) = list(&alice, "homes", Some(""), Some("/")).await.unwrap();
    assert_eq!(
        (keys, dirs),
        (vec!["top.txt".to_owned()], vec!["home/".to_owned()])
    );
    let (_, dirs) = list(&alice, "homes", Some("home/"), Some("/"))
        .await
        .unwrap();
    assert_eq!(dirs, ["home/alice/", "home/bob/"]);

    // Not Bob's, and not everything at once.
    denied(
        get(&alice, "homes", "home/bob/b.txt").await,
        "alice GET bob's",
    );
    denied(
        Err::<(), _>(try_put(&alice, "homes", "home/bob/planted.txt").await),
        "alice PUT into bob's",
    );
    denied(get(&alice, "homes", "top.txt").await, "alice GET top.txt");
    for (prefix, delimiter) in [
        (None, None),
        (Some(""), None),
        (None, Some("/")),
        (Some("home/bob/"), None),
        (Some("home/bob/"), Some("/")),
        (Some("home/"), None),
        (Some("home/alice"), None),
        (Some("home/*"), None),
    ] {
        denied(
            list(&alice, "homes", prefix, delimiter).await,
            &format!("alice list prefix {prefix:?} delimiter {delimiter:?}"),
        );
    }
    // A prefix is a prefix, not a path: one that the policy allows lists nothing else.
    let (keys, dirs) = list(&alice, "homes", Some("home/alice/../bob/"), None)
        .await
        .unwrap();
    assert!(keys.is_empty() && dirs.is_empty(), "{keys:?} {dirs:?}");
    // Two prefixes in one query: the one the decision saw must be the one listed.
    let (addr, path) = presign_query(
        &gw.endpoint,
        ALICE,
        "GET",
        "/homes?list-type=2&prefix=home%2Falice%2F&prefix=home%2Fbob%2F",
        Duration::from_secs(60),
    );
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!((400..500).contains(&status), "{status}: {body}");
    assert!(!body.contains("home/bob/b.txt"), "{body}");

    // Bob: his own, not Alice's.
    let (keys, _) = list(&bob, "homes", Some("home/bob/"), None).await.unwrap();
    assert_eq!(keys, ["home/bob/b.txt"]);
    denied(
        list(&bob, "homes", Some("home/alice/"), None).await,
        "bob lists alice's",
    );
    denied(
        get(&bob, "homes", "home/alice/a.txt").await,
        "bob GET alice's",
    );
    // "ali" is a prefix of "alice": the variable is a whole segment.
    denied(
        list(&ali, "homes", Some("home/alice/"), None).await,
        "ali lists alice's",
    );
    denied(
        get(&ali, "homes", "home/alice/a.txt").await,
        "ali GET alice's",
    );
    assert_eq!(try_put(&ali, "homes", "home/ali/mine.txt").await.0, 200);
    // Anonymous requests have no user name: nothing.
    let anon = anonymous_client(&gw.endpoint);
    denied(
        list(&anon, "homes", Some("home/"), Some("/")).await,
        "anonymous list",
    );

    let (keys, _) = list(&owner, "homes", None, None).await.unwrap();
    assert_eq!(
        keys,
        [
            "home/ali/mine.txt",
            "home/alice/a.txt",
            "home/alice/new.txt",
            "home/alice/sub/deep.txt",
            "home/bob/b.txt",
            "top.txt"
        ],
        "only the allowed writes landed"
    );
    gw.stop().await;
}

/// `aws:SourceIp`: the tests' requests come from 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn source_ip_conditions() {
    let gw = Gateway::start("version = 1\n[dynamic_buckets]\nkind = \"memory\"\n")
        .await
        .unwrap();
    let owner = gw.client();
    let anon = anonymous_client(&gw.endpoint);
    let allow_from = |bucket: &str, cidr: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*","Condition":{{"IpAddress":{{"aws:SourceIp":"{cidr}"}}}}}}]}}"#
        )
    };
    // Everyone may read, except from outside `cidr`.
    let deny_outside = |bucket: &str, cidr: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}},{{"Sid":"Outside","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"],"Condition":{{"NotIpAddress":{{"aws:SourceIp":["{cidr}"]}}}}}}]}}"#
        )
    };
    let cases = [
        (
            "from-local",
            allow_from("from-local", "127.0.0.1/32"),
            true,
            true,
        ),
        (
            "from-ten",
            allow_from("from-ten", "10.0.0.0/8"),
            false,
            true,
        ),
        ("from-v6", allow_from("from-v6", "::1/128"), false, true),
        (
            "outside-ten",
            deny_outside("outside-ten", "10.0.0.0/8"),
            false,
            false,
        ),
        (
            "outside-loop",
            deny_outside("outside-loop", "127.0.0.0/8"),
            true,
            true,
        ),
    ];
    for (bucket, policy, anonymous_reads, owner_reads) in cases {
        owner.create_bucket().bucket(bucket).send().await.unwrap();
        put(&owner, bucket, "k", b"bytes").await;
        put_policy(&owner, bucket, &policy).await.unwrap();
        let got = get(&anon, bucket, "k").await;
        if anonymous_reads {
            assert_eq!(got.unwrap(), b"bytes", "{bucket}: anonymous");
        } else {
            denied(got, &format!("{bucket}: anonymous"));
        }
        let got = get(&owner, bucket, "k").await;
        if owner_reads {
            assert!(got.is_ok(), "{bucket}: owner: {got:?}");
        } else {
            // An explicit Deny binds the full-access user too.
            denied(got, &format!("{bucket}: owner"));
            denied(
                Err::<(), _>(try_put(&owner, bucket, "w").await),
                &format!("{bucket}: owner PUT"),
            );
        }
    }
    gw.stop().await;
}

/// A test CA and a certificate for 127.0.0.1 it signs, as PEM files.
struct TestCa {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
    _dir: TempDir,
}

impl TestCa {
    fn new() -> Self {
        let dir = TempDir::new("policy-tls");
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Switchyard policy test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert_pem = leaf.signed_by(&key, &ca).unwrap().pem();
        let (cert, key_file) = (dir.0.join("server.crt"), dir.0.join("server.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Self {
            ca_pem: ca.pem(),
            cert,
            key: key_file,
            _dir: dir,
        }
    }
}

/// An SDK client over HTTPS that trusts only `ca_pem`: signed by the tests' user, or
/// anonymous.
fn https_client(endpoint: &str, ca_pem: &str, signed: bool) -> Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(
                    tls::TrustStore::empty().with_pem_certificate(ca_pem.as_bytes().to_vec()),
                )
                .build()
                .unwrap(),
        )
        .build_https();
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .http_client(http);
    config = if signed {
        config.credentials_provider(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "policy-tests",
        ))
    } else {
        config.allow_no_auth()
    };
    Client::from_conf(config.build())
}

/// `aws:SecureTransport`: a bucket policy that denies requests made without TLS, on an
/// engine serving plain HTTP and HTTPS side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secure_transport_condition() {
    let pki = TestCa::new();
    let toml_path = |p: &Path| format!("{:?}", p.display().to_string());
    let config = format!(
        "version = 1\n[server.tls]\ncert = {}\nkey = {}\nlisten = \"127.0.0.1:0\"\n[dynamic_buckets]\nkind = \"memory\"\n",
        toml_path(&pki.cert),
        toml_path(&pki.key)
    );
    let gw = Gateway::start(&config).await.unwrap();
    let tls_addr = gw.server.as_ref().unwrap().tls_addr().unwrap();
    let https = format!("https://{tls_addr}");
    let (plain, plain_anon) = (gw.client(), anonymous_client(&gw.endpoint));
    let (secure, secure_anon) = (
        https_client(&https, &pki.ca_pem, true),
        https_client(&https, &pki.ca_pem, false),
    );
    plain
        .create_bucket()
        .bucket("tls-only")
        .send()
        .await
        .unwrap();
    put(&plain, "tls-only", "k", b"over TLS only").await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
      {"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::tls-only/*"},
      {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::tls-only","arn:aws:s3:::tls-only/*"],
       "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    put_policy(&plain, "tls-only", policy).await.unwrap();

    for (who, c) in [("owner", &plain), ("anonymous", &plain_anon)] {
        denied(get(c, "tls-only", "k").await, &format!("{who} over HTTP"));
        denied(
            Err::<(), _>(try_put(c, "tls-only", "plain-write").await),
            &format!("{who} PUT over HTTP"),
        );
    }
    denied(
        list(&plain, "tls-only", None, None).await,
        "owner list over HTTP",
    );
    assert_eq!(
        get(&secure, "tls-only", "k").await.unwrap(),
        b"over TLS only"
    );
    assert_eq!(
        get(&secure_anon, "tls-only", "k").await.unwrap(),
        b"over TLS only"
    );
    assert_eq!(try_put(&secure, "tls-only", "tls-write").await.0, 200);
    denied(
        Err::<(), _>(try_put(&secure_anon, "tls-only", "anon-write").await),
        "anonymous PUT over HTTPS (only reads are public)",
    );
    let (keys, _) = list(&secure, "tls-only", None, None).await.unwrap();
    assert_eq!(keys, ["k", "tls-write"]);
    gw.stop().await;
}

/// A group's policy applies to its members: `read-only` reads and does not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_policies_apply_to_members() {
    let root = TempDir::new("policy-groups");
    let dave = ("dave-key", "dave-secret");
    let erin = ("erin-key", "erin-secret");
    let mut config = format!(
        "version = 1\n[backends.d]\nkind = \"fs\"\nroot = {:?}\n[buckets.data]\nmembers = [\"d\"]\n\
         [groups.readers]\npolicy = \"read-only\"\n\
         [groups.droppers]\npolicy = '''{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":\"s3:PutObject\",\"Resource\":\"arn:aws:s3:::data/drop/*\"}}]}}'''\n",
        root.0.display().to_string()
    );
    config.push_str(&user(dave, "dave", "groups = [\"readers\"]\n"));
    config.push_str(&user(
        erin,
        "erin",
        "groups = [\"readers\", \"droppers\"]\n",
    ));
    let gw = Gateway::start(&config).await.unwrap();
    let owner = gw.client();
    put(&owner, "data", "k", b"readable").await;
    let dave = s3_client(&gw.endpoint, dave.0, dave.1);
    let erin = s3_client(&gw.endpoint, erin.0, erin.1);

    for (who, c) in [("dave", &dave), ("erin", &erin)] {
        assert_eq!(get(c, "data", "k").await.unwrap(), b"readable", "{who}");
        assert!(list(c, "data", None, None).await.is_ok(), "{who}");
        denied(
            Err::<(), _>(try_put(c, "data", "k").await),
            &format!("{who} overwrites"),
        );
        let e = c
            .delete_object()
            .bucket("data")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (403, "AccessDenied".into()), "{who} deletes");
    }
    denied(
        Err::<(), _>(try_put(&dave, "data", "drop/x").await),
        "dave drops",
    );
    assert_eq!(try_put(&erin, "data", "drop/x").await.0, 200, "erin drops");
    assert_eq!(get(&owner, "data", "k").await.unwrap(), b"readable");
    let (keys, _) = list(&owner, "data", None, None).await.unwrap();
    assert_eq!(keys, ["drop/x", "k"]);
    gw.stop().await;
}

/// Users without policies: with two of them, neither may do anything (only bucket
/// policies could grant them something); alone, the one user may do everything, as before
/// access control existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_without_policies() {
    let root = TempDir::new("policy-less");
    let bucket = |dir: &str| {
        format!(
            "[backends.d]\nkind = \"fs\"\nroot = {:?}\n[buckets.data]\nmembers = [\"d\"]\n",
            root.0.join(dir).display().to_string()
        )
    };
    // Two users: seeded on disk, since no one may write through the gateway.
    std::fs::create_dir_all(root.0.join("two")).unwrap();
    std::fs::write(root.0.join("two/k"), b"seeded").unwrap();
    let config = format!(
        "version = 1\n{}{}{}",
        bucket("two"),
        user(ALICE, "alice", ""),
        user(BOB, "bob", "")
    );
    let gw = start_exact(&config).await;
    for (who, key) in [("alice", ALICE), ("bob", BOB)] {
        let c = s3_client(&gw.endpoint, key.0, key.1);
        denied(get(&c, "data", "k").await, &format!("{who} GET"));
        denied(
            Err::<(), _>(try_put(&c, "data", "w").await),
            &format!("{who} PUT"),
        );
        denied(list(&c, "data", None, None).await, &format!("{who} list"));
        let e = c.list_buckets().send().await.unwrap_err();
        assert_eq!(
            err_of(&e),
            (403, "AccessDenied".into()),
            "{who} ListBuckets"
        );
    }
    denied(
        get(&anonymous_client(&gw.endpoint), "data", "k").await,
        "anonymous",
    );
    assert!(!root.0.join("two/w").exists());
    gw.stop().await;

    // One user: everything.
    let config = format!(
        "version = 1\n{}[dynamic_buckets]\nkind = \"memory\"\n{}",
        bucket("one"),
        user(ALICE, "alice", "")
    );
    let gw = start_exact(&config).await;
    let alice = s3_client(&gw.endpoint, ALICE.0, ALICE.1);
    put(&alice, "data", "k", b"mine").await;
    assert_eq!(get(&alice, "data", "k").await.unwrap(), b"mine");
    let (keys, _) = list(&alice, "data", None, None).await.unwrap();
    assert_eq!(keys, ["k"]);
    alice
        .delete_object()
        .bucket("data")
        .key("k")
        .send()
        .await
        .unwrap();
    let buckets = alice.list_buckets().send().await.unwrap();
    assert_eq!(buckets.buckets().len(), 1);
    // Dynamic buckets and their policies too, including taking back a deny-all.
    alice.create_bucket().bucket("made").send().await.unwrap();
    put_policy(&alice, "made", &deny_all("made")).await.unwrap();
    denied(get(&alice, "made", "k").await, "alice under deny-all");
    delete_policy(&alice, "made").await.unwrap();
    put(&alice, "made", "k", b"back").await;
    denied(
        get(&anonymous_client(&gw.endpoint), "data", "k").await,
        "anonymous",
    );
    gw.stop().await;
}

/// Dana may use the bucket's objects and tags, but not an object tagged `secret=yes`
/// (`s3:ExistingObjectTag`), may not tag one so (`s3:RequestObjectTag`), and may tag only
/// with `team=blue`.
const TAG_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Use","Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:GetObjectTagging","s3:DeleteObjectTagging"],"Resource":"*"},
  {"Sid":"TagBlue","Effect":"Allow","Action":"s3:PutObjectTagging","Resource":"*",
   "Condition":{"StringEquals":{"s3:RequestObjectTag/team":"blue"}}},
  {"Sid":"NotSecrets","Effect":"Deny","Action":["s3:GetObject","s3:GetObjectTagging","s3:PutObjectTagging","s3:DeleteObjectTagging"],"Resource":"*",
   "Condition":{"StringEquals":{"s3:ExistingObjectTag/secret":"yes"}}},
  {"Sid":"NoNewSecrets","Effect":"Deny","Action":["s3:PutObject","s3:PutObjectTagging"],"Resource":"*",
   "Condition":{"StringEquals":{"s3:RequestObjectTag/secret":"yes"}}}]}"#;

const DANA: (&str, &str) = ("dana-key", "dana-secret");

async fn tags(c: &Client, key: &str) -> Result<Vec<(String, String)>, (u16, String)> {
    let out = c
        .get_object_tagging()
        .bucket("tagged")
        .key(key)
        .send()
        .await
        .map_err(|e| err_of(&e))?;
    Ok(out.tag_set.into_iter().map(|t| (t.key, t.value)).collect())
}

fn tagging(pairs: &[(&str, &str)]) -> aws_sdk_s3::types::Tagging {
    let set = pairs
        .iter()
        .map(|(k, v)| {
            aws_sdk_s3::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap()
        })
        .collect();
    aws_sdk_s3::types::Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .unwrap()
}

/// A Deny on an object's tags cannot be gone around: not by reading it (GET, HEAD, a copy
/// of it, its tags), nor by changing or removing its tags, nor by tagging an object so
/// to begin with; and an Allow that requires the tags a request sets applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deny_by_object_tag() {
    let root = TempDir::new("policy-tags");
    let config = format!(
        "version = 1\n[backends.tagged]\nkind = \"fs\"\nroot = {:?}\n[buckets.tagged]\nmembers = [\"tagged\"]\n{}",
        root.0.display().to_string(),
        user(DANA, "dana", &format!("policy = '''{TAG_POLICY}'''\n"))
    );
    let gw = Gateway::start(&config).await.unwrap();
    let owner = gw.client();
    for (key, tagging) in [("secret", "secret=yes"), ("open", "secret=no")] {
        owner
            .put_object()
            .bucket("tagged")
            .key(key)
            .tagging(tagging)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    }
    let dana = s3_client(&gw.endpoint, DANA.0, DANA.1);

    assert_eq!(get(&dana, "tagged", "open").await.unwrap(), b"data");
    assert_eq!(
        tags(&dana, "open").await.unwrap(),
        [("secret".to_owned(), "no".to_owned())]
    );
    denied(get(&dana, "tagged", "secret").await, "GET of a secret");
    let head = dana
        .head_object()
        .bucket("tagged")
        .key("secret")
        .send()
        .await;
    assert_eq!(
        head.map_err(|e| err_of(&e).0).unwrap_err(),
        403,
        "HEAD of a secret"
    );
    denied(tags(&dana, "secret").await, "GetObjectTagging of a secret");
    let copy = dana
        .copy_object()
        .bucket("tagged")
        .key("leak")
        .copy_source("tagged/secret")
        .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
        .send()
        .await;
    denied(
        copy.map(|_| ()).map_err(|e| err_of(&e)),
        "a copy of a secret",
    );
    let untag = dana
        .put_object_tagging()
        .bucket("tagged")
        .key("secret")
        .tagging(tagging(&[("team", "blue")]))
        .send()
        .await;
    denied(
        untag.map(|_| ()).map_err(|e| err_of(&e)),
        "retagging a secret",
    );
    let delete = dana
        .delete_object_tagging()
        .bucket("tagged")
        .key("secret")
        .send()
        .await;
    denied(
        delete.map(|_| ()).map_err(|e| err_of(&e)),
        "untagging a secret",
    );
    assert_eq!(
        tags(&owner, "secret").await.unwrap(),
        [("secret".to_owned(), "yes".to_owned())]
    );

    // No new secrets, by PutObject or by tagging; tags only with team=blue.
    let put = dana
        .put_object()
        .bucket("tagged")
        .key("new-secret")
        .tagging("secret=yes")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    denied(put.map(|_| ()).map_err(|e| err_of(&e)), "PUT of a secret");
    assert_eq!(
        get(&owner, "tagged", "new-secret").await.unwrap_err().0,
        404
    );
    for set in [
        &[("secret", "yes"), ("team", "blue")][..],
        &[("team", "red")],
    ] {
        let r = dana
            .put_object_tagging()
            .bucket("tagged")
            .key("open")
            .tagging(tagging(set))
            .send()
            .await;
        denied(
            r.map(|_| ()).map_err(|e| err_of(&e)),
            &format!("tagging {set:?}"),
        );
    }
    assert_eq!(
        tags(&owner, "open").await.unwrap(),
        [("secret".to_owned(), "no".to_owned())]
    );
    dana.put_object_tagging()
        .bucket("tagged")
        .key("open")
        .tagging(tagging(&[("team", "blue")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(&owner, "open").await.unwrap(),
        [("team".to_owned(), "blue".to_owned())]
    );
    gw.stop().await;
}

/// A Deny on an object's tags covers its older versions too: a read naming a version is
/// `s3:GetObjectVersion`, decided with the tags of the version it names (not those of the
/// current one). Tags of a versioned object cannot be changed in place yet (they would
/// differ from its version's): PutObjectTagging there answers 501 and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deny_by_object_tag_covers_older_versions() {
    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["s3:GetObject*","s3:PutObject*"],"Resource":"*"},
  {"Effect":"Deny","Action":"s3:GetObject*","Resource":"*",
   "Condition":{"StringEquals":{"s3:ExistingObjectTag/secret":"yes"}}}]}"#;
    let root = TempDir::new("policy-tag-versions");
    let config = format!(
        "version = 1\n[backends.tagged]\nkind = \"fs\"\nroot = {:?}\n[buckets.tagged]\nmembers = [\"tagged\"]\nversioning = \"enabled\"\n{}",
        root.0.display().to_string(),
        user(DANA, "dana", &format!("policy = '''{POLICY}'''\n"))
    );
    let gw = Gateway::start(&config).await.unwrap();
    let owner = gw.client();
    let put = |tagging: Option<&'static str>, body: &'static [u8]| {
        let owner = owner.clone();
        async move {
            owner
                .put_object()
                .bucket("tagged")
                .key("k")
                .set_tagging(tagging.map(str::to_owned))
                .body(ByteStream::from_static(body))
                .send()
                .await
                .unwrap()
                .version_id
                .unwrap()
        }
    };
    let secret = put(Some("secret=yes"), b"secret").await;
    let open = put(None, b"open").await;
    let dana = s3_client(&gw.endpoint, DANA.0, DANA.1);
    let get_version = |v: String| {
        let dana = dana.clone();
        async move {
            match dana
                .get_object()
                .bucket("tagged")
                .key("k")
                .version_id(v)
                .send()
                .await
            {
                Ok(o) => Ok(o.body.collect().await.unwrap().into_bytes().to_vec()),
                Err(e) => Err(err_of(&e)),
            }
        }
    };
    assert_eq!(get(&dana, "tagged", "k").await.unwrap(), b"open");
    assert_eq!(get_version(open.clone()).await.unwrap(), b"open");
    denied(
        get_version(secret.clone()).await,
        "GET of a secret older version",
    );
    let head = dana
        .head_object()
        .bucket("tagged")
        .key("k")
        .version_id(&secret)
        .send()
        .await;
    assert_eq!(head.map_err(|e| err_of(&e).0).unwrap_err(), 403);
    let tags_of = |c: Client, v: String| async move {
        c.get_object_tagging()
            .bucket("tagged")
            .key("k")
            .version_id(v)
            .send()
            .await
            .map(|o| o.tag_set.len())
            .map_err(|e| err_of(&e))
    };
    assert_eq!(tags_of(owner.clone(), secret.clone()).await, Ok(1));
    assert_eq!(tags_of(owner.clone(), open.clone()).await, Ok(0));
    assert_eq!(tags_of(dana.clone(), open.clone()).await, Ok(0));
    denied(
        tags_of(dana.clone(), secret.clone()).await,
        "GetObjectTagging of a secret older version",
    );
    // The current version made secret by a new PUT: denied as the current object too.
    let again = put(Some("secret=yes"), b"secret again").await;
    denied(
        get(&dana, "tagged", "k").await,
        "GET of the secret current version",
    );
    denied(
        get_version(again.clone()).await,
        "GET of the secret current version by id",
    );

    // Tags belong to a version: retagging the current one makes it readable, and the
    // older secret version stays denied.
    owner
        .put_object_tagging()
        .bucket("tagged")
        .key("k")
        .tagging(tagging(&[("secret", "no")]))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&dana, "tagged", "k").await.unwrap(), b"secret again");
    assert_eq!(get_version(again).await.unwrap(), b"secret again");
    denied(
        get_version(secret).await,
        "GET of the older secret version after the current one was retagged",
    );
}
