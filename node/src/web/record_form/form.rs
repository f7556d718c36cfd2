//! The form of a record kind: its inputs, each with its label, hint and errors, and the list
//! of errors above it.

use liaison_protocol::FieldError;
use maud::{html, Markup};
use serde_json::Value;

use super::*;

fn id_of(pointer: &str) -> String {
    format!("r{}", pointer.replace('/', "-"))
}

/// The form's fields, filled in from `value`, with `errors` (pointers into the record) next to
/// their fields; `more` names a list of objects that gets one more empty row.
pub fn fields(
    l: Lang,
    form: &RecordForm,
    value: &Value,
    errors: &[FieldError],
    more: Option<&str>,
) -> Markup {
    html! { (object_inputs(l, &form.fields, "", Some(value), errors, more)) }
}

fn errors_at<'a>(errors: &'a [FieldError], pointer: &str, deep: bool) -> Vec<&'a FieldError> {
    errors
        .iter()
        .filter(|e| {
            e.pointer == pointer
                || (deep
                    && e.pointer
                        .strip_prefix(pointer)
                        .is_some_and(|rest| rest.starts_with('/')))
        })
        .collect()
}

fn described(id: &str, has_error: bool, has_hint: bool) -> Option<String> {
    let mut ids = Vec::new();
    if has_error {
        ids.push(format!("{id}-error"));
    }
    if has_hint {
        ids.push(format!("{id}-hint"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn object_inputs(
    l: Lang,
    fields: &[Field],
    pointer: &str,
    value: Option<&Value>,
    errors: &[FieldError],
    more: Option<&str>,
) -> Markup {
    html! {
        @for f in fields {
            (field_input(l, f, &format!("{pointer}/{}", f.name), value.and_then(|v| v.get(&f.name)), errors, more))
        }
    }
}

fn error_list(id: &str, errors: &[&FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            p class="field-error" id=(format!("{id}-error")) {
                @for (i, e) in errors.iter().enumerate() {
                    @if i > 0 { br; }
                    (e.reason)
                }
            }
        }
    }
}

fn field_input(
    l: Lang,
    f: &Field,
    pointer: &str,
    value: Option<&Value>,
    errors: &[FieldError],
    more: Option<&str>,
) -> Markup {
    let id = id_of(pointer);
    let hint_id = format!("{id}-hint");
    let has_hint = !f.hint.is_empty();
    let hint_text = l.t_or(&f.hint_key, &f.hint);
    let required = f.required.then_some("true");
    let title = html! {
        (field_label(l, &f.name))
        @if f.required { " " span class="required" { (l.t("record-required-mark")) } }
    };
    let hint = html! { @if has_hint { p class="hint" id=(hint_id) { (hint_text) } } };
    match &f.shape {
        Shape::Text { date, long } => {
            let mine = errors_at(errors, pointer, false);
            let invalid = (!mine.is_empty()).then_some("true");
            let text = value.and_then(Value::as_str).unwrap_or_default();
            let describedby = described(&id, !mine.is_empty(), has_hint);
            html! {
                label for=(id) { (title) }
                @if *long {
                    textarea id=(id) name=(pointer) class="short" aria-required=[required]
                        aria-invalid=[invalid] aria-describedby=[describedby] { (text) }
                } @else {
                    input type=(if *date { "date" } else { "text" }) id=(id) name=(pointer) value=(text)
                        aria-required=[required] aria-invalid=[invalid] aria-describedby=[describedby];
                }
                (hint)
                (error_list(&id, &mine))
            }
        }
        Shape::Choice(options) => {
            let mine = errors_at(errors, pointer, false);
            let invalid = (!mine.is_empty()).then_some("true");
            let chosen = value.and_then(Value::as_str).unwrap_or_default();
            let describedby = described(&id, !mine.is_empty(), has_hint);
            html! {
                label for=(id) { (title) }
                select id=(id) name=(pointer) aria-required=[required] aria-invalid=[invalid]
                    aria-describedby=[describedby] {
                    option value="" { (l.t("record-choose")) }
                    @for (v, meaning) in options {
                        option value=(v) selected[chosen == v] { (choice_label(l, &f.name, v, meaning)) }
                    }
                }
                (hint)
                (error_list(&id, &mine))
            }
        }
        Shape::List(inner) => {
            let mine = errors_at(errors, pointer, true);
            let invalid = (!mine.is_empty()).then_some("true");
            let items: Vec<&str> = value
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match inner.as_ref() {
                Shape::Choice(options) => html! {
                    fieldset id=(id) aria-describedby=[described(&id, !mine.is_empty(), has_hint)] {
                        legend { (title) }
                        @for (v, meaning) in options {
                            label class="check" {
                                input type="checkbox" name=(pointer) value=(v) checked[items.contains(&v.as_str())];
                                (choice_label(l, &f.name, v, meaning))
                            }
                        }
                        (hint)
                        (error_list(&id, &mine))
                    }
                },
                _ => html! {
                    label for=(id) { (title) }
                    textarea id=(id) name=(pointer) class="short" aria-required=[required] aria-invalid=[invalid]
                        aria-describedby=[described(&id, !mine.is_empty(), true)] { (items.join("\n")) }
                    p class="hint" id=(hint_id) {
                        (l.t("record-one-per-line"))
                        @if has_hint { " " (hint_text) }
                    }
                    (error_list(&id, &mine))
                },
            }
        }
        Shape::Group(fields) => {
            let mine = errors_at(errors, pointer, false);
            html! {
                fieldset id=(id) aria-describedby=[described(&id, !mine.is_empty(), has_hint)] {
                    legend { (title) }
                    (hint)
                    (error_list(&id, &mine))
                    (object_inputs(l, fields, pointer, value, errors, more))
                }
            }
        }
        Shape::Rows(fields) => {
            let mine = errors_at(errors, pointer, false);
            let rows: Vec<Option<&Value>> = value
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Some).collect())
                .unwrap_or_default();
            let blanks = usize::from(rows.is_empty()) + usize::from(more == Some(pointer));
            let count = (rows.len() + blanks).min(MAX_ROWS);
            html! {
                fieldset id=(id) aria-describedby=[described(&id, !mine.is_empty(), has_hint)] {
                    legend { (title) }
                    (hint)
                    (error_list(&id, &mine))
                    @for i in 0..count {
                        fieldset class="row" {
                            legend { (field_label(l, &f.name)) " " (i + 1) }
                            (object_inputs(l, fields, &format!("{pointer}/{i}"), rows.get(i).copied().flatten(), errors, more))
                        }
                    }
                    button type="submit" class="secondary" name="more" value=(pointer) {
                        (l.t_args("record-add-row", &[("field", &field_label(l, &f.name))]))
                    }
                }
            }
        }
    }
}

/// The list of every error at the top of a refused form, each linking to its field (or to
/// the nearest field shown above it).
pub fn summary(l: Lang, errors: &[FieldError]) -> Markup {
    html! {
        ul {
            @for e in errors {
                li {
                    a href=(format!("#{}", id_of(&e.pointer))) {
                        @if e.pointer.is_empty() { (e.reason) } @else { (path_label(l, &e.pointer)) ": " (e.reason) }
                    }
                }
            }
        }
    }
}

/// A pointer in words: `/items/0/hs_code` → "Items 1 › HS code".
pub fn path_label(l: Lang, pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        match segment.parse::<usize>() {
            Ok(i) => out.push_str(&format!(" {}", i.saturating_add(1))),
            Err(_) => {
                if !out.is_empty() {
                    out.push_str(" › ");
                }
                out.push_str(&field_label(l, segment));
            }
        }
    }
    out
}
