//! The compatibility table (operation × member kind) of `docs/compatibility.md`.
//!
//! Each row is one step of the conformance suite (`tests/tests/conformance.rs`) and says,
//! per kind, how the gateway provides what the step tests: with the backend's own feature,
//! by building it from the backend's primitives, the same way in front of every kind, or
//! not at all. The suite checks the table against what it ran: for each kind, the steps it
//! ran are exactly the rows that kind supports, so a row cannot claim support that no test
//! exercises, nor hide a step that passes. `docs/compatibility.md` is this table rendered
//! ([`render`]); a test fails when the two differ.

use crate::harness::Kind;

/// How one kind provides one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The backend's own API does it (S3's multipart upload, GCS's MD5).
    Native,
    /// Switchyard builds it from the backend's primitives (an `fs` attribute, a staged
    /// blob, a marker file).
    Emulated,
    /// Switchyard does it in front of the member, alike for every kind (conditions,
    /// checksums, request ids).
    Gateway,
    /// Not available on this kind.
    No,
}

impl Mode {
    fn cell(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Emulated => "emulated",
            Mode::Gateway => "gateway",
            Mode::No => "not supported",
        }
    }
}

/// One row: the conformance step, what it covers, the mode per kind (in [`KINDS`] order),
/// and why, where the modes need a word.
pub struct Row {
    pub step: &'static str,
    pub what: &'static str,
    pub modes: [Mode; 5],
    pub note: &'static str,
}

/// The column order of [`Row::modes`].
pub const KINDS: [Kind; 5] = [Kind::Fs, Kind::Memory, Kind::S3, Kind::Azure, Kind::Gcs];

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Fs => "fs",
        Kind::Memory => "memory",
        Kind::S3 => "s3",
        Kind::Azure => "azure",
        Kind::Gcs => "gcs",
    }
}

use Mode::{Emulated as E, Gateway as G, Native as N, No};

pub const ROWS: &[Row] = &[
    Row {
        step: "put_get_attributes",
        what: "PutObject, GetObject, HeadObject with Content-Type, Cache-Control, Content-Disposition, Content-Encoding, Content-Language and user metadata",
        modes: [E, N, N, N, N],
        note: "`fs` keeps the attributes in an extended attribute of the file",
    },
    Row {
        step: "ranges",
        what: "GetObject with `Range` (first-last, open-ended, suffix; 416 past the end)",
        modes: [N, N, N, N, N],
        note: "",
    },
    Row {
        step: "conditional_reads",
        what: "GetObject and HeadObject with If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since",
        modes: [G, G, G, G, G],
        note: "compared with the S3 ETag and Last-Modified the member answers",
    },
    Row {
        step: "conditional_writes",
        what: "PutObject with `If-None-Match: *` and `If-Match`",
        modes: [E, N, N, N, N],
        note: "`fs`: creates are atomic across engines (a hard link), `If-Match` replaces within one engine; Azure and GCS: the committing request carries the condition (Azure ETag, GCS generation); S3 members without static credentials check before a multipart write (see limitations.md)",
    },
    Row {
        step: "listing",
        what: "ListObjectsV2 and ListObjects: prefix, delimiter, start-after, marker, max-keys, continuation, `encoding-type=url`",
        modes: [E, N, N, N, N],
        note: "`fs` walks the directory tree in S3's order; a listing of several members is merged by the gateway",
    },
    Row {
        step: "copies",
        what: "CopyObject (COPY and REPLACE directives, conditions on the source)",
        modes: [E, N, N, N, N],
        note: "within one member the backend copies; across members the gateway streams the bytes",
    },
    Row {
        step: "deletes",
        what: "DeleteObject and DeleteObjects (quiet and verbose, missing keys)",
        modes: [N, N, N, N, N],
        note: "",
    },
    Row {
        step: "version_ids",
        what: "`versionId=null` on GET, HEAD, DELETE and copy sources of an unversioned bucket; any other version id refused (400)",
        modes: [G, G, G, G, G],
        note: "an unversioned bucket's objects have the one version `null`",
    },
    Row {
        step: "versioning",
        what: "Put/GetBucketVersioning, version ids on PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects; delete markers; ListObjectVersions",
        modes: [E, E, No, E, E],
        note: "the gateway keeps each version as an object of its own under `.switchyard/versions/` (configuration.md); Azurite and fake-gcs-server have no usable versioning of their own to pass through; S3: the next row",
    },
    Row {
        step: "versioning_native",
        what: "Put/GetBucketVersioning on the backend bucket, version ids (`<member>.<S3's id>`) on PutObject, CopyObject, CompleteMultipartUpload, GetObject, HeadObject, DeleteObject, DeleteObjects; S3's delete markers; tags per version; ListObjectVersions pages passed through; several members",
        modes: [No, No, N, No, No],
        note: "S3's own versioning, passed through: the versions are S3's, listed alike by S3's own client on the backend bucket; needs static credentials; S3 members are not in the `versioned_*` rows below: this step covers them",
    },
    Row {
        step: "versioned_copies",
        what: "CopyObject into a versioned bucket (a new version) and from a `versionId` (to any bucket, over its own key: a restore)",
        modes: [E, E, No, E, E],
        note: "the copy streams through the gateway into the new version's file",
    },
    Row {
        step: "versioned_multipart",
        what: "CompleteMultipartUpload in a versioned bucket: a new version (or the null one while suspended), multipart ETag kept",
        modes: [E, E, No, E, No],
        note: "the parts are assembled into the version's file, then published as a PUT is; GCS members answer `501` (their multipart uploads complete at their own key, limitations.md)",
    },
    Row {
        step: "versioned_tags",
        what: "Get/Put/DeleteObjectTagging of one version (`versionId`) or of the current one in a versioned bucket",
        modes: [E, E, No, E, E],
        note: "tags are kept on the version's file and on the key's copy of the current version",
    },
    Row {
        step: "versioned_acls",
        what: "Get/PutObjectAcl of one version (`versionId`) or of the current one in a versioned bucket with ACLs enabled; `x-amz-acl` per version; a version's grants decide reads of it; `s3:PutObjectVersionAcl` and `s3:PutObjectVersionTagging` for a named version",
        modes: [E, E, No, No, No],
        note: "kept on the version's file beside its tags; S3, Azure and GCS members take the default ACL only, as unversioned (`object_acls`)",
    },
    Row {
        step: "versioned_conditional_writes",
        what: "`If-None-Match: *` and `If-Match` PUTs in a versioned bucket, against the current version",
        modes: [E, E, No, E, E],
        note: "checked before and after the version's file is written; see limitations.md for what is atomic across engines",
    },
    Row {
        step: "versioned_bucket_delete",
        what: "DeleteBucket refused (409 BucketNotEmpty) while a versioned bucket holds any version or delete marker",
        modes: [E, E, No, E, E],
        note: "",
    },
    Row {
        step: "multipart",
        what: "CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads",
        modes: [E, E, N, E, N],
        note: "`fs` and memory stage parts under the gateway's reserved prefix; Azure stages them as blobs and assembles them at completion (one more copy of the data)",
    },
    Row {
        step: "integrity",
        what: "Content-MD5 and `x-amz-checksum-*` (header or aws-chunked trailer) checked while the body streams; a mismatch stores nothing",
        modes: [G, G, G, G, G],
        note: "",
    },
    Row {
        step: "keys",
        what: "Keys with spaces, Unicode, `+`, up to 1024 bytes; unsupported keys refused (400)",
        modes: [N, N, N, N, N],
        note: "keys with `//`, `.` or `..` segments or control characters are refused on every kind",
    },
    Row {
        step: "etags",
        what: "ETags as S3 gives them: MD5 of the content, `<md5 of part md5s>-N` for multipart uploads, in PUT, HEAD, GET, LIST, copy and completion answers",
        modes: [E, E, N, E, N],
        note: "`fs` keeps the ETag in its attribute, memory with the object, Azure in `Content-MD5` (a multipart ETag in metadata); GCS computes the MD5 (a multipart ETag goes in metadata)",
    },
    Row {
        step: "object_attributes",
        what: "GetObjectAttributes: ETag, ObjectSize, StorageClass, TotalPartsCount",
        modes: [G, G, G, G, G],
        note: "part lists are not kept",
    },
    Row {
        step: "stored_checksums",
        what: "A PUT's `x-amz-checksum-*` (any algorithm, header or trailer) kept with the object: HEAD, GET (`x-amz-checksum-mode: ENABLED`, not for a range), GetObjectAttributes `Checksum`; copies keep it or compute another",
        modes: [E, E, E, E, E],
        note: "kept as the metadata `switchyard-checksum`; an S3 or GCS member keeps a trailer's checksum of a body larger than a part by a second request (GCS) or not at all (S3)",
    },
    Row {
        step: "multipart_checksums",
        what: "Multipart uploads with a checksum algorithm: part checksums checked at completion, COMPOSITE (`-N`) and FULL_OBJECT (CRCs) checksums answered and kept",
        modes: [E, E, No, E, E],
        note: "an S3 member takes an object's metadata when the upload starts, before the checksum is known: CompleteMultipartUpload answers it, HEAD does not",
    },
    Row {
        step: "folder_markers",
        what: "Keys ending in `/` (folder markers): written, read, listed with and without delimiter, deleted",
        modes: [E, N, N, N, N],
        note: "`fs` stores a marker as the file `.switchyard-folder` in the directory; S3 members need static credentials",
    },
    Row {
        step: "buckets",
        what: "ListBuckets, HeadBucket, GetBucketLocation; CreateBucket of an existing bucket (BucketAlreadyOwnedByYou / BucketAlreadyExists)",
        modes: [G, G, G, G, G],
        note: "",
    },
    Row {
        step: "request_ids",
        what: "`x-amz-request-id` and `x-amz-id-2` on every answer, equal to `RequestId` in error bodies",
        modes: [G, G, G, G, G],
        note: "",
    },
    Row {
        step: "chunked_bodies",
        what: "PutObject and UploadPart with `Transfer-Encoding: chunked` and no Content-Length",
        modes: [G, G, G, G, G],
        note: "",
    },
    Row {
        step: "checked_before_not_implemented",
        what: "Requests for what is not supported answer 403 or 404 first where S3 would, then 501",
        modes: [G, G, G, G, G],
        note: "",
    },
    Row {
        step: "dynamic_buckets",
        what: "CreateBucket and DeleteBucket (with incomplete uploads), Put/Get/DeleteBucketPolicy on created buckets",
        modes: [E, E, E, E, E],
        note: "a `[dynamic_buckets]` template makes a directory per bucket (`fs`), a store per bucket (memory) or a prefix per bucket inside one S3 bucket, Azure container or GCS bucket",
    },
    Row {
        step: "acls",
        what: "Get/PutBucketAcl, Get/PutObjectAcl, `x-amz-acl` and `x-amz-grant-*` on PutObject, CopyObject and CreateMultipartUpload under object ownership BucketOwnerEnforced (ACLs disabled: the owner's FULL_CONTROL; other ACLs 400 AccessControlListNotSupported); GetBucketOwnershipControls",
        modes: [G, G, G, G, G],
        note: "nothing is stored with objects: under BucketOwnerEnforced an ACL is always the owner's FULL_CONTROL; see `bucket_acls` and `object_acls` for ACLs enabled",
    },
    Row {
        step: "dynamic_acls",
        what: "Owner of buckets made by CreateBucket, CreateBucket's ACL under BucketOwnerEnforced, Put/Get/DeletePublicAccessBlock (BlockPublicPolicy, RestrictPublicBuckets, GetBucketPolicyStatus) on created buckets",
        modes: [E, E, E, E, E],
        note: "the block is stored beside the bucket policy, under the reserved prefix of the bucket's member",
    },
    Row {
        step: "tagging",
        what: "PutObjectTagging, GetObjectTagging, DeleteObjectTagging; `x-amz-tagging` on PutObject, CreateMultipartUpload and CopyObject (`x-amz-tagging-directive`); `x-amz-tagging-count`; AWS's limits and error codes",
        modes: [E, E, N, N, E],
        note: "S3 keeps them as object tags, Azure as blob index tags (which take only ASCII letters, digits, spaces and `+ - . / : = _`: others are `400 InvalidTag` there); `fs` keeps them in the file's extended attribute, GCS and memory in a metadata entry with the object; S3 members without static credentials answer `501 NotImplemented` (limitations.md)",
    },
    Row {
        step: "bucket_acls",
        what: "ACLs enabled on buckets made by CreateBucket: Put/Get/DeleteBucketOwnershipControls (ObjectWriter, BucketOwnerPreferred), CreateBucket's `x-amz-object-ownership`, Put/GetBucketAcl (canned, `x-amz-grant-*`, AccessControlPolicy body); grants to AllUsers, AuthenticatedUsers and users by canonical id decide ListBucket and PutObject; an explicit Deny wins; BlockPublicAcls, IgnorePublicAcls; back to BucketOwnerEnforced",
        modes: [E, E, E, E, E],
        note: "the ownership and ACL are stored beside the bucket policy, under the reserved prefix of the bucket's member",
    },
    Row {
        step: "object_acls",
        what: "Object ACLs with ACLs enabled: `x-amz-acl` and `x-amz-grant-*` on PutObject, CopyObject and CreateMultipartUpload, Get/PutObjectAcl; object grants decide GetObject; the writer owns its object (ObjectWriter; BucketOwnerPreferred with bucket-owner-full-control: the bucket owner); Deny, BlockPublicAcls, IgnorePublicAcls, BucketOwnerEnforced",
        modes: [E, E, No, No, No],
        note: "`fs` keeps the ACL in the file's extended attribute beside the tags, memory with the object; on the other kinds an ACL other than the owner's FULL_CONTROL answers `501 NotImplemented` (limitations.md)",
    },
];

/// Steps that check what the table does not show (the mover's digest path, pages of a
/// backend listing, encrypted S3 objects): run where they apply, not rows.
pub const INTERNAL_STEPS: &[&str] = &[
    "backend_pages",
    "declared_digest",
    "content_md5_of_encrypted_objects",
    "object_acls_refused",
    "versioned_multipart_refused",
    "versioned_acls_refused",
];

/// The steps a conformance run on `kind` must have run: the rows `kind` supports.
pub fn supported_steps(kind: Kind) -> Vec<&'static str> {
    let col = KINDS.iter().position(|k| *k == kind).expect("a known kind");
    ROWS.iter()
        .filter(|r| r.modes[col] != Mode::No)
        .map(|r| r.step)
        .collect()
}

/// Checks the steps a conformance run on `kind` ran (internal steps aside) against the
/// table: the same steps, each once.
pub fn check_ran(kind: Kind, ran: &[&str]) {
    let mut ran: Vec<&str> = ran
        .iter()
        .copied()
        .filter(|s| !INTERNAL_STEPS.contains(s))
        .collect();
    ran.sort_unstable();
    let mut want = supported_steps(kind);
    want.sort_unstable();
    assert_eq!(
        ran,
        want,
        "the conformance steps run on {} differ from the compatibility table (tests/src/compat.rs)",
        kind_name(kind)
    );
}

/// The table as `docs/compatibility.md` has it.
pub fn render() -> String {
    let mut out = String::from(
        "# Compatibility: S3 operations by member kind\n\n\
         <!-- Generated from tests/src/compat.rs by `UPDATE_DOCS=1 cargo test -p switchyard-tests --test suite conformance::compatibility`; do not edit. -->\n\n\
         Each row is one step of the conformance suite (`tests/tests/conformance.rs`), which\n\
         runs through the gateway against every member kind on every CI run: `fs`, memory, an\n\
         S3 server (moto), Azure (Azurite) and GCS (fake-gcs-server), with aws-sdk-s3 (boto3\n\
         and the aws CLI run their own suites on the side). The suite checks this table: on\n\
         each kind it runs exactly the rows that kind supports, and each of those passes.\n\n\
         - **native**: the backend's own feature does it.\n\
         - **emulated**: Switchyard builds it from the backend's primitives (an attribute, a\n\
         \x20 staged object, a marker file); what it stores stays readable without the gateway\n\
         \x20 (see [configuration.md](configuration.md) for each kind's layout).\n\
         - **gateway**: Switchyard does it in front of the member, alike for every kind.\n\
         - **not supported**: see [limitations.md](limitations.md).\n\n",
    );
    out.push_str("| what | step |");
    for k in KINDS {
        out.push_str(&format!(" {} |", kind_name(k)));
    }
    out.push_str(" notes |\n|---|---|");
    out.push_str(&"---|".repeat(KINDS.len()));
    out.push_str("---|\n");
    for r in ROWS {
        out.push_str(&format!("| {} | `{}` |", r.what, r.step));
        for m in r.modes {
            out.push_str(&format!(" {} |", m.cell()));
        }
        out.push_str(&format!(" {} |\n", r.note));
    }
    out.push_str(
        "\nWhat the gateway does not offer on any kind yet (object lock, SSE-C, lifecycle)\n\
         answers `501 NotImplemented`; an ACL that grants more than the owner's FULL_CONTROL\n\
         on a bucket under BucketOwnerEnforced (the default) answers S3's own `400\n\
         AccessControlListNotSupported`: see [limitations.md](limitations.md).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_named_once() {
        let mut steps: Vec<&str> = ROWS.iter().map(|r| r.step).collect();
        steps.extend(INTERNAL_STEPS);
        let n = steps.len();
        steps.sort_unstable();
        steps.dedup();
        assert_eq!(steps.len(), n);
    }

    /// A kind that ran a step the table says it does not support fails the check, and so
    /// does one that skipped a step the table says it supports.
    #[test]
    #[should_panic(expected = "differ from the compatibility table")]
    fn a_step_run_where_the_table_says_no_fails() {
        let mut ran = supported_steps(Kind::S3);
        // A step another kind supports, or a made-up one once every kind has every step.
        let extra = ROWS
            .iter()
            .map(|r| r.step)
            .find(|s| !ran.contains(s))
            .unwrap_or("a_step_no_kind_has");
        ran.push(extra);
        check_ran(Kind::S3, &ran);
    }

    #[test]
    #[should_panic(expected = "differ from the compatibility table")]
    fn a_supported_step_left_out_fails() {
        let mut ran = supported_steps(Kind::Fs);
        ran.retain(|s| *s != "multipart");
        check_ran(Kind::Fs, &ran);
    }
}
