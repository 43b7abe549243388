//! `switchyard policy new`: a starter policy in one of the example languages, against the
//! newest WIT, that builds and passes `policy test` as it is. The files are templates
//! embedded in the binary (`scaffold/`), so that a scaffold needs no repository checkout.

use std::path::{Path, PathBuf};

/// The languages a policy can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
    C,
}

const WIT: &str = include_str!("../../../wit/switchyard-policy@0.2.0/policy.wit");
const CASES: &str = include_str!("scaffold/CASES.toml");
const README: &str = include_str!("scaffold/README.md");
const IGNORE: &str = "# Built by build.sh.\n/*.wasm\n/target/\n/node_modules/\n/.venv/\n/wit_world/\n/bindings/\n/*.o\n";

/// (path in the folder, template, executable) for each language's own files.
fn files(lang: Lang) -> Vec<(&'static str, &'static str, bool)> {
    match lang {
        Lang::Rust => vec![
            (
                "Cargo.toml",
                include_str!("scaffold/rust/Cargo.toml"),
                false,
            ),
            ("src/lib.rs", include_str!("scaffold/rust/lib.rs"), false),
            ("build.sh", include_str!("scaffold/rust/build.sh"), true),
        ],
        Lang::Js => vec![
            (
                "package.json",
                include_str!("scaffold/js/package.json"),
                false,
            ),
            ("policy.js", include_str!("scaffold/js/policy.js"), false),
            ("build.sh", include_str!("scaffold/js/build.sh"), true),
        ],
        Lang::Python => vec![
            ("app.py", include_str!("scaffold/python/app.py"), false),
            ("build.sh", include_str!("scaffold/python/build.sh"), true),
        ],
        Lang::C => vec![
            ("{{crate}}.c", include_str!("scaffold/c/policy.c"), false),
            ("build.sh", include_str!("scaffold/c/build.sh"), true),
        ],
    }
}

fn language(lang: Lang) -> (&'static str, &'static str) {
    match lang {
        Lang::Rust => (
            "Rust",
            "It builds with rustup's `wasm32-wasip2` target when installed, else with Debian's Rust (`rustc-web`, `cargo-web`, `rust-web-src`, `lld-22`).",
        ),
        Lang::Js => (
            "JavaScript",
            "It needs Node.js and npm; jco is installed into `node_modules` on the first build.",
        ),
        Lang::Python => (
            "Python",
            "It needs python3 with venv; componentize-py is installed into `.venv` on the first build.",
        ),
        Lang::C => (
            "C",
            "It needs clang, lld, wasi-libc and libclang-rt-dev-wasm32 (Debian packages); `C_BINDGEN` names a wit-bindgen C generator (Switchyard's `plugins/c-bindgen`), else `wit-bindgen c` is used.",
        ),
    }
}

/// Whether `name` can name a policy: its file is `NAME.wasm` and buckets name it in the
/// configuration, and for Rust it is also the crate's name.
fn name_ok(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-')
}

/// Writes the starter policy `name` in `lang` into `dir`, which must not exist or be
/// empty; returns the files written.
pub fn scaffold(name: &str, lang: Lang, dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !name_ok(name) {
        return Err(format!(
            "{name:?} cannot name a policy: lower-case letters, digits and '-', starting with a letter, at most 63"
        ));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} exists and is not empty: nothing written",
            dir.display()
        ));
    }
    let (language, build_note) = language(lang);
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{language}}", language)
            .replace("{{build_note}}", build_note)
    };
    let mut all = vec![
        ("README.md", README, false),
        ("CASES.toml", CASES, false),
        ("wit/policy.wit", WIT, false),
        (".gitignore", IGNORE, false),
    ];
    all.extend(files(lang));
    let mut written = Vec::new();
    for (rel, template, executable) in all {
        let path = dir.join(fill(rel));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // The WIT is copied as it is: it is the released interface, not a template.
        let text = if rel == "wit/policy.wit" {
            template.to_owned()
        } else {
            fill(template)
        };
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every language gets the same cases and interface, with the name filled in and no
    /// placeholder left; a taken folder or a bad name writes nothing.
    #[test]
    fn scaffolds_are_complete() {
        let root = std::env::temp_dir().join(format!("switchyard-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for lang in [Lang::Rust, Lang::Js, Lang::Python, Lang::C] {
            let dir = root.join(format!("{lang:?}"));
            let files = scaffold("my-policy", lang, &dir).unwrap();
            for f in &files {
                let text = std::fs::read_to_string(f).unwrap();
                assert!(!text.contains("{{"), "{} keeps a placeholder", f.display());
            }
            assert!(
                std::fs::read_to_string(dir.join("README.md"))
                    .unwrap()
                    .contains("my-policy.wasm")
            );
            assert!(
                std::fs::read_to_string(dir.join("wit/policy.wit"))
                    .unwrap()
                    .contains("package switchyard:policy@0.2.0;")
            );
            assert!(
                scaffold("my-policy", lang, &dir)
                    .unwrap_err()
                    .contains("not empty")
            );
        }
        for bad in ["", "My", "a_b", "-a", "a-", "1a", &"a".repeat(64)] {
            assert!(
                scaffold(bad, Lang::Rust, &root.join("bad")).is_err(),
                "{bad:?}"
            );
        }
        assert!(!root.join("bad").exists());
        let _ = std::fs::remove_dir_all(&root);
    }
}
