//! Open and click tracking of marketing email: an open pixel at the end of the HTML,
//! and every `http(s)` link rewritten to a signed Roster URL that redirects to it.
//! Tokens carry the run, the step and (for a click) the link, with an HMAC under the
//! unsubscribe secret, so a tampered token is refused (404) and Roster never
//! redirects anywhere a sent email did not link to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use lol_html::html_content::ContentType;
use lol_html::{RewriteStrSettings, element, rewrite_str};
use url::Url;
use uuid::Uuid;

use super::unsubscribe::UnsubscribeKey;

/// Bytes of the MAC kept in a token: 128 bits.
const MAC_BYTES: usize = 16;
/// Links longer than this are left as they are.
const MAX_TRACKED_URL: usize = 2000;

/// What a token was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Open,
    Click,
    /// Names the email an unsubscribe link came in (`?email=` on the link).
    Unsubscribe,
}

impl Kind {
    fn purpose(self) -> &'static [u8] {
        match self {
            Self::Open => b"roster-open:",
            Self::Click => b"roster-click:",
            Self::Unsubscribe => b"roster-unsubscribe-email:",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Open => "t/o",
            Self::Click => "t/c",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// The email a token is about: run and step, and the link for a click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub run: Uuid,
    pub step: i32,
    pub url: Option<String>,
}

fn token(key: &UnsubscribeKey, kind: Kind, tracked: &Tracked) -> String {
    let mut data = tracked.run.as_bytes().to_vec();
    data.extend_from_slice(&tracked.step.to_be_bytes());
    if let Some(url) = &tracked.url {
        data.extend_from_slice(url.as_bytes());
    }
    let mac = key.mac_of(kind.purpose(), &data).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&data),
        URL_SAFE_NO_PAD.encode(&mac[..MAC_BYTES])
    )
}

/// What a token names, or `None` for a forged, altered or malformed one.
pub fn read(key: &UnsubscribeKey, kind: Kind, token: &str) -> Option<Tracked> {
    let (data, mac) = token.split_once('.')?;
    let data = URL_SAFE_NO_PAD.decode(data).ok()?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    if data.len() < 20 || mac.len() != MAC_BYTES {
        return None;
    }
    key.mac_of(kind.purpose(), &data)
        .verify_truncated_left(&mac)
        .ok()?;
    let run = Uuid::from_slice(&data[..16]).ok()?;
    let step = i32::from_be_bytes(data[16..20].try_into().ok()?);
    let url = match kind {
        Kind::Open | Kind::Unsubscribe => None,
        Kind::Click => Some(String::from_utf8(data[20..].to_vec()).ok()?),
    };
    Some(Tracked { run, step, url })
}

/// The token naming run `run`'s step `step` as the email an unsubscribe link came in.
pub fn email_token(key: &UnsubscribeKey, run: Uuid, step: i32) -> String {
    let tracked = Tracked {
        run,
        step,
        url: None,
    };
    token(key, Kind::Unsubscribe, &tracked)
}

/// Rewrites one email's HTML for tracking.
pub struct Tracker<'a> {
    pub key: &'a UnsubscribeKey,
    pub public_url: &'a Url,
    pub run: Uuid,
    pub step: i32,
    /// Left as it is: the unsubscribe link.
    pub keep: Option<&'a str>,
}

impl Tracker<'_> {
    fn url(&self, kind: Kind, url: Option<String>) -> String {
        let tracked = Tracked {
            run: self.run,
            step: self.step,
            url,
        };
        let token = token(self.key, kind, &tracked);
        self.public_url
            .join(&format!("{}/{token}", kind.path()))
            .map(String::from)
            .unwrap_or_default()
    }

    /// The HTML with its web links through Roster and the open pixel before `</body>`
    /// (or at the end, without one).
    pub fn rewrite(&self, html: &str) -> Result<String, lol_html::errors::RewritingError> {
        let pixel = format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0\">",
            self.url(Kind::Open, None)
        );
        let has_body = html.to_ascii_lowercase().contains("<body");
        let mut rewritten = rewrite_str(
            html,
            RewriteStrSettings {
                element_content_handlers: vec![
                    element!("a[href]", |el| {
                        let Some(raw) = el.get_attribute("href") else {
                            return Ok(());
                        };
                        let href = html_escape::decode_html_entities(raw.trim()).into_owned();
                        if self.keep == Some(href.as_str()) || href.len() > MAX_TRACKED_URL {
                            return Ok(());
                        }
                        let web = Url::parse(&href)
                            .is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
                        if web {
                            el.set_attribute("href", &self.url(Kind::Click, Some(href)))?;
                        }
                        Ok(())
                    }),
                    element!("body", |el| {
                        el.append(&pixel, ContentType::Html);
                        Ok(())
                    }),
                ],
                ..RewriteStrSettings::new()
            },
        )?;
        if !has_body {
            rewritten.push_str(&pixel);
        }
        Ok(rewritten)
    }
}

/// Whether an open or click came from a machine rather than a person: Gmail's and
/// Yahoo's image proxies, and Apple Mail Privacy Protection (which fetches every
/// image with a bare `Mozilla/5.0`), and requests with no user agent at all.
pub fn is_machine(user_agent: Option<&str>) -> bool {
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    const PREFETCHERS: [&str; 4] = [
        "GoogleImageProxy",
        "YahooMailProxy",
        "ggpht.com",
        "Feedfetcher",
    ];
    agent == "Mozilla/5.0" || PREFETCHERS.iter().any(|p| agent.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UnsubscribeKey {
        UnsubscribeKey::new("a secret of some length".into())
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = key();
        let tracked = Tracked {
            run: Uuid::now_v7(),
            step: 2,
            url: Some("https://acme.test/pricing?a=1&b=2".into()),
        };
        let click = token(&key, Kind::Click, &tracked);
        assert_eq!(read(&key, Kind::Click, &click), Some(tracked.clone()));
        assert_eq!(
            read(&key, Kind::Open, &click),
            None,
            "a click token is no open token"
        );
        let (data, mac) = click.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
        bytes.extend_from_slice(b"/evil");
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(read(&key, Kind::Click, &forged), None);
        assert_eq!(
            read(&UnsubscribeKey::new("other".into()), Kind::Click, &click),
            None
        );
        assert_eq!(read(&key, Kind::Click, "nonsense"), None);
        assert_eq!(read(&key, Kind::Click, "."), None);
    }

    #[test]
    fn links_are_rewritten_and_the_pixel_added() {
        let key = key();
        let base = Url::parse("https://roster.acme.test/").unwrap();
        let tracker = Tracker {
            key: &key,
            public_url: &base,
            run: Uuid::now_v7(),
            step: 0,
            keep: Some("https://roster.acme.test/unsubscribe/x"),
        };
        let html = "<html><body><p><a href=\"https:&#x2f;&#x2f;acme.test&#x2f;a?x=1&amp;y=2\">A</a> \
                    <a href=\"mailto:hi@acme.test\">mail</a> <a href=\"#top\">top</a> \
                    <a href=\"https://roster.acme.test/unsubscribe/x\">unsubscribe</a></p></body></html>";
        let out = tracker.rewrite(html).unwrap();
        assert!(
            out.contains("href=\"https://roster.acme.test/t/c/"),
            "{out}"
        );
        assert!(out.contains("href=\"mailto:hi@acme.test\""), "{out}");
        assert!(out.contains("href=\"#top\""), "{out}");
        assert!(
            out.contains("href=\"https://roster.acme.test/unsubscribe/x\""),
            "{out}"
        );
        assert!(
            out.contains("<img src=\"https://roster.acme.test/t/o/"),
            "{out}"
        );
        assert!(out.trim_end().ends_with("</body></html>"), "{out}");
        let token = out
            .split("/t/c/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let tracked = read(&key, Kind::Click, token).unwrap();
        assert_eq!(tracked.url.as_deref(), Some("https://acme.test/a?x=1&y=2"));
        let bare = tracker.rewrite("<p>hi</p>").unwrap();
        assert!(bare.starts_with("<p>hi</p><img"), "{bare}");
    }

    #[test]
    fn prefetchers_are_machines() {
        assert!(is_machine(Some("Mozilla/5.0")));
        assert!(is_machine(Some(
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
        )));
        assert!(is_machine(None));
        assert!(!is_machine(Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
        )));
    }
}
