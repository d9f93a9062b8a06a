//! Relays' bounce, complaint and delivery webhooks at `/webhooks/email/{provider}`.
//!
//! The relays cannot run here, so each test posts what the relay documents sending (the
//! payload shapes of Amazon SES through SNS, Postmark, SendGrid, Resend and Mailgun),
//! signed as the relay signs, with keys the test generates: an RSA certificate for SNS
//! (configured locally, as an air-gapped install would), an ECDSA P-256 key for
//! SendGrid, a Svix secret for Resend, an HMAC key for Mailgun, basic auth for Postmark.

use std::sync::LazyLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{AppOptions, TestApp, fixture, set, spawn_app, spawn_app_with};
use crate::http_receiver::HttpReceiver;
use crate::smtp_server::SmtpServer;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:roster-ses-events";
const POSTMARK_USER: &str = "postmark";
const POSTMARK_PASSWORD: &str = "postmark-webhook-password-0123456789";
const RESEND_SECRET: &str = "whsec_cmVzZW5kLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";
const MAILGUN_KEY: &str = "mailgun-signing-key-0123456789abcdef";

/// The keys the relays sign with, made once per test process.
struct Keys {
    /// The SNS signing key (PKCS#8 DER) and the file with its certificate.
    sns_key: Vec<u8>,
    sns_certificate: std::path::PathBuf,
    sendgrid: EcdsaKeyPair,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
    let certificate = params.self_signed(&key).expect("certificate");
    let sns_certificate =
        std::env::temp_dir().join(format!("roster-test-sns-{}.pem", Uuid::new_v4()));
    std::fs::write(&sns_certificate, certificate.pem()).unwrap();
    Keys {
        sns_key: key.serialize_der(),
        sns_certificate,
        sendgrid: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap(),
    }
});

/// A drip whose second step is the one a suppression must stop, and every relay.
static CONFIG: LazyLock<String> = LazyLock::new(|| {
    let public_key = KEYS.sendgrid.public_key().as_der().unwrap();
    let sendgrid_public_key = STANDARD.encode(public_key.as_ref());
    format!(
        r#"
[[workflows]]
name = "onboarding"
trigger = "user.created"
steps = [{{ send = "welcome" }}, {{ wait = "2d" }}, {{ send = "tips" }}]

[[workflows]]
name = "feedback"
trigger = "contact.unsubscribed"
steps = [{{ wait = "1d" }}]

[relays.ses]
topics = ["{TOPIC}"]
certificate = "{certificate}"

[relays.postmark]
username = "{POSTMARK_USER}"
password = "{POSTMARK_PASSWORD}"

[relays.sendgrid]
public_key = "{sendgrid_public_key}"

[relays.resend]
secret = "{RESEND_SECRET}"

[relays.mailgun]
signing_key = "{MAILGUN_KEY}"
"#,
        certificate = KEYS.sns_certificate.display(),
    )
});

async fn app(db: PgConnectOptions) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let options = AppOptions {
        config_toml: &CONFIG,
        smtp: Some(smtp.clone()),
        ..AppOptions::default()
    };
    (spawn_app_with(db, options).await, smtp)
}

/// The welcome email as the relay knows it.
struct Sent {
    email: String,
    /// The Message-ID header Roster wrote.
    message_id: String,
    /// The id in the relay's SMTP answer (`250 ... queued as ID`).
    relay_id: String,
}

/// Signs up users with these addresses and sends their welcome.
async fn welcomed(app: &TestApp, emails: &[&str]) -> Vec<Sent> {
    for email in emails {
        let mut event = fixture("user.created");
        set(
            &mut event,
            "/data/id",
            json!(format!("user_{}", Uuid::new_v4().simple())),
        );
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(email),
        );
        assert_eq!(app.deliver(&event).await.0, 200);
    }
    app.run_jobs_at(Utc::now()).await;
    let mut sent = Vec::new();
    for email in emails {
        let row: (String, Option<String>) = sqlx::query_as(
            "select message_id, provider_message_id from email_deliveries where recipient = $1",
        )
        .bind(email)
        .fetch_one(&app.db)
        .await
        .unwrap();
        sent.push(Sent {
            email: email.to_string(),
            message_id: row.0,
            relay_id: row.1.expect("the SMTP answer's queued id is kept"),
        });
    }
    sent
}

/// `count` emails sent to `sent`'s address: its welcome and more of its run's (steps
/// 10, 11, ...), each with a relay id of its own.
async fn emails_to(app: &TestApp, sent: &Sent, count: usize) -> Vec<Sent> {
    let mut emails = vec![Sent {
        email: sent.email.clone(),
        message_id: sent.message_id.clone(),
        relay_id: sent.relay_id.clone(),
    }];
    for n in 1..count {
        let relay_id = format!("{}-{n}", sent.relay_id);
        let message_id = format!("<extra-{n}-{}>", sent.relay_id);
        sqlx::query(
            "insert into email_deliveries (id, run_id, step, template, recipient, message_id,
                                           transactional, state, provider_message_id, sent_at)
             select $1, run_id, 10 + $2, 'tips', recipient, $3, false, 'sent', $4, now()
             from email_deliveries where provider_message_id = $5",
        )
        .bind(Uuid::now_v7())
        .bind(n as i32)
        .bind(&message_id)
        .bind(&relay_id)
        .bind(&sent.relay_id)
        .execute(&app.db)
        .await
        .unwrap();
        emails.push(Sent {
            email: sent.email.clone(),
            message_id,
            relay_id,
        });
    }
    emails
}

async fn suppression(app: &TestApp, email: &str) -> Option<String> {
    sqlx::query_scalar("select reason from suppressions where email = $1")
        .bind(email)
        .fetch_optional(&app.db)
        .await
        .unwrap()
}

/// The subjects `email` received, in order.
fn received(smtp: &SmtpServer, email: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.recipients == [email])
        .count()
}

/// Sends a relay's post; its status and JSON answer.
async fn post(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("Roster answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn url(app: &TestApp, provider: &str) -> String {
    format!("{}/webhooks/email/{provider}", app.address)
}

// --- Amazon SES through SNS ---------------------------------------------------------

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An SES event notification for the welcome (`eventType`, as a configuration set's
/// event destination sends).
fn ses_notification(sent: &Sent, event_type: &str, detail: Value, at: DateTime<Utc>) -> Value {
    let key = match event_type {
        "Bounce" => "bounce",
        "Complaint" => "complaint",
        "Delivery" => "delivery",
        other => panic!("no {other}"),
    };
    let mut notification = json!({
        "eventType": event_type,
        "mail": {
            "timestamp": rfc3339(at - Duration::seconds(5)),
            "source": "hello@acme.test",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/acme.test",
            "sendingAccountId": "123456789012",
            "messageId": sent.relay_id,
            "destination": [sent.email],
            "headersTruncated": false,
            "headers": [
                {"name": "From", "value": "Acme <hello@acme.test>"},
                {"name": "To", "value": sent.email},
                {"name": "Subject", "value": "Welcome"}
            ],
            "commonHeaders": {
                "from": ["Acme <hello@acme.test>"],
                "to": [sent.email],
                "messageId": sent.relay_id,
                "subject": "Welcome"
            },
            "tags": {"ses:configuration-set": ["roster"]}
        }
    });
    notification[key] = detail;
    notification
}

fn ses_bounce(sent: &Sent, bounce_type: &str, at: DateTime<Utc>) -> Value {
    let (sub_type, code) = match bounce_type {
        "Permanent" => ("General", "smtp; 550 5.1.1 user unknown"),
        _ => ("MailboxFull", "smtp; 452 4.2.2 mailbox full"),
    };
    ses_notification(
        sent,
        "Bounce",
        json!({
            "feedbackId": format!("0100{}-000000", Uuid::new_v4().simple()),
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [{
                "emailAddress": sent.email,
                "action": "failed",
                "status": if bounce_type == "Permanent" { "5.1.1" } else { "4.2.2" },
                "diagnosticCode": code
            }],
            "timestamp": rfc3339(at),
            "reportingMTA": "dsn; e226-55.smtp-out.us-east-1.amazonses.com"
        }),
        at,
    )
}

/// The SNS envelope, signed with `version` 1 (SHA1) or 2 (SHA256) as SNS documents.
fn sns_envelope(kind: &str, message: &str, message_id: &str, version: u8, extra: Value) -> Value {
    let mut envelope = json!({
        "Type": kind,
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": rfc3339(Utc::now()),
        "SignatureVersion": version.to_string(),
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
    });
    for (name, value) in extra.as_object().unwrap() {
        envelope[name] = value.clone();
    }
    let fields: &[&str] = if kind == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut text = String::new();
    for field in fields {
        if let Some(value) = envelope[*field].as_str() {
            text.push_str(&format!("{field}\n{value}\n"));
        }
    }
    envelope["Signature"] = json!(sns_sign(text.as_bytes(), version));
    envelope
}

fn sns_sign(text: &[u8], version: u8) -> String {
    let signature = if version == 1 {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&KEYS.sns_key).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key);
        signer.sign(text).to_vec()
    } else {
        let key = RsaKeyPair::from_pkcs8(&KEYS.sns_key).unwrap();
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            text,
            &mut signature,
        )
        .unwrap();
        signature
    };
    STANDARD.encode(signature)
}

fn sns_notification(notification: &Value, message_id: &str, version: u8) -> Value {
    let extra = json!({
        "UnsubscribeURL": format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC}:6d6f7e36"),
    });
    sns_envelope(
        "Notification",
        &notification.to_string(),
        message_id,
        version,
        extra,
    )
}

async fn post_ses(app: &TestApp, envelope: &Value) -> (u16, Value) {
    // SNS posts with `text/plain`, whatever the body.
    let request = app
        .client
        .post(url(app, "ses"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header(
            "x-amz-sns-message-type",
            envelope["Type"].as_str().unwrap_or("Notification"),
        )
        .header("x-amz-sns-topic-arn", TOPIC)
        .body(envelope.to_string());
    post(request).await
}

#[sqlx::test]
async fn an_ses_hard_bounce_suppresses_the_address_and_stops_the_drip(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = app(db).await;
    let sent = welcomed(&app, &["gone@example.com", "kept@example.com"]).await;
    let bounce = ses_bounce(&sent[0], "Permanent", Utc::now());
    let envelope = sns_notification(&bounce, &Uuid::new_v4().to_string(), 1);

    let (status, body) = post_ses(&app, &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 1, "{body}");
    let reason = suppression(&app, "gone@example.com")
        .await
        .expect("suppressed");
    assert!(reason.contains("hard bounce reported by ses"), "{reason}");
    assert!(reason.contains("550 5.1.1 user unknown"), "{reason}");

    // SNS delivers at least once: the repeat changes nothing.
    let (status, body) = post_ses(&app, &envelope).await;
    assert_eq!((status, &body["duplicates"]), (200, &json!(1)), "{body}");
    assert_eq!(app.count("email_events").await, 1);

    // The drip's next step skips the bounced address and mails the other.
    app.run_jobs_at(Utc::now() + Duration::days(3)).await;
    assert_eq!(received(&smtp, "gone@example.com"), 1);
    assert_eq!(received(&smtp, "kept@example.com"), 2);
    assert_eq!(suppression(&app, "kept@example.com").await, None);

    // The email shows what the relay reported, in the API and on the dashboard.
    let (_, deliveries) = app.api_get("/v1/email-deliveries").await;
    let reported: Vec<(&str, &str, &Value)> = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["recipient"].as_str().unwrap(),
                d["state"].as_str().unwrap(),
                &d["activity"],
            )
        })
        .collect();
    assert!(
        reported.contains(&("gone@example.com", "sent", &json!(["hard_bounce"]))),
        "{reported:?}"
    );
    assert!(
        reported.contains(&("gone@example.com", "suppressed", &json!([]))),
        "{reported:?}"
    );
    let page = crate::dashboard::dashboard_page(&app, "/emails").await;
    assert!(page.contains("Reported by relays"), "{page}");
    assert!(page.contains(">hard bounce</span>"), "{page}");
    assert!(page.contains("550 5.1.1 user unknown"), "{page}");
}

#[sqlx::test]
async fn sns_signature_version_2_and_ses_notification_type_are_read(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["Mixed.Case@Example.com"]).await;
    // The older "Amazon SES notification" form: `notificationType`, and the address as
    // the receiving server wrote it.
    let mut bounce = ses_bounce(&sent[0], "Permanent", Utc::now());
    let detail = bounce.as_object_mut().unwrap().remove("eventType").unwrap();
    bounce["notificationType"] = detail;
    bounce["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!("mixed.case@example.com");
    let envelope = sns_notification(&bounce, &Uuid::new_v4().to_string(), 2);
    let (status, body) = post_ses(&app, &envelope).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(suppression(&app, "mixed.case@example.com").await.is_some());
}

#[sqlx::test]
async fn an_ses_complaint_unsubscribes_and_suppresses(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["angry@example.com"]).await;
    let complaint = ses_notification(
        &sent[0],
        "Complaint",
        json!({
            "feedbackId": "0100017fbf3e1d2c-complaint-000000",
            "complainedRecipients": [{"emailAddress": "angry@example.com"}],
            "timestamp": rfc3339(Utc::now()),
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": rfc3339(Utc::now())
        }),
        Utc::now(),
    );
    let envelope = sns_notification(&complaint, &Uuid::new_v4().to_string(), 1);
    let (status, body) = post_ses(&app, &envelope).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");

    let contact = app.contact_by_email("angry@example.com").await.unwrap();
    assert!(!contact.subscribed);
    let reason = suppression(&app, "angry@example.com").await.unwrap();
    assert!(
        reason.contains("spam complaint reported by ses: abuse"),
        "{reason}"
    );
    let event: Value =
        sqlx::query_scalar("select event from workflow_runs where workflow = 'feedback'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(event["type"], "contact.unsubscribed", "{event}");
    assert_eq!(event["data"]["via"], "complaint", "{event}");
}

#[sqlx::test]
async fn an_ses_delivery_marks_the_delivery_delivered(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["happy@example.com"]).await;
    let at = Utc::now();
    let delivery = ses_notification(
        &sent[0],
        "Delivery",
        json!({
            "timestamp": rfc3339(at),
            "processingTimeMillis": 546,
            "recipients": ["happy@example.com"],
            "smtpResponse": "250 ok:  Message 64111812 accepted",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "127.0.2.0"
        }),
        at,
    );
    let envelope = sns_notification(&delivery, &Uuid::new_v4().to_string(), 1);
    let (status, body) = post_ses(&app, &envelope).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    let delivered: Option<DateTime<Utc>> =
        sqlx::query_scalar("select delivered_at from email_deliveries where recipient = $1")
            .bind("happy@example.com")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let delivered = delivered.expect("marked delivered");
    assert!(
        (delivered - at).num_milliseconds().abs() <= 1,
        "{delivered} vs {at}"
    );
    assert_eq!(suppression(&app, "happy@example.com").await, None);
}

#[sqlx::test]
async fn unverifiable_ses_posts_are_refused_and_store_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["gone@example.com"]).await;
    let bounce = ses_bounce(&sent[0], "Permanent", Utc::now());
    let envelope = sns_notification(&bounce, &Uuid::new_v4().to_string(), 1);

    let mut tampered = envelope.clone();
    tampered["Message"] = json!(
        envelope["Message"]
            .as_str()
            .unwrap()
            .replace("gone@", "other@")
    );
    let mut other_topic = envelope.clone();
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-else");
    let mut unsigned = envelope.clone();
    unsigned.as_object_mut().unwrap().remove("Signature");
    let mut bad_version = envelope.clone();
    bad_version["SignatureVersion"] = json!("3");
    for refused in [tampered, other_topic, unsigned, bad_version] {
        let (status, body) = post_ses(&app, &refused).await;
        assert_eq!(status, 401, "{refused} → {body}");
        assert!(body["error"].is_string(), "{body}");
    }

    // Signed, but not what SES sends: 400, naming the field.
    let mut no_type = bounce.clone();
    no_type.as_object_mut().unwrap().remove("eventType");
    let mut no_recipients = bounce.clone();
    no_recipients["bounce"]["bouncedRecipients"] = json!([]);
    let mut bad_time = bounce.clone();
    bad_time["bounce"]["timestamp"] = json!("10000-01-01T00:00:00Z");
    let mut nul = bounce.clone();
    nul["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!("gone\u{0}@example.com");
    let cases = [
        (
            sns_envelope("Notification", "not json", "m1", 1, json!({})),
            "Message",
        ),
        (sns_notification(&no_type, "m2", 1), "eventType"),
        (
            sns_notification(&no_recipients, "m3", 1),
            "bounce.bouncedRecipients",
        ),
        (sns_notification(&bad_time, "m4", 1), "bounce.timestamp"),
        (
            sns_notification(&nul, "m5", 1),
            "bounce.bouncedRecipients[0].emailAddress",
        ),
    ];
    for (malformed, field) in cases {
        let (status, body) = post_ses(&app, &malformed).await;
        assert_eq!(status, 400, "{malformed} → {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(field), "{field}: {error}");
    }
    let (status, _) = post_ses(&app, &json!([1, 2])).await;
    assert_eq!(status, 400);
    let (status, _) = post(app.client.post(url(&app, "ses")).body(vec![0xff, 0xfe])).await;
    assert_eq!(status, 400);

    assert_eq!(app.count("email_events").await, 0);
    assert_eq!(app.count("suppressions").await, 0);
}

#[sqlx::test]
async fn an_event_for_an_unknown_message_is_kept_and_changes_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, _smtp) = app(db).await;
    welcomed(&app, &["known@example.com"]).await;
    let stranger = Sent {
        email: "known@example.com".to_owned(),
        message_id: "<not-ours@elsewhere.test>".to_owned(),
        relay_id: "0100018c-not-ours-000000".to_owned(),
    };
    let bounce = ses_bounce(&stranger, "Permanent", Utc::now());
    let (status, body) = post_ses(
        &app,
        &sns_notification(&bounce, &Uuid::new_v4().to_string(), 1),
    )
    .await;
    assert_eq!((status, &body["unmatched"]), (200, &json!(1)), "{body}");
    assert_eq!(suppression(&app, "known@example.com").await, None);
    let (kind, delivery): (String, Option<Uuid>) =
        sqlx::query_as("select kind, delivery_id from email_events")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((kind.as_str(), delivery), ("hard_bounce", None));

    // Postmark's bounce came before Roster kept Postmark's id for the email (its SMTP
    // answer); Postmark posts it again: now it matches and applies.
    let sent = sqlx::query_scalar::<_, String>("select provider_message_id from email_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    sqlx::query("update email_deliveries set provider_message_id = null")
        .execute(&app.db)
        .await
        .unwrap();
    let early = Sent {
        email: "known@example.com".to_owned(),
        message_id: String::new(),
        relay_id: sent.clone(),
    };
    let bounce = postmark_bounce(&early, "Bounce", "HardBounce", 77);
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["unmatched"]), (200, &json!(1)), "{body}");
    sqlx::query("update email_deliveries set provider_message_id = $1")
        .bind(&sent)
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(suppression(&app, "known@example.com").await.is_some());
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["duplicates"]), (200, &json!(1)), "{body}");
    let page = crate::dashboard::dashboard_page(&app, "/emails").await;
    assert!(
        page.contains("not sent by Roster: kept, no effect"),
        "{page}"
    );
}

#[sqlx::test]
async fn an_sns_subscription_confirmation_is_confirmed(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    // A stand-in for SNS's subscribe endpoint.
    let receiver = HttpReceiver::start().await;
    let endpoint = receiver.url.clone();
    let token = "2336412f37fb687f5d51e6e2425dacbba0b3cc1c5b1c4b7a4c1b8f6a2b0e3a6a";
    let subscribe_url =
        format!("{endpoint}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}");
    let confirmation = sns_envelope(
        "SubscriptionConfirmation",
        &format!(
            "You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
        ),
        &Uuid::new_v4().to_string(),
        1,
        json!({"Token": token, "SubscribeURL": subscribe_url}),
    );
    let (status, body) = post_ses(&app, &confirmation).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "subscribed", "topic": TOPIC}));
    let visits = receiver.received();
    assert_eq!(visits.len(), 1);
    assert!(
        visits[0]
            .line
            .starts_with("GET /?Action=ConfirmSubscription"),
        "{visits:?}"
    );

    // A forged confirmation never makes Roster visit anything.
    let mut forged = confirmation.clone();
    forged["SubscribeURL"] = json!(format!("{endpoint}/elsewhere"));
    let (status, _) = post_ses(&app, &forged).await;
    assert_eq!(status, 401);
    assert_eq!(receiver.received().len(), 1);
}

// --- Soft bounces: three within any seven days suppress, in any order ---------------

#[sqlx::test]
async fn soft_bounces_suppress_at_three_in_seven_days_whatever_the_order(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, _smtp) = app(db).await;
    let start = Utc::now() - Duration::days(30);
    // Each set's bounces (days after `start`, each of another email) in every order,
    // each delivered twice (SNS repeats); the model: suppressed exactly when the
    // distinct bounces seen so far hold three within seven days.
    let sets: [[i64; 3]; 2] = [[0, 3, 6], [0, 5, 13]];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let emails: Vec<String> = (0..sets.len() * orders.len())
        .map(|n| format!("soft{n}@example.com"))
        .collect();
    let sent = welcomed(&app, &emails.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let mut user = 0;
    for days in sets {
        for order in &orders {
            let emails = emails_to(&app, &sent[user], 3).await;
            let sent = &sent[user];
            user += 1;
            let mut seen: Vec<i64> = Vec::new();
            for &index in order {
                let at = start + Duration::days(days[index]);
                let bounce = ses_bounce(&emails[index], "Transient", at);
                let envelope = sns_notification(&bounce, &format!("{}-{index}", sent.email), 1);
                for _ in 0..2 {
                    let (status, body) = post_ses(&app, &envelope).await;
                    assert_eq!(status, 200, "{body}");
                }
                seen.push(days[index]);
                seen.sort();
                let expected = seen.len() == 3 && seen[2] - seen[0] <= 7;
                let suppressed = suppression(&app, &sent.email).await;
                assert_eq!(
                    suppressed.is_some(),
                    expected,
                    "{days:?} in order {order:?}, after {seen:?}: {suppressed:?}"
                );
                if let Some(reason) = suppressed {
                    assert!(reason.contains("3 soft bounces within 7 days"), "{reason}");
                }
            }
        }
    }
}

#[sqlx::test]
async fn concurrent_soft_bounces_are_all_counted(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["busy@example.com", "greylisted@example.com"]).await;
    let emails = emails_to(&app, &sent[0], 3).await;
    let posts = (0..3).map(|n| {
        let bounce = ses_bounce(
            &emails[n],
            "Transient",
            Utc::now() - Duration::hours(n as i64),
        );
        let envelope = sns_notification(&bounce, &format!("concurrent-{n}"), 2);
        let app = &app;
        async move { post_ses(app, &envelope).await }
    });
    for (status, body) in futures::future::join_all(posts).await {
        assert_eq!(status, 200, "{body}");
    }
    assert!(suppression(&app, "busy@example.com").await.is_some());

    // One delayed email reported on each retry is one soft-bounced email.
    for n in 0..4 {
        let bounce = ses_bounce(&sent[1], "Transient", Utc::now() - Duration::hours(n));
        let (status, body) =
            post_ses(&app, &sns_notification(&bounce, &format!("retry-{n}"), 1)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(suppression(&app, "greylisted@example.com").await, None);
}

// --- Postmark -----------------------------------------------------------------------

async fn post_postmark(app: &TestApp, record: &Value, password: &str) -> (u16, Value) {
    let request = app
        .client
        .post(url(app, "postmark"))
        .basic_auth(POSTMARK_USER, Some(password))
        .json(record);
    post(request).await
}

fn postmark_bounce(sent: &Sent, record_type: &str, bounce_type: &str, id: i64) -> Value {
    json!({
        "RecordType": record_type,
        "MessageStream": "outbound",
        "ID": id,
        "Type": bounce_type,
        "TypeCode": if bounce_type == "HardBounce" { 1 } else { 512 },
        "Name": if bounce_type == "HardBounce" { "Hard bounce" } else { "Spam complaint" },
        "Tag": "",
        "MessageID": sent.relay_id,
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": sent.email,
        "From": "hello@acme.test",
        "BouncedAt": rfc3339(Utc::now()),
        "DumpAvailable": true,
        "Inactive": true,
        "CanActivate": true,
        "Subject": "Welcome",
        "Content": ""
    })
}

#[sqlx::test]
async fn postmark_bounces_complaints_and_deliveries(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["a@example.com", "b@example.com", "c@example.com"]).await;

    let bounce = postmark_bounce(&sent[0], "Bounce", "HardBounce", 4_323_372_036_854_775_807);
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    let reason = suppression(&app, "a@example.com").await.unwrap();
    assert!(reason.contains("does not exist"), "{reason}");

    let complaint = postmark_bounce(&sent[1], "SpamComplaint", "SpamComplaint", 692_560_173);
    let (status, body) = post_postmark(&app, &complaint, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(
        !app.contact_by_email("b@example.com")
            .await
            .unwrap()
            .subscribed
    );
    assert!(suppression(&app, "b@example.com").await.is_some());

    let delivery = json!({
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": sent[2].relay_id,
        "Recipient": "c@example.com",
        "Tag": "welcome",
        "DeliveredAt": rfc3339(Utc::now()),
        "Details": "Test delivery webhook details",
        "Metadata": {}
    });
    let (status, body) = post_postmark(&app, &delivery, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    let delivered: i64 =
        sqlx::query_scalar("select count(*) from email_deliveries where delivered_at is not null")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(delivered, 1);

    // Wrong or missing credentials: 401, nothing stored.
    let before = app.count("email_events").await;
    let (status, _) = post_postmark(&app, &bounce, "postmark-webhook-password-wrong").await;
    assert_eq!(status, 401);
    let (status, _) = post(app.client.post(url(&app, "postmark")).json(&bounce)).await;
    assert_eq!(status, 401);
    assert_eq!(app.count("email_events").await, before);
}

// --- SendGrid -----------------------------------------------------------------------

async fn post_sendgrid(app: &TestApp, events: &Value, tamper: bool) -> (u16, Value) {
    let body = events.to_string();
    let timestamp = Utc::now().timestamp().to_string();
    let signed = format!("{timestamp}{body}");
    let signature = KEYS
        .sendgrid
        .sign(&SystemRandom::new(), signed.as_bytes())
        .unwrap();
    let body = if tamper {
        body.replace("bounce", "delivered")
    } else {
        body
    };
    let request = app
        .client
        .post(url(app, "sendgrid"))
        .header("content-type", "application/json")
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            STANDARD.encode(signature.as_ref()),
        )
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
        .body(body);
    post(request).await
}

fn sendgrid_event(sent: &Sent, event: &str, extra: Value) -> Value {
    let mut record = json!({
        "email": sent.email,
        "timestamp": Utc::now().timestamp(),
        "smtp-id": sent.message_id,
        "event": event,
        "category": ["welcome"],
        "sg_event_id": STANDARD.encode(Uuid::new_v4().as_bytes()),
        "sg_message_id": format!("{}.filterdrecv-7bd8d9b6d-2xqgd-1-6594B1D9-2.0", sent.relay_id),
    });
    for (name, value) in extra.as_object().unwrap() {
        record[name] = value.clone();
    }
    record
}

#[sqlx::test]
async fn a_sendgrid_batch_is_verified_and_applied(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = app(db).await;
    let sent = welcomed(&app, &["x@example.com", "y@example.com", "z@example.com"]).await;
    let batch = json!([
        sendgrid_event(&sent[0], "processed", json!({})),
        sendgrid_event(
            &sent[0],
            "bounce",
            json!({
                "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
                "status": "5.1.1", "type": "bounce", "bounce_classification": "Invalid Address"
            })
        ),
        sendgrid_event(&sent[1], "spamreport", json!({})),
        sendgrid_event(
            &sent[2],
            "delivered",
            json!({"response": "250 OK", "ip": "168.1.1.1"})
        ),
        sendgrid_event(
            &sent[2],
            "bounce",
            json!({
                "reason": "421 Try again later", "status": "4.0.0", "type": "blocked",
                "bounce_classification": "Reputation"
            })
        ),
    ]);
    let (status, body) = post_sendgrid(&app, &batch, true).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(app.count("email_events").await, 0);

    let (status, body) = post_sendgrid(&app, &batch, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["applied"], &body["unmatched"]),
        (&json!(5), &json!(0)),
        "{body}"
    );
    assert!(
        suppression(&app, "x@example.com")
            .await
            .unwrap()
            .contains("does not exist")
    );
    assert!(suppression(&app, "y@example.com").await.is_some());
    assert!(
        !app.contact_by_email("y@example.com")
            .await
            .unwrap()
            .subscribed
    );
    // One blocked bounce is a soft bounce: counted, not suppressing.
    assert_eq!(suppression(&app, "z@example.com").await, None);
    app.run_jobs_at(Utc::now() + Duration::days(3)).await;
    assert_eq!(received(&smtp, "z@example.com"), 2);
    assert_eq!(received(&smtp, "x@example.com"), 1);

    // The whole batch again (SendGrid retries until a 2xx): all repeats.
    let (status, body) = post_sendgrid(&app, &batch, false).await;
    assert_eq!((status, &body["duplicates"]), (200, &json!(5)), "{body}");

    // A batch with one malformed event stores none of it.
    let bad = json!([
        sendgrid_event(&sent[2], "delivered", json!({})),
        sendgrid_event(&sent[2], "bounce", json!({"timestamp": "yesterday"})),
    ]);
    let (status, body) = post_sendgrid(&app, &bad, false).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("[1].timestamp"),
        "{body}"
    );
    assert_eq!(app.count("email_events").await, 5);
}

// --- Resend -------------------------------------------------------------------------

async fn post_resend(app: &TestApp, event: &Value, secret: &str) -> (u16, Value) {
    let body = event.to_string();
    let id = format!("msg_{}", Uuid::new_v4().simple());
    let timestamp = Utc::now().timestamp();
    let signature = svix::webhooks::Webhook::new(secret)
        .unwrap()
        .sign(&id, timestamp, body.as_bytes())
        .unwrap();
    let request = app
        .client
        .post(url(app, "resend"))
        .header("content-type", "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(body);
    post(request).await
}

fn resend_event(sent: &Sent, kind: &str, bounce: Option<Value>) -> Value {
    let mut data = json!({
        "created_at": rfc3339(Utc::now() - Duration::seconds(3)),
        "email_id": sent.relay_id,
        "from": "Acme <hello@acme.test>",
        "to": [sent.email],
        "subject": "Welcome",
        "tags": {"category": "welcome"}
    });
    if let Some(bounce) = bounce {
        data["bounce"] = bounce;
    }
    json!({ "type": kind, "created_at": rfc3339(Utc::now()), "data": data })
}

#[sqlx::test]
async fn resend_events_are_verified_with_svix_and_applied(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["r1@example.com", "r2@example.com"]).await;
    let bounce = resend_event(
        &sent[0],
        "email.bounced",
        Some(json!({
            "message": "The recipient's email address is on the suppression list because it has a recent history of producing hard bounces.",
            "subType": "Suppressed",
            "type": "Permanent"
        })),
    );
    let wrong = "whsec_d3JvbmctcmVzZW5kLXNlY3JldC0wMTIzNDU2Nzg5";
    let (status, _) = post_resend(&app, &bounce, wrong).await;
    assert_eq!(status, 401);
    let (status, body) = post_resend(&app, &bounce, RESEND_SECRET).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(
        suppression(&app, "r1@example.com")
            .await
            .unwrap()
            .contains("suppression list")
    );

    let complaint = resend_event(&sent[1], "email.complained", None);
    let (status, body) = post_resend(&app, &complaint, RESEND_SECRET).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(
        !app.contact_by_email("r2@example.com")
            .await
            .unwrap()
            .subscribed
    );

    let opened = resend_event(&sent[1], "email.opened", None);
    let (status, body) = post_resend(&app, &opened, RESEND_SECRET).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.count("email_events").await, 3);
}

// --- Mailgun ------------------------------------------------------------------------

fn mailgun_post(sent: &Sent, event: Value, key: &str) -> Value {
    let timestamp = Utc::now().timestamp().to_string();
    let token = Uuid::new_v4().simple().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let mut data = json!({
        "id": STANDARD.encode(Uuid::new_v4().as_bytes()).trim_end_matches('=').to_owned(),
        "timestamp": Utc::now().timestamp_micros() as f64 / 1e6,
        "log-level": "error",
        "envelope": {"sender": "hello@acme.test", "transport": "smtp", "targets": sent.email},
        "flags": {"is-routed": false, "is-authenticated": true, "is-system-test": false, "is-test-mode": false},
        "message": {
            "headers": {
                "to": sent.email,
                "message-id": sent.message_id.trim_matches(['<', '>']),
                "from": "Acme <hello@acme.test>",
                "subject": "Welcome"
            },
            "attachments": [],
            "size": 1024
        },
        "recipient": sent.email,
        "recipient-domain": "example.com",
        "campaigns": [],
        "tags": [],
        "user-variables": {}
    });
    for (name, value) in event.as_object().unwrap() {
        data[name] = value.clone();
    }
    json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": data
    })
}

#[sqlx::test]
async fn mailgun_events_are_verified_with_hmac_and_applied(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let sent = welcomed(&app, &["m1@example.com", "m2@example.com"]).await;
    let failed = json!({
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "delivery-status": {
            "attempt-no": 1, "code": 550, "session-seconds": 0.4,
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "description": ""
        }
    });
    let post_mailgun = |body: Value| {
        let request = app.client.post(url(&app, "mailgun")).json(&body);
        post(request)
    };
    let (status, _) = post_mailgun(mailgun_post(&sent[0], failed.clone(), "wrong-key")).await;
    assert_eq!(status, 401);
    let (status, body) = post_mailgun(mailgun_post(&sent[0], failed, MAILGUN_KEY)).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    let reason = suppression(&app, "m1@example.com").await.unwrap();
    assert!(reason.contains("does not exist"), "{reason}");

    // A signature carries the one event it came with: another body with it is refused,
    // the same post again is a repeat; an old signature is refused.
    let first = mailgun_post(&sent[1], json!({"event": "delivered"}), MAILGUN_KEY);
    let (status, _) = post_mailgun(first.clone()).await;
    assert_eq!(status, 200);
    let (status, body) = post_mailgun(first.clone()).await;
    assert_eq!((status, &body["duplicates"]), (200, &json!(1)), "{body}");
    let mut forged = mailgun_post(&sent[1], json!({"event": "complained"}), MAILGUN_KEY);
    forged["signature"] = first["signature"].clone();
    let (status, body) = post_mailgun(forged).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        app.contact_by_email("m2@example.com")
            .await
            .unwrap()
            .subscribed
    );
    let mut stale = mailgun_post(&sent[1], json!({"event": "complained"}), MAILGUN_KEY);
    let old = (Utc::now() - Duration::hours(2)).timestamp().to_string();
    let token = stale["signature"]["token"].as_str().unwrap().to_owned();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(MAILGUN_KEY.as_bytes()).unwrap();
    mac.update(old.as_bytes());
    mac.update(token.as_bytes());
    stale["signature"] = json!({"timestamp": old, "token": token,
                                "signature": hex::encode(mac.finalize().into_bytes())});
    let (status, _) = post_mailgun(stale).await;
    assert_eq!(status, 401);

    let complained = mailgun_post(&sent[1], json!({"event": "complained"}), MAILGUN_KEY);
    let (status, body) = post_mailgun(complained).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(
        !app.contact_by_email("m2@example.com")
            .await
            .unwrap()
            .subscribed
    );
}

// --- Endpoints ----------------------------------------------------------------------

#[sqlx::test]
async fn unknown_and_unconfigured_relays_have_no_endpoint(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for provider in [
        "ses",
        "postmark",
        "sendgrid",
        "resend",
        "mailgun",
        "sparkpost",
        "SES",
    ] {
        let response = app
            .client
            .post(url(&app, provider))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{provider}");
    }
}

// --- Deliverability figures ---------------------------------------------------------

#[sqlx::test]
async fn deliverability_counts_each_email_once_per_outcome(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    let emails = [
        "d1@example.com",
        "d2@example.com",
        "d3@example.com",
        "d4@example.com",
    ];
    let sent = welcomed(&app, &emails).await;
    let now = Utc::now();
    let complaint = |sent: &Sent| {
        ses_notification(
            sent,
            "Complaint",
            json!({"complainedRecipients": [{"emailAddress": sent.email}],
                   "timestamp": rfc3339(now), "complaintFeedbackType": "abuse"}),
            now,
        )
    };
    let delivery = |sent: &Sent| {
        ses_notification(
            sent,
            "Delivery",
            json!({"timestamp": rfc3339(now), "recipients": [sent.email], "smtpResponse": "250 ok"}),
            now,
        )
    };
    let posts = [
        (ses_bounce(&sent[0], "Permanent", now), "b0"),
        (complaint(&sent[1]), "c1"),
        (complaint(&sent[1]), "c1-again"), // a second report of the same email
        (delivery(&sent[1]), "d1"),
        (delivery(&sent[2]), "d2"),
    ];
    for (notification, id) in posts {
        let (status, body) = post_ses(&app, &sns_notification(&notification, id, 1)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, figures) = app.api_get("/v1/analytics/deliverability").await;
    assert_eq!(status, 200, "{figures}");
    let totals = &figures["totals"];
    assert_eq!(
        (
            &totals["sent"],
            &totals["delivered"],
            &totals["hardBounces"],
            &totals["complaints"]
        ),
        (&json!(4), &json!(2), &json!(1), &json!(1)),
        "{figures}"
    );
    assert_eq!(totals["bounceRate"], 0.25, "{figures}");
    assert_eq!(totals["complaintRate"], 0.25, "{figures}");
    let warnings = figures["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{figures}");
    assert_eq!(figures["byTemplate"][0]["key"], "welcome", "{figures}");
    assert_eq!(figures["byTemplate"][0]["sent"], 4, "{figures}");
    assert_eq!(figures["byWorkflow"][0]["key"], "onboarding", "{figures}");
    assert_eq!(figures["byCampaign"], json!([]), "{figures}");
    let buckets = figures["buckets"].as_array().unwrap();
    assert_eq!(buckets.last().unwrap()["sent"], 4, "{figures}");
    let (status, weekly) = app
        .api_get("/v1/analytics/deliverability?interval=week")
        .await;
    assert_eq!(status, 200);
    assert_eq!(weekly["totals"], figures["totals"]);

    let page = crate::dashboard::dashboard_page(&app, "/analytics").await;
    assert!(
        page.contains("Deliverability: spam complaints are 25.00%"),
        "{page}"
    );
    assert!(page.contains("Bounce and complaint rates"), "{page}");
}

#[sqlx::test]
async fn huge_and_deep_posts_are_refused_and_store_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = app(db).await;
    welcomed(&app, &["deep@example.com"]).await;
    let huge = format!(
        r#"{{"RecordType": "Bounce", "Details": "{}"}}"#,
        "x".repeat(6 << 20)
    );
    let request = app
        .client
        .post(url(&app, "postmark"))
        .basic_auth(POSTMARK_USER, Some(POSTMARK_PASSWORD))
        .header("content-type", "application/json")
        .body(huge);
    assert_eq!(post(request).await.0, 413);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for body in [
        deep,
        r#"{"RecordType": "Bounce\u0000"}"#.to_owned(),
        "{".to_owned(),
    ] {
        let request = app
            .client
            .post(url(&app, "postmark"))
            .basic_auth(POSTMARK_USER, Some(POSTMARK_PASSWORD))
            .header("content-type", "application/json")
            .body(body);
        let (status, answer) = post(request).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(app.count("email_events").await, 0);
    assert_eq!(app.count("suppressions").await, 0);
}

#[sqlx::test]
async fn a_post_while_the_database_is_down_answers_503_and_its_retry_applies(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let proxy = crate::db_proxy::DbProxy::start(db.get_port()).await;
    let options = AppOptions {
        config_toml: &CONFIG,
        smtp: Some(SmtpServer::start().await),
        proxy: Some(proxy),
        ..AppOptions::default()
    };
    let app = spawn_app_with(db, options).await;
    let sent = welcomed(&app, &["outage@example.com"]).await;
    let bounce = postmark_bounce(&sent[0], "Bounce", "HardBounce", 991);
    proxy.cut();
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!(status, 503, "{body}");
    proxy.restore();
    // Postmark retries.
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    assert!(suppression(&app, "outage@example.com").await.is_some());
    let (status, body) = post_postmark(&app, &bounce, POSTMARK_PASSWORD).await;
    assert_eq!((status, &body["duplicates"]), (200, &json!(1)), "{body}");
}
