//! `switchyard access check` and the access part of `switchyard check-config`, run as the
//! built binary on one configuration with a user policy, a group, a user with no policy,
//! a bucket policy, an anonymous bucket, and a bucket made by CreateBucket whose policy was
//! set through the S3 API of a running engine. Each decision is checked for its exit
//! status (0 allowed, 1 denied, 2 no decision) and for the statement it names.

use std::time::Duration;

use switchyard_tests::harness::{CliRun, Gateway, TempDir, run_switchyard};

const ALICE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"ReadHome","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/home/${aws:username}/*"},
  {"Sid":"ListHome","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::media","Condition":{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}}]}"#;

const MEDIA: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::media","arn:aws:s3:::media/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}},
  {"Sid":"CarolFromOffice","Effect":"Allow","Principal":{"AWS":"carol"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::media/shared/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;

const UPLOADS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::uploads/*"}]}"#;

struct Setup {
    file: String,
    _dirs: Vec<TempDir>,
}

/// Writes the configuration, and makes bucket `uploads` with its policy through a running
/// engine on the same configuration.
async fn setup() -> Setup {
    let dirs = [
        TempDir::new("access-cfg"),
        TempDir::new("access-media"),
        TempDir::new("access-public"),
        TempDir::new("access-dyn"),
    ];
    let path = |i: usize| dirs[i].0.display().to_string();
    let config = format!(
        "version = 1
[[users]]
access_key = \"AKALICE\"
secret_key = \"alice-secret\"
name = \"alice\"
policy = '''{ALICE}'''
[[users]]
access_key = \"AKBOB\"
secret_key = \"bob-secret\"
name = \"bob\"
groups = [\"readers\"]
[[users]]
access_key = \"AKCAROL\"
secret_key = \"carol-secret\"
name = \"carol\"
[[users]]
access_key = \"AKADMIN\"
secret_key = {{ env = \"ACCESS_CHECK_ADMIN_SECRET\" }}
name = \"admin\"
policy = \"full-access\"
[groups.readers]
policy = \"read-only\"
[backends.media]
kind = \"fs\"
root = {:?}
[backends.public]
kind = \"fs\"
root = {:?}
[buckets.media]
members = [\"media\"]
bucket_policy = '''{MEDIA}'''
[buckets.public]
members = [\"public\"]
anonymous = \"read\"
[dynamic_buckets]
kind = \"fs\"
root = {:?}
",
        path(1),
        path(2),
        path(3)
    );
    let file = dirs[0].0.join("switchyard.toml");
    std::fs::write(&file, &config).unwrap();

    let inline = config.replace(
        "{ env = \"ACCESS_CHECK_ADMIN_SECRET\" }",
        "\"admin-secret\"",
    );
    let gw = Gateway::start(&inline).await.unwrap();
    let c = gw.client();
    c.create_bucket().bucket("uploads").send().await.unwrap();
    c.put_bucket_policy()
        .bucket("uploads")
        .policy(UPLOADS)
        .send()
        .await
        .unwrap();
    gw.stop().await;
    Setup {
        file: file.display().to_string(),
        _dirs: dirs.into(),
    }
}

async fn run(s: &Setup, args: &[&str]) -> CliRun {
    let mut all = vec!["access", "check", "--config", s.file.as_str()];
    all.extend_from_slice(args);
    run_switchyard(
        &all,
        &[("ACCESS_CHECK_ADMIN_SECRET", "admin-secret")],
        Duration::from_secs(30),
    )
    .await
    .unwrap()
}

/// Runs a check and asserts its exit status and first line (the decision).
async fn expect(s: &Setup, args: &[&str], code: i32, decision: &str) -> CliRun {
    let r = run(s, args).await;
    assert_eq!(
        (r.status.code(), r.stdout.lines().next().unwrap_or("")),
        (Some(code), decision),
        "{args:?}\nstdout:\n{}stderr:\n{}",
        r.stdout,
        r.stderr
    );
    r
}

#[tokio::test]
async fn decisions_name_the_statement_and_set_the_exit_status() {
    let s = setup().await;
    let get = |who: &'static str, resource: &'static str| {
        vec![
            "--user",
            who,
            "--action",
            "s3:GetObject",
            "--resource",
            resource,
        ]
    };

    // Allowed by the user's own policy; by name or by access key.
    for who in ["alice", "AKALICE"] {
        let mut args = get(who, "arn:aws:s3:::media/home/alice/notes.txt");
        args.push("--secure");
        let r = expect(
            &s,
            &args,
            0,
            "allow by user alice statement 0 (Sid \"ReadHome\")",
        )
        .await;
        assert!(
            r.stdout
                .contains("requester:     user alice (access key AKALICE)")
                && r.stdout
                    .contains("bucket policy: buckets.media.bucket_policy"),
            "{}",
            r.stdout
        );
    }
    // The same request over plain HTTP: the bucket policy's Deny wins.
    expect(
        &s,
        &get("alice", "arn:aws:s3:::media/home/alice/notes.txt"),
        1,
        "explicit deny by bucket media statement 0 (Sid \"TlsOnly\")",
    )
    .await;
    // Nothing allows it.
    let mut args = get("alice", "arn:aws:s3:::media/home/bob/notes.txt");
    args.push("--secure");
    expect(
        &s,
        &args,
        1,
        "implicit deny: no statement allows s3:GetObject on arn:aws:s3:::media/home/bob/notes.txt",
    )
    .await;
    // Through a group.
    let mut args = get("AKBOB", "arn:aws:s3:::media/any/key");
    args.push("--secure");
    expect(
        &s,
        &args,
        0,
        "allow by group readers statement 0 (Sid \"ReadOnly\")",
    )
    .await;
    // A condition key: s3:prefix must lie in the user's home.
    let list = |prefix: Option<&'static str>| {
        let mut a = vec![
            "--user",
            "alice",
            "--action",
            "s3:ListBucket",
            "--resource",
            "arn:aws:s3:::media",
            "--secure",
        ];
        if let Some(p) = prefix {
            a.extend(["--key", p]);
        }
        a
    };
    expect(
        &s,
        &list(Some("s3:prefix=home/alice/")),
        0,
        "allow by user alice statement 1 (Sid \"ListHome\")",
    )
    .await;
    for prefix in [Some("s3:prefix=home/bob/"), None] {
        expect(
            &s,
            &list(prefix),
            1,
            "implicit deny: no statement allows s3:ListBucket on arn:aws:s3:::media",
        )
        .await;
    }
    // A user with no policy: only the bucket policy, from the right addresses.
    let mut args = get("carol", "arn:aws:s3:::media/shared/plan.pdf");
    args.extend(["--secure", "--source-ip", "10.1.2.3"]);
    expect(
        &s,
        &args,
        0,
        "allow by bucket media statement 1 (Sid \"CarolFromOffice\")",
    )
    .await;
    let mut args = get("carol", "arn:aws:s3:::media/shared/plan.pdf");
    args.extend(["--secure", "--source-ip", "192.0.2.1"]);
    expect(
        &s,
        &args,
        1,
        "implicit deny: no statement allows s3:GetObject on arn:aws:s3:::media/shared/plan.pdf",
    )
    .await;

    // Anonymous requests, through `anonymous = "read"`: reads only.
    let anonymous = |action: &'static str, resource: &'static str| {
        vec!["--anonymous", "--action", action, "--resource", resource]
    };
    let r = expect(
        &s,
        &anonymous("s3:GetObject", "arn:aws:s3:::public/logo.png"),
        0,
        "allow by bucket public statement 0 (Sid \"SwitchyardAnonymous\")",
    )
    .await;
    assert!(
        r.stdout
            .contains("bucket policy: buckets.public.anonymous = \"read\""),
        "{}",
        r.stdout
    );
    expect(
        &s,
        &anonymous("s3:PutObject", "arn:aws:s3:::public/logo.png"),
        1,
        "implicit deny: no statement allows s3:PutObject on arn:aws:s3:::public/logo.png",
    )
    .await;
    expect(
        &s,
        &anonymous("s3:GetObject", "arn:aws:s3:::media/home/alice/notes.txt"),
        1,
        "explicit deny by bucket media statement 0 (Sid \"TlsOnly\")",
    )
    .await;

    // A bucket made by CreateBucket: its policy is the one PutBucketPolicy stored.
    let r = expect(
        &s,
        &anonymous("s3:GetObject", "arn:aws:s3:::uploads/k"),
        0,
        "allow by bucket uploads statement 0 (Sid \"Open\")",
    )
    .await;
    assert!(
        r.stdout.contains("bucket policy: stored in bucket uploads"),
        "{}",
        r.stdout
    );
    // full-access users may always manage bucket policies.
    expect(
        &s,
        &[
            "--user",
            "admin",
            "--action",
            "s3:DeleteBucketPolicy",
            "--resource",
            "arn:aws:s3:::uploads",
        ],
        0,
        "allow: a full-access user may always read, change and delete bucket policies",
    )
    .await;
}

#[tokio::test]
async fn bad_questions_exit_2() {
    let s = setup().await;
    let base = [
        "--action",
        "s3:GetObject",
        "--resource",
        "arn:aws:s3:::media/k",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [&["--user", "mallory"][..], &base].concat(),
            "no user has this access key or name",
        ),
        (
            vec![
                "--anonymous",
                "--action",
                "s3:GetObject",
                "--resource",
                "media/k",
            ],
            "not an S3 ARN",
        ),
        (
            vec!["--anonymous", "--action", "s3:Get*", "--resource", "*"],
            "no wildcards",
        ),
        (
            [
                &["--anonymous", "--key", "aws:SourceIp=10.0.0.1"][..],
                &base,
            ]
            .concat(),
            "--source-ip",
        ),
        (
            [&["--anonymous", "--key", "s3:prefix"][..], &base].concat(),
            "NAME=VALUE",
        ),
        // Neither --user nor --anonymous: clap's own refusal.
        (base.to_vec(), "--user"),
    ];
    for (args, says) in cases {
        let r = run(&s, &args).await;
        assert!(
            r.status.code() == Some(2) && r.stderr.contains(says),
            "{args:?}: {:?}\n{}{}",
            r.status,
            r.stdout,
            r.stderr
        );
    }
    // A configuration that does not load.
    let r = run_switchyard(
        &[
            &[
                "access",
                "check",
                "--config",
                "/nonexistent/switchyard.toml",
                "--anonymous",
            ][..],
            &base,
        ]
        .concat(),
        &[],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot read /nonexistent"),
        "{}",
        r.stderr
    );
    // Its secrets must resolve, as for serve.
    let r = run_switchyard(
        &[
            &[
                "access",
                "check",
                "--config",
                s.file.as_str(),
                "--anonymous",
            ][..],
            &base,
        ]
        .concat(),
        &[],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("environment variable ACCESS_CHECK_ADMIN_SECRET is not set"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn check_config_says_who_may_do_what() {
    let s = setup().await;
    let r = run_switchyard(
        &["check-config", s.file.as_str()],
        &[("ACCESS_CHECK_ADMIN_SECRET", "admin-secret")],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(r.status.success(), "{}{}", r.stdout, r.stderr);
    for line in [
        "users:",
        "  alice (access key AKALICE): policies: user alice",
        "  bob (access key AKBOB): policies: group readers",
        "  carol (access key AKCAROL): no policy: only what bucket policies allow it",
        "  admin (access key AKADMIN): unrestricted: full-access through user admin (bucket policies' Deny statements still apply)",
        "public buckets (their policy allows anonymous requests): public",
        "buckets made by CreateBucket: their policies are set through the API (switchyard access check reads them)",
    ] {
        assert!(
            r.stdout.lines().any(|l| l == line),
            "{line:?} missing from:\n{}",
            r.stdout
        );
    }
}

/// ACLs take part as in the engine: read only when the policies neither allow nor deny
/// explicitly; the object's ACL (kept with it in a configured bucket's member), the ACL of
/// a bucket made by CreateBucket; none on a bucket with ACLs disabled. Before, `access
/// check` decided on the policies alone and called denied what an ACL allowed.
#[tokio::test]
async fn acls_take_part_when_the_policies_do_not_decide() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, ObjectOwnership};
    let dirs = [
        TempDir::new("acl-check-cfg"),
        TempDir::new("acl-check-shared"),
        TempDir::new("acl-check-dyn"),
        TempDir::new("acl-check-closed"),
    ];
    let path = |i: usize| dirs[i].0.display().to_string();
    let config = format!(
        "version = 1
[[users]]
access_key = \"AKALICE\"
secret_key = \"alice-secret\"
name = \"alice\"
policy = \"full-access\"
[[users]]
access_key = \"AKCAROL\"
secret_key = \"carol-secret\"
name = \"carol\"
[backends.shared]
kind = \"fs\"
root = {:?}
[backends.closed]
kind = \"fs\"
root = {:?}
[buckets.shared]
members = [\"shared\"]
object_ownership = \"ObjectWriter\"
[buckets.closed]
members = [\"closed\"]
[dynamic_buckets]
kind = \"fs\"
root = {:?}
",
        path(1),
        path(3),
        path(2)
    );
    let file = dirs[0].0.join("switchyard.toml");
    std::fs::write(&file, &config).unwrap();
    let gw = Gateway::start(&config).await.unwrap();
    let c = switchyard_tests::harness::s3_client(&gw.endpoint, "AKALICE", "alice-secret");
    let put = |key: &'static str| {
        c.put_object()
            .bucket("shared")
            .key(key)
            .body(ByteStream::from_static(b"x"))
    };
    put("pub.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    put("private.txt").send().await.unwrap();
    put("for-carol.txt")
        .grant_read(format!(
            "id=\"{}\"",
            switchyard::frontend::canonical_id("carol")
        ))
        .send()
        .await
        .unwrap();
    c.create_bucket()
        .bucket("dyn")
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    c.put_bucket_acl()
        .bucket("dyn")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    gw.stop().await;

    let s = Setup {
        file: file.display().to_string(),
        _dirs: dirs.into(),
    };
    let ask = |who: Option<&'static str>, action: &'static str, resource: &'static str| {
        let mut args = match who {
            Some(u) => vec!["--user", u],
            None => vec!["--anonymous"],
        };
        args.extend(["--action", action, "--resource", resource]);
        args
    };
    let acls_line = |r: &CliRun| {
        r.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("ACLs:"))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default()
    };
    let r = run(
        &s,
        &ask(None, "s3:GetObject", "arn:aws:s3:::shared/pub.txt"),
    )
    .await;
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .lines()
            .next()
            .unwrap()
            .contains("object pub.txt ACL"),
        "{}",
        r.stdout
    );
    assert_eq!(acls_line(&r), "consulted: object pub.txt ACL");
    let r = run(
        &s,
        &ask(None, "s3:GetObject", "arn:aws:s3:::shared/private.txt"),
    )
    .await;
    assert_eq!(r.status.code(), Some(1), "{}{}", r.stdout, r.stderr);
    let r = run(
        &s,
        &ask(
            Some("carol"),
            "s3:GetObject",
            "arn:aws:s3:::shared/for-carol.txt",
        ),
    )
    .await;
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
    let r = run(
        &s,
        &ask(Some("carol"), "s3:GetObject", "arn:aws:s3:::shared/pub.txt"),
    )
    .await;
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
    // A bucket made by CreateBucket: its stored ACL.
    let r = run(&s, &ask(None, "s3:ListBucket", "arn:aws:s3:::dyn")).await;
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
    assert_eq!(acls_line(&r), "consulted: bucket dyn ACL");
    let r = run(&s, &ask(None, "s3:PutObject", "arn:aws:s3:::dyn/k")).await;
    assert_eq!(r.status.code(), Some(1), "{}{}", r.stdout, r.stderr);
    // Not read where the policies decide, nor where ACLs are disabled.
    let r = run(
        &s,
        &ask(
            Some("alice"),
            "s3:GetObject",
            "arn:aws:s3:::shared/private.txt",
        ),
    )
    .await;
    assert_eq!(r.status.code(), Some(0), "{}{}", r.stdout, r.stderr);
    assert_eq!(acls_line(&r), "not read: the policies allow");
    let r = run(&s, &ask(None, "s3:GetObject", "arn:aws:s3:::closed/k")).await;
    assert_eq!(r.status.code(), Some(1), "{}{}", r.stdout, r.stderr);
    assert!(acls_line(&r).contains("ACLs disabled"), "{}", r.stdout);
}
