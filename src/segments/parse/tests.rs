//! The grammar's faults, each named at its condition.

use serde_json::json;

use super::*;
use crate::contacts::properties::CustomProperty;
use crate::segments::filter::Test;

fn catalog() -> Catalog<'static> {
    let custom = Box::leak(Box::new(vec![CustomProperty {
        name: "plan".into(),
        kind: PropertyType::String,
    }]));
    Catalog {
        custom,
        lists: vec!["news"],
    }
}

fn error(filter: Value) -> (Option<String>, String) {
    let error = parse(&filter, &catalog(), "filter").unwrap_err();
    (error.field, error.message)
}

#[test]
fn every_fault_names_its_condition() {
    let field = |filter| error(filter).0.unwrap();
    assert_eq!(
        field(json!({"match": "some", "conditions": []})),
        "filter.match"
    );
    assert_eq!(
        field(
            json!({"match": "all", "conditions": [{"property": "plann", "operator": "equals", "value": "x"}]})
        ),
        "filter.conditions[0].property"
    );
    assert_eq!(
        field(
            json!({"match": "all", "conditions": [{"property": "createdAt", "operator": "contains", "value": "x"}]})
        ),
        "filter.conditions[0].operator"
    );
    assert_eq!(
        field(
            json!({"match": "any", "conditions": [{"mailingList": "news"}, {"match": "all", "conditions": [{"property": "subscribed", "operator": "equals", "value": "yes"}]}]})
        ),
        "filter.conditions[1].conditions[0].value"
    );
    assert_eq!(
        field(json!({"match": "all", "conditions": [{"mailingList": "nope"}]})),
        "filter.conditions[0].mailingList"
    );
    assert_eq!(
        field(
            json!({"match": "all", "conditions": [{"activity": "received", "template": "a", "workflow": "b"}]})
        ),
        "filter.conditions[0]"
    );
    assert_eq!(
        field(
            json!({"match": "all", "conditions": [{"property": "plan", "operator": "isEmpty", "extra": 1}]})
        ),
        "filter.conditions[0].extra"
    );
}

#[test]
fn groups_nest_only_so_deep() {
    let mut filter = json!({"match": "all", "conditions": []});
    for _ in 0..MAX_DEPTH + 1 {
        filter = json!({"match": "all", "conditions": [filter]});
    }
    assert!(error(filter).1.contains("nest"));
}

#[test]
fn a_well_formed_filter_is_typed() {
    let filter = json!({"match": "all", "conditions": [
        {"property": "userGroup", "operator": "equals", "value": "beta"},
        {"property": "createdAt", "operator": "withinLastDays", "value": 30},
        {"activity": "received", "template": "welcome", "negate": true},
    ]});
    let parsed = parse(&filter, &catalog(), "filter").unwrap();
    assert!(parsed.match_all);
    assert_eq!(parsed.conditions.len(), 3);
    assert_eq!(
        parsed.conditions[1],
        Condition::Property {
            field: Field {
                kind: PropertyType::Date,
                source: Source::Column("created_at")
            },
            test: Test::WithinLastDays(30)
        }
    );
}
