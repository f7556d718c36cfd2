//! Structured records: the kinds of intelligence officers exchange (seizure reports, cultural
//! objects, alerts, requests for assistance, feedback, notes), each with a versioned schema
//! defined once here, published as JSON Schema, and checked field by field.
//!
//! ```text
//!  JSON (API, CLI, web) ──Record::from_json──▶ Record ──validate──▶ to_payload ──▶ Payload::Record
//!        ▲                (serde errors as        │                  (bincode body,   (in the sealed
//!        │                 FieldErrors)           │                   schema number)   Content)
//!        └──── serde_json ◀── Readable::Known ◀── read(payload) ◀─────────────────────────┘
//!                             Readable::Newer  (a schema or kind this build does not know: kept)
//! ```
//!
//! # Wire form and versions
//!
//! A record travels inside the encrypted [`Content`](crate::message::Content) as
//! [`Payload::Record`]: a kind code ([`RecordKind::code`]), a schema version, the record's
//! bare bincode encoding as a byte string, and its attachment references. A note without
//! attachments travels as [`Payload::Text`], as every message did before records, so that
//! nodes which predate records still read it.
//!
//! Kind codes and schema versions are only ever added. A receiver that knows the kind and the
//! version decodes the body exactly and validates it; a failure rejects the message (the
//! author's node should never have sent it). A receiver that does not know the kind, or knows
//! an older version only, keeps the message and shows it as [`Readable::Newer`]: nodes of a
//! federation upgrade one by one, and the record becomes readable on the same node once it
//! runs a build that knows the version. The rules of a published version never get stricter,
//! because stored messages are checked again each time they are opened.
//!
//! # Validation
//!
//! [`Record::validate`] checks required fields, lengths, vocabularies (as Rust enums, so a
//! value outside one fails when the JSON is read), dates, and coded identifiers with their
//! standards: ISO 6346 container numbers and IMO numbers with their check digits, air waybill
//! numbers, HS codes, ISO 3166-1 countries and ISO 4217 currencies from maintained lists,
//! UN/LOCODEs. Every error names its field by a JSON pointer into the record's JSON form.

pub mod alert;
pub mod check;
pub mod codes;
pub mod cultural;
mod examples;
pub mod seizure;
mod template;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use self::alert::{Alert, AssistanceRequest, Feedback, Note, Outcome};
pub use self::check::FieldError;
pub use self::cultural::CulturalObject;
pub use self::seizure::SeizureReport;
pub use self::template::{strip_comments, template};

use self::check::{Check, Checker};
use crate::attachment::AttachmentRef;
use crate::codec::{self, MAX_CONTENT_LEN};
use crate::error::{ParseError, UsageError};
use crate::message::{Payload, RecordData};

/// Longest short text (names, titles, places), in characters.
pub const NAME_MAX: usize = 200;
/// Longest free text (descriptions, indicators, remarks), in characters.
pub const TEXT_MAX: usize = 4000;
/// Longest note body, in characters.
pub const NOTE_MAX: usize = 100_000;
/// Most entries of a list in a record.
pub const LIST_MAX: usize = 100;
/// Most attachments of one message.
pub const MAX_ATTACHMENTS: usize = 32;

/// The kinds of record. Codes are only ever appended.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Free text (code 0).
    Note,
    /// A seizure report (code 1).
    Seizure,
    /// A cultural object, Object ID (code 2).
    CulturalObject,
    /// An alert or warning (code 3).
    Alert,
    /// A request for assistance (code 4).
    Request,
    /// Feedback on an alert or request (code 5).
    Feedback,
}

impl RecordKind {
    /// Every kind, in code order.
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Note,
        RecordKind::Seizure,
        RecordKind::CulturalObject,
        RecordKind::Alert,
        RecordKind::Request,
        RecordKind::Feedback,
    ];

    /// Its code on the wire.
    pub fn code(self) -> u16 {
        match self {
            RecordKind::Note => 0,
            RecordKind::Seizure => 1,
            RecordKind::CulturalObject => 2,
            RecordKind::Alert => 3,
            RecordKind::Request => 4,
            RecordKind::Feedback => 5,
        }
    }

    /// The kind of a wire code, if this build knows it.
    pub fn from_code(code: u16) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The newest schema version of this kind that this build reads and writes.
    pub fn schema(self) -> u16 {
        1
    }

    /// Its name in JSON, the API and the CLI (`cultural_object`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Note => "note",
            RecordKind::Seizure => "seizure",
            RecordKind::CulturalObject => "cultural_object",
            RecordKind::Alert => "alert",
            RecordKind::Request => "request",
            RecordKind::Feedback => "feedback",
        }
    }

    /// What a person calls it.
    pub fn title(self) -> &'static str {
        match self {
            RecordKind::Note => "note",
            RecordKind::Seizure => "seizure report",
            RecordKind::CulturalObject => "cultural object",
            RecordKind::Alert => "alert",
            RecordKind::Request => "request for assistance",
            RecordKind::Feedback => "feedback",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase().replace('-', "_");
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .or(match s.as_str() {
                "seizure_report" => Some(RecordKind::Seizure),
                "cultural" | "object" => Some(RecordKind::CulturalObject),
                "warning" => Some(RecordKind::Alert),
                "request_for_assistance" | "rfa" => Some(RecordKind::Request),
                "text" => Some(RecordKind::Note),
                _ => None,
            })
            .ok_or(ParseError {
                what: "record kind",
                reason: "expected note, seizure, cultural_object, alert, request or feedback",
            })
    }
}

/// A record of a kind and schema this build knows. Its JSON form (serde) is the kind's
/// object under `record`, with the kind beside it: `{"kind": "seizure", "record": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    /// Free text.
    Note(Note),
    /// A seizure report.
    Seizure(SeizureReport),
    /// A cultural object.
    CulturalObject(CulturalObject),
    /// An alert or warning.
    Alert(Alert),
    /// A request for assistance.
    Request(AssistanceRequest),
    /// Feedback on an alert or request.
    Feedback(Feedback),
}

impl Record {
    /// Its kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Note(_) => RecordKind::Note,
            Record::Seizure(_) => RecordKind::Seizure,
            Record::CulturalObject(_) => RecordKind::CulturalObject,
            Record::Alert(_) => RecordKind::Alert,
            Record::Request(_) => RecordKind::Request,
            Record::Feedback(_) => RecordKind::Feedback,
        }
    }

    /// Checks every field; on failure, every problem found (at most
    /// [`check::MAX_ERRORS`] and a count of the rest), each at its JSON pointer.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut c = Checker::new();
        match self {
            Record::Note(r) => r.check(&mut c),
            Record::Seizure(r) => r.check(&mut c),
            Record::CulturalObject(r) => r.check(&mut c),
            Record::Alert(r) => r.check(&mut c),
            Record::Request(r) => r.check(&mut c),
            Record::Feedback(r) => r.check(&mut c),
        }
        c.finish()
    }

    /// Reads a record of `kind` from its JSON form (the kind's object, as in its JSON
    /// Schema) and validates it. Errors name their field by JSON pointer from the object's
    /// root: an unknown or missing field, a value of the wrong type or outside a vocabulary
    /// gives one error (JSON is read up to the first such problem), a well-formed record
    /// with invalid values gives all of them.
    pub fn from_json(kind: RecordKind, json: &str) -> Result<Record, Vec<FieldError>> {
        let mut de = serde_json::Deserializer::from_str(json);
        let record = Self::deserialize_kind(kind, &mut de)?;
        de.end()
            .map_err(|e| vec![FieldError::new("", json_reason(&e))])?;
        record.validate()?;
        Ok(record)
    }

    /// [`Record::from_json`] from an already parsed JSON value.
    pub fn from_value(
        kind: RecordKind,
        value: serde_json::Value,
    ) -> Result<Record, Vec<FieldError>> {
        let record = Self::deserialize_kind(kind, value)?;
        record.validate()?;
        Ok(record)
    }

    /// Reads the tagged JSON form `{"kind": "seizure", "record": {…}}` (what
    /// [`template`] prints and the API takes) and validates it; errors inside the record are
    /// at pointers under `/record`. Other members of the object (a post's `handling`,
    /// `reply_to`, ...) are left to the caller.
    pub fn from_tagged_value(value: &serde_json::Value) -> Result<Record, Vec<FieldError>> {
        let kind = match value.get("kind") {
            Some(serde_json::Value::String(k)) => k
                .parse::<RecordKind>()
                .map_err(|e| vec![FieldError::new("/kind", e.to_string())])?,
            Some(_) => return Err(vec![FieldError::new("/kind", "must be a string")]),
            None => {
                return Err(vec![FieldError::new(
                    "/kind",
                    "required: the kind of record",
                )])
            }
        };
        let record = value
            .get("record")
            .cloned()
            .ok_or_else(|| vec![FieldError::new("/record", "required: the record itself")])?;
        Record::from_value(kind, record).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| FieldError::new(format!("/record{}", e.pointer), e.reason))
                .collect()
        })
    }

    fn deserialize_kind<'de, D>(kind: RecordKind, de: D) -> Result<Record, Vec<FieldError>>
    where
        D: serde::Deserializer<'de>,
        D::Error: fmt::Display,
    {
        fn read<'de, T: Deserialize<'de>, D>(de: D) -> Result<T, Vec<FieldError>>
        where
            D: serde::Deserializer<'de>,
            D::Error: fmt::Display,
        {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let pointer = path_pointer(e.path());
                let reason = strip_location(&e.inner().to_string());
                vec![FieldError::new(pointer, reason)]
            })
        }
        Ok(match kind {
            RecordKind::Note => Record::Note(read(de)?),
            RecordKind::Seizure => Record::Seizure(read(de)?),
            RecordKind::CulturalObject => Record::CulturalObject(read(de)?),
            RecordKind::Alert => Record::Alert(read(de)?),
            RecordKind::Request => Record::Request(read(de)?),
            RecordKind::Feedback => Record::Feedback(read(de)?),
        })
    }

    /// The kind's object as JSON (the shape of its JSON Schema).
    pub fn to_json_value(&self) -> serde_json::Value {
        let value = match self {
            Record::Note(r) => serde_json::to_value(r),
            Record::Seizure(r) => serde_json::to_value(r),
            Record::CulturalObject(r) => serde_json::to_value(r),
            Record::Alert(r) => serde_json::to_value(r),
            Record::Request(r) => serde_json::to_value(r),
            Record::Feedback(r) => serde_json::to_value(r),
        };
        // Plain structs of strings, enums, options and lists always serialize.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The payload that carries this record and `attachments`, after validating it. A note
    /// without attachments becomes [`Payload::Text`].
    pub fn to_payload(&self, attachments: Vec<AttachmentRef>) -> Result<Payload, UsageError> {
        self.validate().map_err(UsageError::InvalidRecord)?;
        if let (Record::Note(note), true) = (self, attachments.is_empty()) {
            return Ok(Payload::Text {
                subject: note.subject.clone(),
                body: note.body.clone(),
            });
        }
        let body = match self {
            Record::Note(r) => codec::encode_bare(r),
            Record::Seizure(r) => codec::encode_bare(r),
            Record::CulturalObject(r) => codec::encode_bare(r),
            Record::Alert(r) => codec::encode_bare(r),
            Record::Request(r) => codec::encode_bare(r),
            Record::Feedback(r) => codec::encode_bare(r),
        }?;
        let kind = self.kind();
        Ok(Payload::Record(RecordData {
            kind: kind.code(),
            schema: kind.schema(),
            body,
            attachments,
        }))
    }

    /// Whether it carries a nominal section (persons, companies).
    pub fn has_nominal(&self) -> bool {
        matches!(
            self,
            Record::Seizure(SeizureReport {
                nominal: Some(_),
                ..
            })
        )
    }

    /// The record without its nominal section, as exports show it unless asked otherwise.
    pub fn without_nominal(&self) -> Record {
        match self {
            Record::Seizure(r) => Record::Seizure(SeizureReport {
                nominal: None,
                ..r.clone()
            }),
            other => other.clone(),
        }
    }

    /// A one-line summary for listings: the subject, title or first item.
    pub fn summary(&self) -> String {
        match self {
            Record::Note(n) => n.subject.clone(),
            Record::Seizure(s) => {
                let first = s.items.first().map_or("", |i| i.description.as_str());
                format!("Seizure {} {}: {first}", s.reporting_country, s.date)
            }
            Record::CulturalObject(o) => o.title.clone().unwrap_or_else(|| o.object_type.clone()),
            Record::Alert(a) => a.title.clone(),
            Record::Request(r) => r.subject.clone(),
            Record::Feedback(f) => format!("Feedback: {}", f.outcome.as_str()),
        }
    }

    /// A complete, valid example of `kind`: what `liaison record template` prints.
    pub fn example(kind: RecordKind) -> Record {
        examples::example(kind)
    }
}

/// A record's payload read by this build.
// Made once per message read and consumed at once; boxing the record would cost an allocation
// for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable {
    /// A kind and schema this build knows, decoded and valid.
    Known(Record),
    /// A kind or schema version newer than this build knows: kept as it came, shown as such.
    Newer(NewerRecord),
}

/// A record this build cannot read: what is known of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewerRecord {
    /// The kind, if this build knows the kind (but not the schema version).
    pub kind: Option<RecordKind>,
    /// The kind's wire code.
    pub kind_code: u16,
    /// The schema version it was written in.
    pub schema: u16,
}

impl fmt::Display for NewerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(kind) => write!(
                f,
                "a {} of schema version {}, newer than this node reads ({}): upgrade the node to read it",
                kind.title(),
                self.schema,
                kind.schema()
            ),
            None => write!(
                f,
                "a record of kind {} (schema version {}) that this node does not know: upgrade the node to read it",
                self.kind_code, self.schema
            ),
        }
    }
}

/// Reads the record a payload carries: a note for [`Payload::Text`], the decoded and
/// validated record of a known kind and schema, or [`Readable::Newer`]. Errors: the body does
/// not decode exactly, or the record is invalid (each error at its JSON pointer).
pub fn read(payload: &Payload) -> Result<Readable, Vec<FieldError>> {
    let data = match payload {
        Payload::Text { subject, body } => {
            // Notes from before records: only the limits that applied then.
            return Ok(Readable::Known(Record::Note(Note {
                subject: subject.clone(),
                body: body.clone(),
            })));
        }
        Payload::Record(data) => data,
    };
    let newer = NewerRecord {
        kind: RecordKind::from_code(data.kind),
        kind_code: data.kind,
        schema: data.schema,
    };
    let Some(kind) = newer.kind else {
        return Ok(Readable::Newer(newer));
    };
    if data.schema == 0 {
        return Err(vec![FieldError::new("", "schema version 0 does not exist")]);
    }
    if data.schema > kind.schema() {
        return Ok(Readable::Newer(newer));
    }
    let body = &data.body;
    fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Vec<FieldError>> {
        codec::decode_bare(body, MAX_CONTENT_LEN).map_err(|e| {
            vec![FieldError::new(
                "",
                format!("the record does not decode: {e}"),
            )]
        })
    }
    let record = match kind {
        RecordKind::Note => Record::Note(decode(body)?),
        RecordKind::Seizure => Record::Seizure(decode(body)?),
        RecordKind::CulturalObject => Record::CulturalObject(decode(body)?),
        RecordKind::Alert => Record::Alert(decode(body)?),
        RecordKind::Request => Record::Request(decode(body)?),
        RecordKind::Feedback => Record::Feedback(decode(body)?),
    };
    record.validate()?;
    Ok(Readable::Known(record))
}

/// The JSON Schema (draft 2020-12) of the newest version of `kind`, generated from the Rust
/// types. The same documents are kept in the repository under `docs/schemas/`.
pub fn json_schema(kind: RecordKind) -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = match kind {
        RecordKind::Note => generator.into_root_schema_for::<Note>(),
        RecordKind::Seizure => generator.into_root_schema_for::<SeizureReport>(),
        RecordKind::CulturalObject => generator.into_root_schema_for::<CulturalObject>(),
        RecordKind::Alert => generator.into_root_schema_for::<Alert>(),
        RecordKind::Request => generator.into_root_schema_for::<AssistanceRequest>(),
        RecordKind::Feedback => generator.into_root_schema_for::<Feedback>(),
    };
    schema.insert(
        "$id".into(),
        format!("urn:liaison:schema:{}:{}", kind.as_str(), kind.schema()).into(),
    );
    schema.insert(
        "title".into(),
        format!("Liaison {}, schema version {}", kind.title(), kind.schema()).into(),
    );
    schema.insert("x-liaison-kind".into(), kind.as_str().into());
    schema.insert("x-liaison-kind-code".into(), kind.code().into());
    schema.insert("x-liaison-schema-version".into(), kind.schema().into());
    schema.to_value()
}

/// The file name under `docs/schemas/` of the newest schema of `kind`
/// (`seizure.v1.schema.json`).
pub fn schema_file_name(kind: RecordKind) -> String {
    format!("{}.v{}.schema.json", kind.as_str(), kind.schema())
}

fn path_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut c = Checker::new();
    let mut segments = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => segments.push(index.to_string()),
            Segment::Map { key } => segments.push(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    fn nest(c: &mut Checker, rest: &[String]) -> String {
        match rest.split_first() {
            None => c.pointer(),
            Some((first, rest)) => {
                let mut out = String::new();
                c.at(first, |c| out = nest(c, rest));
                out
            }
        }
    }
    nest(&mut c, &segments)
}

/// serde_json's message without its " at line L column C" (the pointer says where).
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    strip_location(&e.to_string())
}

/// Where an alert or a request stands, from the feedback that replies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseState {
    /// No feedback yet.
    Open,
    /// Feedback says it is being worked on (`under_investigation`), nothing final yet.
    Actioned,
    /// Closed by this outcome.
    Closed(Outcome),
}

impl CaseState {
    /// Its name in JSON (`open`, `actioned`, `closed`).
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Actioned => "actioned",
            CaseState::Closed(_) => "closed",
        }
    }
}

/// The state of an alert or request given its feedback as (creation time, outcome) pairs, in
/// any order: open without feedback; closed by `seizure_made` as soon as any feedback reports
/// a seizure (a seizure is the result, whoever else found nothing); otherwise the latest
/// feedback decides (ties: the later one given), `under_investigation` leaving it actioned and
/// any other outcome closing it.
pub fn case_state(feedback: impl IntoIterator<Item = (crate::Timestamp, Outcome)>) -> CaseState {
    let mut latest: Option<(crate::Timestamp, Outcome)> = None;
    for (at, outcome) in feedback {
        if outcome == Outcome::SeizureMade {
            return CaseState::Closed(Outcome::SeizureMade);
        }
        if latest.is_none_or(|(t, _)| at >= t) {
            latest = Some((at, outcome));
        }
    }
    match latest {
        None => CaseState::Open,
        Some((_, Outcome::UnderInvestigation)) => CaseState::Actioned,
        Some((_, outcome)) => CaseState::Closed(outcome),
    }
}
