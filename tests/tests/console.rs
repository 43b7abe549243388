//! The web console (`/` on the admin listener) in a real browser: Debian's headless
//! Chromium driven over WebDriver (`chromedriver`, Debian's `chromium-driver`). Each page
//! must render the engine's live data, starting a migration from the jobs page must move
//! objects, an inventory started from the storage page must count them, and the browser
//! must log no error. Screenshots of every page go to `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use switchyard_tests::harness::{Gateway, TempDir, repo_root};
use switchyard_tests::wasm::{TierAnswer, first_member_policy};

const TOKEN: &str = "console-token-0123456789";

/// A WebDriver session of headless Chromium, and the chromedriver serving it.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: `apt-get install chromium chromium-driver` (scripts/install-test-tools.sh does)");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{root}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut b = Self {
            driver,
            base: root.clone(),
            http,
        };
        let args = [
            "--headless=new",
            // As root (CI runs as root), Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ];
        let session = b
            .call(
                reqwest::Method::POST,
                "/session",
                json!({ "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": chromium(), "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }}}),
            )
            .await;
        let id = session["sessionId"].as_str().expect("a session id");
        b.base = format!("{root}/session/{id}");
        b
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("a WebDriver answer");
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits until `script` returns something other than null or false; returns it.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.run(script).await;
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Shows `page` and waits until it has rendered data refreshed after now.
    async fn page(&self, page: &str) {
        self.run(&format!("location.hash = '#{page}'")).await;
        let seen = self
            .run("return Number(document.body.dataset.refreshes || 0)")
            .await
            .as_u64()
            .unwrap();
        self.wait_for(
            &format!("page {page} with fresh data"),
            &format!(
                "return document.body.dataset.rendered === '{page}' && Number(document.body.dataset.refreshes) > {seen}"
            ),
        )
        .await;
    }

    /// The visible text of the page's current section.
    async fn text(&self) -> String {
        self.run("return document.querySelector('section:not([hidden])').innerText")
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// What the page wrote to the browser's console, and the browser's own errors (a
    /// failed request, an uncaught exception), since the last call.
    async fn logs(&self) -> Vec<Value> {
        self.call(
            reqwest::Method::POST,
            "/se/log",
            json!({ "type": "browser" }),
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(&self.base)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

fn chromium() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: `apt-get install chromium chromium-driver` (scripts/install-test-tools.sh does)")
        .to_owned()
}

/// Where the screenshots go: the target directory this test was built into.
fn screenshots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("console-screenshots")
}

/// Two `fs` members: `hot` (first: where writes go) and `cold`, holding objects written
/// there before the gateway (a migration's source); a bucket with a loaded policy.
struct Setup {
    plugins: TempDir,
    hot: TempDir,
    cold: TempDir,
}

impl Setup {
    fn new() -> Self {
        let s = Self {
            plugins: TempDir::new("console-plugins"),
            hot: TempDir::new("console-hot"),
            cold: TempDir::new("console-cold"),
        };
        std::fs::write(
            s.plugins.0.join("first-member.wasm"),
            first_member_policy(TierAnswer::Keep),
        )
        .unwrap();
        for i in 0..4 {
            std::fs::write(s.cold.0.join(format!("old-{i}")), vec![b'c'; 1000 + i]).unwrap();
        }
        s
    }

    fn config(&self) -> String {
        format!(
            r#"version = 1
[server]
admin_listen = "127.0.0.1:0"
admin_token = "{TOKEN}"
[plugins]
dir = {plugins:?}
[backends.hot]
kind = "fs"
root = {hot:?}
labels = {{ tier = "hot" }}
[backends.cold]
kind = "fs"
root = {cold:?}
labels = {{ tier = "cold" }}
[buckets.photos]
members = ["hot", "cold"]
policy = "first-member"
"#,
            plugins = self.plugins.0.display().to_string(),
            hot = self.hot.0.display().to_string(),
            cold = self.cold.0.display().to_string(),
        )
    }
}

#[tokio::test]
async fn the_console_shows_live_data_and_starts_jobs_in_a_browser() {
    let setup = Setup::new();
    let gw = Gateway::start(&setup.config()).await.unwrap();
    let admin = format!(
        "http://{}",
        gw.server.as_ref().unwrap().admin_addr().unwrap()
    );
    let s3 = gw.client();
    for i in 0..3 {
        s3.put_object()
            .bucket("photos")
            .key(format!("new-{i}"))
            .body(ByteStream::from(vec![b'n'; 500]))
            .send()
            .await
            .unwrap();
    }

    let browser = Browser::start().await;
    browser.open(&format!("{admin}/")).await;

    browser.page("backends").await;
    let text = browser.text().await;
    for want in ["hot", "cold", "fs", "tier=hot", "tier=cold", "healthy"] {
        assert!(text.contains(want), "backends page lacks {want:?}:\n{text}");
    }
    // The writes above went to `hot`: its latency is known.
    let hot_latency = browser
        .run("return document.querySelector('#backends-table tr[data-name=hot] td:nth-child(5)').innerText")
        .await;
    assert_ne!(hot_latency, json!("–"), "no latency shown for hot");
    browser.screenshot("backends").await;

    browser.page("buckets").await;
    let text = browser.text().await;
    for want in ["photos", "hot", "cold", "first-member", "fail-closed"] {
        assert!(text.contains(want), "buckets page lacks {want:?}:\n{text}");
    }
    browser.screenshot("buckets").await;

    browser.page("policies").await;
    let row = browser
        .run("return document.querySelector('#policies-table tr[data-name=\"first-member\"]').innerText")
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("loaded"), "{row}");
    // Three placements: the decisions column counts them.
    let decisions = browser
        .run("return document.querySelector('#policies-table tr[data-name=\"first-member\"] td:nth-child(5)').innerText")
        .await;
    assert_ne!(decisions, json!("0"), "{row}");
    assert_ne!(decisions, json!("–"), "{row}");
    browser.screenshot("policies").await;

    // A migration from cold to hot, with the token, from the jobs page's form (whose
    // defaults are the last member to the first).
    browser.page("jobs").await;
    browser.type_into("#token", TOKEN).await;
    browser.click("#token-form button").await;
    browser
        .wait_for(
            "the token",
            "return document.getElementById('token-state').innerText === 'token set'",
        )
        .await;
    browser
        .click("#migrate-form select[name=from] option[value=cold]")
        .await;
    browser
        .click("#migrate-form select[name=to] option[value=hot]")
        .await;
    browser
        .click("#migrate-form select[name=mode] option[value=move]")
        .await;
    browser.click("#migrate-form button").await;
    browser
        .wait_for(
            "the migration to finish",
            "const r = document.querySelector('#jobs-table tr[data-state]'); return r && r.dataset.state === 'done'",
        )
        .await;
    for i in 0..4 {
        let key = format!("old-{i}");
        assert!(setup.hot.0.join(&key).exists(), "{key} not moved to hot");
        assert!(!setup.cold.0.join(&key).exists(), "{key} left in cold");
    }
    let text = browser.text().await;
    assert!(
        text.contains("migrate") && text.contains("from=cold"),
        "{text}"
    );
    browser.screenshot("jobs").await;

    // An inventory from the storage page: all 7 objects are in hot now.
    browser.page("storage").await;
    browser
        .click(".card[data-bucket=photos] button.inventory")
        .await;
    let counted = browser
        .wait_for(
            "the inventory",
            "const t = document.querySelector('.card[data-bucket=photos] table.inventory'); return t && [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].slice(0, 3).map(c => c.innerText))",
        )
        .await;
    let hot_bytes = 3 * 500 + (1000..1004).sum::<u64>();
    assert_eq!(
        counted,
        json!([
            [
                "As clients see it",
                "7",
                format!("{:.1} KiB", hot_bytes as f64 / 1024.0)
            ],
            ["hot", "7", format!("{:.1} KiB", hot_bytes as f64 / 1024.0)],
            ["cold", "0", "0 B"],
        ])
    );
    browser.screenshot("storage").await;

    let logs = browser.logs().await;
    let errors: Vec<&Value> = logs
        .iter()
        .filter(|l| matches!(l["level"].as_str(), Some("SEVERE" | "WARNING")))
        .collect();
    assert!(errors.is_empty(), "the browser logged: {errors:#?}");
    browser.quit().await;
    gw.stop().await;
}
