//! The Kubernetes examples (examples/kubernetes/) agree with each other and with
//! Switchyard: every manifest parses, the embedded configuration is valid, the Deployment
//! serves that configuration with probes on its admin port, the Indexed Job's shards cover
//! the key space and name a bucket and members that exist, the Secret supplies every
//! variable the configuration reads, and policies in a ConfigMap-style directory are
//! reloaded when the kubelet swaps it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use switchyard::mover::Shard;
use switchyard_tests::harness::{Gateway, TempDir, repo_root, run_switchyard};
use switchyard_tests::wasm::{Misbehaviour, fixed_policy};

const CONFIG_MAP: &str = "switchyard-config";
const CONFIG_KEY: &str = "switchyard.toml";

fn dir() -> PathBuf {
    repo_root().join("examples/kubernetes")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every document of every `*.yaml` file, as JSON, with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = read(&file);
        let before = out.len();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !v.is_null() {
                out.push((file.clone(), v));
            }
        }
        assert!(out.len() > before, "{file} holds no manifest");
    }
    out
}

fn find<'a>(all: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = all
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} {name:?}");
    found[0]
}

fn only<'a>(all: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = all
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a list of strings").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the environment variables a configuration reads (`{ env = "NAME" }`).
fn env_names(toml: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in toml
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
    {
        let mut rest = line;
        while let Some(i) = rest.find("{ env = \"") {
            rest = &rest[i + "{ env = \"".len()..];
            let end = rest.find('"').expect("closing quote");
            names.insert(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    names
}

/// The configuration with every `{ env = "NAME" }` given inline, so it can be checked in
/// this process (whose environment a test must not change).
fn inlined(toml: &str) -> String {
    let mut out = toml.to_owned();
    for name in env_names(toml) {
        out = out.replace(
            &format!("{{ env = \"{name}\" }}"),
            &format!("\"placeholder-for-{name}\""),
        );
    }
    out
}

/// The ConfigMap's TOML, parsed and validated by Switchyard itself.
fn configuration(all: &[(String, Value)]) -> (String, switchyard::Config) {
    let text = find(all, "ConfigMap", CONFIG_MAP)["data"][CONFIG_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {CONFIG_MAP} has no {CONFIG_KEY}"))
        .to_owned();
    let config = switchyard::Config::from_toml(&inlined(&text))
        .unwrap_or_else(|e| panic!("the ConfigMap's {CONFIG_KEY}: {e}"));
    (text, config)
}

/// The Secret's entries, `stringData` or (base64) `data`.
fn secret_entries(secret: &Value) -> BTreeMap<String, String> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    if let Some(m) = secret["stringData"].as_object() {
        for (k, v) in m {
            out.insert(k.clone(), v.as_str().unwrap().to_owned());
        }
    }
    if let Some(m) = secret["data"].as_object() {
        for (k, v) in m {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            out.insert(k.clone(), String::from_utf8(bytes).unwrap());
        }
    }
    out
}

/// The variables a container gets from Secrets (envFrom and secretKeyRef), with values.
fn secret_env(all: &[(String, Value)], container: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        if let Some(name) = from["secretRef"]["name"].as_str() {
            let prefix = from["prefix"].as_str().unwrap_or_default();
            for (k, v) in secret_entries(find(all, "Secret", name)) {
                out.insert(format!("{prefix}{k}"), v);
            }
        }
    }
    for env in container["env"].as_array().into_iter().flatten() {
        let r = &env["valueFrom"]["secretKeyRef"];
        if let (Some(secret), Some(key)) = (r["name"].as_str(), r["key"].as_str()) {
            let entries = secret_entries(find(all, "Secret", secret));
            let value = entries
                .get(key)
                .unwrap_or_else(|| panic!("Secret {secret} has no key {key}"));
            out.insert(env["name"].as_str().unwrap().to_owned(), value.clone());
        }
    }
    out
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn one_container(workload: &Value) -> &Value {
    let containers = pod_spec(workload)["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// `command` then `args`, without the program itself.
fn argv(container: &Value) -> Vec<String> {
    let mut all = strs(&container["command"]);
    all.extend(strs(&container["args"]));
    if all
        .first()
        .is_some_and(|p| p == "switchyard" || p.ends_with("/switchyard"))
    {
        all.remove(0);
    }
    all
}

/// The value after `--flag` (or in `--flag=value`).
fn flag(argv: &[String], name: &str) -> Option<String> {
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            argv.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{name}=")).map(str::to_owned)
        }
    })
}

/// Checks that `path` is a file the pod gets from the ConfigMap `map` under key `key`,
/// through a directory mount (which, unlike `subPath`, follows updates).
fn mounted_from_config_map(workload: &Value, container: &Value, path: &str, map: &str) {
    let path = Path::new(path);
    let (parent, file) = (
        path.parent().unwrap().to_str().unwrap(),
        path.file_name().unwrap().to_str().unwrap(),
    );
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == parent)
        .unwrap_or_else(|| panic!("nothing is mounted at {parent}"));
    assert!(
        mount["subPath"].is_null(),
        "{parent}: subPath mounts see no updates"
    );
    let volume = pod_spec(workload)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(
        volume["configMap"]["name"], map,
        "{parent} comes from {map}"
    );
    let items = volume["configMap"]["items"].as_array();
    let key = items
        .and_then(|items| items.iter().find(|i| i["path"] == file))
        .map_or(file, |i| i["key"].as_str().unwrap());
    assert_eq!(
        key,
        CONFIG_KEY,
        "{} is the ConfigMap's {CONFIG_KEY}",
        path.display()
    );
}

/// The container port a probe or Service names (by name or number).
fn port_number(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port is a number or a name");
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

#[test]
fn every_manifest_parses_and_is_a_known_kind() {
    let all = manifests();
    let known = [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
    ];
    let mut kinds = BTreeSet::new();
    for (file, v) in &all {
        let (api, kind) = (
            v["apiVersion"].as_str().unwrap_or_default(),
            v["kind"].as_str().unwrap_or_default(),
        );
        assert!(
            known.contains(&(api, kind)),
            "{file}: unexpected {api} {kind}"
        );
        assert!(
            v["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{file}: {kind} without a name"
        );
        kinds.insert(kind);
    }
    assert_eq!(kinds.len(), known.len(), "every kind is there: {kinds:?}");
    let readme = read("README.md");
    for file in [
        "configmap.yaml",
        "secret.yaml",
        "deployment.yaml",
        "migrate-job.yaml",
    ] {
        assert!(dir().join(file).is_file(), "{file} missing");
        assert!(readme.contains(file), "README.md does not mention {file}");
    }
    // One image for the project: the example builds the top-level Dockerfile, and has
    // none of its own.
    assert!(repo_root().join("Dockerfile").is_file());
    assert!(
        readme.contains("../../Dockerfile"),
        "README.md does not point at the top-level Dockerfile"
    );
    for own in ["Dockerfile", "Dockerfile.dockerignore", ".dockerignore"] {
        assert!(!dir().join(own).exists(), "examples/kubernetes/{own}");
    }
}

#[tokio::test]
async fn the_configuration_is_valid_with_the_secrets_it_names() {
    let all = manifests();
    let (text, config) = configuration(&all);
    assert!(!config.buckets.is_empty() && !config.users.is_empty());
    let needed = env_names(&text);
    assert!(!needed.is_empty(), "credentials come from the environment");
    // The real validation, by the binary, with the Secret's values in its environment.
    let deployment = only(&all, "Deployment");
    let env = secret_env(&all, one_container(deployment));
    for name in &needed {
        assert!(env.contains_key(name), "the engines' Secret lacks {name}");
    }
    let tmp = TempDir::new("k8s-config");
    let file = tmp.0.join(CONFIG_KEY);
    std::fs::write(&file, &text).unwrap();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = run_switchyard(
        &["check-config", file.to_str().unwrap()],
        &envs,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(
        run.status.success() && run.stdout.contains(": ok ("),
        "switchyard check-config: {}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn the_deployment_serves_the_configuration_with_probes_on_the_admin_port() {
    let all = manifests();
    let (text, config) = configuration(&all);
    let deployment = only(&all, "Deployment");
    let c = one_container(deployment);
    let args = argv(c);
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{args:?}");
    let path = flag(&args, "--config").expect("serve --config PATH");
    mounted_from_config_map(deployment, c, &path, CONFIG_MAP);

    // Policies: [plugins] dir is a directory mount of a ConfigMap (hot reload).
    let plugins = config.plugins.dir.as_ref().expect("[plugins] dir");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == plugins.to_str().unwrap())
        .unwrap_or_else(|| panic!("[plugins] dir {} is not mounted", plugins.display()));
    assert!(mount["subPath"].is_null());
    let volume = pod_spec(deployment)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let map = volume["configMap"]["name"].as_str().expect("a ConfigMap");
    find(&all, "ConfigMap", map);

    // Probes reach the admin listener, which must listen beyond the pod's loopback.
    let admin = config.server.admin_listen.expect("[server] admin_listen");
    assert!(
        admin.ip().is_unspecified(),
        "admin_listen {admin}: probes come from outside"
    );
    // Readiness on /readyz (policies loaded, members healthy); liveness on /healthz,
    // which a backend outage never fails (it must not restart the pods).
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(
            port_number(c, &get["port"]),
            u64::from(admin.port()),
            "{probe} port"
        );
    }
    let s3 = config.server.listen;
    assert!(s3.ip().is_unspecified(), "listen {s3}");

    // The Service selects these pods and forwards to the S3 listener.
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    for (k, v) in deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(pod_labels.get(k), Some(v), "the selector matches the pods");
    }
    let service = only(&all, "Service");
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "the Service selects the pods");
    }
    let targets: Vec<u64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| port_number(c, &p["targetPort"]))
        .collect();
    assert!(targets.contains(&u64::from(s3.port())), "{targets:?}");

    // Secrets, and time to drain before the kill.
    let env = secret_env(&all, c);
    for name in env_names(&text) {
        assert!(
            env.contains_key(&name),
            "{name} is not given to the engines"
        );
    }
    let grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let pre_stop = strs(&c["lifecycle"]["preStop"]["exec"]["command"]);
    let pause = match pre_stop.as_slice() {
        [sleep, secs] if sleep == "sleep" => secs.parse::<u64>().unwrap(),
        _ => 0,
    };
    assert!(
        grace > pause + config.server.shutdown_grace.as_secs(),
        "terminationGracePeriodSeconds {grace} leaves no time to drain"
    );
    assert!(deployment["spec"]["replicas"].as_u64().unwrap_or(1) >= 2);
}

#[tokio::test]
async fn the_indexed_job_shards_the_migration_of_a_configured_bucket() {
    let all = manifests();
    let (text, config) = configuration(&all);
    let job = only(&all, "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().expect("completions");
    assert_eq!(spec["parallelism"].as_u64(), Some(n), "all shards at once");
    assert!(n >= 2);
    let restart = pod_spec(job)["restartPolicy"].as_str().unwrap();
    assert!(restart == "OnFailure" || restart == "Never", "{restart}");

    let c = one_container(job);
    let args = argv(c);
    assert_eq!(
        args.first().map(String::as_str),
        Some("migrate"),
        "{args:?}"
    );
    let shard = flag(&args, "--shard").expect("--shard");
    assert_eq!(shard, format!("$(JOB_COMPLETION_INDEX)/{n}"));
    // Every index gets a shard, and the shards split the key space.
    let shards: Vec<Shard> = (0..n)
        .map(|i| Shard::parse(&shard.replace("$(JOB_COMPLETION_INDEX)", &i.to_string())).unwrap())
        .collect();
    for k in 0..300 {
        let key = format!("key/{k}");
        assert_eq!(shards.iter().filter(|s| s.owns(&key)).count(), 1);
    }
    // The index variable is defined for $(…) expansion.
    let index_env = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "JOB_COMPLETION_INDEX")
        .expect("JOB_COMPLETION_INDEX in env");
    assert_eq!(
        index_env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );

    // The same configuration, a bucket and members it has, destination first.
    let path = flag(&args, "--config").expect("--config");
    mounted_from_config_map(job, c, &path, CONFIG_MAP);
    let bucket = flag(&args, "--bucket").expect("--bucket");
    let (from, to) = (
        flag(&args, "--from").expect("--from"),
        flag(&args, "--to").expect("--to"),
    );
    let members = &config
        .buckets
        .get(&bucket)
        .unwrap_or_else(|| panic!("bucket {bucket} is not configured"))
        .members;
    assert!(members.contains(&from) && members.contains(&to) && from != to);
    assert_eq!(members[0], to, "the destination comes first in the members");
    if let Some(mode) = flag(&args, "--mode") {
        assert!(mode == "copy" || mode == "move", "{mode}");
    }
    let env = secret_env(&all, c);
    for name in env_names(&text) {
        assert!(env.contains_key(&name), "{name} is not given to the job");
    }
    assert_eq!(c["image"], one_container(only(&all, "Deployment"))["image"]);

    // Every flag is one the CLI has.
    let help = run_switchyard(&["migrate", "--help"], &[], Duration::from_secs(30))
        .await
        .unwrap();
    assert!(help.status.success(), "{}", help.stderr);
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let name = a.split('=').next().unwrap();
        assert!(
            help.stdout.contains(name),
            "switchyard migrate has no {name}"
        );
    }
}

#[test]
fn the_dockerfile_builds_the_binary_the_manifests_run() {
    let docker = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = docker
        .lines()
        .filter(|l| l.trim_start().starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(docker.contains("cargo build --release") && docker.contains("-p switchyard"));
    assert!(docker.contains("ENTRYPOINT [\"switchyard\"]"));
    // The builder's Rust is at least the workspace's rust-version.
    let workspace = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let wanted = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    let rust = froms[0]
        .split_whitespace()
        .nth(1)
        .and_then(|image| image.strip_prefix("rust:"))
        .expect("the first stage builds with rust:VERSION");
    let rust = rust.split('-').next().unwrap();
    assert!(version(rust) >= version(wanted), "rust:{rust} < {wanted}");
    // The image's user is the one the pods run as.
    let uid = docker
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .and_then(|u| u.split(':').next())
        .expect("USER");
    for (_, v) in manifests() {
        if v["kind"] == "Deployment" || v["kind"] == "Job" {
            assert_eq!(
                pod_spec(&v)["securityContext"]["runAsUser"].as_u64(),
                Some(uid.parse().unwrap())
            );
        }
    }
    // Non-root, and the S3 port the embedded default is told to listen on, beyond the
    // container's loopback.
    assert_ne!(uid, "0");
    assert!(docker.lines().any(|l| l.trim() == "EXPOSE 9000"));
    assert!(docker.contains("\"--listen\", \"0.0.0.0:9000\""));
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    for excluded in ["target", ".git", "plugins/*/target"] {
        assert!(ignore.lines().any(|l| l.trim() == excluded), "{excluded}");
    }
}

/// Lays `files` out as the kubelet does for a ConfigMap volume: a fresh timestamped
/// directory, the `..data` symlink swapped to it atomically, one top-level symlink per key
/// through `..data`, and what the previous generation had removed.
fn kubelet_update(dir: &Path, generation: u32, files: &[(&str, &[u8])]) {
    use std::os::unix::fs::symlink;
    let stamp = format!("..2026_01_01_00_00_{generation:02}.000000001");
    std::fs::create_dir(dir.join(&stamp)).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(&stamp).join(name), bytes).unwrap();
    }
    let _ = std::fs::remove_file(dir.join("..data_tmp"));
    symlink(&stamp, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let stale_key = !name.starts_with("..") && !files.iter().any(|(f, _)| *f == name);
        let old_stamp = name.starts_with("..20") && name != stamp;
        if stale_key {
            std::fs::remove_file(e.path()).unwrap();
        } else if old_stamp {
            std::fs::remove_dir_all(e.path()).unwrap();
        }
    }
}

async fn loaded(gw: &Gateway) -> BTreeMap<String, String> {
    let addr = gw.server.as_ref().unwrap().admin_addr().unwrap();
    let text = reqwest::get(format!("http://{addr}/policies"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn wait_for(gw: &Gateway, want: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = loaded(gw).await;
        if &now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "loaded {now:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sha256(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// What deployment.yaml relies on: a ConfigMap mounted as the plugins directory is
/// reloaded when the kubelet swaps in a new version, keys added and removed included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_in_a_config_map_volume_reload_on_update() {
    let (plugins, a, b) = (
        TempDir::new("k8s-plugins"),
        TempDir::new("k8s-a"),
        TempDir::new("k8s-b"),
    );
    let (to_a, to_b) = (
        fixed_policy("a", Misbehaviour::None),
        fixed_policy("b", Misbehaviour::None),
    );
    kubelet_update(&plugins.0, 1, &[("router.wasm", &to_a)]);
    let cfg = format!(
        "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\n[plugins]\ndir = {:?}\ndebounce = \"50ms\"\n\
         [backends.a]\nkind = \"fs\"\nroot = {:?}\n[backends.b]\nkind = \"fs\"\nroot = {:?}\n\
         [buckets.live]\nmembers = [\"a\", \"b\"]\npolicy = \"router\"\n",
        plugins.0.display().to_string(),
        a.0.display().to_string(),
        b.0.display().to_string()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = gw.client();
    wait_for(&gw, &BTreeMap::from([("router".into(), sha256(&to_a))])).await;
    c.put_object()
        .bucket("live")
        .key("one")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap();
    assert!(a.0.join("one").is_file(), "placed by the first version");

    // An update that changes one key and adds another.
    kubelet_update(
        &plugins.0,
        2,
        &[("router.wasm", &to_b), ("spare.wasm", &to_a)],
    );
    wait_for(
        &gw,
        &BTreeMap::from([
            ("router".into(), sha256(&to_b)),
            ("spare".into(), sha256(&to_a)),
        ]),
    )
    .await;
    c.put_object()
        .bucket("live")
        .key("two")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .unwrap();
    assert!(b.0.join("two").is_file(), "placed by the new version");

    // An update that removes a key unloads that policy.
    kubelet_update(&plugins.0, 3, &[("router.wasm", &to_b)]);
    wait_for(&gw, &BTreeMap::from([("router".into(), sha256(&to_b))])).await;
    gw.stop().await;
}
