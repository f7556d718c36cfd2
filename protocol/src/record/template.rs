//! Commented templates: a kind's example as JSON, each field preceded by `//` lines with its
//! description from the JSON Schema, whether it is required, and the values a vocabulary
//! allows. [`strip_comments`] turns a filled-in template back into JSON.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{json_schema, Record, RecordKind};

/// The commented example of `kind`, ready to fill in. Lines whose first non-blank characters
/// are `//` are comments; [`strip_comments`] removes them.
pub fn template(kind: RecordKind) -> String {
    let schema = json_schema(kind);
    let value = Record::example(kind).to_json_value();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Liaison {} (kind \"{}\", schema version {}): a filled-in example.",
        kind.title(),
        kind.as_str(),
        kind.schema()
    );
    out.push_str(
        "// Replace the values; optional fields may be null or left out. Lines starting with //\n\
         // are comments. Send it with: liaison send GROUP --record FILE\n",
    );
    let t = Templater { root: &schema };
    let _ = writeln!(
        out,
        "{{\n  // The kind of record. One of: {}.\n  \"kind\": \"{}\",\n  // The {} itself.\n  \"record\": ",
        RecordKind::ALL.map(RecordKind::as_str).join(", "),
        kind.as_str(),
        kind.title()
    );
    out.pop();
    t.value(&mut out, &value, &schema, 1);
    out.push_str("\n}\n");
    out
}

/// Removes the comment lines of a template (lines whose first non-blank characters are
/// `//`), leaving plain JSON. Text inside JSON strings is never touched, since a JSON string
/// cannot span lines.
pub fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Templater<'a> {
    root: &'a Value,
}

impl Templater<'_> {
    /// The schema `s` stands for: `$ref`s followed, a nullable alternative reduced to the
    /// non-null one.
    fn resolve<'s>(&'s self, s: &'s Value) -> &'s Value {
        let mut s = s;
        for _ in 0..8 {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or("");
                match self.root.get("$defs").and_then(|d| d.get(name)) {
                    Some(def) => {
                        s = def;
                        continue;
                    }
                    None => return s,
                }
            }
            let alternatives = s
                .get("anyOf")
                .or_else(|| s.get("oneOf"))
                .and_then(Value::as_array);
            if let Some(alts) = alternatives {
                let non_null: Vec<&Value> = alts
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                    .collect();
                if non_null.len() == 1 && non_null[0].get("const").is_none() {
                    s = non_null[0];
                    continue;
                }
            }
            return s;
        }
        s
    }

    fn description(&self, prop: &Value) -> Option<String> {
        prop.get("description")
            .or_else(|| self.resolve(prop).get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The values a vocabulary allows, if `s` is one.
    fn vocabulary(&self, s: &Value) -> Option<Vec<String>> {
        let s = self.resolve(s);
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            return Some(
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            );
        }
        let alts = s.get("oneOf").and_then(Value::as_array)?;
        let consts: Vec<String> = alts
            .iter()
            .filter_map(|a| a.get("const").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        (!consts.is_empty()).then_some(consts)
    }

    fn value(&self, out: &mut String, v: &Value, schema: &Value, indent: usize) {
        let schema = self.resolve(schema);
        match v {
            Value::Object(map) => self.object(out, map, schema, indent),
            Value::Array(items) if !items.is_empty() => {
                let item_schema = schema.get("items").unwrap_or(&Value::Null);
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(out, indent + 1);
                    self.value(out, item, item_schema, indent + 1);
                    if i + 1 < items.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                pad(out, indent);
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }

    fn object(&self, out: &mut String, map: &Map<String, Value>, schema: &Value, indent: usize) {
        let props = schema.get("properties");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("{\n");
        let n = map.len();
        for (i, (key, value)) in map.iter().enumerate() {
            let prop = props.and_then(|p| p.get(key)).unwrap_or(&Value::Null);
            let mut note = self.description(prop).unwrap_or_default();
            if !required.contains(&key.as_str()) {
                note.push_str(" (optional)");
            }
            if let Some(values) = self.vocabulary(prop).or_else(|| {
                self.resolve(prop)
                    .get("items")
                    .and_then(|items| self.vocabulary(items))
            }) {
                let _ = write!(note, " One of: {}.", values.join(", "));
            }
            for line in wrap(note.trim(), 96 - 2 * (indent + 1)) {
                pad(out, indent + 1);
                let _ = writeln!(out, "// {line}");
            }
            pad(out, indent + 1);
            let _ = write!(out, "{}: ", Value::String(key.clone()));
            self.value(out, value, prop, indent + 1);
            if i + 1 < n {
                out.push(',');
            }
            out.push('\n');
        }
        pad(out, indent);
        out.push('}');
    }
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str("  ");
    }
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width.max(20) {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_reads_back_as_its_example() {
        for kind in RecordKind::ALL {
            let text = template(kind);
            assert!(text.contains("// "), "{kind}: no comments");
            let value: Value = serde_json::from_str(&strip_comments(&text))
                .unwrap_or_else(|e| panic!("{kind}: {e}\n{text}"));
            let record = Record::from_tagged_value(&value)
                .unwrap_or_else(|e| panic!("{kind}: {e:?}\n{text}"));
            assert_eq!(record, Record::example(kind));
        }
    }

    #[test]
    fn templates_list_vocabularies_and_optional_fields() {
        let text = template(RecordKind::Seizure);
        assert!(
            text.contains("One of: airport, seaport, land_border"),
            "{text}"
        );
        assert!(text.contains("(optional)"));
        assert!(text.contains("NOMINAL DATA"));
    }
}
