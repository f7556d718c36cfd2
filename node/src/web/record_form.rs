//! Records in the workspace: a form for each record kind and the display of a record, both
//! derived from the kind's JSON Schema (`liaison_protocol::record::json_schema`), so that a
//! field added to a kind appears in the form and on the message page without a template
//! change.
//!
//! - Every form field is named by its JSON pointer into the record (`/items/0/hs_code`), the
//!   same pointer the record's validation names in its errors; an error is shown next to the
//!   field it names, and every error is also listed at the top of the form.
//! - Every value of a record is text or a choice from a vocabulary: text fields are inputs
//!   (dates are date inputs, long texts text areas), vocabularies are selects, lists of text
//!   are text areas with one value per line, lists of choices are check boxes, nested objects
//!   are field sets, and lists of objects are rows of field sets with a button that adds a row
//!   (the page works without scripts).
//! - [`build`] turns the submitted form into the record's JSON: empty fields are left out (the
//!   schema's defaults apply), an optional part left wholly empty is left out, empty rows are
//!   dropped, and a required field left empty gets a "required" error at its pointer. What the
//!   record's own validation then finds comes back from the node with pointers into the same
//!   JSON, which is also what the form is drawn from again.

use liaison_protocol::record::{self, RecordKind};
use serde_json::{Map, Value};

use super::i18n::Lang;

mod form;
mod read;
mod submit;
#[cfg(test)]
mod tests;

pub use form::{fields, path_label, summary};
pub use read::show;
pub use submit::build;

/// Most rows of one list of objects a form takes (the request body is bounded too).
pub const MAX_ROWS: usize = 100;
/// Deepest nesting of objects followed in a schema.
const MAX_DEPTH: usize = 8;
/// Text fields shown as text areas.
const LONG_TEXT: [&str; 11] = [
    "body",
    "description",
    "remarks",
    "request",
    "comment",
    "modus_operandi",
    "action_details",
    "distinguishing_features",
    "inscriptions",
    "materials",
    "date_or_period",
];

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A text (`date`: a calendar date; `long`: shown as a text area).
    Text {
        /// A `YYYY-MM-DD` date.
        date: bool,
        /// Several lines.
        long: bool,
    },
    /// One of a vocabulary: each value with what it means.
    Choice(Vec<(String, String)>),
    /// A list of texts or of choices.
    List(Box<Shape>),
    /// An object.
    Group(Vec<Field>),
    /// A list of objects.
    Rows(Vec<Field>),
}

/// One field of a record kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name in the record's JSON.
    pub name: String,
    /// What the schema says of it, in English.
    pub hint: String,
    /// The catalogue key of the hint in other languages: `record-hint-SCOPE-NAME`, where the
    /// scope is the kind (a top-level field), the schema definition the field belongs to, or
    /// the field that holds an inline object.
    pub hint_key: String,
    /// Whether the schema requires it.
    pub required: bool,
    /// What it holds.
    pub shape: Shape,
}

/// The fields of one record kind, from its JSON Schema.
#[derive(Debug, Clone)]
pub struct RecordForm {
    /// The kind.
    pub kind: RecordKind,
    /// Its top-level fields, in schema order.
    pub fields: Vec<Field>,
}

impl RecordForm {
    /// The form of `kind`.
    pub fn of(kind: RecordKind) -> RecordForm {
        let schema = record::json_schema(kind);
        let defs = schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        RecordForm {
            kind,
            fields: object_fields(&schema, &defs, 0, kind.as_str()),
        }
    }
}

fn resolve<'a>(mut v: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    for _ in 0..MAX_DEPTH {
        let target = v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|name| defs.get(name));
        match target {
            Some(t) => v = t,
            None => break,
        }
    }
    v
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The name of the schema definition `v` refers to, if it is a reference.
fn def_name(v: &Value) -> Option<&str> {
    v.get("$ref")?.as_str()?.strip_prefix("#/$defs/")
}

/// The shape of the field `name` described by `v`.
fn shape(v: &Value, defs: &Map<String, Value>, depth: usize, name: &str) -> Shape {
    let scope = def_name(v).unwrap_or(name);
    let v = resolve(v, defs);
    let not_null = |x: &&Value| x.get("type").and_then(Value::as_str) != Some("null");
    if let Some(inner) = v
        .get("anyOf")
        .and_then(Value::as_array)
        .and_then(|any| any.iter().find(not_null))
    {
        return shape(inner, defs, depth, scope);
    }
    if let Some(options) = v.get("oneOf").and_then(Value::as_array) {
        return Shape::Choice(
            options
                .iter()
                .filter_map(|o| {
                    let value = o.get("const")?.as_str()?.to_owned();
                    let meaning = text(o, "description").trim_end_matches('.').to_owned();
                    Some((value, meaning))
                })
                .collect(),
        );
    }
    if let Some(values) = v.get("enum").and_then(Value::as_array) {
        return Shape::Choice(
            values
                .iter()
                .filter_map(Value::as_str)
                .map(|s| (s.to_owned(), s.to_owned()))
                .collect(),
        );
    }
    if depth < MAX_DEPTH && v.get("properties").is_some() {
        return Shape::Group(object_fields(v, defs, depth + 1, scope));
    }
    if let (Some(items), true) = (v.get("items"), depth < MAX_DEPTH) {
        return match shape(items, defs, depth + 1, scope) {
            Shape::Group(fields) => Shape::Rows(fields),
            other => Shape::List(Box::new(other)),
        };
    }
    Shape::Text {
        date: v.get("pattern").and_then(Value::as_str) == Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        long: false,
    }
}

/// The fields of the object `v`, whose hints are keyed under `scope`.
fn object_fields(v: &Value, defs: &Map<String, Value>, depth: usize, scope: &str) -> Vec<Field> {
    let required: Vec<&str> = v
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = v.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, p)| {
            let mut shape = shape(p, defs, depth, name);
            if let Shape::Text { long, .. } = &mut shape {
                *long = LONG_TEXT.contains(&name.as_str());
            }
            Field {
                name: name.clone(),
                hint: text(p, "description"),
                hint_key: format!("record-hint-{scope}-{name}"),
                required: required.contains(&name.as_str()),
                shape,
            }
        })
        .collect()
}

/// A field's label in the officer's language (`record-field-NAME` in the catalogue), else its
/// JSON name in words.
pub fn field_label(l: Lang, name: &str) -> String {
    l.t_or(&format!("record-field-{name}"), &label(name))
}

/// What choice `value` of field `field` means, in the officer's language
/// (`record-choice-FIELD-VALUE`), else as the schema says it in English.
fn choice_label(l: Lang, field: &str, value: &str, meaning: &str) -> String {
    l.t_or(&format!("record-choice-{field}-{value}"), meaning)
}

/// A field's JSON name in words (`hs_code` → "HS code").
pub fn label(name: &str) -> String {
    let words: Vec<&str> = name
        .split('_')
        .map(|w| match w {
            "hs" => "HS",
            "imo" => "IMO",
            "locode" => "UN/LOCODE",
            "interpol" => "INTERPOL",
            other => other,
        })
        .collect();
    let joined = words.join(" ");
    let mut chars = joined.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => joined,
    }
}
