//! Amazon SNS's HTTP(S) messages, verified as AWS documents: the message's topic must
//! be one configured; the signature (RSA over SHA1 for `SignatureVersion` 1, SHA256 for
//! 2) is checked with the certificate at `SigningCertURL`, fetched only over HTTPS from
//! `sns.<region>.amazonaws.com` and cached, or with a certificate configured locally.
//! A `SubscriptionConfirmation` is confirmed by visiting its `SubscribeURL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, RsaParameters,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use url::Url;
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

use super::{RelayError, required};

/// The most a certificate, or a confirmation's answer, may weigh.
const MAX_FETCH_BYTES: usize = 64 * 1024;
/// Certificates kept; SNS rotates them rarely, so more means someone is probing.
const MAX_CACHED_CERTIFICATES: usize = 16;

/// An SNS message whose signature checked out.
#[derive(Debug)]
pub struct SnsMessage {
    pub kind: SnsType,
    pub message_id: String,
    pub topic_arn: String,
    /// The notification itself (SES's JSON, as a string).
    pub message: String,
    pub subscribe_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

/// The public key of a signing certificate, as DER `SubjectPublicKeyInfo`.
struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The key of a PEM certificate that is valid now.
    fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certificate =
            Certificate::from_pem(pem).map_err(|e| format!("not a PEM X.509 certificate: {e}"))?;
        let validity = &certificate.tbs_certificate.validity;
        let now = SystemTime::now();
        if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
            return Err("the certificate is not valid now".to_owned());
        }
        let key = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("the certificate's key cannot be read: {e}"))?;
        Ok(Self(key))
    }

    fn verify(&self, algorithm: &'static RsaParameters, text: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(algorithm, &self.0)
            .verify(text, signature)
            .is_ok()
    }
}

/// Verifies SNS messages for the configured topics.
pub struct SnsVerifier {
    topics: Vec<String>,
    /// The configured certificate: then nothing is fetched.
    local: Option<Arc<SigningKey>>,
    client: reqwest::Client,
    fetched: Mutex<HashMap<String, Arc<SigningKey>>>,
}

impl SnsVerifier {
    pub fn new(topics: Vec<String>, local_certificate: Option<&[u8]>) -> Result<Self, String> {
        let local = local_certificate
            .map(SigningKey::from_pem)
            .transpose()?
            .map(Arc::new);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("the HTTP client cannot start: {e}"))?;
        Ok(Self {
            topics,
            local,
            client,
            fetched: Mutex::new(HashMap::new()),
        })
    }

    /// Checks the message's topic and signature.
    pub async fn verify(&self, body: &Value) -> Result<SnsMessage, RelayError> {
        let kind = match required(&body["Type"], "Type")? {
            "Notification" => SnsType::Notification,
            "SubscriptionConfirmation" => SnsType::SubscriptionConfirmation,
            "UnsubscribeConfirmation" => SnsType::UnsubscribeConfirmation,
            other => {
                return Err(RelayError::malformed(format!(
                    "`Type` {other:?} is not an SNS message type"
                )));
            }
        };
        let topic_arn = required(&body["TopicArn"], "TopicArn")?;
        if !self.topics.iter().any(|topic| topic == topic_arn) {
            return Err(RelayError::unauthorized(
                "the message is from an SNS topic that is not configured",
            ));
        }
        let algorithm = match required(&body["SignatureVersion"], "SignatureVersion")? {
            "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(RelayError::unauthorized("`SignatureVersion` is not 1 or 2")),
        };
        let signature = STANDARD
            .decode(signed_field(body, "Signature")?)
            .map_err(|_| RelayError::unauthorized("`Signature` is not base64"))?;
        let text = string_to_sign(kind, body)?;
        let key = self
            .signing_key(signed_field(body, "SigningCertURL")?)
            .await?;
        if !key.verify(algorithm, text.as_bytes(), &signature) {
            return Err(RelayError::unauthorized(
                "the signature does not match the message",
            ));
        }
        Ok(SnsMessage {
            kind,
            message_id: required(&body["MessageId"], "MessageId")?.to_owned(),
            topic_arn: topic_arn.to_owned(),
            message: required(&body["Message"], "Message")?.to_owned(),
            subscribe_url: body["SubscribeURL"].as_str().map(str::to_owned),
        })
    }

    /// Confirms a subscription by visiting its `SubscribeURL`, which must be on SNS's
    /// own domain unless the certificate is configured locally (then whoever holds its
    /// key is trusted, as for the rest of the message).
    pub async fn confirm(&self, message: &SnsMessage) -> Result<(), RelayError> {
        let url = message
            .subscribe_url
            .as_deref()
            .ok_or_else(|| RelayError::malformed("`SubscribeURL` is missing"))?;
        let url =
            Url::parse(url).map_err(|_| RelayError::malformed("`SubscribeURL` is not a URL"))?;
        if self.local.is_none() && !is_sns_url(&url) {
            return Err(RelayError::unauthorized(
                "`SubscribeURL` is not on sns.<region>.amazonaws.com",
            ));
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                RelayError::Unavailable(format!(
                    "the subscription could not be confirmed: {}",
                    crate::telemetry::error_chain(&e.without_url())
                ))
            })?;
        drop(response);
        Ok(())
    }

    async fn signing_key(&self, url: &str) -> Result<Arc<SigningKey>, RelayError> {
        if let Some(local) = &self.local {
            return Ok(local.clone());
        }
        let parsed = Url::parse(url)
            .ok()
            .filter(|url| {
                is_sns_url(url)
                    && url.query().is_none()
                    && url.path().starts_with("/SimpleNotificationService-")
                    && url.path().ends_with(".pem")
            })
            .ok_or_else(|| {
                RelayError::unauthorized(
                    "`SigningCertURL` is not an https .pem on sns.<region>.amazonaws.com",
                )
            })?;
        if let Some(key) = self.cached(url) {
            return Ok(key);
        }
        let pem = self.fetch(parsed).await.map_err(|e| {
            RelayError::Unavailable(format!("the signing certificate could not be fetched: {e}"))
        })?;
        let key = SigningKey::from_pem(&pem)
            .map_err(|e| RelayError::unauthorized(format!("the signing certificate: {e}")))?;
        let key = Arc::new(key);
        let mut fetched = self
            .fetched
            .lock()
            .expect("the cache lock is never poisoned");
        // Full (SNS rotates certificates rarely): one goes, the others stay.
        if fetched.len() >= MAX_CACHED_CERTIFICATES
            && let Some(old) = fetched.keys().next().cloned()
        {
            fetched.remove(&old);
        }
        fetched.insert(url.to_owned(), key.clone());
        Ok(key)
    }

    fn cached(&self, url: &str) -> Option<Arc<SigningKey>> {
        let fetched = self
            .fetched
            .lock()
            .expect("the cache lock is never poisoned");
        fetched.get(url).cloned()
    }

    async fn fetch(&self, url: Url) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_FETCH_BYTES {
                return Err("the certificate is larger than 64 KiB".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A field verification needs: without it the message is unverifiable (401).
fn signed_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, RelayError> {
    body[field]
        .as_str()
        .ok_or_else(|| RelayError::unauthorized(format!("`{field}` is missing")))
}

/// `https://sns.<region>.amazonaws.com[.cn]/...` on the default port.
fn is_sns_url(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let region = host.strip_prefix("sns.").and_then(|rest| {
        rest.strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    });
    url.scheme() == "https"
        && url.port().is_none()
        && url.username().is_empty()
        && region.is_some_and(|region| {
            !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// What SNS signs: `name\nvalue\n` for each signed field, in this order.
fn string_to_sign(kind: SnsType, body: &Value) -> Result<String, RelayError> {
    let fields: &[&str] = match kind {
        SnsType::Notification => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        SnsType::SubscriptionConfirmation | SnsType::UnsubscribeConfirmation => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    };
    let mut text = String::new();
    for &field in fields {
        // A notification's subject is signed only when there is one.
        if field == "Subject" && body[field].is_null() {
            continue;
        }
        let value = body[field].as_str().ok_or_else(|| {
            RelayError::malformed(format!("`{field}` is missing or not a string"))
        })?;
        text.push_str(field);
        text.push('\n');
        text.push_str(value);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_come_only_from_sns_over_https() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        ] {
            assert!(is_sns_url(&Url::parse(good).unwrap()), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.test/x.pem",
            "https://evil.test/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://s3.us-east-1.amazonaws.com/x.pem",
            "https://sns.US_EAST.amazonaws.com/x.pem",
        ] {
            assert!(!is_sns_url(&Url::parse(bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn the_subject_is_signed_only_when_present() {
        let body = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "t",
            "Message": "hello", "Timestamp": "2026-12-03T00:00:00.000Z",
        });
        assert_eq!(
            string_to_sign(SnsType::Notification, &body).unwrap(),
            "Message\nhello\nMessageId\nm\nTimestamp\n2026-12-03T00:00:00.000Z\nTopicArn\nt\nType\nNotification\n"
        );
        let mut with_subject = body.clone();
        with_subject["Subject"] = "s".into();
        assert!(
            string_to_sign(SnsType::Notification, &with_subject)
                .unwrap()
                .contains("MessageId\nm\nSubject\ns\nTimestamp")
        );
    }
}
