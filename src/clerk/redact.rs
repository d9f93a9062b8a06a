//! Removes secrets from a Clerk payload before it is stored: every `otp_code` (and any
//! copy of its value elsewhere, such as an email subject), the message bodies of
//! `email.created` and `sms.created`, and invitation tickets (`__clerk_ticket=` in URLs,
//! which let anyone holding them sign up).

use std::borrow::Cow;

use serde_json::Value;

const REDACTED: &str = "[redacted]";
const TICKET_PARAMETER: &str = "__clerk_ticket=";

/// Body fields of the messages Clerk sends, by event type.
fn message_body_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "email.created" => &["body", "body_plain"],
        "sms.created" => &["message"],
        _ => &[],
    }
}

/// The body with secrets removed; borrowed as it is when it certainly has none (most
/// events), so the common case neither builds a JSON tree nor writes one out again. A
/// `\u` escape could spell a key in disguise, so it also takes the careful path. Fails
/// only on JSON that the tree cannot hold (a number beyond f64), which is then not
/// stored at all rather than stored unredacted.
pub fn redact<'a>(event_type: &str, body: &'a str) -> Result<Cow<'a, str>, serde_json::Error> {
    let certainly_clean = message_body_fields(event_type).is_empty()
        && !body.contains("otp_code")
        && !body.contains(TICKET_PARAMETER)
        && !body.contains("\\u");
    if certainly_clean {
        return Ok(Cow::Borrowed(body));
    }
    let mut payload = serde_json::from_str::<Value>(body)?;
    redact_value(event_type, &mut payload);
    Ok(Cow::Owned(payload.to_string()))
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
    redact_strings(payload, &codes);
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

/// Replaces copies of the OTP codes and the values of invitation tickets in every string.
fn redact_strings(value: &mut Value, codes: &[String]) {
    match value {
        Value::String(s) => {
            for code in codes {
                if s.contains(code.as_str()) {
                    *s = s.replace(code.as_str(), REDACTED);
                }
            }
            if s.contains(TICKET_PARAMETER) {
                *s = redact_ticket(s);
            }
        }
        Value::Object(map) => map.values_mut().for_each(|v| redact_strings(v, codes)),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, codes)),
        _ => {}
    }
}

/// `...?__clerk_ticket=abc&x=1` becomes `...?__clerk_ticket=[redacted]&x=1`.
fn redact_ticket(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(TICKET_PARAMETER) {
        let value_start = start + TICKET_PARAMETER.len();
        out.push_str(&rest[..value_start]);
        out.push_str(REDACTED);
        let value_end = rest[value_start..]
            .find(['&', '#', '"', ' '])
            .map_or(rest.len(), |end| value_start + end);
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redacted(event_type: &str, payload: Value) -> Value {
        serde_json::from_str(&redact(event_type, &payload.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn body_without_secrets_is_kept_as_it_came() {
        let body = r#"{"type": "user.created",  "data": {"id": "user_1"}}"#;
        assert!(matches!(redact("user.created", body), Ok(Cow::Borrowed(b)) if b == body));
    }

    #[test]
    fn escaped_otp_code_key_is_still_found() {
        let body = r#"{"data": {"otp\u005fcode": "424242", "subject": "424242 is your code"}}"#;
        let stored = redact("email.created", body).unwrap();
        assert!(!stored.contains("424242"), "{stored}");
    }

    #[test]
    fn invitation_ticket_is_removed_from_urls() {
        let payload = json!({ "data": { "invitation": {
            "url": "https://accounts.acme.test/sign-up?__clerk_ticket=eyJhbGciOi.secret&redirect=1"
        } } });
        let payload = redacted("waitlistEntry.updated", payload);
        assert_eq!(
            payload["data"]["invitation"]["url"],
            "https://accounts.acme.test/sign-up?__clerk_ticket=[redacted]&redirect=1"
        );
    }

    #[test]
    fn json_the_tree_cannot_hold_is_refused_not_stored_raw() {
        assert!(redact("email.created", r#"{"data": {"otp_code": 1e400}}"#).is_err());
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
