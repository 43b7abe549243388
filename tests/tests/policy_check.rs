//! `switchyard policy check`, run as the built binary: it asks the policy for decisions
//! on sample inputs (made-up members, or those of a configured bucket) and validates
//! every answer as the server does, so that a policy the server would load but whose
//! answers it would refuse (an unknown member, an empty list, a tier move to nowhere)
//! fails the check instead of every request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_tests::harness::{CliRun, TempDir, run_switchyard};
use switchyard_tests::wasm::{
    Misbehaviour, TierAnswer, answering_policy, first_member_policy, fixed_policy, heavy_policy,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn check(args: &[&str]) -> CliRun {
    let mut all = vec!["policy", "check"];
    all.extend_from_slice(args);
    run_switchyard(&all, &[], Duration::from_secs(120))
        .await
        .unwrap()
}

fn output(run: &CliRun) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        run.status, run.stdout, run.stderr
    )
}

/// Each of these loads and answers its probe, as the server requires, yet every answer of
/// the first three is refused by the server: `policy check` passed them all.
#[tokio::test]
async fn answers_the_server_would_refuse_fail_the_check() {
    let dir = TempDir::new("policy-check");
    let fine = write(&dir.0, "fine.wasm", &first_member_policy(TierAnswer::Keep));
    let unknown = write(
        &dir.0,
        "unknown.wasm",
        &answering_policy(&["nowhere"], TierAnswer::Keep),
    );
    let empty = write(
        &dir.0,
        "empty.wasm",
        &answering_policy(&[], TierAnswer::Keep),
    );
    let tier_nowhere = write(
        &dir.0,
        "tier-nowhere.wasm",
        &first_member_policy(TierAnswer::MoveTo("nowhere")),
    );

    for (path, want) in [
        (&unknown, "unknown member \"nowhere\""),
        (&empty, "the answer names no member"),
        (&tier_nowhere, "cannot tier"),
    ] {
        let run = check(&[path.to_str().unwrap()]).await;
        assert!(
            !run.status.success(),
            "{} passed:\n{}",
            path.display(),
            output(&run)
        );
        assert!(
            run.stdout.contains(want),
            "{}: {want:?} missing:\n{}",
            path.display(),
            output(&run)
        );
        assert!(run.stdout.contains("INVALID"), "{}", output(&run));
    }

    let run = check(&[fine.to_str().unwrap()]).await;
    assert!(run.status.success(), "{}", output(&run));
    // The table: each sample's call, members, input and answer.
    for want in [
        "place",
        "route",
        "tier",
        "PutObject",
        "GetObject",
        "keep",
        "all down",
    ] {
        assert!(
            run.stdout.contains(want),
            "{want:?} missing:\n{}",
            output(&run)
        );
    }
}

/// With `--config` and `--bucket`, the questions carry the bucket's own members (their
/// kinds and labels from the configuration) and the policy runs with the settings of its
/// `[policies.NAME]` entry; `--policy-config`, `--timeout` and `--memory-limit` override
/// them. A policy answering a member of that bucket passes, though it would fail on the
/// made-up members; a tier move to the object's own member does not.
#[tokio::test]
async fn a_configured_bucket_lends_its_members_and_settings() {
    let dir = TempDir::new("policy-check-config");
    let plugins = dir.0.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = write(
        &dir.0,
        "switchyard.toml",
        format!(
            r#"version = 1
[plugins]
dir = {:?}
[policies.pick]
config = "from-the-file"
timeout = "3s"
memory_limit = 33554432
[backends.eu-disk]
kind = "fs"
root = {:?}
labels = {{ region = "eu", tier = "hot" }}
[backends.us-mem]
kind = "memory"
labels = {{ tier = "cold" }}
[buckets.data]
members = ["eu-disk", "us-mem"]
policy = "pick"
"#,
            plugins.display().to_string(),
            dir.0.join("eu").display().to_string(),
        )
        .as_bytes(),
    );
    let config = config.to_str().unwrap();
    let pick = write(
        &dir.0,
        "pick.wasm",
        &answering_policy(&["us-mem"], TierAnswer::Keep),
    );
    let pick = pick.to_str().unwrap();

    // The made-up members have no `us-mem`.
    let run = check(&[pick]).await;
    assert!(!run.status.success(), "{}", output(&run));

    let run = check(&[pick, "--config", config, "--bucket", "data"]).await;
    assert!(run.status.success(), "{}", output(&run));
    for want in [
        "eu-disk (fs, region=eu, tier=hot)",
        "us-mem (memory, tier=cold)",
        "[policies.pick]",
        "\"from-the-file\"",
        "timeout 3s",
        "memory limit 32 MiB",
        "eu-disk down",
    ] {
        assert!(
            run.stdout.contains(want),
            "{want:?} missing:\n{}",
            output(&run)
        );
    }
    let run = check(&[
        pick,
        "--config",
        config,
        "--bucket",
        "data",
        "--policy-config",
        "from-the-flag",
        "--timeout",
        "250ms",
        "--memory-limit",
        "16MiB",
    ])
    .await;
    assert!(run.status.success(), "{}", output(&run));
    for want in ["\"from-the-flag\"", "timeout 250ms", "memory limit 16 MiB"] {
        assert!(
            run.stdout.contains(want),
            "{want:?} missing:\n{}",
            output(&run)
        );
    }

    // Copying an object to the member that holds it is refused by the tiering pass.
    let to_itself = write(
        &dir.0,
        "to-itself.wasm",
        &answering_policy(&["us-mem"], TierAnswer::CopyTo("eu-disk")),
    );
    let run = check(&[
        to_itself.to_str().unwrap(),
        "--config",
        config,
        "--bucket",
        "data",
    ])
    .await;
    assert!(!run.status.success(), "{}", output(&run));
    assert!(
        run.stdout.contains(r#"cannot tier "eu-disk" to "eu-disk""#),
        "{}",
        output(&run)
    );

    // Bad questions are errors that say what is wrong.
    let run = check(&[pick, "--config", config, "--bucket", "nope"]).await;
    assert!(
        !run.status.success() && run.stderr.contains("no bucket \"nope\""),
        "{}",
        output(&run)
    );
    let run = check(&[pick, "--memory-limit", "lots"]).await;
    assert!(!run.status.success(), "{}", output(&run));
}

/// `--config` was the policy's configuration string before it named the Switchyard
/// configuration: a value that names no file and reads as JSON is still taken as such,
/// with a warning.
#[tokio::test]
async fn the_old_config_flag_still_passes_the_policy_configuration() {
    let dir = TempDir::new("policy-check-legacy");
    let fine = write(&dir.0, "fine.wasm", &first_member_policy(TierAnswer::Keep));
    let run = check(&[fine.to_str().unwrap(), "--config", r#"{"threshold": 1}"#]).await;
    assert!(run.status.success(), "{}", output(&run));
    assert!(
        run.stderr.contains("--policy-config") && run.stdout.contains(r#"{\"threshold\": 1}"#),
        "{}",
        output(&run)
    );
}

/// A call that traps or runs past its deadline fails the check. The hostile policies
/// misbehave on keys starting with `e`, as one sample's does; the probe's does not, so
/// `policy check` passed them.
#[tokio::test]
async fn traps_and_timeouts_fail_the_check() {
    let dir = TempDir::new("policy-check-hostile");
    for (name, misbehave, want) in [
        ("looper", Misbehaviour::Loop, "ran past its deadline"),
        ("trapper", Misbehaviour::Trap, "trapped"),
    ] {
        let path = write(
            &dir.0,
            &format!("{name}.wasm"),
            &fixed_policy("probe-a", misbehave),
        );
        let run = check(&[path.to_str().unwrap()]).await;
        assert!(!run.status.success(), "{name}: {}", output(&run));
        assert!(
            run.stdout.contains("FAILED") && run.stdout.contains(want),
            "{name}: {}",
            output(&run)
        );
    }
}

/// A 105 MB component whose memory starts with 100 MiB of data in it (a preloaded heap)
/// needs more than the default 64 MiB memory limit. The server refused it as "not a
/// WebAssembly component" (the pooling allocator's refusal while compiling it, its slots
/// being sized for the limit), and `policy check`, whose slots were larger, as a probe
/// that hit its memory limit. Both say now that it is over the memory limit, by how much,
/// how large the file is and how to raise the limit; raised, it loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_over_the_memory_limit_is_named_as_such() {
    use std::sync::Arc;
    let dir = TempDir::new("policy-check-heavy");
    let plugins = dir.0.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let heavy = heavy_policy("a", 105_000_000);
    assert!(heavy.len() > 105_000_000, "{}", heavy.len());
    let path = write(&plugins, "heavy.wasm", &heavy);
    let size = heavy.len().to_string();
    // 131072 bytes below the data, then 105000000 of it, in 64 KiB pages.
    let needed = (105_000_000usize + 131_072).div_ceil(65536) * 65536;
    let needed = needed.to_string();

    // The server's way: the plugins directory, [plugins] memory_limit at its default.
    let config = |extra: &str| {
        switchyard::Config::from_toml(&format!(
            "version = 1\n[plugins]\ndir = {:?}\n{extra}",
            plugins.display().to_string()
        ))
        .unwrap()
    };
    let metrics = Arc::new(switchyard::metrics::Metrics::default());
    let set = tokio::task::spawn_blocking({
        let (config, metrics) = (config(""), metrics.clone());
        move || switchyard::policy::set::PolicySet::new(&config, metrics).unwrap()
    })
    .await
    .unwrap();
    let reason = set.rejected().remove("heavy").map(|r| r.reason);
    let reason = reason.as_deref().unwrap_or("not rejected");
    for want in [
        "over its memory limit",
        &needed,
        "67108864 bytes (64.0 MiB)",
        &size,
        "[policies.heavy]",
    ] {
        assert!(reason.contains(want), "{want:?} missing: {reason}");
    }
    let set = tokio::task::spawn_blocking({
        let config = config("[policies.heavy]\nmemory_limit = 134217728\n");
        move || switchyard::policy::set::PolicySet::new(&config, metrics).unwrap()
    })
    .await
    .unwrap();
    assert!(set.get("heavy").is_some(), "{:?}", set.rejected());

    let run = check(&[path.to_str().unwrap()]).await;
    assert!(!run.status.success(), "{}", output(&run));
    for want in ["over its memory limit", &needed, &size, "--memory-limit"] {
        assert!(
            run.stderr.contains(want),
            "{want:?} missing:\n{}",
            output(&run)
        );
    }
    let run = check(&[path.to_str().unwrap(), "--memory-limit", "128MiB"]).await;
    assert!(
        run.stdout.contains("memory limit 128 MiB") && !run.stderr.contains("over its memory"),
        "{}",
        output(&run)
    );
}
