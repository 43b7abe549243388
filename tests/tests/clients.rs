//! Real clients other than the Rust SDK: boto3 and the aws CLI at their current versions
//! with default settings, and each backend's own client for the eject checks (objects
//! written through the gateway are native objects, and native objects are served by it).

use std::path::Path;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use switchyard_tests::harness::{
    ACCESS_KEY, Fixture, Gateway, Kind, SECRET_KEY, TempDir, repo_root, versioning_config,
};

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); run scripts/install-test-tools.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
}

fn client_env(cmd: &mut Command, endpoint: &str, bucket: &str) {
    cmd.env("S3_ENDPOINT", endpoint)
        .env("S3_BUCKET", bucket)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_and_aws_cli_through_the_gateway() {
    for kind in [Kind::Fs, Kind::S3] {
        let fx = Fixture::new(kind).await.unwrap();
        // A second bucket with ACLs enabled, for the boto3 checks that need one.
        let config = format!(
            "{}[backends.aclmem]\nkind = \"memory\"\n[buckets.pyacls]\nmembers = [\"aclmem\"]\nobject_ownership = \"ObjectWriter\"\n",
            fx.single_bucket_config("pyclients")
        );
        let gw = Gateway::start(&config).await.unwrap();
        let root = repo_root();
        let mut boto = Command::new("python3");
        boto.arg(root.join("tests/python/boto3_suite.py"));
        client_env(&mut boto, &gw.endpoint, "pyclients");
        boto.env("S3_ACL_BUCKET", "pyacls");
        run(&mut boto, &format!("boto3_suite.py over {kind:?}"));

        let mut cli = Command::new("bash");
        cli.arg(root.join("tests/python/awscli_suite.sh"));
        client_env(&mut cli, &gw.endpoint, "pyclients");
        run(&mut cli, &format!("awscli_suite.sh over {kind:?}"));
        gw.stop().await;
    }
}

struct Native<'a> {
    kind: &'static str,
    endpoint: &'a str,
    bucket: &'a str,
}

impl Native<'_> {
    fn eject(&self, action: &str, key: &str, body: &Path, extra: &[&str]) {
        let mut cmd = Command::new("python3");
        cmd.arg(repo_root().join("tests/python/eject.py"))
            .args([
                self.kind,
                action,
                "--endpoint",
                self.endpoint,
                "--bucket",
                self.bucket,
                "--key",
                key,
                "--body-file",
            ])
            .arg(body)
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1");
        run(&mut cmd, &format!("eject.py {} {action} {key}", self.kind));
    }
}

const ATTR_ARGS: [&str; 10] = [
    "--content-type",
    "application/x-eject",
    "--cache-control",
    "max-age=30",
    "--content-disposition",
    "attachment",
    "--content-language",
    "de",
    "--meta",
    "owner=switchyard",
];

/// eject.py's name for `fx`'s kind, and the endpoint its own client talks to.
fn native_endpoint(fx: &Fixture) -> (&'static str, String) {
    match fx.kind {
        Kind::S3 => ("s3", fx.endpoint.clone().unwrap()),
        Kind::Azure => ("azure", fx.endpoint.clone().unwrap()),
        // fake-gcs-server itself: the native client needs no translating layer.
        Kind::Gcs => ("gcs", fx.raw_endpoint.clone().unwrap()),
        _ => unreachable!("fs is checked by fs_objects_are_plain_files"),
    }
}

async fn eject_round_trip(kind: Kind) {
    let fx = Fixture::new(kind).await.unwrap();
    let gw = Gateway::start(&fx.single_bucket_config("eject"))
        .await
        .unwrap();
    let c = gw.client();
    let dir = TempDir::new("eject");
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = dir.0.join("body");
    std::fs::write(&file, &body).unwrap();

    // Written through the gateway, read natively.
    let put = c
        .put_object()
        .bucket("eject")
        .key("via-gateway/obj.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-eject")
        .cache_control("max-age=30")
        .content_disposition("attachment")
        .content_language("de")
        .metadata("owner", "switchyard")
        .send()
        .await
        .unwrap();
    let (kind_name, endpoint) = native_endpoint(&fx);
    let native = Native {
        kind: kind_name,
        endpoint: &endpoint,
        bucket: fx.bucket.as_deref().unwrap(),
    };
    // The checksum the SDK sent (CRC32, in the trailer, by default) is kept beside the
    // client's metadata too.
    let crc = put.checksum_crc32().expect("the SDK's default checksum");
    let checksum_name = match kind {
        Kind::Azure => "switchyard_2dchecksum",
        _ => "switchyard-checksum",
    };
    let kept_checksum = format!("{checksum_name}=CRC32:FULL_OBJECT:{crc}");
    let mut read_args = ATTR_ARGS.to_vec();
    read_args.extend(["--meta", kept_checksum.as_str()]);
    read_args.push("--exact-meta");
    read_args.push("--tags");
    native.eject("read", "via-gateway/obj.bin", &file, &read_args);

    // A multipart upload is a native object too.
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let big_file = dir.0.join("big");
    std::fs::write(&big_file, &big).unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("eject")
        .key("via-gateway/mpu.bin")
        .content_type("application/x-eject")
        .metadata("owner", "switchyard")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let p1 = c
        .upload_part()
        .bucket("eject")
        .key("via-gateway/mpu.bin")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(big[..5 * 1024 * 1024].to_vec()))
        .send()
        .await
        .unwrap();
    let p2 = c
        .upload_part()
        .bucket("eject")
        .key("via-gateway/mpu.bin")
        .upload_id(id)
        .part_number(2)
        .body(ByteStream::from(big[5 * 1024 * 1024..].to_vec()))
        .send()
        .await
        .unwrap();
    let done = c
        .complete_multipart_upload()
        .bucket("eject")
        .key("via-gateway/mpu.bin")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p1.e_tag().unwrap())
                        .build(),
                )
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(2)
                        .e_tag(p2.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Azure and GCS keep the upload's S3 ETag (their own is not one) beside the
    // client's metadata, where their tools see it.
    let etag = done.e_tag().unwrap().trim_matches('"').to_owned();
    let kept = match kind {
        Kind::Azure => Some(format!("switchyard_2detag={etag}")),
        Kind::Gcs => Some(format!("switchyard-etag={etag}")),
        _ => None,
    };
    let mut mpu_args = vec![
        "--content-type",
        "application/x-eject",
        "--meta",
        "owner=switchyard",
    ];
    if let Some(kept) = &kept {
        mpu_args.extend(["--meta", kept.as_str()]);
    }
    mpu_args.push("--exact-meta");
    native.eject("read", "via-gateway/mpu.bin", &big_file, &mpu_args);

    // Written natively, served by the gateway at once.
    native.eject("write", "native/obj.bin", &file, &ATTR_ARGS);
    let got = c
        .get_object()
        .bucket("eject")
        .key("native/obj.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/x-eject"));
    assert_eq!(got.cache_control(), Some("max-age=30"));
    assert_eq!(got.content_disposition(), Some("attachment"));
    assert_eq!(got.content_language(), Some("de"));
    assert_eq!(
        got.metadata().unwrap().get("owner").map(String::as_str),
        Some("switchyard")
    );
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        body
    );
    let listed = c
        .list_objects_v2()
        .bucket("eject")
        .prefix("native/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);

    // Tags set through the gateway are the backend's own, seen by its own client: S3's
    // object tagging, Azure's blob index tags, GCS's metadata entry.
    c.put_object()
        .bucket("eject")
        .key("tagged/obj.bin")
        .body(ByteStream::from(body.clone()))
        .tagging("team=blue&note=two%20words")
        .send()
        .await
        .unwrap();
    native.eject(
        "read",
        "tagged/obj.bin",
        &file,
        &["--tags", "team=blue", "note=two words"],
    );
    let before = c
        .head_object()
        .bucket("eject")
        .key("tagged/obj.bin")
        .send()
        .await
        .unwrap();
    c.put_object_tagging()
        .bucket("eject")
        .key("tagged/obj.bin")
        .tagging(tag_set(&[("team", "green"), ("k", "v")]))
        .send()
        .await
        .unwrap();
    native.eject(
        "read",
        "tagged/obj.bin",
        &file,
        &["--tags", "team=green", "k=v"],
    );
    let after = c
        .head_object()
        .bucket("eject")
        .key("tagged/obj.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(after.e_tag, before.e_tag, "a tag change rewrote the object");
    c.delete_object_tagging()
        .bucket("eject")
        .key("tagged/obj.bin")
        .send()
        .await
        .unwrap();
    native.eject("read", "tagged/obj.bin", &file, &["--tags"]);

    // Tagged natively, the tags are served by the gateway at once.
    native.eject(
        "write",
        "tagged/native.bin",
        &file,
        &["--tags", "team=red", "note=b c"],
    );
    let got = c
        .get_object_tagging()
        .bucket("eject")
        .key("tagged/native.bin")
        .send()
        .await
        .unwrap();
    let mut tags: Vec<(String, String)> =
        got.tag_set.into_iter().map(|t| (t.key, t.value)).collect();
    tags.sort();
    assert_eq!(
        tags,
        [("note", "b c"), ("team", "red")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let got = c
        .get_object()
        .bucket("eject")
        .key("tagged/native.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count, Some(2));
    gw.stop().await;
}

fn tag_set(pairs: &[(&str, &str)]) -> aws_sdk_s3::types::Tagging {
    aws_sdk_s3::types::Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| {
                    aws_sdk_s3::types::Tag::builder()
                        .key(*k)
                        .value(*v)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_s3() {
    eject_round_trip(Kind::S3).await;
}

/// Versions written through the gateway on an S3 member are S3's own: the aws CLI's
/// `list-object-versions` straight on the backend bucket lists every one of them, delete
/// marker included, under the ids the gateway answered (less the member's name), and
/// `get-object --version-id` there reads each version's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_s3_versions() {
    let fx = Fixture::new(Kind::S3).await.unwrap();
    let (endpoint, bucket) = (fx.endpoint.clone().unwrap(), fx.bucket.clone().unwrap());
    let gw = Gateway::start(&fx.single_bucket_config("ejectv"))
        .await
        .unwrap();
    let c = gw.client();
    c.put_bucket_versioning()
        .bucket("ejectv")
        .versioning_configuration(versioning_config(
            aws_sdk_s3::types::BucketVersioningStatus::Enabled,
        ))
        .send()
        .await
        .unwrap();
    // (id the gateway answered, body; none for the delete marker), oldest first.
    let mut made: Vec<(String, Option<&str>)> = Vec::new();
    for body in ["first", "second"] {
        let out = c
            .put_object()
            .bucket("ejectv")
            .key("v/k")
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
        made.push((out.version_id().unwrap().to_owned(), Some(body)));
    }
    let del = c
        .delete_object()
        .bucket("ejectv")
        .key("v/k")
        .send()
        .await
        .unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    made.push((del.version_id().unwrap().to_owned(), None));
    gw.stop().await;

    let aws = |args: &[&str]| {
        let out = Command::new("aws")
            .args(args)
            .args([
                "--endpoint-url",
                &endpoint,
                "--bucket",
                &bucket,
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_CONFIG_FILE")
            .output()
            .unwrap_or_else(|e| panic!("aws {args:?}: cannot run ({e})"));
        assert!(
            out.status.success(),
            "aws {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let listed: serde_json::Value =
        serde_json::from_slice(&aws(&["s3api", "list-object-versions", "--prefix", "v/"])).unwrap();
    let ids = |field: &str| -> Vec<(String, String)> {
        listed[field]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r["Key"].as_str().unwrap().to_owned(),
                            r["VersionId"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let native = |id: &str| id.strip_prefix("main.").unwrap_or(id).to_owned();
    let mut versions = ids("Versions");
    versions.sort();
    let mut want: Vec<(String, String)> = made
        .iter()
        .filter(|(_, body)| body.is_some())
        .map(|(id, _)| ("v/k".to_owned(), native(id)))
        .collect();
    want.sort();
    assert_eq!(versions, want, "versions S3 lists: {listed}");
    assert_eq!(
        ids("DeleteMarkers"),
        [("v/k".to_owned(), native(&made[2].0))],
        "delete markers S3 lists: {listed}"
    );
    assert!(
        made.iter().all(|(id, _)| id.starts_with("main.")),
        "{made:?}"
    );
    let dir = TempDir::new("eject-versions");
    for (id, body) in made.iter().filter(|(_, b)| b.is_some()) {
        let file = dir.0.join("out");
        let file_arg = file.display().to_string();
        let v = native(id);
        aws(&[
            "s3api",
            "get-object",
            "--key",
            "v/k",
            "--version-id",
            &v,
            &file_arg,
        ]);
        assert_eq!(std::fs::read(&file).unwrap(), body.unwrap().as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_azure() {
    eject_round_trip(Kind::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_gcs() {
    eject_round_trip(Kind::Gcs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_objects_are_plain_files() {
    let fx = Fixture::new(Kind::Fs).await.unwrap();
    let root = fx.dir.clone().unwrap();
    let gw = Gateway::start(&fx.single_bucket_config("eject"))
        .await
        .unwrap();
    let c = gw.client();
    c.put_object()
        .bucket("eject")
        .key("a/b.txt")
        .body(ByteStream::from_static(b"plain bytes"))
        .content_type("text/plain")
        .metadata("owner", "switchyard")
        .send()
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.join("a/b.txt")).unwrap(), b"plain bytes");
    // The attributes travel with the file, in its extended attribute (`getfattr -n
    // user.switchyard a/b.txt` shows them).
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::getxattr(root.join("a/b.txt"), "user.switchyard", &mut buf[..]).unwrap();
    let stamp: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(stamp["attrs"]["content_type"], "text/plain");
    assert_eq!(stamp["attrs"]["metadata"]["owner"], "switchyard");
    assert_eq!(stamp["etag"], "3363ec3cad65d97d39616cf86dff30e4");

    std::fs::create_dir_all(root.join("dropped")).unwrap();
    std::fs::write(root.join("dropped/in.bin"), b"from another tool").unwrap();
    let got = c
        .get_object()
        .bucket("eject")
        .key("dropped/in.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"from another tool"
    );
    gw.stop().await;
}

/// Versions the gateway keeps (Azure, GCS members) are plain objects of the backend,
/// read by its own client with the gateway gone: the key holds the current version with
/// its tags, and each version, tags included, is the object
/// `.switchyard/versions/<key>~v/<sort>-v` named by its id (`<member>.<sort>`); a delete
/// marker is an empty `-d` object, and then the key is gone.
async fn eject_gateway_versions(kind: Kind) {
    let fx = Fixture::new(kind).await.unwrap();
    let config = fx.single_bucket_config("ejectv").replace(
        "members = [\"main\"]\n",
        "members = [\"main\"]\nversioning = \"enabled\"\n",
    );
    let gw = Gateway::start(&config).await.unwrap();
    let c = gw.client();
    // (id, body, tags), oldest first.
    let mut made: Vec<(String, &str, &str)> = Vec::new();
    for (body, tags) in [("first", "a=1"), ("second", "b=2&c=3")] {
        let out = c
            .put_object()
            .bucket("ejectv")
            .key("v/k")
            .tagging(tags)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
        made.push((out.version_id().unwrap().to_owned(), body, tags));
    }
    let (kind_name, endpoint) = native_endpoint(&fx);
    let native = Native {
        kind: kind_name,
        endpoint: &endpoint,
        bucket: fx.bucket.as_deref().unwrap(),
    };
    let dir = TempDir::new("eject-gateway-versions");
    let file_of = |name: &str, body: &str| {
        let f = dir.0.join(name);
        std::fs::write(&f, body).unwrap();
        f
    };
    let tag_args = |tags: &'static str| -> Vec<&'static str> {
        std::iter::once("--tags").chain(tags.split('&')).collect()
    };
    let version_key = |id: &str, suffix: &str| {
        let sort = id.strip_prefix("main.").unwrap_or_else(|| panic!("{id}"));
        format!(".switchyard/versions/v/k~v/{sort}-{suffix}")
    };
    // Before the delete: the key is the newest version, with its tags.
    let (_, body, tags) = made[1];
    native.eject("read", "v/k", &file_of("current", body), &tag_args(tags));
    let del = c
        .delete_object()
        .bucket("ejectv")
        .key("v/k")
        .send()
        .await
        .unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().unwrap().to_owned();
    gw.stop().await;

    for (id, body, tags) in &made {
        let key = version_key(id, "v");
        native.eject("read", &key, &file_of("version", body), &tag_args(tags));
    }
    native.eject(
        "read",
        &version_key(&marker, "d"),
        &file_of("marker", ""),
        &[],
    );
    let mut gone = Command::new("python3");
    gone.arg(repo_root().join("tests/python/eject.py"))
        .args([kind_name, "read", "--endpoint", &endpoint])
        .args(["--bucket", fx.bucket.as_deref().unwrap(), "--key", "v/k"])
        .arg("--body-file")
        .arg(file_of("gone", body));
    let out = gone.output().unwrap();
    assert!(
        !out.status.success(),
        "the delete marker removed the key: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_azure_versions() {
    eject_gateway_versions(Kind::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_gcs_versions() {
    eject_gateway_versions(Kind::Gcs).await;
}
