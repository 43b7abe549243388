//! Virtual-bucket semantics across members, authentication, presigned URLs and failing
//! backends.

use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use switchyard_tests::emulators::Moto;
use switchyard_tests::harness::{
    ACCESS_KEY, Gateway, SECRET_KEY, TempDir, err_of, presign_query, s3_client, serve_s3s_fs,
    tmp_files, versioning_config,
};

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &'static [u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
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

/// Two fs members, each also exposed alone as its own bucket so a test can place keys in
/// one member.
fn two_member_config(a: &TempDir, b: &TempDir) -> String {
    format!(
        r#"version = 1
[backends.new]
kind = "fs"
root = {:?}
[backends.old]
kind = "fs"
root = {:?}
[buckets.merged]
members = ["new", "old"]
[buckets.only-new]
members = ["new"]
[buckets.only-old]
members = ["old"]
"#,
        a.0.display().to_string(),
        b.0.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_member_bucket_falls_through_merges_and_deletes_everywhere() {
    let (a, b) = (TempDir::new("new"), TempDir::new("old"));
    let gw = Gateway::start(&two_member_config(&a, &b)).await.unwrap();
    let c = gw.client();

    // Keys only in the old member, only in the new one, and in both (different bytes).
    for i in 0..30 {
        let k = format!("k/{i:03}");
        match i % 3 {
            0 => put(&c, "only-old", &k, b"old").await,
            1 => put(&c, "only-new", &k, b"new").await,
            _ => {
                put(&c, "only-old", &k, b"old").await;
                put(&c, "only-new", &k, b"new").await;
            }
        }
    }
    // Fall-through: the new member first, then the old one.
    assert_eq!(get(&c, "merged", "k/000").await, b"old");
    assert_eq!(get(&c, "merged", "k/001").await, b"new");
    assert_eq!(
        get(&c, "merged", "k/002").await,
        b"new",
        "the higher-priority member wins"
    );

    // Merged pagination with max-keys smaller than either member's count.
    let mut keys = Vec::new();
    let mut sizes = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_objects_v2()
            .bucket("merged")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        keys.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        sizes.extend(out.contents().iter().map(|o| o.size().unwrap()));
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
        assert!(pages < 20);
    }
    let want: Vec<String> = (0..30).map(|i| format!("k/{i:03}")).collect();
    assert_eq!(keys, want, "sorted, de-duplicated, nothing lost");
    assert_eq!(pages, 5);
    assert!(sizes.iter().all(|s| *s == 3));

    // A token from one engine is good on another: tokens carry the position.
    let gw2 = Gateway::start(&two_member_config(&a, &b)).await.unwrap();
    let first = c
        .list_objects_v2()
        .bucket("merged")
        .max_keys(10)
        .send()
        .await
        .unwrap();
    let next = gw2
        .client()
        .list_objects_v2()
        .bucket("merged")
        .max_keys(10)
        .continuation_token(first.next_continuation_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(next.contents()[0].key(), Some("k/010"));

    // Writes go to the first member.
    put(&c, "merged", "fresh", b"f").await;
    assert!(a.0.join("fresh").exists());
    assert!(!b.0.join("fresh").exists());

    // Delete removes the key from every member.
    c.delete_object()
        .bucket("merged")
        .key("k/002")
        .send()
        .await
        .unwrap();
    assert!(!a.0.join("k/002").exists() && !b.0.join("k/002").exists());
    let e = c
        .get_object()
        .bucket("merged")
        .key("k/002")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    gw2.stop().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authentication_and_anonymous_access() {
    let dir = TempDir::new("auth");
    let cfg = format!(
        "version = 1\n[backends.d]\nkind = \"fs\"\nroot = {:?}\nprefix = \"private\"\n[backends.p]\nkind = \"fs\"\nroot = {:?}\nprefix = \"public\"\n[buckets.private]\nmembers = [\"d\"]\n[buckets.public]\nmembers = [\"p\"]\nanonymous = \"read\"\n",
        dir.0.display().to_string(),
        dir.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();
    put(&c, "private", "k", b"secret").await;
    put(&c, "public", "k", b"for everyone").await;

    let wrong = s3_client(&gw.endpoint, ACCESS_KEY, "not-the-secret");
    let e = wrong
        .get_object()
        .bucket("private")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "SignatureDoesNotMatch".into()));
    let unknown = s3_client(&gw.endpoint, "AKIDUNKNOWN", SECRET_KEY);
    let e = unknown
        .get_object()
        .bucket("private")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (403, "InvalidAccessKeyId".into()));

    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/private/k", gw.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("AccessDenied"));
    // A bucket open for anonymous reads serves GET but refuses PUT.
    let r = http
        .get(format!("{}/public/k", gw.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"for everyone");
    let r = http
        .put(format!("{}/public/new", gw.endpoint))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http.get(format!("{}/", gw.endpoint)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Presigned URLs, and a tampered one.
    let presign = five_minutes();
    let url = c
        .put_object()
        .bucket("private")
        .key("presigned")
        .presigned(presign.clone())
        .await
        .unwrap();
    let r = http
        .put(url.uri())
        .body("via presigned put")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let url = c
        .get_object()
        .bucket("private")
        .key("presigned")
        .presigned(presign.clone())
        .await
        .unwrap();
    let r = http.get(url.uri()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "via presigned put");
    let tampered = url.uri().replace("presigned", "k");
    let r = http.get(tampered).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    gw.stop().await;
}

/// A TCP server that accepts connections and never answers: a backend that hangs.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: enough for the test's few requests.
        for _ in 0..64 {
            match listener.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_backends_give_503_quickly_and_reads_fall_through() {
    let dir = TempDir::new("healthy");
    let (hang, hang_task) = black_hole().await;
    // A port with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let net = "network = { connect_timeout = \"1s\", read_timeout = \"1s\", max_retries = 0, unhealthy_for = \"30s\" }";
    let cfg = format!(
        r#"version = 1
[backends.down]
kind = "s3"
bucket = "b"
endpoint = "{closed}"
allow_http = true
access_key_id = "x"
secret_access_key = "y"
{net}
[backends.hang]
kind = "s3"
bucket = "b"
endpoint = "{hang}"
allow_http = true
access_key_id = "x"
secret_access_key = "y"
{net}
[backends.good]
kind = "fs"
root = {:?}
[buckets.down-only]
members = ["down"]
[buckets.hang-only]
members = ["hang"]
[buckets.fallback]
members = ["down", "good"]
[buckets.good-only]
members = ["good"]
"#,
        dir.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();

    for bucket in ["down-only", "hang-only"] {
        let started = Instant::now();
        let e = c
            .get_object()
            .bucket(bucket)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e), (503, "ServiceUnavailable".into()), "{bucket}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{bucket}: took {:?}",
            started.elapsed()
        );
        let e = c
            .put_object()
            .bucket(bucket)
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e).0, 503, "{bucket}");
        let e = c.list_objects_v2().bucket(bucket).send().await.unwrap_err();
        assert_eq!(err_of(&e).0, 503, "{bucket}");
    }

    // A key only in the healthy member is still served; a missing key is not reported as
    // missing while a member that might hold it is down.
    put(&c, "good-only", "here", b"ok").await;
    assert_eq!(get(&c, "fallback", "here").await, b"ok");
    let e = c
        .get_object()
        .bucket("fallback")
        .key("nowhere")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 503);
    // The failed member is now marked unhealthy and tried last: reads stay fast.
    let started = Instant::now();
    assert_eq!(get(&c, "fallback", "here").await, b"ok");
    assert!(started.elapsed() < Duration::from_secs(1));
    gw.stop().await;
    hang_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backend_killed_mid_upload_fails_fast_and_the_gateway_keeps_serving() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("victim").await.unwrap();
    let dir = TempDir::new("survivor");
    let cfg = format!(
        "version = 1\n[backends.s3]\nkind = \"s3\"\nbucket = \"victim\"\nendpoint = {:?}\nallow_http = true\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\nnetwork = {{ connect_timeout = \"1s\", read_timeout = \"2s\", max_retries = 0 }}\n[backends.fs]\nkind = \"fs\"\nroot = {:?}\n[buckets.remote]\nmembers = [\"s3\"]\n[buckets.local]\nmembers = [\"fs\"]\n",
        moto.endpoint,
        dir.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();

    // A streamed 24 MiB upload (three backend parts) whose backend dies after the first
    // chunks went through.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let url = c
        .put_object()
        .bucket("remote")
        .key("big")
        .presigned(five_minutes())
        .await
        .unwrap();
    let upload = tokio::spawn(async move {
        reqwest::Client::new()
            .put(url.uri())
            .body(body)
            .send()
            .await
    });
    let chunk = bytes::Bytes::from(vec![7u8; 1024 * 1024]);
    for _ in 0..10 {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    drop(moto);
    for _ in 0..14 {
        if tx.send(Ok(chunk.clone())).await.is_err() {
            break;
        }
    }
    drop(tx);
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(30), upload)
        .await
        .expect("the upload must not hang")
        .unwrap();
    // The gateway answers 5xx, or closes the connection instead of answering.
    if let Ok(resp) = outcome {
        assert!(resp.status().is_server_error(), "got {}", resp.status());
    }
    assert!(started.elapsed() < Duration::from_secs(30));

    // Other buckets are unaffected.
    put(&c, "local", "still-here", b"yes").await;
    assert_eq!(get(&c, "local", "still-here").await, b"yes");
    gw.stop().await;
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_gone_mid_upload_leaves_nothing_behind() {
    let dir = TempDir::new("partial");
    let cfg = format!(
        "version = 1\n[backends.fs]\nkind = \"fs\"\nroot = {:?}\n[buckets.local]\nmembers = [\"fs\"]\n",
        dir.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();
    let (addr, path_and_query) = presigned(
        &gw,
        c.put_object()
            .bucket("local")
            .key("partial")
            .presigned(five_minutes()),
    )
    .await;
    // Declare 10 MiB, send 3, then hang up.
    let sock = send_partly(
        (addr, path_and_query),
        "PUT",
        10 << 20,
        &vec![1u8; 3 * 1024 * 1024],
    )
    .await;
    drop(sock);
    // Give the gateway a moment to notice, bounded.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if tmp_files(&dir.0).is_empty() {
            break;
        }
    }
    let e = c
        .head_object()
        .bucket("local")
        .key("partial")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e).0, 404);
    assert!(!dir.0.join("partial").exists());
    assert_eq!(
        tmp_files(&dir.0),
        Vec::<std::path::PathBuf>::new(),
        "temporary file left behind"
    );
    gw.stop().await;
}

/// An upload that takes longer than the backend's `read_timeout` (here 1 s) still
/// succeeds as long as bytes keep flowing: the timeout is for silence, not for the
/// transfer. The body streams through to S3 in one request, a piece every 300 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_upload_longer_than_the_read_timeout_streams_through() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("slow").await.unwrap();
    let cfg = format!(
        "version = 1\n[backends.s3]\nkind = \"s3\"\nbucket = \"slow\"\nendpoint = {:?}\nallow_http = true\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\n[backends.s3.network]\nread_timeout = \"1s\"\n[buckets.slow]\nmembers = [\"s3\"]\n",
        moto.endpoint
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();
    let url = c
        .put_object()
        .bucket("slow")
        .key("trickle")
        .presigned(five_minutes())
        .await
        .unwrap();
    const PIECES: usize = 8;
    const PIECE: usize = 64 * 1024;
    let body = futures::stream::iter(0..PIECES).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![i as u8; PIECE]))
    });
    let started = Instant::now();
    let r = reqwest::Client::new()
        .put(url.uri())
        .header("content-length", PIECES * PIECE)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    assert!(started.elapsed() > Duration::from_secs(2));
    let got = get(&c, "slow", "trickle").await;
    assert_eq!(got.len(), PIECES * PIECE);
    assert!(got[PIECE * 7..].iter().all(|b| *b == 7));
    gw.stop().await;
}

/// A client connection sizes its read buffer when its first bytes arrive; until then it
/// waits outside hyper's graceful shutdown. Stopping the engine must not wait the whole
/// grace period (30 s by default) for a connection that never speaks, nor cut a request
/// that is being answered on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_does_not_wait_for_silent_connections() {
    use tokio::io::AsyncReadExt;
    let cfg = "version = 1\n[backends.m]\nkind = \"memory\"\n[buckets.quiet]\nmembers = [\"m\"]\n";
    let mut gw = Gateway::start(cfg).await.unwrap();
    let c = gw.client();
    put(&c, "quiet", "k", b"still served").await;
    let addr = gw.endpoint.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // A request on a connection opened after it: connections are accepted in order, so
    // once this is answered the silent one has been accepted too. It stays open, idle.
    assert_eq!(get(&gw.client(), "quiet", "k").await, b"still served");
    let server = gw.server.take().unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown waited for a silent connection");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The silent connection was closed, not left open.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the silent connection is still open")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// Reads `sock` until the server closes it (end of stream or reset), for at most
/// `within`; what was read, or `None` if it was still open then.
async fn read_until_closed(sock: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(got)
}

/// The path and query of a presigned request, and the address to send it to.
async fn presigned(
    gw: &Gateway,
    req: impl std::future::Future<
        Output = Result<
            aws_sdk_s3::presigning::PresignedRequest,
            aws_sdk_s3::error::SdkError<impl std::fmt::Debug>,
        >,
    >,
) -> (String, String) {
    let url = req.await.unwrap();
    let addr = gw.endpoint.trim_start_matches("http://").to_owned();
    let path_and_query = url.uri().split_once(&addr).unwrap().1.to_owned();
    (addr, path_and_query)
}

/// As [`presigned`], for requests the SDK does not presign (those with an XML body):
/// signed in the query for five minutes, the body unsigned.
fn presign_raw(gw: &Gateway, method: &str, path_and_query: &str) -> (String, String) {
    presign_query(
        &gw.endpoint,
        (ACCESS_KEY, SECRET_KEY),
        method,
        path_and_query,
        PRESIGNED_FOR,
    )
}

/// How long test requests are presigned for.
const PRESIGNED_FOR: Duration = Duration::from_secs(300);

fn five_minutes() -> PresigningConfig {
    PresigningConfig::expires_in(PRESIGNED_FOR).unwrap()
}

/// A PutObject of `bucket/key` that declares 1 MiB, sends `sent` bytes and stops. The
/// gateway must answer `400 RequestTimeout` and close; returns how long after the last
/// byte that came.
async fn upload_that_stops(gw: &Gateway, bucket: &str, key: &str, sent: usize) -> Duration {
    let put = presigned(
        gw,
        gw.client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .presigned(five_minutes()),
    )
    .await;
    request_that_stops(put, "PUT", 1 << 20, &vec![7u8; sent]).await
}

/// Opens a connection and sends a presigned request that declares a body of `declared`
/// bytes, of which only `sent` follow.
async fn send_partly(
    (addr, path_and_query): (String, String),
    method: &str,
    declared: usize,
    sent: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(sent).await.unwrap();
    sock
}

/// A presigned request that declares a body of `declared` bytes, sends `sent` and stops;
/// as [`upload_that_stops`].
async fn request_that_stops(
    request: (String, String),
    method: &str,
    declared: usize,
    sent: &[u8],
) -> Duration {
    let mut sock = send_partly(request, method, declared, sent).await;
    let started = Instant::now();
    let answer = read_until_closed(&mut sock, Duration::from_secs(10))
        .await
        .expect("stalled request kept open");
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    waited
}

/// `server.client_timeout` (1 s here) closes connections whose client stalls: before
/// the first byte, inside a request head, between requests on a kept-alive connection,
/// and while an answer waits to be read. A body that stalls fails its request with
/// `RequestTimeout` and leaves the object as it was. The engine serves on afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_clients_are_cut_off_and_lose_nothing() {
    use tokio::io::AsyncWriteExt;
    let dir = TempDir::new("stall");
    let cfg = format!(
        "version = 1\n[server]\nclient_timeout = \"1s\"\nadmin_listen = \"127.0.0.1:0\"\n[backends.fs]\nkind = \"fs\"\nroot = {:?}\n[buckets.local]\nmembers = [\"fs\"]\n",
        dir.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();
    put(&c, "local", "kept", b"the old version").await;
    let addr = gw.endpoint.trim_start_matches("http://").to_owned();
    let admin = gw
        .server
        .as_ref()
        .unwrap()
        .admin_addr()
        .unwrap()
        .to_string();
    let within = Duration::from_secs(10);

    // Silent from the start, and a head that never ends, on both listeners.
    let mut silent = Vec::new();
    for at in [&addr, &admin] {
        silent.push(tokio::net::TcpStream::connect(at).await.unwrap());
        let mut half = tokio::net::TcpStream::connect(at).await.unwrap();
        half.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {at}\r\nX-A: ").as_bytes())
            .await
            .unwrap();
        silent.push(half);
    }
    let started = Instant::now();
    for (i, mut conn) in silent.into_iter().enumerate() {
        assert_eq!(
            read_until_closed(&mut conn, within).await.as_deref(),
            Some(&b""[..]),
            "connection {i}"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The admin listener still answers.
    let mut probe = tokio::net::TcpStream::connect(&admin).await.unwrap();
    probe
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut probe, within).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Kept alive after a complete answer, then idle.
    let (addr, get_kept) = presigned(
        &gw,
        c.get_object()
            .bucket("local")
            .key("kept")
            .presigned(five_minutes()),
    )
    .await;
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(format!("GET {get_kept} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, within)
        .await
        .expect("idle connection kept open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("the old version"), "{answer}");

    // A body that stops: 1 MiB declared, 100 KiB sent.
    upload_that_stops(&gw, "local", "kept", 100 * 1024).await;
    assert_eq!(get(&c, "local", "kept").await, b"the old version");
    assert_eq!(
        tmp_files(&dir.0),
        Vec::<std::path::PathBuf>::new(),
        "temporary file left behind"
    );

    // An XML body that stops: s3s collects CompleteMultipartUpload's part list before
    // the handler runs. The upload stays as it was and completes afterwards.
    let id = c
        .create_multipart_upload()
        .bucket("local")
        .key("parts")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let etag = c
        .upload_part()
        .bucket("local")
        .key("parts")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let complete = presign_raw(&gw, "POST", &format!("/local/parts?uploadId={id}"));
    let waited = request_that_stops(complete, "POST", xml.len(), &xml.as_bytes()[..40]).await;
    assert!(waited >= Duration::from_millis(900));
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build();
    c.complete_multipart_upload()
        .bucket("local")
        .key("parts")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "local", "parts").await, b"one part");

    // An answer nobody reads: 64 MiB, far more than the sockets' buffers hold. Once the
    // gateway gives up, what can still be read ends short of the object.
    const BIG: usize = 64 << 20;
    c.put_object()
        .bucket("local")
        .key("big")
        .body(ByteStream::from(vec![1u8; BIG]))
        .send()
        .await
        .unwrap();
    let (_, get_big) = presigned(
        &gw,
        c.get_object()
            .bucket("local")
            .key("big")
            .presigned(five_minutes()),
    )
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut unread = socket.connect(addr.parse().unwrap()).await.unwrap();
    unread
        .write_all(format!("GET {get_big} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = read_until_closed(&mut unread, within)
        .await
        .expect("unread answer kept open");
    assert!(
        got.len() < BIG,
        "the whole object came through: {}",
        got.len()
    );

    // Meanwhile, nothing else was disturbed.
    assert_eq!(get(&c, "local", "big").await.len(), BIG);
    gw.stop().await;
}

/// A client that stalls mid-body in front of an S3 backend whose `read_timeout` is
/// shorter than the client timeout: the request fails as the client's (400
/// `RequestTimeout`), not as the backend's (503), and the backend keeps the old object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_stall_is_not_blamed_on_the_backend() {
    let moto = Moto::start().await.unwrap();
    moto.create_bucket("stall").await.unwrap();
    let cfg = format!(
        "version = 1\n[server]\nclient_timeout = \"2s\"\n[backends.s3]\nkind = \"s3\"\nbucket = \"stall\"\nendpoint = {:?}\nallow_http = true\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\n[backends.s3.network]\nread_timeout = \"500ms\"\n[buckets.stall]\nmembers = [\"s3\"]\n",
        moto.endpoint
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();
    put(&c, "stall", "kept", b"the old version").await;
    let waited = upload_that_stops(&gw, "stall", "kept", 300 * 1024).await;
    assert!(waited >= Duration::from_millis(1500));
    assert_eq!(get(&c, "stall", "kept").await, b"the old version");
    gw.stop().await;
}

/// An S3 member on a server without versioning (s3s-fs answers `501` to
/// GetBucketVersioning and PutBucketVersioning, as R2 does): its bucket is unversioned and
/// serves every request. Every request of a bucket over S3 members first reads the
/// versioning state; a `501` there once failed them all with `503`, and marked the member
/// down. PutBucketVersioning answers the server's `501` and leaves the member healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_s3_member_without_versioning_serves_every_request() {
    let dir = TempDir::new("s3s-fs-origin");
    std::fs::create_dir_all(dir.0.join("origin")).unwrap();
    let endpoint = serve_s3s_fs(&dir.0).await.unwrap();
    let gw = Gateway::start(&format!(
        "version = 1\n[backends.plain]\nkind = \"s3\"\nbucket = \"origin\"\nendpoint = {endpoint:?}\nallow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nnetwork = {{ max_retries = 0 }}\n[buckets.plain]\nmembers = [\"plain\"]\n"
    ))
    .await
    .unwrap();
    let c = gw.client();
    put(&c, "plain", "a/one", b"one").await;
    assert_eq!(get(&c, "plain", "a/one").await, b"one");
    let state = c
        .get_bucket_versioning()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), None);
    let e = c
        .put_bucket_versioning()
        .bucket("plain")
        .versioning_configuration(versioning_config(
            aws_sdk_s3::types::BucketVersioningStatus::Enabled,
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (501, "NotImplemented".into()));
    put(&c, "plain", "a/two", b"two").await;
    let listed = c.list_objects_v2().bucket("plain").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/one", "a/two"]);
    c.delete_object()
        .bucket("plain")
        .key("a/one")
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("plain")
        .key("a/one")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_of(&e), (404, "NoSuchKey".into()));
    assert!(
        dir.0.join("origin/a/two").is_file(),
        "stored as s3s-fs keeps objects"
    );
    gw.stop().await;
}
