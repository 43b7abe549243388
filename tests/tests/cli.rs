//! The `switchyard` command as an operator meets it, run as a process: help with examples
//! on every command, arguments refused before anything is printed, shell completions,
//! the commit in `--version`, `serve --admin-listen` giving the embedded default its
//! probes and metrics, and `check-config` reporting every error of a file at its key.

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

/// `FILE` in a fresh directory, holding `text`.
fn config_file(name: &str, text: &str) -> (TempDir, String) {
    let dir = TempDir::new(name);
    let file = dir.0.join("switchyard.toml");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap().to_owned();
    (dir, file)
}

/// A file with several mistakes: `check-config` names each, one per line, in one run, and
/// `serve` refuses to start on it.
#[tokio::test]
async fn check_config_reports_every_error() {
    let (_dir, file) = config_file(
        "cli-every-error",
        "version = 1\n\
         [server]\n\
         part_size = 1024\n\
         [[users]]\n\
         access_key = \"\"\n\
         secret_key = \"app-secret\"\n\
         [backends.a]\n\
         kind = \"memory\"\n\
         [buckets.photos]\n\
         members = [\"a\", \"archvie\"]\n",
    );
    let errors = [
        "server.part_size: must be at least 5 MiB (5242880)",
        "users[0].access_key: must not be empty",
        "buckets.photos.members[1]: unknown backend \"archvie\"",
    ];
    let run = run_switchyard(&["check-config", &file], &[], LIMIT)
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let mut expected: Vec<String> = errors.iter().map(|e| format!("error: {e}")).collect();
    expected.push(format!("{file}: 3 errors"));
    assert_eq!(run.stderr.lines().collect::<Vec<_>>(), expected);

    let data = TempDir::new("cli-every-error-data");
    let run = run_switchyard(
        &[
            "serve",
            "--config",
            &file,
            "--listen",
            &free_addr(),
            "--data-dir",
            data.0.to_str().unwrap(),
        ],
        &[],
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    for e in errors {
        assert!(
            run.stderr.contains(e),
            "serve did not say {e:?}:\n{}",
            run.stderr
        );
    }
}

/// `--no-env` checks a production file without its secrets, and says so; without it, each
/// unset variable is an error of its own.
#[tokio::test]
async fn check_config_no_env_leaves_environment_secrets_unchecked() {
    let (_dir, file) = config_file(
        "cli-no-env",
        "version = 1\n\
         [server]\n\
         admin_listen = \"127.0.0.1:0\"\n\
         admin_token = { env = \"SWITCHYARD_CLI_TEST_UNSET_TOKEN\" }\n\
         [[users]]\n\
         access_key = \"app\"\n\
         secret_key = { env = \"SWITCHYARD_CLI_TEST_UNSET_SECRET\" }\n\
         [backends.a]\n\
         kind = \"memory\"\n\
         [buckets.data]\n\
         members = [\"a\"]\n",
    );
    let run = run_switchyard(&["check-config", &file], &[], LIMIT)
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    for line in [
        "error: server.admin_token: environment variable SWITCHYARD_CLI_TEST_UNSET_TOKEN is not set",
        "error: users[0].secret_key: environment variable SWITCHYARD_CLI_TEST_UNSET_SECRET is not set",
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "{line:?} missing from:\n{}",
            run.stderr
        );
    }

    let run = run_switchyard(&["check-config", "--no-env", &file], &[], LIMIT)
        .await
        .unwrap();
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .lines()
            .any(|l| l == format!("{file}: ok (1 backends, 1 buckets)")),
        "{}",
        run.stdout
    );
    let note = run
        .stdout
        .lines()
        .find(|l| l.contains("not checked (--no-env)"))
        .unwrap_or_else(|| panic!("no word of the unchecked secrets:\n{}", run.stdout));
    for named in [
        "server.admin_token (SWITCHYARD_CLI_TEST_UNSET_TOKEN)",
        "users[0].secret_key (SWITCHYARD_CLI_TEST_UNSET_SECRET)",
    ] {
        assert!(note.contains(named), "{named} missing from {note:?}");
    }
}

/// A value of the wrong type inside a nested table is named by its key path and its line
/// and column, not by the table's header.
#[tokio::test]
async fn check_config_names_the_key_of_a_nested_error() {
    for (name, text, expected) in [
        (
            "cli-nested-backend",
            "version = 1\n\
             [backends.hot]\n\
             kind = \"s3\"\n\
             bucket = \"photos\"\n\
             endpoint = 5\n",
            ":5:12: backends.hot.endpoint: invalid type: integer `5`, expected a string",
        ),
        (
            "cli-nested-member",
            "version = 1\n\
             [buckets.photos]\n\
             members = [\"hot\", \"warm\", 7]\n",
            ":3:27: buckets.photos.members[2]: invalid type: integer `7`, expected a string",
        ),
    ] {
        let (_dir, file) = config_file(name, text);
        let run = run_switchyard(&["check-config", &file], &[], LIMIT)
            .await
            .unwrap();
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert_eq!(first, format!("error: {file}{expected}"), "{}", run.stderr);
    }
}
