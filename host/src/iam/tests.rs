//! Table tests of parsing and evaluation, after the examples in AWS's documentation (their
//! semantics, in our own documents), with the refusals beside them.

use super::*;

const BUCKET: &str = "media";
const ALICE: Principal<'static> = Principal::User {
    name: "alice",
    access_key: "AKIAALICE",
};
const BOB: Principal<'static> = Principal::User {
    name: "bob",
    access_key: "AKIABOB",
};
const CAROL: Principal<'static> = Principal::User {
    name: "carol",
    access_key: "AKIACAROL",
};
const ANON: Principal<'static> = Principal::Anonymous;

fn bucket_policy(json: &str) -> PolicyDocument {
    PolicyDocument::parse(
        json,
        PolicyKind::Bucket {
            bucket: BUCKET.into(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn identity_policy(json: &str) -> PolicyDocument {
    PolicyDocument::parse(json, PolicyKind::Identity).unwrap_or_else(|e| panic!("{e}"))
}

fn object(key: &str) -> Resource<'_> {
    Resource::Object {
        bucket: BUCKET,
        key,
    }
}

/// One request, as the tables write it.
#[derive(Debug, Clone, Copy)]
struct Req {
    who: Principal<'static>,
    action: &'static str,
    resource: Resource<'static>,
    ip: Option<&'static str>,
    tls: bool,
    keys: &'static [(&'static str, &'static str)],
}

fn req(who: Principal<'static>, action: &'static str, resource: Resource<'static>) -> Req {
    Req {
        who,
        action,
        resource,
        ip: Some("203.0.113.10"),
        tls: true,
        keys: &[],
    }
}

impl Req {
    fn ip(self, ip: Option<&'static str>) -> Self {
        Self { ip, ..self }
    }
    fn tls(self, tls: bool) -> Self {
        Self { tls, ..self }
    }
    fn keys(self, keys: &'static [(&'static str, &'static str)]) -> Self {
        Self { keys, ..self }
    }
}

/// The outcome a table expects: the kind of decision and, for Allow and Deny, the policy
/// label and statement index that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want<'a> {
    Allow(&'a str, usize),
    Deny(&'a str, usize),
    Implicit,
}

fn decide<'a>(
    identity: &[(&'a str, &'a PolicyDocument)],
    bucket: Option<&'a PolicyDocument>,
    r: &Req,
) -> Decision<'a> {
    let cx = Context {
        principal: r.who,
        source_ip: r.ip.map(|ip| ip.parse().unwrap()),
        secure_transport: r.tls,
        keys: r.keys,
    };
    let check = Check {
        action: r.action,
        resource: r.resource,
    };
    evaluate(
        identity,
        bucket.map(|b| ("bucket media", b)),
        &[],
        &cx,
        &check,
    )
}

fn run(
    identity: &[(&str, &PolicyDocument)],
    bucket: Option<&PolicyDocument>,
    table: &[(Req, Want<'_>)],
) {
    for (i, (r, want)) in table.iter().enumerate() {
        let d = decide(identity, bucket, r);
        let got = match d {
            Decision::Allow(c) => Want::Allow(c.policy, c.statement),
            Decision::ExplicitDeny(c) => Want::Deny(c.policy, c.statement),
            Decision::ImplicitDeny { .. } => Want::Implicit,
        };
        assert_eq!(got, *want, "row {i}: {r:?} -> {d}");
    }
}

const B: &str = "bucket media";

#[test]
fn public_read_bucket_policy_serves_anonymous_reads_only() {
    for principal in [r#""*""#, r#"{"AWS": "*"}"#, r#"{"AWS": ["*"]}"#] {
        let policy = bucket_policy(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{
                "Sid": "PublicRead", "Effect": "Allow", "Principal": {principal},
                "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::media/*"]}}]}}"#
        ));
        assert!(policy.is_public(), "{principal}");
        run(
            &[],
            Some(&policy),
            &[
                (
                    req(ANON, "s3:GetObject", object("a.jpg")),
                    Want::Allow(B, 0),
                ),
                (
                    req(ANON, "s3:GetObject", object("dir/b.jpg")),
                    Want::Allow(B, 0),
                ),
                (
                    req(ALICE, "s3:GetObject", object("a.jpg")),
                    Want::Allow(B, 0),
                ),
                (req(ANON, "s3:PutObject", object("a.jpg")), Want::Implicit),
                (
                    req(ANON, "s3:ListBucket", Resource::Bucket(BUCKET)),
                    Want::Implicit,
                ),
                // The bucket-level ARN is not an object ARN.
                (
                    req(ANON, "s3:GetObject", Resource::Bucket(BUCKET)),
                    Want::Implicit,
                ),
                // A policy parsed for media says nothing about other buckets.
                (
                    req(
                        ANON,
                        "s3:GetObject",
                        Resource::Object {
                            bucket: "other",
                            key: "a",
                        },
                    ),
                    Want::Implicit,
                ),
            ],
        );
    }
}

#[test]
fn explicit_deny_beats_allow_from_either_side() {
    let allow_all = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#,
    );
    let bucket_denies = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "NoDeletes", "Effect": "Deny", "Principal": {"AWS": "alice"},
             "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    run(
        &[("user alice", &allow_all)],
        Some(&bucket_denies),
        &[
            (req(ALICE, "s3:DeleteObject", object("x")), Want::Deny(B, 0)),
            (
                req(ALICE, "s3:GetObject", object("x")),
                Want::Allow("user alice", 0),
            ),
        ],
    );

    let identity_denies = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    let bucket_allows = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "s3:*",
             "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"]}]}"#,
    );
    run(
        &[("group writers", &identity_denies)],
        Some(&bucket_allows),
        &[
            (
                req(ALICE, "s3:PutObject", object("x")),
                Want::Deny("group writers", 0),
            ),
            // Within one account a bucket policy alone can allow.
            (req(ALICE, "s3:GetObject", object("x")), Want::Allow(B, 0)),
            (req(BOB, "s3:GetObject", object("x")), Want::Implicit),
        ],
    );
    // A Deny later in the list still wins over an Allow found first.
    run(
        &[
            ("user alice", &allow_all),
            ("group writers", &identity_denies),
        ],
        None,
        &[(
            req(ALICE, "s3:PutObject", object("x")),
            Want::Deny("group writers", 0),
        )],
    );
}

#[test]
fn nothing_allows_means_implicit_deny() {
    let d = decide(
        &[],
        None,
        &req(
            ALICE,
            "s3:PutObject",
            Resource::Object {
                bucket: "b",
                key: "k",
            },
        ),
    );
    assert_eq!(
        d,
        Decision::ImplicitDeny {
            action: "s3:PutObject",
            resource: Resource::Object {
                bucket: "b",
                key: "k"
            }
        }
    );
    assert!(!d.is_allowed());
    assert_eq!(
        d.to_string(),
        "implicit deny: no statement allows s3:PutObject on arn:aws:s3:::b/k"
    );
    let reads = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    run(
        &[("user alice", &reads)],
        None,
        &[
            (
                req(ALICE, "s3:GetObject", object("x")),
                Want::Allow("user alice", 0),
            ),
            (req(ALICE, "s3:PutObject", object("x")), Want::Implicit),
            (
                req(
                    ALICE,
                    "s3:GetObject",
                    Resource::Object {
                        bucket: "other",
                        key: "x",
                    },
                ),
                Want::Implicit,
            ),
        ],
    );
}

#[test]
fn decisions_explain_themselves() {
    let cause = |sid| Cause {
        policy: "user alice",
        statement: 2,
        sid,
    };
    for (d, text) in [
        (
            Decision::Allow(cause(Some("ReadHome"))),
            r#"allow by user alice statement 2 (Sid "ReadHome")"#,
        ),
        (
            Decision::Allow(cause(None)),
            "allow by user alice statement 2",
        ),
        (
            Decision::ExplicitDeny(cause(Some("Tls\"Only"))),
            r#"explicit deny by user alice statement 2 (Sid "Tls\"Only")"#,
        ),
        (
            Decision::ImplicitDeny {
                action: "s3:ListBucket",
                resource: Resource::Bucket("media"),
            },
            "implicit deny: no statement allows s3:ListBucket on arn:aws:s3:::media",
        ),
        (
            Decision::ImplicitDeny {
                action: "s3:ListAllMyBuckets",
                resource: Resource::All,
            },
            "implicit deny: no statement allows s3:ListAllMyBuckets on *",
        ),
    ] {
        assert_eq!(d.to_string(), text);
    }
}

#[test]
fn secure_transport_deny_on_false() {
    for value in ["false", r#""false""#, r#""FALSE""#] {
        let policy = bucket_policy(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [
                {{"Sid": "Read", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": "arn:aws:s3:::media/*"}},
                {{"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                  "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"],
                  "Condition": {{"Bool": {{"aws:SecureTransport": {value}}}}}}}]}}"#
        ));
        run(
            &[],
            Some(&policy),
            &[
                (req(ANON, "s3:GetObject", object("x")), Want::Allow(B, 0)),
                (
                    req(ANON, "s3:GetObject", object("x")).tls(false),
                    Want::Deny(B, 1),
                ),
                (
                    req(ALICE, "s3:ListBucket", Resource::Bucket(BUCKET)).tls(false),
                    Want::Deny(B, 1),
                ),
            ],
        );
        let d = decide(
            &[],
            Some(&policy),
            &req(ANON, "s3:GetObject", object("x")).tls(false),
        );
        assert_eq!(
            d.to_string(),
            r#"explicit deny by bucket media statement 1 (Sid "TlsOnly")"#
        );
    }
}

#[test]
fn not_ip_address_denies_outside_the_blocks() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "OfficeOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"],
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}}},
            {"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "s3:*",
             "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    let get = req(ALICE, "s3:GetObject", object("x"));
    run(
        &[],
        Some(&policy),
        &[
            (get.ip(Some("192.0.2.44")), Want::Allow(B, 1)),
            (get.ip(Some("192.0.3.1")), Want::Deny(B, 0)),
            (get.ip(Some("2001:db8:1::5")), Want::Allow(B, 1)),
            (get.ip(Some("2001:db9::5")), Want::Deny(B, 0)),
            // An IPv4 client seen through a dual-stack socket.
            (get.ip(Some("::ffff:192.0.2.44")), Want::Allow(B, 1)),
            (get.ip(Some("::ffff:198.51.100.1")), Want::Deny(B, 0)),
            // No address: the negated operator holds, so the Deny applies.
            (get.ip(None), Want::Deny(B, 0)),
        ],
    );

    let allow_from = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*",
             "Condition": {"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::7"]}}}]}"#,
    );
    let anon = req(ANON, "s3:GetObject", object("x"));
    run(
        &[],
        Some(&allow_from),
        &[
            (anon.ip(Some("192.0.2.200")), Want::Allow(B, 0)),
            (anon.ip(Some("2001:db8::7")), Want::Allow(B, 0)),
            (anon.ip(Some("2001:db8::8")), Want::Implicit),
            (anon.ip(Some("198.51.100.1")), Want::Implicit),
            (anon.ip(None), Want::Implicit),
        ],
    );
}

const HOME: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Sid": "ListRoot", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media",
     "Condition": {"StringEquals": {"s3:prefix": ["", "home/"], "s3:delimiter": "/"}}},
    {"Sid": "ListHome", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media",
     "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}},
    {"Sid": "ReadWriteHome", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
     "Resource": "arn:aws:s3:::media/home/${aws:username}/*"}]}"#;

#[test]
fn home_directories_with_username_variable_and_prefix_conditions() {
    let policy = identity_policy(HOME);
    let list = |who| req(who, "s3:ListBucket", Resource::Bucket(BUCKET));
    let g = "group staff";
    let star = Principal::User {
        name: "a*",
        access_key: "AKIASTAR",
    };
    run(
        &[(g, &policy)],
        None,
        &[
            (
                list(ALICE).keys(&[("s3:prefix", ""), ("s3:delimiter", "/")]),
                Want::Allow(g, 0),
            ),
            (
                list(ALICE).keys(&[("s3:prefix", "home/"), ("s3:delimiter", "/")]),
                Want::Allow(g, 0),
            ),
            // Both keys are required (AND), the delimiter exactly "/".
            (list(ALICE).keys(&[("s3:prefix", "")]), Want::Implicit),
            (
                list(ALICE).keys(&[("s3:prefix", ""), ("s3:delimiter", "|")]),
                Want::Implicit,
            ),
            (list(ALICE).keys(&[("s3:delimiter", "/")]), Want::Implicit),
            (
                list(ALICE).keys(&[("s3:prefix", "home/alice/")]),
                Want::Allow(g, 1),
            ),
            (
                list(ALICE).keys(&[("s3:prefix", "home/alice/photos/2024")]),
                Want::Allow(g, 1),
            ),
            (
                list(ALICE).keys(&[("s3:prefix", "home/bob/")]),
                Want::Implicit,
            ),
            (
                list(ALICE).keys(&[("s3:prefix", "home/alice")]),
                Want::Implicit,
            ),
            (list(ALICE), Want::Implicit),
            (
                list(BOB).keys(&[("s3:prefix", "home/bob/x")]),
                Want::Allow(g, 1),
            ),
            (
                req(ALICE, "s3:GetObject", object("home/alice/a.txt")),
                Want::Allow(g, 2),
            ),
            (
                req(ALICE, "s3:PutObject", object("home/alice/deep/b.txt")),
                Want::Allow(g, 2),
            ),
            (
                req(ALICE, "s3:PutObject", object("home/bob/a.txt")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:GetObject", object("home/alicex/a.txt")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:DeleteObject", object("home/alice/a.txt")),
                Want::Implicit,
            ),
            (
                req(BOB, "s3:GetObject", object("home/bob/a.txt")),
                Want::Allow(g, 2),
            ),
            // A name is substituted as text: a `*` in it is no wildcard.
            (
                req(star, "s3:GetObject", object("home/alice/a.txt")),
                Want::Implicit,
            ),
            (
                req(star, "s3:GetObject", object("home/a*/a.txt")),
                Want::Allow(g, 2),
            ),
            // No name, no match.
            (
                req(ANON, "s3:GetObject", object("home//a.txt")),
                Want::Implicit,
            ),
            (list(ANON).keys(&[("s3:prefix", "home//")]), Want::Implicit),
        ],
    );

    // Without Version (2008-10-17 to AWS), `${aws:username}` is plain text.
    let old = identity_policy(&HOME.replace(r#""Version": "2012-10-17", "#, ""));
    run(
        &[(g, &old)],
        None,
        &[
            (
                req(ALICE, "s3:GetObject", object("home/alice/a.txt")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:GetObject", object("home/${aws:username}/a.txt")),
                Want::Allow(g, 2),
            ),
        ],
    );
}

#[test]
fn not_action_deny_everything_except_reads() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "BobReadsOnly", "Effect": "Deny", "Principal": {"AWS": "bob"},
             "NotAction": "s3:GetObject", "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"]},
            {"Effect": "Allow", "Principal": {"AWS": ["alice", "bob"]}, "Action": "s3:*",
             "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"]}]}"#,
    );
    run(
        &[],
        Some(&policy),
        &[
            (req(BOB, "s3:GetObject", object("x")), Want::Allow(B, 1)),
            (req(BOB, "s3:GETOBJECT", object("x")), Want::Allow(B, 1)),
            (req(BOB, "s3:PutObject", object("x")), Want::Deny(B, 0)),
            (
                req(BOB, "s3:ListBucket", Resource::Bucket(BUCKET)),
                Want::Deny(B, 0),
            ),
            (req(ALICE, "s3:PutObject", object("x")), Want::Allow(B, 1)),
            (req(ANON, "s3:PutObject", object("x")), Want::Implicit),
        ],
    );
}

#[test]
fn not_resource_applies_outside_the_listed_resources() {
    let policy = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::media/private/*"},
            {"Sid": "UploadsOnly", "Effect": "Deny", "Action": "s3:PutObject",
             "NotResource": ["arn:aws:s3:::media/uploads/*", "arn:aws:s3:::scratch/*"]},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}"#,
    );
    let u = "user alice";
    run(
        &[(u, &policy)],
        None,
        &[
            (
                req(ALICE, "s3:GetObject", object("public/x")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("private/x")),
                Want::Implicit,
            ),
            (
                req(
                    ALICE,
                    "s3:GetObject",
                    Resource::Object {
                        bucket: "other",
                        key: "x",
                    },
                ),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:PutObject", object("uploads/a")),
                Want::Allow(u, 2),
            ),
            (
                req(
                    ALICE,
                    "s3:PutObject",
                    Resource::Object {
                        bucket: "scratch",
                        key: "a",
                    },
                ),
                Want::Allow(u, 2),
            ),
            (req(ALICE, "s3:PutObject", object("a")), Want::Deny(u, 1)),
        ],
    );
}

#[test]
fn not_principal_applies_to_everyone_not_listed() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "OnlyAlice", "Effect": "Deny",
             "NotPrincipal": {"AWS": ["arn:aws:iam::111122223333:user/alice"]},
             "Action": "s3:*", "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"]},
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    run(
        &[],
        Some(&policy),
        &[
            (req(ALICE, "s3:GetObject", object("x")), Want::Allow(B, 1)),
            (req(BOB, "s3:GetObject", object("x")), Want::Deny(B, 0)),
            (req(ANON, "s3:GetObject", object("x")), Want::Deny(B, 0)),
        ],
    );
}

#[test]
fn anonymous_never_matches_a_named_principal() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["alice", "arn:aws:iam::111122223333:user/bob"]},
             "Action": "s3:*", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    assert!(!policy.is_public());
    let anonymous_user = Principal::User {
        name: "Anonymous",
        access_key: "AKIAANON",
    };
    run(
        &[],
        Some(&policy),
        &[
            (req(ALICE, "s3:GetObject", object("x")), Want::Allow(B, 0)),
            (req(BOB, "s3:GetObject", object("x")), Want::Allow(B, 0)),
            (req(CAROL, "s3:GetObject", object("x")), Want::Implicit),
            (req(ANON, "s3:GetObject", object("x")), Want::Implicit),
            (
                req(anonymous_user, "s3:GetObject", object("x")),
                Want::Implicit,
            ),
        ],
    );
}

#[test]
fn if_exists_and_null_with_absent_keys() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "PrivateUploads", "Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::media/*",
             "Condition": {"StringEqualsIfExists": {"s3:x-amz-acl": "private"}}},
            {"Sid": "TaggedOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::media/tagged/*",
             "Condition": {"Null": {"s3:RequestObjectTag/Project": true}}},
            {"Sid": "SignedReads", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::media/*",
             "Condition": {"Null": {"aws:username": "false"}}},
            {"Sid": "StrictAcl", "Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::media/*",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "private"}}}]}"#,
    );
    let put = req(ALICE, "s3:PutObject", object("x"));
    let tagged = req(ALICE, "s3:PutObject", object("tagged/x"));
    run(
        &[],
        Some(&policy),
        &[
            (put, Want::Allow(B, 0)),
            (put.keys(&[("s3:x-amz-acl", "private")]), Want::Allow(B, 0)),
            (put.keys(&[("s3:x-amz-acl", "public-read")]), Want::Implicit),
            (tagged, Want::Deny(B, 1)),
            (
                tagged.keys(&[("s3:requestobjecttag/Project", "apollo")]),
                Want::Allow(B, 0),
            ),
            // Tag keys keep their case.
            (
                tagged.keys(&[("s3:requestobjecttag/project", "apollo")]),
                Want::Deny(B, 1),
            ),
            (req(BOB, "s3:GetObject", object("x")), Want::Allow(B, 2)),
            (req(ANON, "s3:GetObject", object("x")), Want::Implicit),
            // Without IfExists an absent key fails the condition.
            (req(BOB, "s3:PutObject", object("x")), Want::Implicit),
            (
                req(BOB, "s3:PutObject", object("x")).keys(&[("s3:x-amz-acl", "private")]),
                Want::Allow(B, 3),
            ),
        ],
    );
}

#[test]
fn negated_operators_hold_when_the_key_is_absent() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::media/*",
             "Condition": {"StringNotEquals": {"s3:x-amz-acl": ["public-read", "public-read-write"]}}}]}"#,
    );
    let put = req(ALICE, "s3:PutObject", object("x"));
    run(
        &[],
        Some(&policy),
        &[
            (put, Want::Allow(B, 0)),
            (put.keys(&[("s3:x-amz-acl", "private")]), Want::Allow(B, 0)),
            // Several values under a negated operator: none may match.
            (put.keys(&[("s3:x-amz-acl", "public-read")]), Want::Implicit),
            (
                put.keys(&[("s3:x-amz-acl", "public-read-write")]),
                Want::Implicit,
            ),
        ],
    );
}

#[test]
fn a_variable_without_value_never_makes_a_statement_apply() {
    // AWS calls a statement whose variable has no value invalid: for anonymous requests the
    // Deny below does not apply, however its condition is negated.
    let policy = |prefix: &str| {
        bucket_policy(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [
                {{"Sid": "OwnHomeOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket",
                  "Resource": "arn:aws:s3:::media", "Condition": {{"StringNotLike": {{"s3:prefix": "{prefix}"}}}}}},
                {{"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media"}},
                {{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                  "NotResource": "arn:aws:s3:::media/home/${{aws:username}}/*"}},
                {{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*"}}]}}"#
        ))
    };
    let list = |who| req(who, "s3:ListBucket", Resource::Bucket(BUCKET));
    run(
        &[],
        Some(&policy("home/${aws:username}/*")),
        &[
            (
                list(ALICE).keys(&[("s3:prefix", "home/alice/x")]),
                Want::Allow(B, 1),
            ),
            (
                list(ALICE).keys(&[("s3:prefix", "home/bob/")]),
                Want::Deny(B, 0),
            ),
            (
                list(ANON).keys(&[("s3:prefix", "home/bob/")]),
                Want::Allow(B, 1),
            ),
            (
                req(ALICE, "s3:GetObject", object("home/alice/a")),
                Want::Allow(B, 3),
            ),
            (
                req(ALICE, "s3:GetObject", object("home/bob/a")),
                Want::Deny(B, 2),
            ),
            (
                req(ANON, "s3:GetObject", object("home/bob/a")),
                Want::Allow(B, 3),
            ),
        ],
    );
    // A default value closes that gap.
    run(
        &[],
        Some(&policy("home/${aws:username, ''}/*")),
        &[
            (
                list(ANON).keys(&[("s3:prefix", "home/bob/")]),
                Want::Deny(B, 0),
            ),
            (
                list(ALICE).keys(&[("s3:prefix", "home/alice/")]),
                Want::Allow(B, 1),
            ),
        ],
    );
}

#[test]
fn condition_operators() {
    let list = req(ALICE, "s3:ListBucket", Resource::Bucket(BUCKET));
    let anon = req(ANON, "s3:ListBucket", Resource::Bucket(BUCKET));
    let p = |v: &'static str| list.keys(Box::leak(Box::new([("s3:prefix", v)])));
    let mk = |v: &'static str| list.keys(Box::leak(Box::new([("s3:max-keys", v)])));
    #[rustfmt::skip]
    let table: &[(&str, Req, bool)] = &[
        (r#"{"StringEquals": {"s3:prefix": "a/"}}"#, p("a/"), true),
        (r#"{"StringEquals": {"s3:prefix": "a/"}}"#, p("A/"), false),
        (r#"{"StringEquals": {"s3:prefix": "a/"}}"#, list, false),
        (r#"{"StringEquals": {"s3:prefix": "a*"}}"#, p("abc"), false),
        (r#"{"StringEquals": {"s3:prefix": "a*"}}"#, p("a*"), true),
        (r#"{"StringEquals": {"s3:prefix": ["x", "a/"]}}"#, p("a/"), true),
        (r#"{"StringNotEquals": {"s3:prefix": "a/"}}"#, p("a/"), false),
        (r#"{"StringNotEquals": {"s3:prefix": "a/"}}"#, p("b/"), true),
        (r#"{"StringNotEquals": {"s3:prefix": "a/"}}"#, list, true),
        (r#"{"StringEqualsIgnoreCase": {"s3:prefix": "a/É"}}"#, p("A/é"), true),
        (r#"{"StringEqualsIgnoreCase": {"s3:prefix": "a/"}}"#, p("b/"), false),
        (r#"{"StringEqualsIgnoreCase": {"s3:prefix": "a/"}}"#, list, false),
        (r#"{"StringNotEqualsIgnoreCase": {"s3:prefix": "a/"}}"#, p("A/"), false),
        (r#"{"StringNotEqualsIgnoreCase": {"s3:prefix": "a/"}}"#, list, true),
        (r#"{"StringLike": {"s3:prefix": "a/*"}}"#, p("a/b/c"), true),
        (r#"{"StringLike": {"s3:prefix": "a/*"}}"#, p("b/a/"), false),
        (r#"{"StringLike": {"s3:prefix": "a/*"}}"#, list, false),
        (r#"{"StringLike": {"s3:prefix": "a?c"}}"#, p("abc"), true),
        (r#"{"StringLike": {"s3:prefix": "a?c"}}"#, p("ac"), false),
        (r#"{"StringLike": {"s3:prefix": "a${*}"}}"#, p("a*"), true),
        (r#"{"StringLike": {"s3:prefix": "a${*}"}}"#, p("ab"), false),
        (r#"{"StringNotLike": {"s3:prefix": "a/*"}}"#, p("a/x"), false),
        (r#"{"StringNotLike": {"s3:prefix": "a/*"}}"#, p("b"), true),
        (r#"{"StringNotLike": {"s3:prefix": "a/*"}}"#, list, true),
        (r#"{"StringEqualsIfExists": {"s3:prefix": "a/"}}"#, list, true),
        (r#"{"StringEqualsIfExists": {"s3:prefix": "a/"}}"#, p("b/"), false),
        (r#"{"StringLikeIfExists": {"s3:prefix": "a*"}}"#, p("ab"), true),
        (r#"{"StringNotLikeIfExists": {"s3:prefix": "a*"}}"#, p("ab"), false),
        (r#"{"NumericEquals": {"s3:max-keys": "10"}}"#, mk("10"), true),
        (r#"{"NumericEquals": {"s3:max-keys": 10}}"#, mk("10.0"), true),
        (r#"{"NumericEquals": {"s3:max-keys": "10"}}"#, mk("9"), false),
        (r#"{"NumericEquals": {"s3:max-keys": "10"}}"#, list, false),
        (r#"{"NumericNotEquals": {"s3:max-keys": "10"}}"#, mk("10"), false),
        (r#"{"NumericNotEquals": {"s3:max-keys": "10"}}"#, mk("9"), true),
        (r#"{"NumericNotEquals": {"s3:max-keys": "10"}}"#, list, true),
        (r#"{"NumericNotEquals": {"s3:max-keys": "10"}}"#, mk("ten"), true),
        (r#"{"NumericLessThan": {"s3:max-keys": "10"}}"#, mk("9"), true),
        (r#"{"NumericLessThan": {"s3:max-keys": "10"}}"#, mk("10"), false),
        (r#"{"NumericLessThan": {"s3:max-keys": "10"}}"#, mk("ten"), false),
        (r#"{"NumericLessThanEquals": {"s3:max-keys": "10"}}"#, mk("10"), true),
        (r#"{"NumericLessThanEquals": {"s3:max-keys": "10"}}"#, mk("-1"), true),
        (r#"{"NumericLessThanEquals": {"s3:max-keys": "10"}}"#, mk("11"), false),
        (r#"{"NumericGreaterThan": {"s3:max-keys": "10"}}"#, mk("11"), true),
        (r#"{"NumericGreaterThan": {"s3:max-keys": "10"}}"#, mk("10"), false),
        (r#"{"NumericGreaterThanEquals": {"s3:max-keys": "10"}}"#, mk("10"), true),
        (r#"{"NumericGreaterThanEquals": {"s3:max-keys": "2.5"}}"#, mk("2"), false),
        (r#"{"NumericLessThanIfExists": {"s3:max-keys": "10"}}"#, list, true),
        (r#"{"NumericLessThanIfExists": {"s3:max-keys": "10"}}"#, mk("20"), false),
        (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, list, true),
        (r#"{"Bool": {"aws:SecureTransport": true}}"#, list.tls(false), false),
        (r#"{"Bool": {"aws:SecureTransport": "TRUE"}}"#, list, true),
        (r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, list, true),
        (r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, list.ip(None), false),
        (r#"{"IpAddressIfExists": {"aws:SourceIp": "192.0.2.0/24"}}"#, list.ip(None), true),
        (r#"{"IpAddressIfExists": {"aws:SourceIp": "192.0.2.0/24"}}"#, list, false),
        (r#"{"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}"#, list, true),
        (r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.10"}}"#, list, false),
        (r#"{"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}"#, list.ip(None), true),
        (r#"{"Null": {"s3:prefix": "true"}}"#, list, true),
        (r#"{"Null": {"s3:prefix": "true"}}"#, p(""), false),
        (r#"{"Null": {"s3:prefix": "false"}}"#, list, false),
        (r#"{"Null": {"s3:prefix": false}}"#, p(""), true),
        (r#"{"Null": {"aws:SourceIp": "true"}}"#, list.ip(None), true),
        (r#"{"Null": {"aws:username": "true"}}"#, anon, true),
        // Several keys under one operator: all must hold.
        (r#"{"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}"#, list.keys(&[("s3:prefix", "a"), ("s3:delimiter", "/")]), true),
        (r#"{"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}"#, p("a"), false),
        // Several operators: all must hold.
        (r#"{"StringLike": {"s3:prefix": "a*"}, "NumericLessThan": {"s3:max-keys": "10"}}"#, list.keys(&[("s3:prefix", "ab"), ("s3:max-keys", "5")]), true),
        (r#"{"StringLike": {"s3:prefix": "a*"}, "NumericLessThan": {"s3:max-keys": "10"}}"#, list.keys(&[("s3:prefix", "ab"), ("s3:max-keys", "50")]), false),
        // Key names ignore case.
        (r#"{"StringEquals": {"S3:Prefix": "a"}}"#, p("a"), true),
        (r#"{"IpAddress": {"AWS:SOURCEIP": "203.0.113.10/32"}}"#, list, true),
        (r#"{"StringEquals": {"aws:username": "alice"}}"#, list, true),
        (r#"{"StringEquals": {"aws:username": "alice"}}"#, anon, false),
        (r#"{"StringEquals": {"aws:userid": "AKIAALICE"}}"#, list, true),
        (r#"{"StringEquals": {"aws:PrincipalType": "User"}}"#, list, true),
        (r#"{"StringEquals": {"aws:PrincipalType": "Anonymous"}}"#, anon, true),
        (r#"{"StringEquals": {"s3:signatureversion": "AWS4-HMAC-SHA256"}}"#, list.keys(&[("s3:signatureversion", "AWS4-HMAC-SHA256")]), true),
        (r#"{"StringEquals": {"s3:x-amz-acl": "private"}}"#, list.keys(&[("s3:x-amz-acl", "private")]), true),
        (r#"{"StringEquals": {"s3:ExistingObjectTag/Class": "gold"}}"#, list.keys(&[("s3:existingobjecttag/Class", "gold")]), true),
        (r#"{"StringEquals": {"s3:ExistingObjectTag/Class": "gold"}}"#, list.keys(&[("s3:existingobjecttag/class", "gold")]), false),
        // Variables in values: 2012-10-17 substitutes them.
        (r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#, p("home/alice/x"), true),
        (r#"{"StringEquals": {"s3:prefix": "${aws:userid}"}}"#, p("AKIAALICE"), true),
        (r#"{"StringEqualsIgnoreCase": {"s3:prefix": "${aws:username}"}}"#, p("ALICE"), true),
        (r#"{"StringLike": {"s3:prefix": ["home/${aws:username}/*", "public/*"]}}"#, anon.keys(&[("s3:prefix", "public/x")]), true),
        (r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#, anon.keys(&[("s3:prefix", "home//x")]), false),
    ];
    for (i, (condition, r, want)) in table.iter().enumerate() {
        let json = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Principal": "*",
                "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media", "Condition": {condition}}}]}}"#
        );
        let policy = bucket_policy(&json);
        let got = decide(&[], Some(&policy), r).is_allowed();
        assert_eq!(got, *want, "row {i}: {condition} with {r:?}");
    }
}

#[test]
fn actions_ignore_case_and_resources_do_not() {
    let policy = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "S3:getobject", "Resource": "arn:aws:s3:::media/Photos/*"},
            {"Effect": "Allow", "Action": ["s3:Put*", "s3:?eleteObject"], "Resource": "arn:aws:s3:::media/*"},
            {"Effect": "Allow", "Action": "s3:*Tagging", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    let u = "user alice";
    let at = |bucket, key| Resource::Object { bucket, key };
    run(
        &[(u, &policy)],
        None,
        &[
            (
                req(ALICE, "s3:GetObject", object("Photos/a")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "S3:GETOBJECT", object("Photos/a")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("photos/a")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:GetObject", at("Media", "Photos/a")),
                Want::Implicit,
            ),
            (req(ALICE, "s3:putobject", object("x")), Want::Allow(u, 1)),
            (
                req(ALICE, "s3:PutObjectTagging", object("x")),
                Want::Allow(u, 1),
            ),
            (
                req(ALICE, "s3:DeleteObject", object("x")),
                Want::Allow(u, 1),
            ),
            (req(ALICE, "s3:DeleteObjects", object("x")), Want::Implicit),
            (
                req(ALICE, "s3:GetObjectTagging", object("x")),
                Want::Allow(u, 2),
            ),
            (req(ALICE, "s3:GetObjectAcl", object("x")), Want::Implicit),
        ],
    );
}

#[test]
fn question_mark_matches_one_character_however_many_bytes() {
    let policy = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:aws:s3:::media/caf?/*", "arn:aws:s3:::media/??.txt"]}]}"#,
    );
    let u = "user alice";
    run(
        &[(u, &policy)],
        None,
        &[
            (
                req(ALICE, "s3:GetObject", object("café/menu")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("cafe/menu")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("caf/menu")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:GetObject", object("cafée/menu")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:GetObject", object("日本.txt")),
                Want::Allow(u, 0),
            ),
            (req(ALICE, "s3:GetObject", object("🦀.txt")), Want::Implicit),
            (
                req(ALICE, "s3:GetObject", object("🦀🦀.txt")),
                Want::Allow(u, 0),
            ),
        ],
    );
}

#[test]
fn list_all_my_buckets_matches_only_star_resources() {
    let all = Resource::All;
    let u = "user alice";
    for (resource, want) in [
        (r#""*""#, Want::Allow(u, 0)),
        (r#"["*"]"#, Want::Allow(u, 0)),
        (r#""arn:aws:s3:::*""#, Want::Allow(u, 0)),
        (r#""arn:aws:s3:::*/*""#, Want::Implicit),
        (r#""arn:aws:s3:::media""#, Want::Implicit),
    ] {
        let policy = identity_policy(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [
                {{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": {resource}}}]}}"#
        ));
        run(
            &[(u, &policy)],
            None,
            &[(req(ALICE, "s3:ListAllMyBuckets", all), want)],
        );
    }
    // `arn:aws:s3:::*` and `arn:aws:s3:::media*` reach every bucket and object they spell,
    // `*` crossing the `/`.
    let policy = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media*"}]}"#,
    );
    run(
        &[(u, &policy)],
        None,
        &[
            (
                req(
                    ALICE,
                    "s3:GetObject",
                    Resource::Object {
                        bucket: "any",
                        key: "k",
                    },
                ),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:ListBucket", Resource::Bucket("media-archive")),
                Want::Allow(u, 1),
            ),
            (
                req(ALICE, "s3:ListBucket", Resource::Bucket("medi")),
                Want::Implicit,
            ),
            (req(ALICE, "s3:ListAllMyBuckets", all), Want::Implicit),
        ],
    );
    // A bucket policy has no say on ListAllMyBuckets.
    let bucket = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject", "NotResource": "arn:aws:s3:::media/x"}]}"#,
    );
    let allow_all = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#,
    );
    run(
        &[(u, &allow_all)],
        Some(&bucket),
        &[
            (req(ALICE, "s3:ListAllMyBuckets", all), Want::Allow(u, 0)),
            (req(ALICE, "s3:PutObject", object("y")), Want::Deny(B, 0)),
            (
                req(
                    ALICE,
                    "s3:PutObject",
                    Resource::Object {
                        bucket: "other",
                        key: "y",
                    },
                ),
                Want::Allow(u, 0),
            ),
        ],
    );
}

#[test]
fn variables_in_resources() {
    let policy = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [
                "arn:aws:s3:::media/keys/${aws:userid}/*",
                "arn:aws:s3:::media/by-type/${aws:PrincipalType}/*",
                "arn:aws:s3:::media/literal/${*}${?}${$}"]}]}"#,
    );
    let u = "user alice";
    run(
        &[(u, &policy)],
        None,
        &[
            (
                req(ALICE, "s3:GetObject", object("keys/AKIAALICE/a")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("keys/AKIABOB/a")),
                Want::Implicit,
            ),
            (
                req(ALICE, "s3:GetObject", object("by-type/User/a")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("by-type/Anonymous/a")),
                Want::Implicit,
            ),
            (
                req(ANON, "s3:GetObject", object("by-type/Anonymous/a")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("literal/*?$")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("literal/ab$")),
                Want::Implicit,
            ),
        ],
    );
}

#[test]
fn is_public_follows_the_simplified_aws_rule() {
    let statement = |principal: &str, condition: &str| {
        format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", {principal},
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*" {condition}}}]}}"#
        )
    };
    let ip = |op: &str, v: &str| format!(r#", "Condition": {{"{op}": {{"aws:SourceIp": {v}}}}}"#);
    for (principal, condition, want) in [
        (r#""Principal": "*""#, String::new(), true),
        (r#""Principal": {"AWS": "*"}"#, String::new(), true),
        (
            r#""Principal": {"AWS": ["alice", "*"]}"#,
            String::new(),
            true,
        ),
        (r#""Principal": {"AWS": "alice"}"#, String::new(), false),
        (r#""NotPrincipal": {"AWS": "alice"}"#, String::new(), true),
        (r#""NotPrincipal": "*""#, String::new(), false),
        (
            r#""Principal": "*""#,
            ip("IpAddress", r#""192.0.2.0/24""#),
            false,
        ),
        (
            r#""Principal": "*""#,
            ip("IpAddress", r#"["192.0.2.0/24", "2001:db8::/32"]"#),
            false,
        ),
        (
            r#""Principal": "*""#,
            ip("IpAddress", r#"["192.0.2.0/24", "0.0.0.0/0"]"#),
            true,
        ),
        (r#""Principal": "*""#, ip("IpAddress", r#""::/0""#), true),
        (
            r#""Principal": "*""#,
            ip("IpAddressIfExists", r#""192.0.2.0/24""#),
            true,
        ),
        (
            r#""Principal": "*""#,
            ip("NotIpAddress", r#""192.0.2.0/24""#),
            true,
        ),
        (
            r#""Principal": "*""#,
            r#", "Condition": {"StringEquals": {"aws:username": "alice"}}"#.into(),
            false,
        ),
        (
            r#""Principal": "*""#,
            r#", "Condition": {"StringLike": {"aws:userid": "*"}}"#.into(),
            false,
        ),
        (
            r#""Principal": "*""#,
            r#", "Condition": {"StringNotEquals": {"aws:username": "bob"}}"#.into(),
            true,
        ),
        (
            r#""Principal": "*""#,
            r#", "Condition": {"StringEquals": {"s3:x-amz-acl": "private"}}"#.into(),
            true,
        ),
    ] {
        let json = statement(principal, &condition);
        assert_eq!(bucket_policy(&json).is_public(), want, "{json}");
    }
    let deny = bucket_policy(
        r#"{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::media/*"}]}"#,
    );
    assert!(!deny.is_public());
    let identity = identity_policy(
        r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#,
    );
    assert!(!identity.is_public());
}

#[test]
fn source_is_kept_verbatim() {
    let json = "{ \"Statement\" : [ {\"Effect\":\"Allow\",\"Principal\":\"*\",\n\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::media/*\"} ] }\n";
    let policy = bucket_policy(json);
    assert_eq!(policy.source(), json);
    assert_eq!(
        policy.kind(),
        &PolicyKind::Bucket {
            bucket: BUCKET.into()
        }
    );
}

#[test]
fn a_bucket_policy_only_governs_its_own_bucket() {
    let policy = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "NotResource": "arn:aws:s3:::media/public/*"}]}"#,
    );
    let allow_all = identity_policy(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#,
    );
    let u = "user alice";
    run(
        &[(u, &allow_all)],
        Some(&policy),
        &[
            (
                req(ALICE, "s3:GetObject", object("public/a")),
                Want::Allow(u, 0),
            ),
            (
                req(ALICE, "s3:GetObject", object("secret/a")),
                Want::Deny(B, 0),
            ),
            (
                req(
                    ALICE,
                    "s3:GetObject",
                    Resource::Object {
                        bucket: "other",
                        key: "secret/a",
                    },
                ),
                Want::Allow(u, 0),
            ),
        ],
    );
}

/// Golden errors: each refusal names the element at fault and what is wrong.
#[test]
fn refusals_name_what_is_wrong() {
    let bucket = || PolicyKind::Bucket {
        bucket: BUCKET.into(),
    };
    let id = || PolicyKind::Identity;
    // One statement around the given elements.
    let st =
        |elements: &str| format!(r#"{{"Version": "2012-10-17", "Statement": [{{{elements}}}]}}"#);
    let pub_get = r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject""#;
    let get = r#""Effect": "Allow", "Action": "s3:GetObject""#;
    let cond = |c: &str| {
        st(&format!(
            r#"{pub_get}, "Resource": "arn:aws:s3:::media/*", "Condition": {c}"#
        ))
    };

    #[rustfmt::skip]
    let cases: Vec<(PolicyKind, String, &str)> = vec![
        // Resources of a bucket policy.
        (bucket(), st(&format!(r#"{pub_get}, "Resource": "arn:aws:s3:::other/*""#)),
         r#"Statement[0].Resource: "arn:aws:s3:::other/*" is outside bucket "media": its policy may only name "arn:aws:s3:::media" and "arn:aws:s3:::media/..." (AWS: "Policy has invalid resource")"#),
        (bucket(), st(&format!(r#"{pub_get}, "Resource": ["arn:aws:s3:::media/*", "arn:aws:s3:::media-x/*"]"#)),
         r#"Statement[0].Resource[1]: "arn:aws:s3:::media-x/*" is outside bucket "media""#),
        (bucket(), st(&format!(r#"{pub_get}, "Resource": "*""#)),
         r#"Statement[0].Resource: "*" is outside bucket "media""#),
        (bucket(), st(&format!(r#"{pub_get}, "NotResource": "arn:aws:s3:::med*""#)),
         r#"Statement[0].NotResource: "arn:aws:s3:::med*" is outside bucket "media""#),
        (bucket(), st(&format!(r#"{pub_get}, "Resource": "arn:aws:s3:::${{aws:username}}/*""#)),
         r#"Statement[0].Resource: "arn:aws:s3:::${aws:username}/*" is outside bucket "media""#),
        (id(), st(&format!(r#"{get}, "Resource": "arn:aws:iam::1:user/x""#)),
         r#"Statement[0].Resource: "arn:aws:iam::1:user/x" is not an S3 resource: "*", "arn:aws:s3:::<bucket>" or "arn:aws:s3:::<bucket>/<key>""#),
        (id(), st(&format!(r#"{get}, "Resource": "arn:aws:s3:::""#)),
         r#"Statement[0].Resource: "arn:aws:s3:::" is not an S3 resource"#),
        (id(), st(&format!(r#"{get}, "Resource": []"#)), "Statement[0].Resource: is empty"),
        // Principals.
        (id(), st(&format!(r#"{get}, "Principal": "*", "Resource": "*""#)),
         "Statement[0]: identity policies must not have Principal: they apply to the user or group they are attached to"),
        (id(), st(&format!(r#"{get}, "NotPrincipal": {{"AWS": "bob"}}, "Resource": "*""#)),
         "Statement[0]: identity policies must not have NotPrincipal"),
        (bucket(), st(r#""Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         "Statement[0]: bucket policies need Principal or NotPrincipal"),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal.AWS: "arn:aws:iam::111122223333:root": account principals are not supported (there are no accounts here); name users: "alice" or "arn:aws:iam::<account>:user/alice""#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal: principal type "Service" is not supported: only "AWS" (users, or "*")"#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"CanonicalUser": "79a59df900b949e5"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal: principal type "CanonicalUser" is not supported"#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal: principal type "Federated" is not supported"#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"AWS": ["alice", "arn:aws:iam::*:user/*"]}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal.AWS[1]: "arn:aws:iam::*:user/*": a principal cannot have wildcards other than "*" alone"#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:user/dev/alice"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal.AWS: "arn:aws:iam::1:user/dev/alice": user paths are not supported"#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/reader"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal.AWS: "arn:aws:iam::1:role/reader" is not a user: principals are "*" or users, "alice" or "arn:aws:iam::<account>:user/alice""#),
        (bucket(), st(r#""Effect": "Allow", "Principal": "alice", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         r#"Statement[0].Principal: a string principal must be "*"; name users as {"AWS": [...]}"#),
        (bucket(), st(r#""Effect": "Allow", "Principal": {"AWS": []}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*""#),
         "Statement[0].Principal.AWS: is empty"),
        // Actions.
        (id(), st(r#""Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*""#),
         r#"Statement[0].Action: "iam:CreateUser" is not an S3 action: "s3:<Action>" (letters and digits, wildcards allowed) or "*""#),
        (id(), st(r#""Effect": "Allow", "Action": ["s3:GetObject", "s3:Get Object"], "Resource": "*""#),
         r#"Statement[0].Action[1]: "s3:Get Object" is not an S3 action"#),
        (id(), st(r#""Effect": "Allow", "Action": "s3:", "Resource": "*""#), r#"Statement[0].Action: "s3:" is not an S3 action"#),
        (id(), st(r#""Effect": "Allow", "Action": "GetObject", "Resource": "*""#), r#"Statement[0].Action: "GetObject" is not an S3 action"#),
        // Structure.
        (id(), st(r#""Effect": "Allow", "Action": "s3:*", "NotAction": "s3:GetObject", "Resource": "*""#),
         "Statement[0]: has both Action and NotAction; a statement takes one of them"),
        (id(), st(r#""Effect": "Allow", "Action": "s3:*", "Resource": "*", "NotResource": "*""#),
         "Statement[0]: has both Resource and NotResource"),
        (bucket(), st(r#""Effect": "Allow", "Principal": "*", "NotPrincipal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::media""#),
         "Statement[0]: has both Principal and NotPrincipal"),
        (id(), st(r#""Effect": "Allow", "Resource": "*""#), "Statement[0]: needs Action or NotAction"),
        (id(), st(r#""Effect": "Allow", "Action": "s3:*""#), "Statement[0]: needs Resource or NotResource"),
        (id(), st(r#""Action": "s3:*", "Resource": "*""#), r#"Statement[0]: missing "Effect""#),
        (id(), st(r#""Effect": "allow", "Action": "s3:*", "Resource": "*""#), r#"Statement[0].Effect: must be "Allow" or "Deny""#),
        (id(), st(r#""Sid": 7, "Effect": "Allow", "Action": "s3:*", "Resource": "*""#), "Statement[0].Sid: must be a string"),
        (bucket(), st(r#""Effect": "Allow", "Principle": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::media""#),
         r#"Statement[0]: unknown element "Principle" (expected Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition)"#),
        (id(), r#"{"Version": "2012-10-17", "Statment": []}"#.into(),
         r#"policy: unknown element "Statment" (expected Version, Id, Statement)"#),
        (id(), r#"{"Version": "2012-10-17"}"#.into(), r#"policy: missing "Statement""#),
        (id(), r#"{"Version": "2012-10-17", "Statement": []}"#.into(), "Statement: is empty"),
        (id(), r#"{"Version": "2012-10-17", "Statement": "s3:*"}"#.into(), "Statement: must be a JSON object"),
        (id(), r#"{"Version": "2012-10-17", "Statement": ["s3:*"]}"#.into(), "Statement[0]: must be a JSON object"),
        (id(), r#"["s3:*"]"#.into(), "policy: must be a JSON object"),
        (id(), r#"{"Version": "2020-01-01", "Statement": []}"#.into(),
         r#"Version: "2020-01-01" is not a policy language version (use "2012-10-17")"#),
        (id(), r#"{"Id": 5, "Statement": []}"#.into(), "Id: must be a string"),
        (id(), st(r#""Effect": "Allow", "Action": 5, "Resource": "*""#), "Statement[0]: invalid type: integer `5`"),
        (id(), r#"{"Statement": [{"Effect": "Allow", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}"#.into(),
         r#"not valid JSON: duplicate key "Effect" at line 1 column"#),
        (id(), r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",}]}"#.into(), "not valid JSON: "),
        (id(), r#"{"Statement": [{"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                                 {"Sid": "A", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}"#.into(),
         r#"Statement[1].Sid: Sid "A" is also the Sid of Statement[0]; Sids must be unique"#),
        // Conditions.
        (bucket(), format!(r#"{{"Version": "2012-10-17", "Statement": [{{{pub_get}, "Resource": "arn:aws:s3:::media/*"}},
            {{{pub_get}, "Resource": "arn:aws:s3:::media/*", "Condition": {{"DateGreaterThan": {{"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}}}}]}}"#),
         r#"Statement[1].Condition: operator "DateGreaterThan" is not supported"#),
        (bucket(), cond(r#"{"StringEq": {"s3:prefix": "a"}}"#),
         r#"Statement[0].Condition: unknown operator "StringEq" (supported: StringEquals, StringNotEquals, "#),
        (bucket(), cond(r#"{"NullIfExists": {"s3:prefix": "true"}}"#), r#"Statement[0].Condition: unknown operator "NullIfExists""#),
        (bucket(), cond(r#"{"ForAnyValue:StringLike": {"s3:prefix": "a"}}"#),
         r#"Statement[0].Condition: "ForAnyValue:StringLike": set operators (ForAnyValue:, ForAllValues:) are not supported"#),
        (bucket(), cond(r#"{"StringEquals": {"s3:x-amz-server-side-encryption": "1"}}"#),
         r#"Statement[0].Condition.StringEquals["s3:x-amz-server-side-encryption"]: unknown condition key "s3:x-amz-server-side-encryption" (supported: aws:SourceIp, aws:SecureTransport, "#),
        (bucket(), cond(r#"{"StringEquals": {"s3:ExistingObjectTag/": "1"}}"#),
         r#"Statement[0].Condition.StringEquals["s3:ExistingObjectTag/"]: unknown condition key"#),
        (bucket(), cond(r#"{"StringEquals": {"s3:prefix": "${aws:SourceIp}"}}"#),
         r#"Statement[0].Condition.StringEquals["s3:prefix"]: unknown policy variable "${aws:SourceIp}" (supported: ${aws:username}, ${aws:userid}, ${aws:PrincipalType}, ${*}, ${?}, ${$})"#),
        (id(), st(&format!(r#"{get}, "Resource": "arn:aws:s3:::media/${{s3:prefix}}/*""#)),
         r#"Statement[0].Resource: "arn:aws:s3:::media/${s3:prefix}/*": unknown policy variable "${s3:prefix}""#),
        (id(), st(&format!(r#"{get}, "Resource": "arn:aws:s3:::media/${{aws:username""#)),
         r#"Statement[0].Resource: "arn:aws:s3:::media/${aws:username": "${" without a closing "}""#),
        (bucket(), cond(r#"{"StringEquals": {"aws:SourceIp": "192.0.2.1"}}"#),
         r#"Statement[0].Condition.StringEquals["aws:SourceIp"]: "aws:SourceIp" holds an IP address; operator StringEquals does not apply to it (use IpAddress, NotIpAddress or Null)"#),
        (bucket(), cond(r#"{"Bool": {"s3:prefix": "true"}}"#),
         r#"Statement[0].Condition.Bool["s3:prefix"]: "s3:prefix" holds a string; operator Bool does not apply to it (use a String operator or Null)"#),
        (bucket(), cond(r#"{"NumericLessThan": {"s3:prefix": "5"}}"#), "operator NumericLessThan does not apply to it"),
        (bucket(), cond(r#"{"StringLike": {"s3:max-keys": "5*"}}"#), "operator StringLike does not apply to it (use a Numeric operator or Null)"),
        (bucket(), cond(r#"{"IpAddress": {"aws:SourceIp": "10.0.0.300"}}"#),
         r#"Statement[0].Condition.IpAddress["aws:SourceIp"]: "10.0.0.300" is not an IP address or CIDR block"#),
        (bucket(), cond(r#"{"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/129"]}}"#),
         r#""2001:db8::/129" is not an IP address or CIDR block"#),
        (bucket(), cond(r#"{"NumericEquals": {"s3:max-keys": "ten"}}"#),
         r#"Statement[0].Condition.NumericEquals["s3:max-keys"]: "ten" is not a number"#),
        (bucket(), cond(r#"{"NumericEquals": {"s3:max-keys": "1e3"}}"#), r#""1e3" is not a number"#),
        (bucket(), cond(r#"{"NumericEquals": {"s3:max-keys": "${aws:userid}"}}"#),
         r#""${aws:userid}": policy variables are only allowed in the values of String operators"#),
        (bucket(), cond(r#"{"Bool": {"aws:SecureTransport": "yes"}}"#),
         r#"Statement[0].Condition.Bool["aws:SecureTransport"]: "yes" is not true or false"#),
        (bucket(), cond(r#"{"Null": {"s3:prefix": "maybe"}}"#), r#""maybe" is not true or false"#),
        (bucket(), cond(r#"{"StringEquals": {"s3:prefix": []}}"#), r#"Statement[0].Condition.StringEquals["s3:prefix"]: no values"#),
        (bucket(), cond(r#"{"StringEquals": {"s3:prefix": null}}"#),
         r#"Statement[0].Condition.StringEquals["s3:prefix"]: values must be strings (or booleans and numbers, read as their text)"#),
        (bucket(), cond(r#"{"StringEquals": {"s3:prefix": [{"a": 1}]}}"#), "values must be strings"),
        (bucket(), cond(r#"{"StringEquals": {}}"#), "Statement[0].Condition.StringEquals: is empty"),
        (bucket(), cond("{}"), "Statement[0].Condition: is empty"),
        (bucket(), cond(r#"{"StringEquals": "a"}"#), "Statement[0].Condition.StringEquals: must be a JSON object"),
        (bucket(), cond(r#""a""#), "Statement[0].Condition: must be a JSON object"),
    ];
    for (kind, json, want) in cases {
        let err = PolicyDocument::parse(&json, kind)
            .map(|_| ())
            .expect_err(&json)
            .to_string();
        // Whole messages where the case gives one; otherwise the telling part.
        assert!(err.contains(want), "{json}\n got: {err}\nwant: {want}");
    }

    let big = format!(
        r#"{{"Statement": [{{"Sid": "{}", {pub_get}, "Resource": "arn:aws:s3:::media/*"}}]}}"#,
        "x".repeat(20 * 1024)
    );
    let err = PolicyDocument::parse(&big, bucket())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "the policy is {} bytes; a bucket policy may have at most 20480 (as in AWS)",
            big.len()
        )
    );
    // Identity policies come from the operator's configuration: no size limit.
    let big = big.replace(r#""Principal": "*", "#, "");
    PolicyDocument::parse(&big, id()).unwrap();
}

#[test]
fn accepted_forms() {
    // Versions: 2012-10-17, 2008-10-17, absent; a single statement object; Id.
    for json in [
        r#"{"Version": "2012-10-17", "Id": "p1", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#,
        r#"{"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}"#,
        r#"{"Statement": [{"Effect": "Deny", "NotAction": "*", "NotResource": "*"}]}"#,
    ] {
        identity_policy(json);
    }
    // A bucket policy may name the bucket itself, its objects, and principals in both forms.
    bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": ["alice", "arn:aws:iam::123456789012:user/bob", "*"]},
            "Action": ["s3:ListBucket", "s3:Get*"], "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*", "arn:aws:s3:::media/a/${aws:username}"],
            "Condition": {"NumericLessThan": {"s3:max-keys": [10, "20", 2.5]}, "Bool": {"aws:SecureTransport": [true]}}}]}"#,
    );
}

/// Micro-benchmark: `cargo test -p switchyard --lib iam::tests::bench -- --ignored --nocapture`.
/// A 10-statement bucket policy plus a 3-statement identity policy, a request no Deny
/// matches (so every statement is looked at), as on the request path.
#[test]
#[ignore = "benchmark; prints ns per evaluation"]
fn bench_evaluate() {
    let bucket = bucket_policy(
        r#"{"Version": "2012-10-17", "Statement": [
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "Office", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": ["arn:aws:s3:::media", "arn:aws:s3:::media/*"],
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24", "2001:db8::/32"]}}},
        {"Sid": "NoDeletes", "Effect": "Deny", "Principal": {"AWS": ["bob", "carol"]}, "Action": "s3:Delete*", "Resource": "arn:aws:s3:::media/*"},
        {"Sid": "ReadOnlyArchive", "Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "arn:aws:s3:::media/archive/*"},
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/public/*"},
        {"Sid": "List", "Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media",
         "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/alice/*"]}}},
        {"Sid": "Team", "Effect": "Allow", "Principal": {"AWS": ["alice", "bob"]}, "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::media/team/*"},
        {"Sid": "Acl", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::media/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": ["public-read", "public-read-write"]}}},
        {"Sid": "Tagged", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::media/tagged/*",
         "Condition": {"Null": {"s3:RequestObjectTag/Project": "true"}}},
        {"Sid": "Uploads", "Effect": "Allow", "Principal": {"AWS": "carol"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::media/uploads/*"}]}"#,
    );
    let identity = identity_policy(HOME);
    let identity = [("group staff", &identity)];
    let cx = Context {
        principal: ALICE,
        source_ip: Some("203.0.113.10".parse().unwrap()),
        secure_transport: true,
        keys: &[],
    };
    let checks = [
        Check {
            action: "s3:GetObject",
            resource: object("team/report.pdf"),
        },
        Check {
            action: "s3:PutObject",
            resource: object("home/alice/notes/2024-06-01.txt"),
        },
    ];
    for check in &checks {
        assert!(evaluate(&identity, Some(("bucket media", &bucket)), &[], &cx, check).is_allowed());
    }
    // The machine is shared: the fastest of many batches is the figure least disturbed by
    // other work; the median shows the spread.
    let (batches, per_batch) = (40, 10_000u32);
    for check in &checks {
        let mut ns: Vec<u128> = (0..batches)
            .map(|_| {
                let start = std::time::Instant::now();
                for _ in 0..per_batch {
                    std::hint::black_box(evaluate(
                        std::hint::black_box(&identity),
                        Some(("bucket media", &bucket)),
                        &[],
                        std::hint::black_box(&cx),
                        std::hint::black_box(check),
                    ));
                }
                start.elapsed().as_nanos() / u128::from(per_batch)
            })
            .collect();
        ns.sort_unstable();
        println!(
            "{} {}: {} ns per evaluation (fastest batch), median {} ns (13 statements)",
            check.action,
            check.resource,
            ns[0],
            ns[ns.len() / 2]
        );
    }
}

/// An ACL's grants as statements: each permission allows AWS's actions for it, to its
/// grantee, on the bucket or the one object; a Deny in a policy still wins, and
/// IgnorePublicAcls drops the grants to groups.
#[test]
fn acl_grants_become_allow_statements() {
    use crate::model::{AclGrant, AclPermission as P, Grantee as G};
    let grant = |grantee: G, permission: P| AclGrant {
        grantee,
        permission,
    };
    let decide_acl = |acls: &[(&str, &PolicyDocument)], policy: Option<&PolicyDocument>, r: Req| {
        let cx = Context {
            principal: r.who,
            source_ip: None,
            secure_transport: true,
            keys: &[],
        };
        let check = Check {
            action: r.action,
            resource: r.resource,
        };
        evaluate(&[], policy.map(|p| ("bucket media", p)), acls, &cx, &check).is_allowed()
    };
    let bucket_acl = PolicyDocument::from_acl(
        AclOn::Bucket(BUCKET),
        &[
            grant(G::User("alice".into()), P::FullControl),
            grant(G::AllUsers, P::Read),
            grant(G::AuthenticatedUsers, P::Write),
            grant(G::User("bob".into()), P::ReadAcp),
        ],
        false,
    );
    let acls = [("bucket acl", &bucket_acl)];
    let bucket = Resource::Bucket(BUCKET);
    let yes = |r: Req| decide_acl(&acls, None, r);
    // AllUsers READ: anyone lists, nobody reads objects through the bucket's ACL.
    assert!(yes(req(ANON, "s3:ListBucket", bucket)));
    assert!(yes(req(CAROL, "s3:ListBucketVersions", bucket)));
    assert!(!yes(req(ANON, "s3:GetObject", object("k"))));
    // AuthenticatedUsers WRITE: any user writes and deletes objects, never anonymous.
    assert!(yes(req(CAROL, "s3:PutObject", object("a/b"))));
    assert!(yes(req(BOB, "s3:DeleteObject", object("k"))));
    assert!(!yes(req(ANON, "s3:PutObject", object("k"))));
    assert!(!yes(req(CAROL, "s3:PutObject", bucket)));
    // READ_ACP and FULL_CONTROL, by user.
    assert!(yes(req(BOB, "s3:GetBucketAcl", bucket)));
    assert!(!yes(req(BOB, "s3:PutBucketAcl", bucket)));
    assert!(!yes(req(CAROL, "s3:GetBucketAcl", bucket)));
    assert!(yes(req(ALICE, "S3:putbucketacl", bucket)));
    assert!(!yes(req(ALICE, "s3:DeleteBucket", bucket)));
    assert!(!yes(req(ALICE, "s3:PutBucketPolicy", bucket)));
    // Another bucket's requests are not this ACL's to allow.
    assert!(!yes(req(ANON, "s3:ListBucket", Resource::Bucket("other"))));

    // An object's ACL: READ is GetObject on that key alone.
    let key = "photos/*.png";
    let object_acl = PolicyDocument::from_acl(
        AclOn::Object {
            bucket: BUCKET,
            key,
        },
        &[
            grant(G::AllUsers, P::Read),
            grant(G::User("bob".into()), P::WriteAcp),
            grant(G::User("carol".into()), P::Write),
        ],
        false,
    );
    let acls = [("object acl", &object_acl)];
    let yes = |r: Req| decide_acl(&acls, None, r);
    assert!(yes(req(ANON, "s3:GetObject", object(key))));
    assert!(yes(req(ANON, "s3:GetObjectVersion", object(key))));
    assert!(!yes(req(ANON, "s3:GetObject", object("photos/a.png"))));
    assert!(!yes(req(ANON, "s3:GetObjectAcl", object(key))));
    assert!(yes(req(BOB, "s3:PutObjectAcl", object(key))));
    assert!(!yes(req(CAROL, "s3:PutObject", object(key))));
    assert!(!yes(req(CAROL, "s3:DeleteObject", object(key))));

    // An explicit Deny in the bucket policy beats the grant.
    let deny = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/photos/*"}]}"#,
    );
    assert!(!decide_acl(
        &acls,
        Some(&deny),
        req(ANON, "s3:GetObject", object(key))
    ));
    // The decision names the grant.
    let cx = Context {
        principal: ANON,
        source_ip: None,
        secure_transport: false,
        keys: &[],
    };
    let d = evaluate(
        &[],
        None,
        &acls,
        &cx,
        &Check {
            action: "s3:GetObject",
            resource: object(key),
        },
    );
    assert_eq!(
        d.to_string(),
        "allow by object acl statement 0 (Sid \"ACL AllUsers READ\")"
    );

    // IgnorePublicAcls: the groups' grants count for nothing, the users' still do.
    let ignored = PolicyDocument::from_acl(
        AclOn::Bucket(BUCKET),
        &[
            grant(G::AllUsers, P::FullControl),
            grant(G::AuthenticatedUsers, P::Read),
            grant(G::User("bob".into()), P::Read),
        ],
        true,
    );
    let acls = [("bucket acl", &ignored)];
    let yes = |r: Req| decide_acl(&acls, None, r);
    assert!(!yes(req(ANON, "s3:ListBucket", bucket)));
    assert!(!yes(req(CAROL, "s3:ListBucket", bucket)));
    assert!(yes(req(BOB, "s3:ListBucket", bucket)));
}
