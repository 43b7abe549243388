//! TLS: HTTPS listeners (S3 and admin) with a certificate from a test CA, clients that do
//! and do not trust it, handshakes that stall, certificate renewals under load, and
//! backends behind HTTPS with a private CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use switchyard::tls::CertSummary;
use switchyard_tests::harness::{
    ACCESS_KEY, Fixture, Gateway, Kind, SECRET_KEY, TempDir, err_of, repo_root,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A test CA, and server certificates it signs, in a directory of PEM files.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: TempDir,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("Switchyard test CA {name}"),
        );
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let pki = Self {
            ca,
            dir: TempDir::new(&format!("pki-{name}")),
        };
        std::fs::write(pki.ca_file(), pki.ca.pem()).unwrap();
        pki
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    /// A server certificate for 127.0.0.1 and localhost with this serial, valid until the
    /// end of `until_year`, signed by the CA.
    fn leaf(&self, serial: u64, key: &rcgen::KeyPair, until_year: i32) -> String {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "switchyard.test");
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(until_year, 12, 31);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.signed_by(key, &self.ca).unwrap().pem()
    }

    /// Writes a certificate and key pair into the directory.
    fn pair(&self, name: &str, serial: u64, key: &rcgen::KeyPair) -> (PathBuf, PathBuf) {
        let cert = self.dir.0.join(format!("{name}.crt"));
        let key_file = self.dir.0.join(format!("{name}.key"));
        std::fs::write(&cert, self.leaf(serial, key, 2040)).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert, key_file)
    }

    /// A rustls client that trusts only the test CA. Without session resumption, so that
    /// every handshake shows the certificate being served now.
    fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS server configuration with a fresh certificate for 127.0.0.1 from this CA.
    fn server(&self) -> Arc<rustls::ServerConfig> {
        use rustls_pki_types::pem::PemObject as _;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = CertificateDer::from_pem_slice(self.leaf(99, &key, 2040).as_bytes()).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
            .unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        )
    }
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// `[server.tls]` for these files, with `extra` lines (e.g. `listen = …`).
fn tls_table(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[server.tls]\ncert = {}\nkey = {}\n{extra}",
        toml_path(cert),
        toml_path(key)
    )
}

/// A memory-backed bucket `name` that anyone may read and write (for raw HTTP requests).
fn open_bucket(name: &str) -> String {
    format!(
        "[backends.mem]\nkind = \"memory\"\n[buckets.{name}]\nmembers = [\"mem\"]\nanonymous = \"read-write\"\n"
    )
}

fn https_addr(gw: &Gateway) -> SocketAddr {
    gw.server
        .as_ref()
        .unwrap()
        .tls_addr()
        .expect("an HTTPS listener")
}

/// An aws-sdk-s3 client that trusts `ca_pem` only, or (without) the system's roots only.
fn sdk(endpoint: &str, ca_pem: Option<&str>) -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls;
    let trust = match ca_pem {
        Some(pem) => tls::TrustStore::empty().with_pem_certificate(pem.as_bytes().to_vec()),
        None => tls::TrustStore::default(),
    };
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "tls-tests",
        ))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A TLS connection and the certificate its handshake presented.
async fn connect(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> std::io::Result<(TlsStream<TcpStream>, CertificateDer<'static>)> {
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(client)
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await?;
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok((stream, cert))
}

fn serial(cert: &CertificateDer<'_>) -> String {
    CertSummary::parse(cert).expect("X.509").serial
}

/// An HTTP/1.1 connection over `io`, kept alive until dropped.
async fn http1<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// An unsigned request on a kept-alive connection: status and body.
async fn request(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: &'static [u8],
) -> Result<(u16, Bytes), String> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "127.0.0.1")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Polls until a new connection to `addr` presents the certificate with this serial.
async fn wait_for_serial(addr: SocketAddr, client: &Arc<rustls::ClientConfig>, want: &str) {
    let start = Instant::now();
    loop {
        let (_, cert) = connect(addr, client.clone()).await.unwrap();
        if serial(&cert) == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still serving serial {} 30s after the files changed (want {want})",
            serial(&cert)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces `path` the way cert-manager and editors do: a new file renamed over it.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_over_https_and_clients_that_do_not_trust_the_ca() {
    let pki = Pki::new("sdk");
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 1, &key);
    let gw = Gateway::start(&format!(
        "version = 1\n{}[backends.mem]\nkind = \"memory\"\n[buckets.tls]\nmembers = [\"mem\"]\n",
        tls_table(&cert, &key_file, "")
    ))
    .await
    .unwrap();
    let addr = https_addr(&gw);
    // Without `tls.listen`, the S3 listener itself speaks HTTPS.
    assert_eq!(addr, gw.server.as_ref().unwrap().local_addr());
    let endpoint = format!("https://{addr}");
    let c = sdk(&endpoint, Some(&pki.ca.pem()));

    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for k in ["a/1.bin", "a/2.bin", "b.bin"] {
        c.put_object()
            .bucket("tls")
            .key(k)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    let got = c
        .get_object()
        .bucket("tls")
        .key("a/2.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes(), body);
    let list = c
        .list_objects_v2()
        .bucket("tls")
        .prefix("a/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = list.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1.bin", "a/2.bin"]);

    // The system's roots do not include the test CA: the handshake fails, nothing is
    // answered.
    let untrusting = sdk(&endpoint, None);
    let e = untrusting
        .get_object()
        .bucket("tls")
        .key("b.bin")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, SdkError::DispatchFailure(_)), "{e:?}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(Pki::new("other").ca.der().clone()).unwrap();
    let other_ca = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let e = connect(addr, Arc::new(other_ca)).await.unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    // Plain HTTP to the HTTPS listener gets no S3 answer.
    let plain = sdk(&format!("http://{addr}"), None);
    let e = plain.get_object().bucket("tls").key("b.bin").send().await;
    assert!(e.is_err(), "plain HTTP answered on the HTTPS listener");

    // A client that offers only HTTP/2 is refused in the handshake (the listener speaks
    // HTTP/1.1 only).
    let mut h2 = (*pki.client()).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let e = connect(addr, Arc::new(h2)).await.unwrap_err();
    assert!(e.to_string().contains("NoApplicationProtocol"), "{e}");
    // With http/1.1 offered, that is what is agreed.
    let (stream, _) = connect(addr, pki.client()).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_and_https_listeners_side_by_side() {
    let pki = Pki::new("both");
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 2, &key);
    let gw = Gateway::start(&format!(
        "version = 1\n{}[backends.mem]\nkind = \"memory\"\n[buckets.both]\nmembers = [\"mem\"]\n",
        tls_table(&cert, &key_file, "listen = \"127.0.0.1:0\"\n")
    ))
    .await
    .unwrap();
    let (plain_addr, tls_addr) = (gw.server.as_ref().unwrap().local_addr(), https_addr(&gw));
    assert_ne!(plain_addr, tls_addr);
    let plain = gw.client();
    let secure = sdk(&format!("https://{tls_addr}"), Some(&pki.ca.pem()));

    plain
        .put_object()
        .bucket("both")
        .key("from-http")
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .unwrap();
    secure
        .put_object()
        .bucket("both")
        .key("from-https")
        .body(ByteStream::from_static(b"secure"))
        .send()
        .await
        .unwrap();
    // One service behind both: each sees what the other wrote.
    for (c, key, want) in [
        (&secure, "from-http", &b"plain"[..]),
        (&plain, "from-https", &b"secure"[..]),
    ] {
        let got = c.get_object().bucket("both").key(key).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes(), want);
    }
    let listed = plain.list_objects_v2().bucket("both").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(2));

    // Each listener speaks only its own protocol.
    assert!(connect(plain_addr, pki.client()).await.is_err());
    let wrong = sdk(&format!("http://{tls_addr}"), None);
    assert!(
        wrong
            .get_object()
            .bucket("both")
            .key("from-http")
            .send()
            .await
            .is_err()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_listener_over_https_unless_told_otherwise() {
    let pki = Pki::new("admin");
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 3, &key);
    for admin_tls in [true, false] {
        let gw = Gateway::start(&format!(
            "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\n{}{}",
            tls_table(&cert, &key_file, &format!("admin = {admin_tls}\n")),
            open_bucket("adm")
        ))
        .await
        .unwrap();
        let admin = gw.server.as_ref().unwrap().admin_addr().unwrap();
        if admin_tls {
            let (stream, cert) = connect(admin, pki.client()).await.unwrap();
            assert_eq!(serial(&cert), "03");
            let mut conn = http1(stream).await;
            let (status, body) = request(&mut conn, "GET", "/healthz", b"").await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"ok\n"[..]));
            let (status, _) = request(&mut conn, "GET", "/metrics", b"").await.unwrap();
            assert_eq!(status, 200);
            // Plain HTTP gets no answer.
            let mut conn = http1(TcpStream::connect(admin).await.unwrap()).await;
            assert!(request(&mut conn, "GET", "/healthz", b"").await.is_err());
        } else {
            let mut conn = http1(TcpStream::connect(admin).await.unwrap()).await;
            let (status, body) = request(&mut conn, "GET", "/healthz", b"").await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"ok\n"[..]));
            assert!(connect(admin, pki.client()).await.is_err());
        }
        gw.stop().await;
    }
}

/// Reads until the server closes the connection; the time it took. Fails if it is still
/// open after `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(mut s: S, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection is still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_handshakes_are_cut_after_the_client_timeout() {
    let pki = Pki::new("stall");
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 4, &key);
    let gw = Gateway::start(&format!(
        "version = 1\n[server]\nclient_timeout = \"1s\"\nadmin_listen = \"127.0.0.1:0\"\n{}{}",
        tls_table(&cert, &key_file, ""),
        open_bucket("stall")
    ))
    .await
    .unwrap();
    let s3 = https_addr(&gw);
    let admin = gw.server.as_ref().unwrap().admin_addr().unwrap();
    let limit = Duration::from_secs(20);
    for addr in [s3, admin] {
        // Connects and sends nothing.
        let silent = TcpStream::connect(addr).await.unwrap();
        let silent = tokio::spawn(closed_within(silent, limit));
        // Sends the start of a ClientHello: a record header announcing 200 bytes, and 2.
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00])
            .await
            .unwrap();
        let half = tokio::spawn(closed_within(half, limit));
        // Completes the handshake, then sends no request.
        let (done, _) = connect(addr, pki.client()).await.unwrap();
        let done = tokio::spawn(closed_within(done, limit));

        // Meanwhile the listener serves others.
        let (stream, _) = connect(addr, pki.client()).await.unwrap();
        let mut conn = http1(stream).await;
        let path = if addr == s3 { "/stall/k" } else { "/healthz" };
        let method = if addr == s3 { "PUT" } else { "GET" };
        let (status, _) = request(&mut conn, method, path, b"x").await.unwrap();
        assert_eq!(status, 200);

        for (what, task) in [
            ("silent", silent),
            ("half a ClientHello", half),
            ("no request", done),
        ] {
            let took = task.await.unwrap();
            // Not closed at once: the client timeout ran.
            assert!(
                took >= Duration::from_millis(500),
                "{what} on {addr}: closed after {took:?}"
            );
        }
        // And still serves after the cuts.
        let (stream, _) = connect(addr, pki.client()).await.unwrap();
        let mut conn = http1(stream).await;
        let path = if addr == s3 { "/stall/k" } else { "/healthz" };
        let (status, _) = request(&mut conn, "GET", path, b"").await.unwrap();
        assert_eq!(status, 200);
    }

    // An answer nobody reads: 32 MiB, far more than the sockets' and TLS buffers hold.
    // The write deadline still closes the connection; what can still be read ends short.
    const BIG: usize = 32 << 20;
    let c = sdk(&format!("https://{s3}"), Some(&pki.ca.pem()));
    c.put_object()
        .bucket("stall")
        .key("big")
        .body(ByteStream::from(vec![7u8; BIG]))
        .send()
        .await
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let tcp = socket.connect(s3).await.unwrap();
    let mut unread = tokio_rustls::TlsConnector::from(pki.client())
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    unread
        .write_all(b"GET /stall/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // The server closes without close_notify: that read is an error.
        match tokio::time::timeout(limit, unread.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("an unread answer kept its connection open"),
        }
    }
    assert!(got < BIG, "the whole object came through: {got}");
    gw.stop().await;
}

/// Requests made by one load client, and what went wrong.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, who: &str, r: Result<(), String>) {
        match r {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.failures.lock().unwrap().push(format!("{who}: {e}")),
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }
}

/// Waits until every tally has counted `n` more successful requests than in `from`.
async fn progress(tallies: &[Arc<Tally>], n: usize) {
    let from: Vec<usize> = tallies.iter().map(|t| t.ok()).collect();
    let start = Instant::now();
    while tallies.iter().zip(&from).any(|(t, f)| t.ok() < f + n) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "a load client made no progress for 60s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_are_renewed_under_load_without_a_failed_request() {
    let pki = Pki::new("reload");
    let key1 = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 0x11, &key1);
    let gw = Gateway::start(&format!(
        "version = 1\n{}{}",
        tls_table(&cert, &key_file, ""),
        open_bucket("reload")
    ))
    .await
    .unwrap();
    let addr = https_addr(&gw);
    let client = pki.client();
    let sdk = sdk(&format!("https://{addr}"), Some(&pki.ca.pem()));
    sdk.put_object()
        .bucket("reload")
        .key("obj")
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut tallies = Vec::new();
    // Clients that open a fresh connection (a full handshake) for every request.
    for i in 0..2 {
        let (tally, stop, client) = (Arc::new(Tally::default()), stop.clone(), client.clone());
        tallies.push(tally.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = async {
                    let (stream, _) = connect(addr, client.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut conn = http1(stream).await;
                    match request(&mut conn, "GET", "/reload/obj", b"").await? {
                        (200, body) if &body[..] == b"payload" => Ok(()),
                        (status, body) => Err(format!("{status} {body:?}")),
                    }
                }
                .await;
                tally.record(&format!("fresh {i}"), r);
            }
        }));
    }
    // Clients on one connection each, opened before any renewal and kept alive through
    // all of them: the serial their handshake saw is returned with the task.
    let mut kept = Vec::new();
    for i in 0..2 {
        let (tally, stop) = (Arc::new(Tally::default()), stop.clone());
        tallies.push(tally.clone());
        let (stream, cert) = connect(addr, client.clone()).await.unwrap();
        let mut conn = http1(stream).await;
        kept.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let key = format!("/reload/kept-{i}");
                let r = async {
                    let (status, _) = request(&mut conn, "PUT", &key, b"kept").await?;
                    match request(&mut conn, "GET", &key, b"").await? {
                        (200, body) if status == 200 && &body[..] == b"kept" => Ok(()),
                        (get, body) => Err(format!("PUT {status}, GET {get} {body:?}")),
                    }
                }
                .await;
                tally.record(&format!("kept-alive {i}"), r);
            }
            serial(&cert)
        }));
    }
    // The SDK, with its own pool of kept-alive connections.
    {
        let (tally, stop, sdk) = (Arc::new(Tally::default()), stop.clone(), sdk.clone());
        tallies.push(tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("sdk/{}", n % 16);
                let body = format!("sdk {n}");
                let r = async {
                    sdk.put_object()
                        .bucket("reload")
                        .key(&key)
                        .body(ByteStream::from(body.clone().into_bytes()))
                        .send()
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    let got = sdk
                        .get_object()
                        .bucket("reload")
                        .key(&key)
                        .send()
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    let got = got.body.collect().await.map_err(|e| e.to_string())?;
                    (got.into_bytes() == body.as_bytes())
                        .then_some(())
                        .ok_or_else(|| "wrong body".to_owned())
                }
                .await;
                tally.record("sdk", r);
            }
        }));
    }
    progress(&tallies, 5).await;
    wait_for_serial(addr, &client, "11").await;

    // Renewed: new serial and expiry, same key. Only the certificate file changes.
    replace(&cert, &pki.leaf(0x12, &key1, 2041));
    wait_for_serial(addr, &client, "12").await;
    progress(&tallies, 5).await;

    // Renewed with a new key: both files replaced, one after the other.
    let key2 = rcgen::KeyPair::generate().unwrap();
    replace(&cert, &pki.leaf(0x13, &key2, 2042));
    replace(&key_file, &key2.serialize_pem());
    wait_for_serial(addr, &client, "13").await;
    progress(&tallies, 5).await;

    // A bad pair: a new certificate with a key that is not its own. The old pair stays,
    // through several debounce periods.
    let key3 = rcgen::KeyPair::generate().unwrap();
    let stranger = rcgen::KeyPair::generate().unwrap();
    replace(&cert, &pki.leaf(0x14, &key3, 2043));
    replace(&key_file, &stranger.serialize_pem());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let (_, served) = connect(addr, client.clone()).await.unwrap();
        assert_eq!(serial(&served), "13", "a mismatched pair was loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its key arrives: the watcher is still there, and the pair is served.
    replace(&key_file, &key3.serialize_pem());
    wait_for_serial(addr, &client, "14").await;
    progress(&tallies, 5).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    for k in kept {
        // Still the connection from before the first renewal.
        assert_eq!(k.await.unwrap(), "11");
    }
    let failures: Vec<String> = tallies
        .iter()
        .flat_map(|t| t.failures.lock().unwrap().clone())
        .collect();
    let counts: Vec<usize> = tallies.iter().map(|t| t.ok()).collect();
    let total: usize = counts.iter().sum();
    eprintln!(
        "requests through three renewals and a bad pair (fresh, fresh, kept-alive, kept-alive, sdk): {counts:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:#?}",
        failures.len(),
        total + failures.len()
    );
    gw.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_secret_symlink_swaps_are_followed() {
    use std::os::unix::fs::symlink;
    let pki = Pki::new("k8s");
    // A mounted secret: tls.crt -> ..data/tls.crt, ..data -> ..<version>/.
    let mount = pki.dir.0.join("mount");
    let version = |n: u64, key: &rcgen::KeyPair| {
        let dir = mount.join(format!("..2026_12_0{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), pki.leaf(0x20 + n, key, 2040)).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
        dir
    };
    let first = version(1, &rcgen::KeyPair::generate().unwrap());
    symlink(first.file_name().unwrap(), mount.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        symlink(format!("..data/{f}"), mount.join(f)).unwrap();
    }
    let gw = Gateway::start(&format!(
        "version = 1\n{}{}",
        tls_table(&mount.join("tls.crt"), &mount.join("tls.key"), ""),
        open_bucket("k8s")
    ))
    .await
    .unwrap();
    let addr = https_addr(&gw);
    let client = pki.client();
    wait_for_serial(addr, &client, "21").await;

    // The kubelet's update: a new version directory, a new ..data link renamed over the
    // old one, the old directory removed. Twice: the second swap is seen too.
    let mut old = first;
    for n in [2, 3] {
        let next = version(n, &rcgen::KeyPair::generate().unwrap());
        let tmp = mount.join("..data_tmp");
        symlink(next.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, mount.join("..data")).unwrap();
        std::fs::remove_dir_all(&old).unwrap();
        wait_for_serial(addr, &client, &format!("{:02X}", 0x20 + n)).await;
        old = next;
    }
    gw.stop().await;
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); run scripts/install-test-tools.sh"))
}

fn must_pass(cmd: &mut Command, what: &str) {
    let out = run(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_and_aws_cli_over_https_with_the_ca_bundle() {
    let pki = Pki::new("py");
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 5, &key);
    let gw = Gateway::start(&format!(
        "version = 1\n{}[backends.mem]\nkind = \"memory\"\n[buckets.pytls]\nmembers = [\"mem\"]\n\
         [backends.mem2]\nkind = \"memory\"\n[buckets.pycli]\nmembers = [\"mem2\"]\n",
        tls_table(&cert, &key_file, "")
    ))
    .await
    .unwrap();
    let endpoint = format!("https://{}", https_addr(&gw));
    let ca = pki.ca_file();
    let env = |cmd: &mut Command| {
        cmd.env("S3_ENDPOINT", &endpoint)
            .env("S3_BUCKET", "pytls")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_CA_BUNDLE");
    };
    let root = repo_root();

    // The suites with AWS_CA_BUNDLE. boto3: the checks that go through boto3 alone (the
    // presigned ones send raw http.client requests).
    let mut boto = Command::new("python3");
    boto.arg(root.join("tests/python/boto3_suite.py"));
    env(&mut boto);
    boto.env("AWS_CA_BUNDLE", &ca).env(
        "ONLY_CHECKS",
        "head_bucket,put_get_head_attributes,range_get,list_objects_v2_prefix_delimiter,\
         multipart_upload_fileobj,delete_objects,no_such_key",
    );
    must_pass(&mut boto, "boto3_suite.py over HTTPS");
    let mut cli = Command::new("bash");
    cli.arg(root.join("tests/python/awscli_suite.sh"));
    env(&mut cli);
    // A bucket of its own: the suite's `s3 ls | grep -q` can fail on a broken pipe when
    // the listing has more lines than the one it looks for.
    cli.env("AWS_CA_BUNDLE", &ca)
        .env("S3_BUCKET", "pycli")
        .env("BIG_MIB", "12");
    must_pass(&mut cli, "awscli_suite.sh over HTTPS");

    // The other ways to name the CA: `--ca-bundle` and boto3's `verify=`.
    let file = pki.dir.0.join("flag.txt");
    std::fs::write(&file, "through --ca-bundle").unwrap();
    let mut cp = Command::new("aws");
    env(&mut cp);
    cp.arg("--endpoint-url")
        .arg(&endpoint)
        .arg("--ca-bundle")
        .arg(&ca)
        .args(["s3", "cp", "--no-progress"])
        .arg(&file)
        .arg("s3://pytls/cli/flag.txt");
    must_pass(&mut cp, "aws --ca-bundle s3 cp");
    let mut verify = Command::new("python3");
    env(&mut verify);
    verify.arg("-c").arg(format!(
        "import boto3, sys\n\
         s3 = boto3.client('s3', endpoint_url={endpoint:?}, verify={ca:?})\n\
         assert s3.get_object(Bucket='pytls', Key='cli/flag.txt')['Body'].read() == b'through --ca-bundle'\n\
         keys = [o['Key'] for o in s3.list_objects_v2(Bucket='pytls', Prefix='cli/')['Contents']]\n\
         assert keys == ['cli/flag.txt'], keys\n",
        ca = ca.display().to_string()
    ));
    must_pass(&mut verify, "boto3 with verify=");

    // Without the CA, the CLI refuses the certificate.
    let mut ls = Command::new("aws");
    env(&mut ls);
    ls.arg("--endpoint-url")
        .arg(&endpoint)
        .args(["s3", "ls", "s3://pytls/"]);
    let out = run(&mut ls, "aws s3 ls without the CA");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "aws trusted an unknown CA");
    assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{stderr}");
    gw.stop().await;
}

/// A TLS terminator in front of a plain-HTTP server: what a backend with a private CA
/// looks like from the gateway.
struct TlsProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    async fn start(upstream: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backends_behind_https_with_a_private_ca() {
    let pki = Pki::new("backend");
    for kind in [Kind::S3, Kind::Azure, Kind::Gcs] {
        let fx = Fixture::new(kind).await.unwrap();
        // http://127.0.0.1:PORT[/path]
        let endpoint = fx.endpoint.as_deref().unwrap();
        let authority = endpoint.trim_start_matches("http://");
        let authority = authority.split('/').next().unwrap();
        let upstream: SocketAddr = authority.parse().unwrap();
        let proxy = TlsProxy::start(upstream, pki.server()).await;
        let plain_origin = format!("http://{upstream}");
        let tls_origin = format!("https://{}", proxy.addr);
        assert!(fx.toml.contains(&plain_origin), "{}", fx.toml);
        let backend = fx.toml.replace(&plain_origin, &tls_origin);
        let config = |ca: bool| {
            let ca = if ca {
                format!("ca_bundle = {}\n", toml_path(&pki.ca_file()))
            } else {
                String::new()
            };
            format!(
                "version = 1\n[backends.main]\n{backend}{ca}[buckets.private]\nmembers = [\"main\"]\n"
            )
        };

        let gw = Gateway::start(&config(true)).await.unwrap();
        let c = gw.client();
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        for k in ["x/1", "x/2"] {
            c.put_object()
                .bucket("private")
                .key(k)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: PUT {k}: {e:?}"));
        }
        let got = c
            .get_object()
            .bucket("private")
            .key("x/2")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: GET: {e:?}"));
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes(),
            body,
            "{kind:?}"
        );
        let listed = c
            .list_objects_v2()
            .bucket("private")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: LIST: {e:?}"));
        assert_eq!(listed.key_count(), Some(2), "{kind:?}");
        c.delete_object()
            .bucket("private")
            .key("x/1")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: DELETE: {e:?}"));
        gw.stop().await;

        // Without the bundle the backend's certificate is not trusted: unavailable.
        let gw = Gateway::start(&config(false)).await.unwrap();
        let c = gw.client();
        let e = c
            .get_object()
            .bucket("private")
            .key("x/2")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e).0, 503, "{kind:?}: {e:?}");
        let e = c
            .put_object()
            .bucket("private")
            .key("x/3")
            .body(ByteStream::from_static(b"no"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_of(&e).0, 503, "{kind:?}: {e:?}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn bad_certificate_files_stop_the_start_with_their_name() {
    let pki = Pki::new("bad");
    let key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let (cert, key_file) = pki.pair("server", 6, &key);
    let (_, other_key) = pki.pair("other", 7, &other);
    let missing = pki.dir.0.join("missing.crt");
    async fn start(cert: &Path, key: &Path) -> String {
        let toml = format!(
            "version = 1\n{}{}",
            tls_table(cert, key, ""),
            open_bucket("bad")
        );
        match Gateway::start(&toml).await {
            Ok(_) => panic!("started with {cert:?} and {key:?}"),
            Err(e) => e.to_string(),
        }
    }
    let e = start(&missing, &key_file).await;
    assert!(
        e.starts_with(&format!("server.tls: cannot read {}: ", missing.display())),
        "{e}"
    );
    let e = start(&cert, &other_key).await;
    assert_eq!(
        e,
        format!(
            "server.tls: the private key in {} does not belong to the certificate in {}",
            other_key.display(),
            cert.display()
        )
    );
    let e = start(&key_file, &key_file).await;
    assert!(
        e.starts_with(&format!(
            "server.tls: {}: holds no certificate",
            key_file.display()
        )),
        "{e}"
    );

    // A CA bundle is checked when the configuration is read.
    let e = switchyard::Config::from_toml(&format!(
        "version = 1\n[backends.s3]\nkind = \"s3\"\nbucket = \"b\"\nca_bundle = {}\n",
        toml_path(&key_file)
    ))
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "backends.s3.ca_bundle: {}: holds no certificate (no -----BEGIN CERTIFICATE----- block)",
            key_file.display()
        )
    );
}
