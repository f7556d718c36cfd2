//! From the submitted form to the record's JSON (see [`build`]).

use liaison_protocol::FieldError;
use serde_json::{Map, Value};

use super::*;

fn first<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Row indexes submitted under `prefix` (`/items/3/...` gives 3), at most [`MAX_ROWS`].
fn rows_of(form: &[(String, String)], prefix: &str) -> Vec<usize> {
    let start = format!("{prefix}/");
    let mut rows: Vec<usize> = form
        .iter()
        .filter_map(|(n, _)| n.strip_prefix(&start))
        .filter_map(|rest| rest.split('/').next()?.parse().ok())
        .filter(|i| *i < MAX_ROWS)
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

fn value_of(
    l: Lang,
    shape: &Shape,
    name: &str,
    pointer: &str,
    form: &[(String, String)],
) -> (Option<Value>, Vec<FieldError>) {
    match shape {
        Shape::Text { .. } | Shape::Choice(_) => (
            first(form, name).map(|v| Value::String(v.to_owned())),
            Vec::new(),
        ),
        Shape::List(inner) => {
            let values: Vec<Value> = match inner.as_ref() {
                Shape::Choice(_) => form
                    .iter()
                    .filter(|(n, v)| n == name && !v.trim().is_empty())
                    .map(|(_, v)| Value::String(v.trim().to_owned()))
                    .collect(),
                _ => first(form, name)
                    .unwrap_or_default()
                    .lines()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_owned()))
                    .collect(),
            };
            (
                (!values.is_empty()).then_some(Value::Array(values)),
                Vec::new(),
            )
        }
        Shape::Group(fields) => {
            let (map, errors) = object_of(l, fields, name, pointer, form);
            if map.is_empty() {
                (None, Vec::new())
            } else {
                (Some(Value::Object(map)), errors)
            }
        }
        Shape::Rows(fields) => {
            let mut rows = Vec::new();
            let mut errors = Vec::new();
            for i in rows_of(form, name) {
                let at = format!("{pointer}/{}", rows.len());
                let (map, row_errors) = object_of(l, fields, &format!("{name}/{i}"), &at, form);
                if !map.is_empty() {
                    rows.push(Value::Object(map));
                    errors.extend(row_errors);
                }
            }
            ((!rows.is_empty()).then_some(Value::Array(rows)), errors)
        }
    }
}

fn object_of(
    l: Lang,
    fields: &[Field],
    name: &str,
    pointer: &str,
    form: &[(String, String)],
) -> (Map<String, Value>, Vec<FieldError>) {
    let mut map = Map::new();
    let mut errors = Vec::new();
    for f in fields {
        let at = format!("{pointer}/{}", f.name);
        let (value, inner) = value_of(l, &f.shape, &format!("{name}/{}", f.name), &at, form);
        match value {
            Some(v) => {
                map.insert(f.name.clone(), v);
                errors.extend(inner);
            }
            None if f.required => errors.push(FieldError::new(at, l.t("record-required"))),
            None => {}
        }
    }
    (map, errors)
}

/// The record a submitted form describes, and the required fields it leaves empty.
pub fn build(
    l: Lang,
    form: &RecordForm,
    submitted: &[(String, String)],
) -> (Value, Vec<FieldError>) {
    let (map, errors) = object_of(l, &form.fields, "", "", submitted);
    (Value::Object(map), errors)
}
