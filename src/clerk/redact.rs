//! Removes secrets from a Clerk payload before it is stored: every `otp_code` (and any
//! copy of its value elsewhere, such as an email subject), and the message bodies of
//! `email.created` and `sms.created`.

use std::borrow::Cow;

use serde_json::Value;

const REDACTED: &str = "[redacted]";

/// Body fields of the messages Clerk sends, by event type.
fn message_body_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "email.created" => &["body", "body_plain"],
        "sms.created" => &["message"],
        _ => &[],
    }
}

/// The body with secrets removed; borrowed as it is when there are none (most events),
/// so the common case neither builds a JSON tree nor writes one out again.
pub fn redact<'a>(event_type: &str, body: &'a str) -> Cow<'a, str> {
    if message_body_fields(event_type).is_empty() && !body.contains("otp_code") {
        return Cow::Borrowed(body);
    }
    let Ok(mut payload) = serde_json::from_str::<Value>(body) else {
        return Cow::Borrowed(body);
    };
    redact_value(event_type, &mut payload);
    Cow::Owned(payload.to_string())
}

/// Redacts `payload` (the whole envelope) in place.
fn redact_value(event_type: &str, payload: &mut Value) {
    if let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) {
        for field in message_body_fields(event_type) {
            data.remove(*field);
        }
    }
    let mut codes = Vec::new();
    remove_otp_codes(payload, &mut codes);
    if !codes.is_empty() {
        replace_codes_in_strings(payload, &codes);
    }
}

fn remove_otp_codes(value: &mut Value, codes: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(code) = map.remove("otp_code") {
                match code {
                    Value::String(s) if !s.is_empty() => codes.push(s),
                    Value::Number(n) => codes.push(n.to_string()),
                    _ => {}
                }
            }
            map.values_mut().for_each(|v| remove_otp_codes(v, codes));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_otp_codes(v, codes)),
        _ => {}
    }
}

fn replace_codes_in_strings(value: &mut Value, codes: &[String]) {
    match value {
        Value::String(s) => {
            for code in codes {
                if s.contains(code.as_str()) {
                    *s = s.replace(code.as_str(), REDACTED);
                }
            }
        }
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| replace_codes_in_strings(v, codes)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_codes_in_strings(v, codes)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redacted(event_type: &str, payload: Value) -> Value {
        serde_json::from_str(&redact(event_type, &payload.to_string())).unwrap()
    }

    #[test]
    fn body_without_secrets_is_kept_as_it_came() {
        let body = r#"{"type": "user.created",  "data": {"id": "user_1"}}"#;
        assert!(matches!(redact("user.created", body), Cow::Borrowed(b) if b == body));
    }

    #[test]
    fn otp_code_and_its_copies_are_removed() {
        let payload = json!({
            "type": "email.created",
            "data": {
                "subject": "123456 is your code",
                "body": "<p>123456</p>",
                "body_plain": "123456",
                "data": { "otp_code": "123456", "app": { "name": "Acme" } }
            }
        });
        let payload = redacted("email.created", payload);
        let text = payload.to_string();
        assert!(!text.contains("123456"), "{text}");
        assert_eq!(payload["data"]["subject"], "[redacted] is your code");
        assert_eq!(payload["data"]["data"]["app"]["name"], "Acme");
        assert!(payload["data"].get("body").is_none());
    }

    #[test]
    fn sms_message_is_removed() {
        let payload = json!({ "data": { "message": "Your code", "to_phone_number": "+1" } });
        let payload = redacted("sms.created", payload);
        assert!(payload["data"].get("message").is_none());
        assert_eq!(payload["data"]["to_phone_number"], "+1");
    }
}
