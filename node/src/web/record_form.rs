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
use liaison_protocol::FieldError;
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::i18n::Lang;

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

// ----- from the submitted form to the record's JSON ------------------------------------------

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

// ----- the form ----------------------------------------------------------------------------

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

// ----- a record, read --------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(fields: &'a [Field], name: &str) -> &'a Field {
        fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    fn submitted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// Every field and every choice of every record kind has its text in the catalogue (the
    /// catalogue test then holds every language to the English keys).
    #[test]
    fn every_field_and_choice_of_every_kind_is_translated() {
        fn walk(fields: &[Field], missing: &mut Vec<String>) {
            for f in fields {
                let key = format!("record-field-{}", f.name);
                if !Lang::En.has(&key) {
                    missing.push(key);
                }
                // The English hint is the schema's description, word for word: the catalogue
                // cannot drift from the schema without this test saying so.
                if !f.hint.is_empty() {
                    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !Lang::En.has(&f.hint_key) {
                        missing.push(f.hint_key.clone());
                    } else {
                        assert_eq!(
                            words(&Lang::En.t(&f.hint_key)),
                            words(&f.hint),
                            "{} says otherwise than the schema",
                            f.hint_key
                        );
                    }
                }
                let mut shape = &f.shape;
                if let Shape::List(inner) = shape {
                    shape = inner;
                }
                match shape {
                    Shape::Choice(options) => {
                        for (value, _) in options {
                            let key = format!("record-choice-{}-{value}", f.name);
                            if !Lang::En.has(&key) {
                                missing.push(key);
                            }
                        }
                    }
                    Shape::Group(inner) | Shape::Rows(inner) => walk(inner, missing),
                    _ => {}
                }
            }
        }
        let mut missing = Vec::new();
        for kind in RecordKind::ALL {
            walk(&RecordForm::of(kind).fields, &mut missing);
        }
        assert!(missing.is_empty(), "not in the catalogue: {missing:?}");
        assert_eq!(
            choice_label(Lang::Es, "unit", "kg", "Kilograms"),
            "Kilogramos"
        );
        assert_eq!(
            choice_label(Lang::Ar, "commodities", "drugs", "Drugs"),
            "المخدرات"
        );
        let seizure = RecordForm::of(RecordKind::Seizure);
        let hs = find(&seizure.fields, "items");
        let Shape::Rows(item) = &hs.shape else {
            panic!("items are rows")
        };
        let hs = find(item, "hs_code");
        assert_eq!(hs.hint_key, "record-hint-SeizedItem-hs_code");
        assert!(Lang::Fr.t(&hs.hint_key).starts_with("Son code SH"));
    }

    #[test]
    fn every_kind_has_a_form_with_its_schema_shapes() {
        for kind in RecordKind::ALL {
            assert!(!RecordForm::of(kind).fields.is_empty(), "{kind}");
        }
        let seizure = RecordForm::of(RecordKind::Seizure);
        assert!(matches!(
            find(&seizure.fields, "date").shape,
            Shape::Text { date: true, .. }
        ));
        assert!(find(&seizure.fields, "date").required);
        let Shape::Rows(items) = &find(&seizure.fields, "items").shape else {
            panic!("items are rows")
        };
        assert!(matches!(&find(items, "commodity").shape, Shape::Choice(o) if o.len() == 13));
        assert!(matches!(
            &find(&seizure.fields, "place").shape,
            Shape::Group(_)
        ));
        let alert = RecordForm::of(RecordKind::Alert);
        assert!(
            matches!(&find(&alert.fields, "commodities").shape, Shape::List(inner) if matches!(**inner, Shape::Choice(_)))
        );
        assert_eq!(label("hs_code"), "HS code");
        assert_eq!(
            path_label(Lang::En, "/items/0/hs_code"),
            "Items 1 › HS code"
        );
        assert_eq!(
            path_label(Lang::Fr, "/items/0/hs_code"),
            "Articles 1 › Code SH"
        );
    }

    #[test]
    fn a_form_becomes_the_records_json_and_names_what_is_missing() {
        let l = Lang::En;
        let form = RecordForm::of(RecordKind::Seizure);
        let (value, errors) = build(
            l,
            &form,
            &submitted(&[
                ("/reporting_country", " NL "),
                ("/place/location_type", ""),
                ("/items/0/commodity", ""),
                ("/items/0/description", ""),
                ("/items/3/commodity", "cultural_heritage"),
                ("/items/3/value/amount", "1200"),
                ("/identifiers/containers", "MSCU1234565\n\n"),
                ("/nominal/persons/0/name", ""),
            ]),
        );
        assert_eq!(value["reporting_country"], "NL");
        // The empty first row is dropped; the fourth becomes the first.
        assert_eq!(value["items"][0]["commodity"], "cultural_heritage");
        assert_eq!(value["identifiers"]["containers"][0], "MSCU1234565");
        assert!(
            value.get("nominal").is_none(),
            "an empty optional part is left out"
        );
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/date"), "{pointers:?}");
        assert!(pointers.contains(&"/place"), "{pointers:?}");
        assert!(pointers.contains(&"/items/0/description"), "{pointers:?}");
        assert!(
            pointers.contains(&"/items/0/value/currency"),
            "{pointers:?}"
        );
        assert!(
            !pointers.iter().any(|p| p.starts_with("/nominal")),
            "{pointers:?}"
        );
    }

    #[test]
    fn a_filled_in_form_reads_as_a_valid_record() {
        let l = Lang::En;
        let form = RecordForm::of(RecordKind::Alert);
        let (value, errors) = build(
            l,
            &form,
            &submitted(&[
                ("/title", "Forged export licences, Beirut"),
                ("/commodities", "cultural_heritage"),
                ("/commodities", "currency"),
                (
                    "/risk_indicators",
                    "licence stamped in Beirut\nroute via Rotterdam",
                ),
                ("/valid_from", "2026-01-20"),
                ("/requested_action", "control_and_report"),
            ]),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let tagged = serde_json::json!({"kind": "alert", "record": value});
        let record = record::Record::from_tagged_value(&tagged).expect("a valid alert");
        assert_eq!(record.kind(), RecordKind::Alert);
        let shown = show(Lang::En, &form, &value).into_string();
        assert!(shown.contains("Risk indicators"), "{shown}");
        assert!(shown.contains("route via Rotterdam"), "{shown}");
        let shown = show(Lang::Fr, &form, &value).into_string();
        assert!(shown.contains("Indicateurs de risque"), "{shown}");
        assert!(
            shown.contains("Contrôler et rendre compte du résultat"),
            "{shown}"
        );
    }
}
