//! Records the commit the binary is built from, for `switchyard --version` and the
//! `switchyard_build_info` metric: `SWITCHYARD_COMMIT` is the 12-hex-digit commit, with
//! `-dirty` when tracked files differ from it, or empty when there is no commit to name (a
//! build from a crate tarball, or without git). A non-empty `SWITCHYARD_COMMIT` in the
//! build's own environment wins (a Docker build, whose context leaves `.git` out, passes
//! it in).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SWITCHYARD_COMMIT");
    // Only what a commit name is made of: the value becomes a metric's label.
    let given: String = std::env::var("SWITCHYARD_COMMIT")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    let commit = if given.is_empty() {
        from_git().unwrap_or_default()
    } else {
        given
    };
    println!("cargo:rustc-env=SWITCHYARD_COMMIT={commit}");
}

/// `git` in this package's directory: its trimmed output, or none when git is missing or
/// fails (not a repository).
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        // No index refresh by `git status`: a build only reads the repository.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn from_git() -> Option<String> {
    // This package must be tracked by the repository git finds: an unpacked crate inside
    // some other checkout (a CARGO_HOME under a home directory kept in git) is not built
    // from that checkout's commit.
    git(&["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Run again when HEAD moves: HEAD itself (another branch checked out, a detached
    // commit) and the branch it names (a new commit), loose or packed; and when the
    // sources change, which rebuild the package anyway, so that `-dirty` follows them.
    // Without these lines cargo would run this script after any change to the package
    // (a test, a doc); with them, only after these.
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(|d| absolute(&git_dir, &d))
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), PathBuf::from("src")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    watched.push(common.join("packed-refs"));
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // Tracked files changed since the commit (untracked ones are not built from).
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// `--git-common-dir` is relative to the directory git ran in (this package's), unless
/// it is absolute (then `join` keeps it as it is).
fn absolute(git_dir: &Path, dir: &str) -> PathBuf {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(m) => PathBuf::from(m).join(dir),
        None => git_dir.join(dir),
    }
}
