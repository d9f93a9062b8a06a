//! Whether a JSON text can be kept as PostgreSQL `jsonb` and read back: no NUL in any
//! string or key (`jsonb` refuses `\u0000`), numbers within range, and nesting no
//! deeper than serde_json reads (128 levels). Checked at the edge, so a hostile body
//! gets a 400 naming where it is at fault and nothing is stored.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// What is wrong with a JSON text, and where (`data.first_name`, `tags[2]`; empty for
/// the whole text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonProblem {
    pub path: String,
    pub reason: String,
    /// The text is not JSON at all (rather than JSON that cannot be stored).
    pub not_json: bool,
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "`{}` {}", self.path, self.reason)
        }
    }
}

/// Checks `text`; a text that is not JSON at all is a problem too.
pub fn check_storable(text: &str) -> Result<(), JsonProblem> {
    let problem = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = Node {
        path: "",
        problem: &problem,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match (result, problem.into_inner()) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(problem)) => Err(problem),
        (Err(error), None) => {
            let reason = describe(&error);
            Err(JsonProblem {
                not_json: reason.starts_with("is not valid JSON"),
                path: String::new(),
                reason,
            })
        }
    }
}

fn describe(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if message.starts_with("recursion limit exceeded") {
        "nests deeper than 128 levels".to_owned()
    } else if message.starts_with("number out of range") {
        format!("has a number out of range ({message})")
    } else {
        format!("is not valid JSON ({message})")
    }
}

struct Node<'a> {
    path: &'a str,
    problem: &'a RefCell<Option<JsonProblem>>,
}

impl Node<'_> {
    fn fail<E: serde::de::Error>(&self, path: &str, reason: &str) -> E {
        *self.problem.borrow_mut() = Some(JsonProblem {
            path: path.to_owned(),
            reason: reason.to_owned(),
            not_json: false,
        });
        E::custom(reason)
    }

    fn check_text<E: serde::de::Error>(&self, path: &str, text: &str) -> Result<(), E> {
        if text.contains('\0') {
            return Err(self.fail(path, "contains a NUL character"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<(), E> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(self.fail(self.path, "is a number out of range"))
        }
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<(), E> {
        self.check_text(self.path, value)
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let path = format!("{}[{index}]", self.path);
            let node = Node {
                path: &path,
                problem: self.problem,
            };
            if seq.next_element_seed(node)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let path = if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            };
            self.check_text(&path, &key)
                .map_err(|_: A::Error| A::Error::custom("NUL in a key"))?;
            map.next_value_seed(Node {
                path: &path,
                problem: self.problem,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> String {
        check_storable(text).unwrap_err().to_string()
    }

    #[test]
    fn storable_json_passes_and_each_problem_is_named_where_it_is() {
        assert_eq!(
            check_storable(r#"{"a": [1, 2.5, "x", null, true, {"b": {}}]}"#),
            Ok(())
        );
        assert_eq!(
            problem(r#"{"data": {"first_name": "A\u0000da"}}"#),
            "`data.first_name` contains a NUL character"
        );
        assert_eq!(
            problem(r#"{"tags": ["ok", "b\u0000d"]}"#),
            "`tags[1]` contains a NUL character"
        );
        assert_eq!(
            problem(r#"{"k\u0000": 1}"#),
            "`k\u{0}` contains a NUL character"
        );
        assert!(problem(r#"{"n": 1e1000000}"#).contains("number out of range"));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(problem(&deep), "nests deeper than 128 levels");
        assert!(problem("{").contains("not valid JSON"));
        // A backslash then "u0000" is text, not a NUL.
        assert_eq!(check_storable(r#"{"a": "\\u0000"}"#), Ok(()));
    }
}
