//! Unsubscribe tokens: the contact's ID and an HMAC-SHA256 of it under a secret key, so
//! that only someone who received an email for a contact can unsubscribe it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of the MAC kept in a token: 128 bits.
const MAC_BYTES: usize = 16;

/// Signs and checks tokens; built once from the configured secret.
#[derive(Clone)]
pub struct UnsubscribeKey {
    key: SecretString,
}

impl UnsubscribeKey {
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    fn mac(&self, contact: Uuid) -> Hmac<Sha256> {
        self.mac_of(b"roster-unsubscribe:", contact.as_bytes())
    }

    /// An HMAC-SHA256 of `data` for `purpose` (a prefix no two uses share), so one
    /// secret signs links of several kinds that cannot stand in for each other.
    pub fn mac_of(&self, purpose: &[u8], data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(purpose);
        mac.update(data);
        mac
    }

    /// A URL-safe token for `contact`.
    pub fn token(&self, contact: Uuid) -> String {
        let mut bytes = contact.as_bytes().to_vec();
        bytes.extend_from_slice(&self.mac(contact).finalize().into_bytes()[..MAC_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The contact a token was made for, or `None` for a forged or altered token.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != 16 + MAC_BYTES {
            return None;
        }
        let contact = Uuid::from_slice(&bytes[..16]).ok()?;
        self.mac(contact).verify_truncated_left(&bytes[16..]).ok()?;
        Some(contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_refuses_forgeries() {
        let key = UnsubscribeKey::new("a secret of some length".into());
        let contact = Uuid::new_v4();
        let token = key.token(contact);
        assert_eq!(key.verify(&token), Some(contact));

        let other = UnsubscribeKey::new("another secret".into());
        assert_eq!(other.verify(&token), None, "signed with another key");
        let mut forged = URL_SAFE_NO_PAD.decode(&token).unwrap();
        forged[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        assert_eq!(
            key.verify(&URL_SAFE_NO_PAD.encode(forged)),
            None,
            "another contact"
        );
        assert_eq!(key.verify("not-a-token"), None);
        assert_eq!(key.verify(&token[..token.len() - 2]), None, "cut short");
    }
}
