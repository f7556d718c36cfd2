//! A record shown as a readable form.

use maud::{html, Markup};
use serde_json::Value;

use super::*;

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

/// A record in its schema's shape: each field that has a value under its label, vocabulary
/// values by what they mean, nested parts as nested lists.
pub fn show(l: Lang, form: &RecordForm, value: &Value) -> Markup {
    html! { (object_view(l, &form.fields, value)) }
}

fn object_view(l: Lang, fields: &[Field], value: &Value) -> Markup {
    html! {
        dl class="record" {
            @for f in fields {
                @if let Some(v) = value.get(&f.name).filter(|v| !is_empty(v)) {
                    dt { (field_label(l, &f.name)) }
                    dd data-field=(f.name) { (value_view(l, &f.name, &f.shape, v)) }
                }
            }
        }
    }
}

fn choice_text(l: Lang, field: &str, options: &[(String, String)], v: &Value) -> String {
    let raw = v.as_str().unwrap_or_default();
    options.iter().find(|(value, _)| value == raw).map_or_else(
        || raw.to_owned(),
        |(value, meaning)| choice_label(l, field, value, meaning),
    )
}

fn value_view(l: Lang, field: &str, shape: &Shape, v: &Value) -> Markup {
    match shape {
        Shape::Text { .. } => html! { span class="body" { (v.as_str().unwrap_or_default()) } },
        Shape::Choice(options) => html! { (choice_text(l, field, options, v)) },
        Shape::List(inner) => {
            let items: Vec<String> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| match inner.as_ref() {
                            Shape::Choice(options) => choice_text(l, field, options, x),
                            _ => x.as_str().unwrap_or_default().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            html! { ul class="plain" { @for i in &items { li { (i) } } } }
        }
        Shape::Group(fields) => object_view(l, fields, v),
        Shape::Rows(fields) => html! {
            ol class="rows" {
                @for row in v.as_array().into_iter().flatten() { li { (object_view(l, fields, row)) } }
            }
        },
    }
}
