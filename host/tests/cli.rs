//! The `switchyard` binary as a newcomer runs it: the embedded default driven by the aws
//! CLI, and `check-config` on good and bad files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn temp_dir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("switchyard-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "switchyard did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn aws(port: u16, args: &[&str]) -> std::process::Output {
    Command::new("aws")
        .args(["--endpoint-url", &format!("http://127.0.0.1:{port}")])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "cli-test")
        .env("AWS_SECRET_ACCESS_KEY", "cli-test-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the aws CLI is installed (scripts/install-test-tools.sh)")
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "aws failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn embedded_default_with_the_aws_cli() {
    let data = temp_dir("data");
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("SWITCHYARD_ACCESS_KEY", "cli-test")
        .env("SWITCHYARD_SECRET_KEY", "cli-test-secret")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Serve(child);
    wait_for_port(port);

    ok(aws(port, &["s3", "mb", "s3://photos"]));
    let src = data
        .parent()
        .unwrap()
        .join(format!("switchyard-cli-src-{}", std::process::id()));
    std::fs::write(&src, b"hello, switchyard").unwrap();
    ok(aws(
        port,
        &[
            "s3",
            "cp",
            src.to_str().unwrap(),
            "s3://photos/2026/hello.txt",
        ],
    ));
    // Transparency: the object is a plain file holding exactly its bytes.
    assert_eq!(
        std::fs::read(data.join("photos/2026/hello.txt")).unwrap(),
        b"hello, switchyard"
    );
    let listing = ok(aws(port, &["s3", "ls", "s3://photos/2026/"]));
    assert!(listing.contains("hello.txt"), "{listing}");
    let buckets = ok(aws(port, &["s3", "ls"]));
    assert!(buckets.contains("photos"), "{buckets}");
    // A file dropped into the directory by another tool is served at once.
    std::fs::write(data.join("photos/dropped.bin"), b"direct").unwrap();
    let got = ok(aws(port, &["s3", "cp", "s3://photos/dropped.bin", "-"]));
    assert_eq!(got, "direct");

    let out = aws(port, &["s3", "rb", "s3://photos"]);
    assert!(
        !out.status.success(),
        "a non-empty bucket must not be removed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("BucketNotEmpty"));
    ok(aws(port, &["s3", "rm", "--recursive", "s3://photos"]));
    ok(aws(port, &["s3", "rb", "s3://photos"]));
    assert!(!data.join("photos").exists());
    let _ = std::fs::remove_file(src);
    let _ = std::fs::remove_dir_all(&data);
}

fn check_config(dir: &Path, text: &str) -> (bool, String) {
    let file = dir.join("c.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_names_the_bad_field() {
    let dir = temp_dir("check");
    let (good, out) = check_config(
        &dir,
        "version = 1\n[backends.m]\nkind = \"memory\"\n[buckets.data]\nmembers = [\"m\"]\n",
    );
    assert!(good, "{out}");
    assert!(out.contains("ok (1 backends, 1 buckets)"), "{out}");

    for (text, needle) in [
        (
            "version = 1\n[backends.m]\nkind = \"memory\"\nlabel = 1\n",
            "label",
        ),
        ("version = 1\n[backends.m]\nkind = \"tape\"\n", "tape"),
        (
            "version = 1\n[buckets.data]\nmembers = [\"nope\"]\n",
            "buckets.data.members[0]",
        ),
        ("version = 3\n", "version"),
        (
            "version = 1\n[server]\npart_size = 1024\n",
            "server.part_size",
        ),
        (
            "version = 1\n[backends.s]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"ftp://x\"\n",
            "backends.s.endpoint",
        ),
        (
            "version = 1\n[[users]]\naccess_key = \"a\"\nsecret_key = { env = \"SWITCHYARD_TEST_NOT_SET\" }\n",
            "SWITCHYARD_TEST_NOT_SET",
        ),
    ] {
        let (good, out) = check_config(&dir, text);
        assert!(!good, "accepted: {text}");
        assert!(out.contains(needle), "{needle:?} not in {out:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_examples_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&path)
            .envs(
                [
                    "SWITCHYARD_SECRET_KEY",
                    "APP_PROD_SECRET",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AZURE_STORAGE_KEY",
                    "MINIO_ACCESS_KEY",
                    "MINIO_SECRET_KEY",
                ]
                .map(|k| (k, "example")),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 2);
}
