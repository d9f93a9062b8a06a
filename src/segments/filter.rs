//! The segment filter grammar, parsed and checked into a typed tree:
//! `{"match": "all" | "any", "conditions": [...]}`, each condition one of
//! - a property test: `{"property": "userGroup", "operator": "equals", "value": "beta"}`;
//! - list membership: `{"mailingList": "news"}` (`"negate": true` for not on it);
//! - activity: `{"activity": "received", "template": "welcome", "withinDays": 30,
//!   "negate": true}`, or `"workflow"` / `"campaignId"` in place of `"template"`;
//! - a group: another `{"match", "conditions"}`.
//!
//! `parse` checks a filter into these types; every problem is an `Invalid` naming
//! the condition at fault (`filter.conditions[1].operator`).

use chrono::{DateTime, Utc};

use crate::contacts::properties::{CustomProperty, PropertyType};

/// Groups inside groups, at most.
pub const MAX_DEPTH: usize = 5;
/// Conditions in one filter, groups and their conditions included.
pub const MAX_CONDITIONS: usize = 100;
/// The longest `withinDays`: a hundred years.
pub(super) const MAX_DAYS: i64 = 36_500;

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub match_all: bool,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Property { field: Field, test: Test },
    MailingList { id: String, negate: bool },
    Activity(ActivityTest),
    Group(Filter),
}

/// A contact property a condition can test, and where its value is.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub kind: PropertyType,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A column of `contacts` (one of the names below, never from the request).
    Column(&'static str),
    /// Whether the contact is a Clerk user.
    IsClerkUser,
    /// A key of `contacts.properties` (custom properties and `notes`).
    Custom(String),
}

/// The built-in properties and Clerk facts, with their columns.
pub(super) const BUILT_IN: [(&str, PropertyType, &str); 21] = [
    ("email", PropertyType::String, "email"),
    ("firstName", PropertyType::String, "first_name"),
    ("lastName", PropertyType::String, "last_name"),
    ("source", PropertyType::String, "source"),
    ("userGroup", PropertyType::String, "user_group"),
    ("userId", PropertyType::String, "user_id"),
    ("optInStatus", PropertyType::String, "opt_in_status"),
    ("waitlistStatus", PropertyType::String, "waitlist_status"),
    ("subscribed", PropertyType::Boolean, "subscribed"),
    ("createdAt", PropertyType::Date, "created_at"),
    ("updatedAt", PropertyType::Date, "updated_at"),
    ("unsubscribedAt", PropertyType::Date, "unsubscribed_at"),
    ("graduatedAt", PropertyType::Date, "graduated_at"),
    ("waitlistJoinedAt", PropertyType::Date, "waitlist_joined_at"),
    ("clerk.banned", PropertyType::Boolean, "clerk_banned"),
    // A lockout that has run out is over, though Clerk sends no event then.
    (
        "clerk.locked",
        PropertyType::Boolean,
        "(clerk_locked and coalesce(clerk_locked_until > now(), true))",
    ),
    (
        "clerk.lastSignInAt",
        PropertyType::Date,
        "clerk_last_sign_in_at",
    ),
    (
        "clerk.subscriptionStatus",
        PropertyType::String,
        "clerk_subscription_status",
    ),
    ("clerk.plan", PropertyType::String, "clerk_plan"),
    (
        "clerk.trialEndsAt",
        PropertyType::Date,
        "clerk_trial_ends_at",
    ),
    // The slugs (IDs where there is none) of the user's organizations, space separated,
    // each followed by `:` and the role: `contains "acme:org:admin"`, `contains "acme"`.
    (
        "clerk.organizations",
        PropertyType::String,
        "(select string_agg(coalesce(o ->> 'slug', o ->> 'id') || ':' || coalesce(o ->> 'role', ''), ' ') \
          from jsonb_array_elements(clerk_organizations) o)",
    ),
];

impl Filter {
    /// The campaigns the filter's activity conditions name, each with the path of its
    /// `campaignId` (below `path`, the filter's own).
    pub fn campaign_references(&self, path: &str) -> Vec<(uuid::Uuid, String)> {
        let mut found = Vec::new();
        for (i, condition) in self.conditions.iter().enumerate() {
            let path = format!("{path}.conditions[{i}]");
            match condition {
                Condition::Activity(ActivityTest {
                    target: Target::Campaign(id),
                    ..
                }) => {
                    found.push((*id, format!("{path}.campaignId")));
                }
                Condition::Group(group) => found.extend(group.campaign_references(&path)),
                _ => {}
            }
        }
        found
    }
}

/// Every property a condition can name, with its type: the built-in ones, the Clerk
/// facts, `notes`, and `custom`.
pub fn properties(custom: &[CustomProperty]) -> Vec<(String, PropertyType)> {
    BUILT_IN
        .iter()
        .map(|(name, kind, _)| ((*name).to_owned(), *kind))
        .chain([
            ("isClerkUser".to_owned(), PropertyType::Boolean),
            ("notes".to_owned(), PropertyType::String),
        ])
        .chain(custom.iter().map(|p| (p.name.clone(), p.kind)))
        .collect()
}

/// What a property condition asks of the value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Equals(Scalar),
    NotEquals(Scalar),
    Contains(String),
    StartsWith(String),
    /// The number as written (its JSON text), compared as `numeric`, exactly.
    GreaterThan(String),
    LessThan(String),
    Before(DateTime<Utc>),
    After(DateTime<Utc>),
    WithinLastDays(i64),
    IsEmpty,
    IsNotEmpty,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    /// As written (its JSON text), compared as `numeric`, exactly.
    Number(String),
    Bool(bool),
}

/// An activity condition: the contact did (or, negated, did not) receive, open (a
/// person, not a mail provider's proxy) or click an email of this template, workflow
/// or campaign, ever or within the last days.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTest {
    pub activity: Activity,
    pub target: Target,
    pub within_days: Option<i64>,
    pub negate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Received,
    Opened,
    Clicked,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Template(String),
    Workflow(String),
    Campaign(uuid::Uuid),
}

/// What a filter may name: the custom properties and the mailing lists.
pub struct Catalog<'a> {
    pub custom: &'a [CustomProperty],
    pub lists: Vec<&'a str>,
}
