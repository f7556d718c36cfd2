//! How the node shows structured records (`liaison_protocol::record`): what a message view
//! carries for each payload, the nominal section withheld from exports, and the per-kind CSV
//! form of an export.
//!
//! The actor's record queries (threads, statistics, the reply-to check) are in
//! `node/records.rs`, beside the actor they read.

use liaison_protocol::record::{self, Readable, Record};
use liaison_protocol::Payload;

use crate::views::MessageView;

/// What a message view shows of a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// The subject line: a note's subject, a record's summary, or what is known of a record
    /// this node cannot read.
    pub subject: String,
    /// The text: a note's body, a record's JSON pretty-printed.
    pub body: String,
    /// The kind (`note`, `seizure`, ...; `unknown` for a kind code this node does not know).
    pub kind: String,
    /// The record in its JSON Schema's shape (not for notes).
    pub record: Option<serde_json::Value>,
    /// For a record this node cannot read: why, and that it is kept.
    pub unreadable: Option<String>,
}

impl Shown {
    /// What to show of `payload`.
    pub fn of(payload: &Payload) -> Shown {
        match record::read(payload) {
            Ok(Readable::Known(Record::Note(note))) => Shown {
                subject: note.subject,
                body: note.body,
                kind: "note".into(),
                record: None,
                unreadable: None,
            },
            Ok(Readable::Known(r)) => {
                let value = r.to_json_value();
                Shown {
                    subject: r.summary(),
                    body: serde_json::to_string_pretty(&value).unwrap_or_default(),
                    kind: r.kind().as_str().into(),
                    record: Some(value),
                    unreadable: None,
                }
            }
            Ok(Readable::Newer(newer)) => Shown {
                subject: format!("[{}]", newer.kind.map_or("record", |k| k.title())),
                body: String::new(),
                kind: newer.kind.map_or("unknown", |k| k.as_str()).into(),
                record: None,
                unreadable: Some(newer.to_string()),
            },
            // Opened messages were checked on arrival; this is reached only if the rules of a
            // schema version got stricter, which they must not.
            Err(errors) => Shown {
                subject: "[a record this node finds invalid]".into(),
                body: String::new(),
                kind: "unknown".into(),
                record: None,
                unreadable: Some(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            },
        }
    }
}

/// Removes the nominal section (persons, companies) from a message view's record and body,
/// as exports do unless asked to keep it. Returns whether there was one.
pub fn withhold_nominal(view: &mut MessageView) -> bool {
    let Some(record) = view.record.as_mut() else {
        return false;
    };
    let had = record.get("nominal").is_some_and(|n| !n.is_null());
    if had {
        record["nominal"] = serde_json::Value::Null;
        view.body = Some(serde_json::to_string_pretty(record).unwrap_or_default());
    }
    had
}

/// The CSV form of the records of one kind among `messages`: one row per message, with the
/// message's id, time, author and handling, then one column per field of the record, named by
/// its path (`place.location_type`, `items.0.hs_code`); lists of plain values are joined with
/// `; `. Columns appear in the order the fields are first met. Messages of other kinds are
/// left out. (Built a message at a time by [`CsvColumns`] and [`csv_line`], as the API
/// streams it.)
pub fn csv(kind: &str, messages: &[MessageView]) -> Result<String, csv::Error> {
    let mut columns = CsvColumns::default();
    for m in messages {
        columns.add(kind, m);
    }
    let header = columns.header();
    let mut out = csv_line(&header)?;
    for cells in messages.iter().filter_map(|m| csv_cells(kind, m)) {
        out.extend(csv_line(&row_of(&header, &cells))?);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The columns of a CSV of one kind, learnt a message at a time (see [`csv()`]).
#[derive(Debug, Default)]
pub struct CsvColumns {
    fields: Vec<String>,
}

/// The columns every CSV row starts with.
const CSV_FIXED: [&str; 6] = [
    "id",
    "created_at",
    "author",
    "officer",
    "handling",
    "reply_to",
];

impl CsvColumns {
    /// Adds the fields of `m` if it is of `kind`.
    pub fn add(&mut self, kind: &str, m: &MessageView) {
        let Some(cells) = csv_cells(kind, m) else {
            return;
        };
        for (name, _) in &cells[CSV_FIXED.len()..] {
            if !self.fields.contains(name) {
                self.fields.push(name.clone());
            }
        }
    }

    /// The header: the fixed columns, then the fields in the order they were first met.
    pub fn header(&self) -> Vec<String> {
        CSV_FIXED
            .iter()
            .map(|c| (*c).to_owned())
            .chain(self.fields.iter().cloned())
            .collect()
    }
}

/// The cells of `m` named by column (the fixed ones first), or `None` if it is not of `kind`.
pub fn csv_cells(kind: &str, m: &MessageView) -> Option<Vec<(String, String)>> {
    if m.kind != kind {
        return None;
    }
    let mut cells: Vec<(String, String)> = CSV_FIXED
        .iter()
        .map(|c| (*c).to_owned())
        .zip([
            m.id.clone(),
            m.created_at.clone(),
            m.author_name.clone(),
            m.officer.clone(),
            m.handling.clone(),
            m.reply_to.clone().unwrap_or_default(),
        ])
        .collect();
    if let Some(record) = &m.record {
        flatten("", record, &mut cells);
    } else if kind == "note" {
        cells.push(("subject".to_owned(), m.subject.clone()));
        cells.push(("body".to_owned(), m.body.clone().unwrap_or_default()));
    }
    Some(cells)
}

/// The values of `cells` in the order of `header` (empty where a cell is missing).
pub fn row_of(header: &[String], cells: &[(String, String)]) -> Vec<String> {
    header
        .iter()
        .map(|h| {
            cells
                .iter()
                .find(|(name, _)| name == h)
                .map_or_else(String::new, |(_, v)| v.clone())
        })
        .collect()
}

/// One CSV record, encoded with its line end.
pub fn csv_line(values: &[String]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(values)?;
    w.into_inner().map_err(|e| e.into_error().into())
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let name = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&name(k), v, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let joined: Vec<String> = items.iter().map(scalar).collect();
            out.push((prefix.to_owned(), joined.join("; ")));
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&name(&i.to_string()), v, out);
            }
        }
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liaison_protocol::RecordKind;

    fn view(r: &Record) -> MessageView {
        let shown = Shown::of(&r.to_payload(vec![]).expect("valid"));
        MessageView {
            id: "m1".into(),
            group_id: "g".into(),
            group_name: "g".into(),
            author_id: "a".into(),
            author_name: "customs-fr".into(),
            officer: "j.doe".into(),
            created_at: "2026-01-20T10:00:00.000Z".into(),
            created_at_ms: 0,
            subject: shown.subject,
            handling: "amber".into(),
            expires_at: None,
            reply_to: None,
            recipients: vec![],
            epoch: 1,
            seq: 1,
            author_removed_in_epoch: None,
            body: Some(shown.body),
            kind: shown.kind,
            record: shown.record,
            unreadable: shown.unreadable,
            attachments: Vec::new(),
            nominal_withheld: false,
        }
    }

    #[test]
    fn nominal_section_is_withheld_from_record_and_body() {
        let mut v = view(&Record::example(RecordKind::Seizure));
        assert!(v.body.as_deref().unwrap_or("").contains("Petrenko"));
        assert!(withhold_nominal(&mut v));
        assert!(!v.body.as_deref().unwrap_or("").contains("Petrenko"));
        assert!(!v
            .record
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
            .contains("Petrenko"));
        assert!(!withhold_nominal(&mut v));
    }

    #[test]
    fn csv_has_a_column_per_field() {
        let v = view(&Record::example(RecordKind::Seizure));
        let text = csv("seizure", &[v]).expect("csv");
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        assert!(header
            .starts_with("id,created_at,author,officer,handling,reply_to,reporting_country,date,"));
        assert!(header.contains("items.0.hs_code"));
        assert!(header.contains("route.transit"));
        let row = lines.next().expect("a row");
        assert!(row.contains("970600"));
        assert!(lines.next().is_none());
        assert_eq!(csv("alert", &[]).expect("csv").lines().count(), 1);
    }
}
