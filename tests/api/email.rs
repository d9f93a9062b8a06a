//! Email: templates render, messages reach a real SMTP server on loopback with both
//! parts and the unsubscribe headers, and SMTP failures are sorted right.

use std::path::Path;

use lettre::message::Mailbox;
use minijinja::Value;
use minijinja::value::Serde;
use roster::email::message::{Envelope, build_message, new_message_id};
use roster::email::templates::{TemplateError, Templates};
use roster::email::transport::{Mailer, SendError};
use serde_json::json;

use crate::smtp_server::{Reply, SmtpServer, Tls};

fn templates() -> Templates {
    Templates::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))).unwrap()
}

fn context(first_name: Option<&str>, unsubscribe_url: Option<&str>) -> Value {
    minijinja::context! {
        contact => Value::from(Serde(json!({ "email": "ada@example.com", "firstName": first_name }))),
        event => Value::from(Serde(json!({ "data": { "url": "https://app.test/magic" } }))),
        unsubscribe_url => unsubscribe_url,
    }
}

async fn send_welcome(
    mailer: &Mailer,
    unsubscribe_url: Option<&str>,
) -> (Result<String, SendError>, String) {
    let from: Mailbox = "Acme <hello@acme.test>".parse().unwrap();
    let rendered = templates()
        .render("welcome", &context(Some("Ada"), unsubscribe_url))
        .unwrap();
    let message_id = new_message_id(&from);
    let envelope = Envelope {
        from: &from,
        to: "Ada Lovelace <ada@example.com>".parse().unwrap(),
        message_id: &message_id,
        unsubscribe_url,
    };
    (
        mailer
            .send(build_message(&envelope, &rendered).unwrap())
            .await,
        message_id,
    )
}

fn smtp_mailer(server: &SmtpServer) -> Mailer {
    Mailer::new(Some(&server.url().into()), Path::new("outbox"), 2, &[]).unwrap()
}

#[test]
fn shipped_templates_render_for_a_contact_without_a_name() {
    let templates = templates();
    let names: Vec<&str> = templates.names().collect();
    assert_eq!(
        names,
        [
            "goodbye",
            "magic_link",
            "payment_failed",
            "tips",
            "trial_ending",
            "upgraded",
            "waitlist",
            "waitlist_update",
            "welcome"
        ]
    );
    for name in names {
        // The billing templates read the fields of the Clerk event their example
        // workflow starts on.
        let trigger = match name {
            "trial_ending" => Some("subscriptionItem.freeTrialEnding"),
            "payment_failed" => Some("paymentAttempt.updated"),
            "upgraded" => Some("subscriptionItem.active"),
            _ => None,
        };
        let mut context = context(None, Some("https://r.test/u/x"));
        if let Some(trigger) = trigger {
            let event = roster::clerk::samples::sample_event(
                trigger,
                "ada@example.com",
                chrono::Utc::now(),
            )
            .unwrap();
            context = minijinja::context! { event => Value::from(Serde(event)), ..context };
        }
        let email = templates.render(name, &context).unwrap();
        assert!(!email.subject.is_empty(), "{name}");
        assert!(email.html.contains("</html>"), "{name} uses the layout");
    }
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let email = templates()
        .render("welcome", &context(Some("<Ada & Co>"), None))
        .unwrap();
    assert!(
        email.html.contains("&lt;Ada &amp; Co&gt;"),
        "{}",
        email.html
    );
    assert!(email.text.contains("<Ada & Co>"));
    assert_eq!(email.subject, "Welcome, <Ada & Co>!");
}

#[test]
fn misspelt_variable_and_missing_part_are_named() {
    let dir = std::env::temp_dir().join(format!("roster-templates-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("hello")).unwrap();
    std::fs::write(dir.join("hello/subject"), "Hi {{ contact.frist_name }}").unwrap();
    std::fs::write(dir.join("hello/body.txt"), "text").unwrap();
    let error = Templates::load(&dir).err().expect("missing body.html");
    assert!(
        matches!(&error, TemplateError::MissingPart { name, part } if name == "hello" && *part == "body.html")
    );

    std::fs::write(dir.join("hello/body.html"), "<p>{{ contact.email }}</p>").unwrap();
    let templates = Templates::load(&dir).unwrap();
    let error = templates
        .render("hello", &context(Some("Ada"), None))
        .unwrap_err()
        .to_string();
    assert!(error.contains("hello/subject"), "{error}");

    std::fs::write(dir.join("hello/body.html"), "<p>{% if %}</p>").unwrap();
    let error = Templates::load(&dir)
        .err()
        .expect("syntax error")
        .to_string();
    assert!(error.contains("hello/body.html"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn marketing_email_reaches_smtp_with_both_parts_and_one_click_unsubscribe() {
    let server = SmtpServer::start().await;
    let url = "https://roster.acme.test/unsubscribe/token123";
    let (sent, message_id) = send_welcome(&smtp_mailer(&server), Some(url)).await;
    assert!(sent.unwrap().starts_with("250"));
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].recipients, ["ada@example.com"]);
    let data = &messages[0].data;
    assert!(
        data.contains(&format!("Message-ID: {message_id}")),
        "{data}"
    );
    assert!(
        data.contains(&format!("List-Unsubscribe: <{url}>")),
        "{data}"
    );
    assert!(
        data.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"));
    assert!(data.contains("text/plain") && data.contains("text/html"));
    assert!(data.contains("Subject: Welcome, Ada!"));
}

#[tokio::test]
async fn transactional_email_has_no_unsubscribe_headers() {
    let server = SmtpServer::start().await;
    let (sent, _) = send_welcome(&smtp_mailer(&server), None).await;
    sent.unwrap();
    assert!(!server.messages()[0].data.contains("List-Unsubscribe"));
}

#[tokio::test]
async fn smtp_4xx_is_transient_and_5xx_is_permanent() {
    let server = SmtpServer::start().await;
    let mailer = smtp_mailer(&server);
    server.set_reply(Reply::Transient);
    let (sent, _) = send_welcome(&mailer, None).await;
    assert!(
        matches!(sent, Err(SendError::Transient(ref answer)) if answer.contains("451")),
        "{sent:?}"
    );
    server.set_reply(Reply::Permanent);
    let (sent, _) = send_welcome(&mailer, None).await;
    assert!(
        matches!(sent, Err(SendError::Permanent(ref answer)) if answer.contains("550")),
        "{sent:?}"
    );
    server.set_reply(Reply::Accept);
    assert!(
        send_welcome(&mailer, None).await.0.is_ok(),
        "the pooled connection still works"
    );
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn smtp_server_down_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = Mailer::new(
        Some(&format!("smtp://127.0.0.1:{port}").into()),
        Path::new("outbox"),
        1,
        &[],
    )
    .unwrap();
    let (sent, _) = send_welcome(&mailer, None).await;
    assert!(matches!(sent, Err(SendError::Transient(_))), "{sent:?}");
}

#[tokio::test]
async fn without_smtp_url_email_goes_to_the_outbox() {
    let outbox = std::env::temp_dir().join(format!("roster-outbox-{}", std::process::id()));
    let mailer = Mailer::new(None, &outbox, 1, &[]).unwrap();
    let (sent, message_id) = send_welcome(&mailer, None).await;
    sent.unwrap();
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    assert!(
        std::fs::read_to_string(&files[0])
            .unwrap()
            .contains(&message_id)
    );
    std::fs::remove_dir_all(outbox).unwrap();
}

#[tokio::test]
async fn pooled_connections_are_capped_reused_and_sent_on_without_a_noop() {
    let server = SmtpServer::start().await;
    let mailer = smtp_mailer(&server); // 2 connections
    let sends: Vec<_> = (0..10).map(|_| send_welcome(&mailer, None)).collect();
    for (sent, _) in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    let busy = server.sessions();
    assert!(busy.most_open <= 2 && busy.accepted <= 2, "{busy:?}");
    for _ in 0..3 {
        send_welcome(&mailer, None).await.0.unwrap();
    }
    assert_eq!(server.messages().len(), 13);
    assert_eq!(
        server.sessions(),
        crate::smtp_server::Sessions { noops: 0, ..busy },
        "the same connections, no NOOP before a message"
    );
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(Some(&server.url().into()), Path::new("outbox"), 1, &[]).unwrap();
    server.set_close_after_message(true);
    send_welcome(&mailer, None).await.0.unwrap();
    server.set_close_after_message(false);
    // The pooled connection is closed under it: that send fails as transient (the
    // step is retried), and the next goes on a new connection.
    let (after_close, _) = send_welcome(&mailer, None).await;
    if let Err(error) = &after_close {
        assert!(matches!(error, SendError::Transient(_)), "{error:?}");
    }
    send_welcome(&mailer, None).await.0.unwrap();
    assert_eq!(server.sessions().accepted, 2);
}

#[tokio::test]
async fn a_refused_login_is_transient_not_the_recipients_fault() {
    // The test server offers no AUTH: the login fails in the connection's setup.
    let server = SmtpServer::start().await;
    let url = format!("smtp://roster:secret@127.0.0.1:{}", server.port);
    let mailer = Mailer::new(Some(&url.into()), Path::new("outbox"), 1, &[]).unwrap();
    let (sent, _) = send_welcome(&mailer, None).await;
    assert!(matches!(sent, Err(SendError::Transient(_))), "{sent:?}");
    assert!(server.messages().is_empty());
}

/// A certificate authority of the test's own, as a relay on a private network has: its
/// PEM, and a TLS acceptor with a certificate it signed for `localhost`.
fn private_ca() -> (String, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    (ca.pem(), acceptor)
}

#[tokio::test]
async fn starttls_and_implicit_tls_reach_a_relay_whose_ca_is_trusted() {
    let (ca_pem, acceptor) = private_ca();
    let roots = roster::email::smtp::read_extra_roots(ca_pem.as_bytes()).unwrap();
    let starttls = SmtpServer::start_with(Tls::Starttls(acceptor.clone())).await;
    let implicit = SmtpServer::start_with(Tls::Implicit(acceptor)).await;
    let cases = [
        (
            &starttls,
            format!("smtp://localhost:{}?tls=required", starttls.port),
        ),
        (
            &starttls,
            format!("smtp://localhost:{}?tls=opportunistic", starttls.port),
        ),
        (&implicit, format!("smtps://localhost:{}", implicit.port)),
    ];
    for (n, (server, url)) in cases.iter().enumerate() {
        let mailer =
            Mailer::new(Some(&url.clone().into()), Path::new("outbox"), 2, &roots).unwrap();
        for _ in 0..2 {
            let (sent, _) = send_welcome(&mailer, None).await;
            assert!(sent.is_ok(), "{url}: {sent:?}");
        }
        let received = server.messages();
        assert!(received.iter().all(|m| m.encrypted), "{url}: over TLS");
        assert!(received.len() >= 2, "{url}: {n}");
        // Without the CA, the relay's certificate is not trusted: no mail in the clear,
        // a transient failure (the step is retried), nothing accepted.
        let before = received.len();
        let untrusting =
            Mailer::new(Some(&url.clone().into()), Path::new("outbox"), 1, &[]).unwrap();
        let (sent, _) = send_welcome(&untrusting, None).await;
        assert!(
            matches!(sent, Err(SendError::Transient(_))),
            "{url}: {sent:?}"
        );
        assert_eq!(server.messages().len(), before, "{url}: nothing sent");
    }
    // Both STARTTLS sessions' pooled connections were reused, encrypted.
    assert!(
        starttls.sessions().accepted <= 4,
        "{:?}",
        starttls.sessions()
    );
}

#[tokio::test]
async fn tls_required_refuses_a_relay_without_starttls() {
    let plain = SmtpServer::start().await;
    let url = format!("smtp://localhost:{}?tls=required", plain.port);
    let mailer = Mailer::new(Some(&url.into()), Path::new("outbox"), 1, &[]).unwrap();
    let (sent, _) = send_welcome(&mailer, None).await;
    assert!(matches!(sent, Err(SendError::Transient(_))), "{sent:?}");
    assert!(plain.messages().is_empty(), "nothing in the clear");
    // Opportunistic sends in the clear to a relay that offers no STARTTLS.
    let url = format!("smtp://localhost:{}?tls=opportunistic", plain.port);
    let mailer = Mailer::new(Some(&url.into()), Path::new("outbox"), 1, &[]).unwrap();
    assert!(send_welcome(&mailer, None).await.0.is_ok());
    assert!(!plain.messages()[0].encrypted);
}

#[test]
fn a_ca_file_must_hold_trustable_pem_certificates() {
    use roster::email::smtp::read_extra_roots;
    assert!(read_extra_roots(b"").is_err());
    assert!(read_extra_roots(b"not a certificate").is_err());
    let (ca_pem, _) = private_ca();
    assert_eq!(read_extra_roots(ca_pem.as_bytes()).unwrap().len(), 1);
    let twice = format!("{ca_pem}{ca_pem}");
    assert_eq!(read_extra_roots(twice.as_bytes()).unwrap().len(), 2);
}
