//! The create-or-update of a contact from outside Clerk (the API, the dashboard, the
//! CSV import, an unsubscribe link): which contact a write matches, when it conflicts,
//! and the change it made. Starting workflows for that change is the caller's choice.

use sqlx::PgConnection;
use uuid::Uuid;

use super::input::ContactInput;
use super::lifecycle::LifecycleEvent;
use super::store::{
    find_contact_by_email, find_contact_by_id, find_contact_by_user_id, find_contact_for_update,
    lock_person, save_contact,
};
use super::{Contact, ContactError};

/// Whether a write may change an existing contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Create; `ContactError::Taken` when the email or userId is on a contact already.
    CreateOnly,
    /// Update the match, or create.
    Upsert,
}

/// What a write did to the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    /// Updated, and it is now unsubscribed.
    Unsubscribed,
    Updated,
    /// The input changed nothing; nothing was written.
    Unchanged,
}

impl Change {
    /// The lifecycle event this change emits, if any.
    pub fn lifecycle_event(self) -> Option<LifecycleEvent> {
        match self {
            Self::Created => Some(LifecycleEvent::Created),
            Self::Unsubscribed => Some(LifecycleEvent::Unsubscribed),
            Self::Updated | Self::Unchanged => None,
        }
    }
}

/// The contact as written, and what changed.
#[derive(Debug)]
pub struct Upserted {
    pub contact: Contact,
    pub change: Change,
    /// The contact's `mailingLists` before the write (null for a new contact).
    pub lists_before: serde_json::Value,
}

/// Finds the contact by `userId`, then by `email`, and applies `input`, or creates the
/// contact (which needs an email) with `source` unless `input` names one. The person's
/// locks are taken first and the row found is locked too, so a concurrent change (an
/// unsubscribe link, a Clerk update) is never overwritten with what was read before it.
/// An email never moves onto another contact, and a contact's userId is never replaced.
pub async fn upsert(
    tx: &mut PgConnection,
    input: &ContactInput,
    write: Write,
    source: &str,
) -> Result<Upserted, ContactError> {
    if input.email.is_none() && input.user_id.is_none() {
        return Err(ContactError::invalid("Provide an `email` or a `userId`."));
    }
    lock_person(tx, input.user_id.as_deref(), input.email.as_deref()).await?;
    let found = find_match(tx, input).await?;
    if write == Write::CreateOnly && found.is_some() {
        return Err(ContactError::Taken);
    }
    let (contact, created) = match found {
        Some(found) => (
            find_contact_for_update(tx, found.id)
                .await?
                .ok_or(ContactError::Changed)?,
            false,
        ),
        None => match &input.email {
            Some(email) => (Contact::new(email, source), true),
            None => {
                return Err(ContactError::field(
                    "userId",
                    "No contact has this userId; include `email` to create one.",
                ));
            }
        },
    };
    apply(tx, contact, input, created).await
}

/// The contact `input` names: by userId, else by address. Refuses an address that is
/// another contact's, and a userId other than the one the address's contact has.
async fn find_match(
    tx: &mut PgConnection,
    input: &ContactInput,
) -> Result<Option<Contact>, ContactError> {
    let by_user_id = match &input.user_id {
        Some(user_id) => find_contact_by_user_id(tx, user_id).await?,
        None => None,
    };
    let by_email = match (&by_user_id, &input.email) {
        (Some(contact), Some(email)) if contact.email.eq_ignore_ascii_case(email) => None,
        (_, Some(email)) => find_contact_by_email(tx, email).await?,
        (_, None) => None,
    };
    match (by_user_id, by_email) {
        // A new address for this user: it must not be another contact's.
        (Some(_), Some(_)) => Err(ContactError::field(
            "email",
            "Another contact already has this email address.",
        )),
        (Some(contact), None) => Ok(Some(contact)),
        // Found by address: its userId may be set, but not replaced.
        (None, Some(contact)) => match (&contact.user_id, &input.user_id) {
            (Some(theirs), Some(asked)) if theirs != asked => Err(ContactError::field(
                "userId",
                "This email belongs to a contact with another userId.",
            )),
            _ => Ok(Some(contact)),
        },
        (None, None) => Ok(None),
    }
}

/// Applies `input` to the locked (or new) `contact` and writes it when it changed.
async fn apply(
    tx: &mut PgConnection,
    mut contact: Contact,
    input: &ContactInput,
    created: bool,
) -> Result<Upserted, ContactError> {
    let before = (!created).then(|| contact.clone());
    let unsubscribed = input.apply(&mut contact);
    // A write that changes nothing (the common case for events) writes nothing.
    let lists_before = before.as_ref().map_or(serde_json::Value::Null, |before| {
        before.mailing_lists.clone()
    });
    if before.as_ref() == Some(&contact) {
        return Ok(Upserted {
            contact,
            change: Change::Unchanged,
            lists_before,
        });
    }
    let contact = save_contact(tx, &contact).await?;
    let change = match (created, unsubscribed) {
        (true, _) => Change::Created,
        (false, true) => Change::Unsubscribed,
        (false, false) => Change::Updated,
    };
    Ok(Upserted {
        contact,
        change,
        lists_before,
    })
}

/// Sets the subscription of contact `id` (an unsubscribe link, the dashboard's button),
/// under the person's locks as every other write; `None` when there is no such contact.
pub async fn set_subscribed(
    tx: &mut PgConnection,
    id: Uuid,
    subscribed: bool,
) -> Result<Option<Upserted>, ContactError> {
    let input = ContactInput {
        subscribed: Some(subscribed),
        ..ContactInput::default()
    };
    change_contact(tx, id, &input).await
}

/// Applies `input` to contact `id` (found by ID, as links and the dashboard name it),
/// under the person's locks as every other write; `None` when there is no such contact.
pub async fn change_contact(
    tx: &mut PgConnection,
    id: Uuid,
    input: &ContactInput,
) -> Result<Option<Upserted>, ContactError> {
    let Some(found) = find_contact_by_id(tx, id).await? else {
        return Ok(None);
    };
    lock_person(tx, found.user_id.as_deref(), Some(&found.email)).await?;
    let Some(contact) = find_contact_for_update(tx, id).await? else {
        return Ok(None);
    };
    apply(tx, contact, input, false).await.map(Some)
}
