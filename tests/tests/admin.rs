//! The admin listener's bearer token, on a running engine: with `admin_auth = "writes"`
//! (the default) only the requests that start jobs need it; with `"all"` every request but
//! `/healthz` does. A wrong token is refused whatever it shares with the right one: a
//! prefix of it, the token with more after it, another case.

use switchyard_tests::harness::{Gateway, TempDir};

const TOKEN: &str = "admin-token-0123456789";

/// Tokens that are not [`TOKEN`], each with what makes it wrong.
fn wrong_tokens() -> Vec<(&'static str, String)> {
    vec![
        ("another token", "wrong-token-0123456789".into()),
        ("a prefix of it", TOKEN[..TOKEN.len() - 1].into()),
        ("a longer one", format!("{TOKEN}0")),
        ("another case", TOKEN.to_uppercase()),
    ]
}

async fn engine(auth: &str) -> (Gateway, String, Vec<TempDir>) {
    let (a, b) = (TempDir::new("admin-a"), TempDir::new("admin-b"));
    let config = format!(
        "version = 1\n[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = {TOKEN:?}\n{auth}\n[backends.a]\nkind = \"fs\"\nroot = {:?}\n[backends.b]\nkind = \"fs\"\nroot = {:?}\n[buckets.data]\nmembers = [\"a\", \"b\"]\n",
        a.0.display().to_string(),
        b.0.display().to_string(),
    );
    let gw = Gateway::start(&config).await.unwrap();
    let admin = format!(
        "http://{}",
        gw.server.as_ref().unwrap().admin_addr().unwrap()
    );
    (gw, admin, vec![a, b])
}

/// The status of a request; a 401 must name the scheme it wants.
async fn status(method: reqwest::Method, url: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 401 {
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{url}"
        );
    }
    status
}

/// A dry-run migration: starting it is a write, and it changes nothing.
fn start_job(admin: &str) -> String {
    format!("{admin}/jobs/migrate?bucket=data&from=b&to=a&dry_run=true")
}

#[tokio::test]
async fn writes_need_the_token_and_reads_do_not() {
    let (gw, admin, _dirs) = engine("").await;
    let post = reqwest::Method::POST;
    assert_eq!(status(post.clone(), &start_job(&admin), None).await, 401);
    for (what, token) in wrong_tokens() {
        assert_eq!(
            status(post.clone(), &start_job(&admin), Some(&token)).await,
            401,
            "{what}"
        );
    }
    assert_eq!(
        status(post.clone(), &start_job(&admin), Some(TOKEN)).await,
        202
    );
    for path in ["/healthz", "/metrics", "/jobs", "/policies"] {
        assert_eq!(
            status(reqwest::Method::GET, &format!("{admin}{path}"), None).await,
            200,
            "{path}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn with_admin_auth_all_only_health_is_open() {
    let (gw, admin, _dirs) = engine("admin_auth = \"all\"").await;
    let get = reqwest::Method::GET;
    assert_eq!(
        status(get.clone(), &format!("{admin}/healthz"), None).await,
        200
    );
    let reads = ["/metrics", "/jobs", "/policies"];
    // Refused before routing: no path, known or not, tells anything without the token.
    for path in reads.iter().chain(&["/jobs/1", "/no-such-page"]) {
        let url = format!("{admin}{path}");
        assert_eq!(status(get.clone(), &url, None).await, 401, "{path}");
        for (what, token) in wrong_tokens() {
            assert_eq!(
                status(get.clone(), &url, Some(&token)).await,
                401,
                "{path}: {what}"
            );
        }
    }
    for path in reads {
        let url = format!("{admin}{path}");
        assert_eq!(status(get.clone(), &url, Some(TOKEN)).await, 200, "{path}");
    }
    assert_eq!(
        status(get.clone(), &format!("{admin}/no-such-page"), Some(TOKEN)).await,
        404
    );
    let post = reqwest::Method::POST;
    assert_eq!(status(post.clone(), &start_job(&admin), None).await, 401);
    assert_eq!(
        status(post.clone(), &start_job(&admin), Some(&format!("{TOKEN}0"))).await,
        401
    );
    assert_eq!(status(post, &start_job(&admin), Some(TOKEN)).await, 202);
    gw.stop().await;
}
