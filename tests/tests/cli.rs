//! The `switchyard` command as an operator meets it, run as a process: help with examples
//! on every command, arguments refused before anything is printed, shell completions,
//! the commit in `--version`, and `serve --admin-listen` giving the embedded default its
//! probes and metrics.

use std::time::{Duration, Instant};

use switchyard_tests::harness::{TempDir, repo_root, run_switchyard, switchyard_bin};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_command_has_examples_and_migrate_has_no_tier_text() {
    for command in [
        &["serve"][..],
        &["check-config"],
        &["migrate"],
        &["tier"],
        &["completions"],
        &["access", "check"],
        &["policy", "check"],
        &["policy", "test"],
        &["policy", "new"],
        &["policy", "componentize"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = run_switchyard(&args, &[], LIMIT).await.unwrap();
        assert!(run.status.success(), "{args:?}: {}", run.stderr);
        assert!(
            run.stdout.contains("Example"),
            "{args:?} shows no example:\n{}",
            run.stdout
        );
    }
    let run = run_switchyard(&["migrate", "--help"], &[], LIMIT)
        .await
        .unwrap();
    assert!(
        !run.stdout.to_lowercase().contains("tier"),
        "migrate --help speaks of tiering:\n{}",
        run.stdout
    );
}

/// A bad argument is refused by the parser (exit status 2, as for any usage error), before
/// a configuration is read or a line is logged.
#[tokio::test]
async fn arguments_are_refused_before_any_output() {
    let missing = "/nonexistent/switchyard.toml";
    for (args, names) in [
        (
            vec![
                "migrate", "-c", missing, "--bucket", "b", "--from", "x", "--to", "y", "--shard",
                "3/2",
            ],
            "--shard",
        ),
        (
            vec!["tier", "-c", missing, "--bucket", "b", "--concurrency", "0"],
            "--concurrency",
        ),
        (
            vec![
                "migrate", "-c", missing, "--bucket", "b", "--from", "x", "--to", "x",
            ],
            "--from and --to",
        ),
    ] {
        let run = run_switchyard(&args, &[], LIMIT).await.unwrap();
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains(names), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains(missing), "{args:?}: {}", run.stderr);
    }
    // The admin listener on the S3 listener's address: the configuration's rule, said
    // of the flag, before the embedded default logs anything.
    let data = TempDir::new("cli-same-address");
    let run = run_switchyard(
        &[
            "serve",
            "--listen",
            "127.0.0.1:19000",
            "--admin-listen",
            "127.0.0.1:19000",
            "--data-dir",
            data.0.to_str().unwrap(),
        ],
        &[],
        LIMIT,
    )
    .await
    .unwrap();
    assert!(!run.status.success());
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(
        run.stderr,
        "error: server.admin_listen: is server.listen's address; the admin listener needs one of its own (set by --admin-listen)\n"
    );
}

#[tokio::test]
async fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let run = run_switchyard(&["completions", shell], &[], LIMIT)
            .await
            .unwrap();
        assert!(run.status.success(), "{shell}: {}", run.stderr);
        for name in [
            "serve",
            "check-config",
            "access",
            "policy",
            "migrate",
            "tier",
            "completions",
            // fish writes long options as `-l admin-listen`.
            "admin-listen",
        ] {
            assert!(run.stdout.contains(name), "{shell}: no {name}");
        }
    }
    let run = run_switchyard(&["completions", "tcsh"], &[], LIMIT)
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
}

/// In a git checkout the version names the commit (12 hex digits, `-dirty` when tracked
/// files differed from it at build time).
#[tokio::test]
async fn version_names_the_commit() {
    let run = run_switchyard(&["--version"], &[], LIMIT).await.unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    let line = run.stdout.trim_end();
    let version = env!("CARGO_PKG_VERSION");
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let Some(head) = head else {
        eprintln!("not a git checkout: the version names no commit");
        assert_eq!(line, format!("switchyard {version}"));
        return;
    };
    assert_eq!(head.len(), 12);
    let clean = format!("switchyard {version} (commit {head})");
    let dirty = format!("switchyard {version} (commit {head}-dirty)");
    assert!(line == clean || line == dirty, "{line:?}, HEAD {head}");
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The embedded default (no --config) with `--admin-listen`: probes and metrics answer.
#[tokio::test]
async fn serve_admin_listen_gives_the_embedded_default_its_probes() {
    let data = TempDir::new("cli-admin-listen");
    let (listen, admin) = (free_addr(), free_addr());
    let mut child = tokio::process::Command::new(switchyard_bin().unwrap())
        .args(["serve", "--listen", &listen, "--admin-listen", &admin])
        .arg("--data-dir")
        .arg(&data.0)
        .env("SWITCHYARD_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let healthz = loop {
        match client.get(format!("http://{admin}/healthz")).send().await {
            Ok(r) => break r,
            Err(e) => {
                assert!(
                    started.elapsed() < LIMIT,
                    "no admin listener on {admin}: {e}"
                );
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("switchyard serve exited with {status}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(healthz.status(), 200);
    let readyz = client
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(
        readyz.text().await.unwrap(),
        "[+]config ok\nreadyz check passed\n"
    );
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let build = format!(
        "switchyard_build_info{{version=\"{}\",commit=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&build), "{metrics}");
    child.kill().await.unwrap();
}
