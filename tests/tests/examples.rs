//! Every configuration a reader may copy is valid: `examples/*.toml`, the one inside
//! `examples/kubernetes/configmap.yaml`, and each complete configuration (a ```toml block
//! with a `version = ` line) in README.md, docs/ and the examples' and plugins' READMEs.
//! An example that no longer loads, or one that the overlap check refuses (a public bucket
//! sharing a private one's directory), fails here rather than in a reader's deployment.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchyard_tests::harness::repo_root;

/// The configuration with every `{ env = "NAME" }` replaced by an inline placeholder, so
/// it can be checked in this process without setting variables (the tests of one process
/// share its environment). The placeholder is long enough for `admin_token`'s minimum.
fn inlined(toml: &str) -> String {
    let mut out = String::with_capacity(toml.len());
    let mut rest = toml;
    while let Some(i) = rest.find("{ env = \"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "{ env = \"".len()..];
        let end = after.find("\" }").expect("a closing `\" }`");
        out.push_str(&format!("\"placeholder-for-{}\"", &after[..end]));
        rest = &after[end + "\" }".len()..];
    }
    out.push_str(rest);
    out
}

fn check(what: &str, toml: &str) {
    if let Err(e) = switchyard::Config::from_toml(&inlined(toml)) {
        panic!("{what}: {e}\n---\n{toml}");
    }
}

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// The ```toml blocks of a Markdown file, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        match open.as_mut() {
            None if line.trim_start().starts_with("```toml") => open = Some((n + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => out.extend(open.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    out
}

#[test]
fn example_files_load() {
    let files = files_in(&repo_root().join("examples"), "toml");
    assert!(files.len() >= 2, "examples/*.toml: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        check(&file.display().to_string(), &text);
    }
}

#[test]
fn the_kubernetes_configuration_loads() {
    let file = repo_root().join("examples/kubernetes/configmap.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut found = 0;
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        if let Some(data) = v["data"].as_object() {
            for (key, toml) in data.iter().filter(|(k, _)| k.ends_with(".toml")) {
                check(
                    &format!("{}: {key}", file.display()),
                    toml.as_str().unwrap(),
                );
                found += 1;
            }
        }
    }
    assert_eq!(found, 1, "one configuration in {}", file.display());
}

#[test]
fn complete_configurations_in_the_docs_load() {
    let root = repo_root();
    let mut docs = vec![
        root.join("README.md"),
        root.join("examples/kubernetes/README.md"),
    ];
    docs.extend(files_in(&root.join("docs"), "md"));
    for plugin in std::fs::read_dir(root.join("plugins")).unwrap().flatten() {
        let readme = plugin.path().join("README.md");
        if readme.is_file() {
            docs.push(readme);
        }
    }
    let mut checked = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, block) in toml_blocks(&text) {
            // Fragments (one table, shown in its section) are not configurations.
            if block
                .lines()
                .any(|l| l.trim_start().starts_with("version ="))
            {
                check(&format!("{}:{line}", doc.display()), &block);
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "only {checked} complete configurations found");
}

#[test]
fn placeholders_replace_environment_secrets() {
    assert_eq!(
        inlined("a = { env = \"X\" }\nb = 1 # { env = \"Y\" }\n"),
        "a = \"placeholder-for-X\"\nb = 1 # \"placeholder-for-Y\"\n"
    );
}
