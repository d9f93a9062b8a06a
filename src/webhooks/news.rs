//! What each of Roster's events says, shaped as Loops' webhooks: `contactIdentity`,
//! `contact` (on `contact.created`), `mailingList`, and for emails `sourceType` with
//! `campaignId`, `loopId` or `transactionalId`, and `email` (`id`, `emailMessageId`,
//! `subject`).

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Endpoints, emit};
use crate::contacts::Contact;
use crate::workflows::definition::{CAMPAIGN, TRANSACTIONAL};

/// A change to a contact that endpoints may hear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactNews<'a> {
    Created,
    Unsubscribed,
    Deleted,
    JoinedList(&'a str),
    LeftList(&'a str),
}

fn contact_identity(contact: &Contact) -> Value {
    json!({ "id": contact.id, "email": contact.email, "userId": contact.user_id })
}

/// Emits what happened to `contact`, in the caller's transaction.
pub async fn contact_news(
    conn: &mut PgConnection,
    endpoints: &Endpoints,
    contact: &Contact,
    news: &[ContactNews<'_>],
) -> sqlx::Result<()> {
    for item in news {
        let identity = contact_identity(contact);
        let (event, fields) = match item {
            ContactNews::Created => (
                "contact.created",
                json!({ "contactIdentity": identity, "contact": contact.to_json() }),
            ),
            ContactNews::Unsubscribed => (
                "contact.unsubscribed",
                json!({ "contactIdentity": identity }),
            ),
            ContactNews::Deleted => ("contact.deleted", json!({ "contactIdentity": identity })),
            ContactNews::JoinedList(list) => (
                "contact.mailingList.subscribed",
                json!({ "contactIdentity": identity, "mailingList": endpoints.mailing_list(list) }),
            ),
            ContactNews::LeftList(list) => (
                "contact.mailingList.unsubscribed",
                json!({ "contactIdentity": identity, "mailingList": endpoints.mailing_list(list) }),
            ),
        };
        if endpoints.wants(event) {
            emit(conn, endpoints, event, fields).await?;
        }
    }
    Ok(())
}

/// The lists a change joined and left: `before` and `after` are `mailingLists`
/// objects (list ID to true; false or absent is off); a new contact has `before` null.
pub fn list_news<'a>(before: &'a Value, after: &'a Value) -> Vec<ContactNews<'a>> {
    let on = |lists: &'a Value| -> Vec<&'a str> {
        lists.as_object().map_or_else(Vec::new, |lists| {
            lists
                .iter()
                .filter(|(_, on)| **on == true)
                .map(|(id, _)| id.as_str())
                .collect()
        })
    };
    let (was, is) = (on(before), on(after));
    let joined = is
        .iter()
        .filter(|id| !was.contains(id))
        .map(|id| ContactNews::JoinedList(id));
    let left = was
        .iter()
        .filter(|id| !is.contains(id))
        .map(|id| ContactNews::LeftList(id));
    joined.chain(left).collect()
}

/// What an email event is about: the delivery, its run and its contact.
struct EmailSource {
    delivery: Uuid,
    workflow: String,
    trigger_key: Option<String>,
    template: String,
    subject: Option<String>,
    recipient: String,
    contact_id: Option<Uuid>,
    contact_email: Option<String>,
    user_id: Option<String>,
    campaign_name: Option<String>,
}

/// Emits an email event about this delivery: `loop.email.sent` (or `campaign.` or
/// `transactional.`) for the send itself, `email.delivered`, `email.hardBounced`,
/// `email.opened`, .... Nothing is read unless an endpoint takes `event`.
pub async fn email_news(
    conn: &mut PgConnection,
    endpoints: &Endpoints,
    event: &str,
    delivery: Uuid,
) -> sqlx::Result<()> {
    if !endpoints.wants(event) {
        return Ok(());
    }
    let sent = event.ends_with(".email.sent");
    let Some(source) = sqlx::query_as!(
        EmailSource,
        r#"select d.id as delivery, r.workflow, r.trigger_key, d.template, d.subject, d.recipient,
                  r.contact_id, c.email as "contact_email?", c.user_id as "user_id?",
                  (select name from campaigns k where r.workflow = 'campaign' and k.id::text = r.trigger_key)
                    as "campaign_name?"
           from email_deliveries d join workflow_runs r on r.id = d.run_id
           left join contacts c on c.id = r.contact_id
           where d.id = $1"#,
        delivery
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    let kind = source_type(&source.workflow);
    let mut fields = json!({
        "contactIdentity": {
            "id": source.contact_id,
            "email": source.contact_email.as_deref().unwrap_or(&source.recipient),
            "userId": source.user_id,
        },
        "email": {
            "id": source.delivery,
            "emailMessageId": source.template,
            "subject": source.subject.unwrap_or_default(),
        },
    });
    match kind {
        "campaign" => {
            fields["campaignId"] = json!(source.trigger_key);
            if sent {
                fields["campaignName"] = json!(source.campaign_name);
            }
        }
        "transactional" => {
            fields["transactionalId"] = json!(source.template);
            if sent {
                fields["transactionalName"] = json!(source.template);
            }
        }
        _ => {
            fields["loopId"] = json!(source.workflow);
            if sent {
                fields["loopName"] = json!(source.workflow);
            }
        }
    }
    if !sent {
        fields["sourceType"] = json!(kind);
    }
    emit(conn, endpoints, event, fields).await
}

/// Loops' `sourceType` of a workflow's email: `campaign`, `transactional` or `loop`.
pub fn source_type(workflow: &str) -> &'static str {
    match workflow {
        CAMPAIGN => "campaign",
        TRANSACTIONAL => "transactional",
        _ => "loop",
    }
}

/// The event of a workflow's email being sent: `loop.email.sent`, ...
pub fn sent_event(workflow: &str) -> &'static str {
    match source_type(workflow) {
        "campaign" => "campaign.email.sent",
        "transactional" => "transactional.email.sent",
        _ => "loop.email.sent",
    }
}
