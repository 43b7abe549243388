//! The one place where Switchyard errors become S3 errors.

use s3s::{S3Error, S3ErrorCode};

use crate::model::Error;

pub fn to_s3(e: Error) -> S3Error {
    use S3ErrorCode as C;
    let (code, message): (C, String) = match &e {
        Error::NotFound => (C::NoSuchKey, "The specified key does not exist.".into()),
        Error::NoSuchBucket => (
            C::NoSuchBucket,
            "The specified bucket does not exist.".into(),
        ),
        Error::BucketExists { owned: true } => (
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
                .into(),
        ),
        Error::BucketExists { owned: false } => (
            C::BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
                .into(),
        ),
        Error::BucketNotEmpty => (
            C::BucketNotEmpty,
            "The bucket you tried to delete is not empty.".into(),
        ),
        Error::OperationAborted(m) => (C::OperationAborted, m.clone()),
        Error::Precondition(what) => (
            C::PreconditionFailed,
            format!("At least one of the pre-conditions you specified did not hold ({what})."),
        ),
        Error::NotModified => (C::NotModified, "Not Modified".into()),
        Error::InvalidRange => (
            C::InvalidRange,
            "The requested range is not satisfiable.".into(),
        ),
        Error::InvalidArgument(m) => (C::InvalidArgument, m.clone()),
        Error::InvalidRequest(m) => (C::InvalidRequest, m.clone()),
        Error::InvalidTag(m) => (C::InvalidTag, m.clone()),
        Error::BadRequest(m) => {
            let mut e = S3Error::with_message(C::Custom("BadRequest".into()), m.clone());
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            return e;
        }
        Error::KeyTooLong(m) => (C::KeyTooLongError, format!("Your key is too long: {m}.")),
        Error::MetadataTooLarge(m) => (
            C::MetadataTooLarge,
            format!("Your metadata headers exceed the maximum allowed metadata size: {m}."),
        ),
        Error::InvalidDigest => (
            C::InvalidDigest,
            "The Content-MD5 you specified was invalid.".into(),
        ),
        Error::BadDigest => (
            C::BadDigest,
            "The Content-MD5 you specified did not match what we received.".into(),
        ),
        Error::ChecksumMismatch(alg) => (
            C::BadDigest,
            format!("The {alg} you specified did not match the calculated checksum."),
        ),
        Error::TooLarge(limit) => (
            C::EntityTooLarge,
            format!("Your proposed upload exceeds the maximum allowed size of {limit} bytes."),
        ),
        Error::IncompleteBody => (
            C::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
                .into(),
        ),
        Error::RequestTimeout(_) => (
            C::RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period."
                .into(),
        ),
        Error::NoSuchUpload => (
            C::NoSuchUpload,
            "The specified multipart upload does not exist.".into(),
        ),
        Error::InvalidPart(m) => (
            C::InvalidPart,
            format!("One or more of the specified parts could not be found: {m}."),
        ),
        Error::InvalidPartOrder => (
            C::InvalidPartOrder,
            "The list of parts was not in ascending order.".into(),
        ),
        Error::EntityTooSmall(m) => (
            C::EntityTooSmall,
            format!("Your proposed upload is smaller than the minimum allowed object size: {m}."),
        ),
        Error::NotImplemented(m) => (C::NotImplemented, m.clone()),
        Error::AccessDenied => (C::AccessDenied, "Access Denied".into()),
        Error::MalformedPolicy(m) => (C::MalformedPolicy, m.clone()),
        Error::NoSuchBucketPolicy => (
            C::NoSuchBucketPolicy,
            "The bucket policy does not exist".into(),
        ),
        Error::ClientBody(m) => (
            C::IncompleteBody,
            format!("The request body could not be read: {m}"),
        ),
        // What failed inside is on the request's access log line, not in the answer.
        Error::Unavailable { backend, .. } => (
            C::ServiceUnavailable,
            format!("Backend {backend} is unavailable; please retry."),
        ),
        Error::PolicyFailed { policy, .. } => (
            C::ServiceUnavailable,
            format!("Policy {policy} could not decide; please retry."),
        ),
        Error::Denied { code, message } => {
            use crate::policy::DenyCode as D;
            let code = match code {
                D::AccessDenied => C::AccessDenied,
                D::InvalidRequest => C::InvalidRequest,
                D::InvalidArgument => C::InvalidArgument,
                D::EntityTooLarge => C::EntityTooLarge,
                D::SlowDown => C::SlowDown,
                D::ServiceUnavailable => C::ServiceUnavailable,
            };
            (code, message.clone())
        }
        Error::Internal(_) => (
            C::InternalError,
            "We encountered an internal error. Please try again.".into(),
        ),
        Error::NoSuchVersion => (
            C::NoSuchVersion,
            "The specified version does not exist.".into(),
        ),
        Error::DeleteMarker { version_id, named } => {
            let (code, message) = if *named {
                (
                    C::MethodNotAllowed,
                    "The specified method is not allowed against this resource.",
                )
            } else {
                (C::NoSuchKey, "The specified key does not exist.")
            };
            let mut e = S3Error::with_message(code, message);
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Ok(v) = http::HeaderValue::from_str(version_id) {
                headers.insert("x-amz-version-id", v);
            }
            e.set_headers(headers);
            return e;
        }
    };
    S3Error::with_message(code, message)
}
