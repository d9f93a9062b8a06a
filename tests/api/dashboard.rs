//! The dashboard's gate: every page needs a login with the API key, forms need the
//! session's CSRF token, and without a configured key no one can log in. (The pages
//! themselves are driven in a real browser by tests/e2e/dashboard.test.mjs.)

use reqwest::redirect::Policy;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{API_KEY, spawn_app};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Logs in through the form, as a browser would; returns the client holding the cookie.
pub async fn logged_in(address: &str, key: &str) -> (reqwest::Client, reqwest::StatusCode) {
    let client = client();
    let response = log_in(&client, address, key).await;
    (client, response.status())
}

/// A dashboard page's HTML, seen by someone logged in with the API key.
pub async fn dashboard_page(app: &crate::helpers::TestApp, path: &str) -> String {
    let (client, status) = logged_in(&app.address, API_KEY).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER, "logged in");
    let page = client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{path}");
    page.text().await.unwrap()
}

/// Posts the login form with `key` from `client`; the answer to the post.
async fn log_in(client: &reqwest::Client, address: &str, key: &str) -> reqwest::Response {
    let form = client
        .get(format!("{address}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = |name: &str| {
        let start = form.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        form[start..].split('"').next().unwrap().to_owned()
    };
    let (nonce, token) = (field("nonce"), field("token"));
    client
        .post(format!("{address}/login"))
        .form(&[
            ("key", key),
            ("nonce", &nonce),
            ("token", &token),
            ("next", "/emails"),
        ])
        .send()
        .await
        .unwrap()
}

#[sqlx::test]
async fn pages_need_a_login_with_the_api_key(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for path in [
        "/",
        "/contacts/0190b8a4-5b1e-7c3d-9f00-000000000000",
        "/events",
        "/workflows",
        "/emails",
        "/analytics",
        "/preview",
    ] {
        let response = client()
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next="),
            "{path}"
        );
    }
    let (_, status) = logged_in(&app.address, "wrong").await;
    assert_eq!(status, 401);
    let (client, status) = logged_in(&app.address, API_KEY).await;
    assert_eq!(status, 303);
    let page = client
        .get(format!("{}/emails", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<h1>Emails</h1>"));
    let css = client
        .get(format!("{}/assets/roster.css", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[sqlx::test]
async fn a_form_without_its_csrf_token_changes_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.api_post(
        "/v1/contacts/create",
        serde_json::json!({ "email": "ada@example.com" }),
    )
    .await;
    let contact = app.contact_by_email("ada@example.com").await.unwrap();
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let response = client
        .post(format!(
            "{}/contacts/{}/subscription",
            app.address, contact.id
        ))
        .form(&[("csrf", "forged"), ("subscribed", "no")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .subscribed
    );
    // A login form posted without its nonce cookie (from another site) is refused too.
    let response = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", app.address))
        .form(&[("key", API_KEY), ("nonce", "x"), ("token", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().starts_with("roster_session="))
    );
}

/// The CSRF token of the forms on the page at `path`.
pub async fn csrf(client: &reqwest::Client, url: &str) -> String {
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    let start = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[start..].split('"').next().unwrap().to_owned()
}

#[sqlx::test]
async fn a_test_email_is_sent_to_the_contact(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.api_post(
        "/v1/contacts/create",
        serde_json::json!({ "email": "ada@example.com", "firstName": "Ada" }),
    )
    .await;
    let contact = app.contact_by_email("ada@example.com").await.unwrap();
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let page = format!("{}/contacts/{}", app.address, contact.id);
    let token = csrf(&client, &page).await;
    let response = client
        .post(format!("{page}/test-email"))
        .form(&[("csrf", token.as_str()), ("template", "magic_link")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    app.run_jobs_at(chrono::Utc::now()).await;
    let (status, sent) = app.api_get("/v1/email-deliveries?state=sent").await;
    assert_eq!(status, 200);
    assert_eq!(sent["data"][0]["template"], "magic_link");
    assert_eq!(sent["data"][0]["recipient"], "ada@example.com");

    let response = client
        .post(format!("{page}/test-email"))
        .form(&[("csrf", token.as_str()), ("template", "no_such_template")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[sqlx::test]
async fn the_contact_page_shows_api_events(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let (status, _) = app
        .api_post(
            "/v1/events/send",
            serde_json::json!({
                "email": "ada@example.com",
                "eventName": "planUpgraded",
                "eventProperties": { "plan": "pro" },
            }),
        )
        .await;
    assert_eq!(status, 200);
    let contact = app.contact_by_email("ada@example.com").await.unwrap();
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let page = client
        .get(format!("{}/contacts/{}", app.address, contact.id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("planUpgraded"), "{html}");
    assert!(html.contains(r#"{"plan": "pro"}"#), "{html}");
}

/// The session cookie the client holds for `address`.
fn session_cookie(response_cookies: &reqwest::Response) -> Option<String> {
    response_cookies
        .cookies()
        .find(|c| c.name() == "roster_session")
        .map(|c| c.value().to_owned())
}

#[sqlx::test]
async fn logging_out_ends_the_session_on_the_server(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    // Log in by hand, to keep a copy of the cookie.
    let bare = client();
    let response = log_in(&bare, &app.address, API_KEY).await;
    assert_eq!(response.status(), 303);
    let copied = session_cookie(&response).expect("a session cookie");
    let with_copy = |path: &str| {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{path}", app.address))
            .header("cookie", format!("roster_session={copied}"))
            .send()
    };
    assert_eq!(with_copy("/emails").await.unwrap().status(), 200);

    let token = csrf(&bare, &format!("{}/emails", app.address)).await;
    let out = bare
        .post(format!("{}/logout", app.address))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        with_copy("/emails").await.unwrap().status(),
        303,
        "a copy of the ended session's cookie no longer logs in"
    );
    let left: i64 = sqlx::query_scalar("select count(*) from dashboard_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test]
async fn an_expired_session_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let page = format!("{}/emails", app.address);
    assert_eq!(client.get(&page).send().await.unwrap().status(), 200);
    sqlx::query("update dashboard_sessions set expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(client.get(&page).send().await.unwrap().status(), 303);
}

#[sqlx::test]
async fn every_page_refuses_to_be_framed(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    // The unsubscribe page (a forged token: 404, a page all the same), the login page,
    // an error page.
    for path in ["/unsubscribe/not-a-token", "/login", "/contacts/not-a-uuid"] {
        let response = client()
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
}

#[sqlx::test]
async fn failed_logins_are_throttled(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for _ in 0..10 {
        assert_eq!(logged_in(&app.address, "wrong").await.1, 401);
    }
    assert_eq!(logged_in(&app.address, "wrong").await.1, 429);
    assert_eq!(
        logged_in(&app.address, API_KEY).await.1,
        429,
        "the right key waits too while the address is throttled"
    );
}

#[sqlx::test]
async fn a_segment_is_built_counted_saved_and_changed_on_the_dashboard(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    for (email, group) in [
        ("ada@example.com", "beta"),
        ("grace@example.com", "beta"),
        ("alan@example.com", "staff"),
    ] {
        app.api_post(
            "/v1/contacts/create",
            serde_json::json!({ "email": email, "userGroup": group }),
        )
        .await;
    }
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let get = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap().text().await.unwrap() }
    };
    // The builder's rows count live.
    let page = get(format!(
        "{}/segments?match=all&p0=userGroup&o0=equals&v0=Beta",
        app.address
    ))
    .await;
    assert!(page.contains("id=\"segment-count\">2<"), "{page}");
    assert!(page.contains("ada@example.com") && !page.contains("alan@example.com"));
    // A fault names its condition and offers no save.
    let page = get(format!(
        "{}/segments?p0=userGroup&o0=before&v0=x",
        app.address
    ))
    .await;
    assert!(page.contains("filter.conditions[0].operator"), "{page}");
    assert!(!page.contains("Save segment"));
    // The audience page's filters open the builder as a segment of the same people.
    let audience = get(format!("{}/?userGroup=staff", app.address)).await;
    let end = audience.find("\">Save as a segment<").expect("a save link");
    let start = audience[..end].rfind("href=\"").unwrap() + 6;
    let link = audience[start..end]
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"");
    let page = get(format!("{}{link}", app.address)).await;
    assert!(page.contains("id=\"segment-count\">1<"), "{page}");

    let token = csrf(&client, &format!("{}/segments", app.address)).await;
    let filter = r#"{"match": "all", "conditions": [{"property": "userGroup", "operator": "equals", "value": "beta"}]}"#;
    let response = client
        .post(format!("{}/segments", app.address))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "Beta"),
            ("filter", filter),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let page = get(format!("{}{location}", app.address)).await;
    assert!(
        page.contains("<h1>Beta</h1>") && page.contains("id=\"segment-count\">2<"),
        "{page}"
    );

    let everyone = r#"{"match": "any", "conditions": []}"#;
    let response = client
        .post(format!("{}{location}", app.address))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "Everyone"),
            ("filter", everyone),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let (_, segment) = app
        .api_get(&format!(
            "/v1/audience-segments/{}",
            &location["/segments/".len()..]
        ))
        .await;
    assert_eq!(
        (segment["name"].clone(), segment["count"].clone()),
        (serde_json::json!("Everyone"), serde_json::json!(3))
    );

    let response = client
        .post(format!("{}{location}/delete", app.address))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        !get(format!("{}/segments", app.address))
            .await
            .contains("Everyone")
    );
}

#[sqlx::test]
async fn a_campaign_is_created_previewed_sent_and_counted_on_the_dashboard(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = crate::helpers::spawn_app_with_smtp(db, "").await;
    for email in ["ada@example.com", "grace@example.com"] {
        app.api_post(
            "/v1/contacts/create",
            serde_json::json!({ "email": email, "firstName": "Ada" }),
        )
        .await;
    }
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let token = csrf(&client, &format!("{}/campaigns", app.address)).await;
    let response = client
        .post(format!("{}/campaigns", app.address))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "Launch"),
            ("template", "tips"),
            ("list", ""),
            ("segment", ""),
            ("when", "draft"),
            ("at_time", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let page_path = response.headers()["location"].to_str().unwrap().to_owned();
    let page_url = format!("{}{page_path}", app.address);
    let page = client
        .get(&page_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"campaign-status\">Draft<")
            && page.contains("<iframe class=\"preview\""),
        "{page}"
    );

    let test = client
        .post(format!("{page_url}/test"))
        .form(&[("csrf", token.as_str()), ("email", "me@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(test.status(), 303);
    let send = client
        .post(format!("{page_url}/send"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 303);
    app.run_jobs_at(chrono::Utc::now()).await;
    app.run_jobs_at(chrono::Utc::now()).await;
    let mut to: Vec<String> = smtp
        .messages()
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect();
    to.sort();
    assert_eq!(to, ["ada@example.com", "grace@example.com", "me@acme.test"]);
    let page = client
        .get(&page_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"campaign-status\">Sent<") && page.contains("id=\"stat-sent\">2<"),
        "{page}"
    );
    assert!(
        !page.contains(">Cancel<"),
        "a sent campaign has no cancel button"
    );
}
