//! Alerts (warnings), requests for assistance, the feedback that answers them, and notes.

use serde::{Deserialize, Serialize};

use super::check::{Check, Checker};
use super::codes::{Date, MessageRef};
use super::seizure::{Commodity, Identifiers, Route};
use super::{LIST_MAX, NAME_MAX, TEXT_MAX};

/// An alert or warning (schema version 1): what to look for, until when, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// A one-line title.
    pub title: String,
    /// The commodities concerned.
    #[serde(default)]
    pub commodities: Vec<Commodity>,
    /// Risk indicators: what marks a suspect consignment (at least one).
    pub risk_indicators: Vec<String>,
    /// The modus operandi.
    #[serde(default)]
    pub modus_operandi: Option<String>,
    /// What to target.
    #[serde(default)]
    pub targets: Targets,
    /// First day the alert applies, YYYY-MM-DD.
    pub valid_from: Date,
    /// Last day it applies, YYYY-MM-DD; open-ended if absent.
    #[serde(default)]
    pub valid_until: Option<Date>,
    /// What the recipients are asked to do.
    pub requested_action: RequestedAction,
    /// The requested action in words.
    #[serde(default)]
    pub action_details: Option<String>,
}

impl Check for Alert {
    fn check(&self, c: &mut Checker) {
        c.text("title", &self.title, NAME_MAX);
        c.list("commodities", &self.commodities, 0, 13, |_, _| {});
        c.texts(
            "risk_indicators",
            &self.risk_indicators,
            1,
            LIST_MAX,
            TEXT_MAX,
        );
        c.optional_text("modus_operandi", &self.modus_operandi, TEXT_MAX);
        c.field("targets", &self.targets);
        c.field("valid_from", &self.valid_from);
        c.optional("valid_until", &self.valid_until);
        if let Some(until) = &self.valid_until {
            // Both in YYYY-MM-DD, so the text order is the date order.
            if super::check::date(until.as_str()).is_ok()
                && super::check::date(self.valid_from.as_str()).is_ok()
                && until.as_str() < self.valid_from.as_str()
            {
                c.at("valid_until", |c| c.fail("must not be before valid_from"));
            }
        }
        c.optional_text("action_details", &self.action_details, TEXT_MAX);
    }
}

/// What an alert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedAction {
    /// Watch and report; do not stop.
    Monitor,
    /// Control (examine) matching consignments.
    Control,
    /// Control and report the result back as feedback.
    ControlAndReport,
    /// Detain matching consignments.
    Detain,
    /// For information only.
    Information,
}

/// What an alert targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Containers, ships, flights and transport documents.
    #[serde(default)]
    pub identifiers: Identifiers,
    /// Companies (names as they appear on documents).
    #[serde(default)]
    pub companies: Vec<String>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl Check for Targets {
    fn check(&self, c: &mut Checker) {
        c.field("identifiers", &self.identifiers);
        c.texts("companies", &self.companies, 0, LIST_MAX, NAME_MAX);
        c.items("routes", &self.routes, 0, LIST_MAX);
    }
}

/// A request for assistance (schema version 1): what is asked, of whom, by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistanceRequest {
    /// A one-line subject.
    pub subject: String,
    /// What is asked.
    pub request: String,
    /// Of whom: administrations, units or officers (at least one).
    pub addressees: Vec<String>,
    /// The answer is needed by this day, YYYY-MM-DD.
    #[serde(default)]
    pub respond_by: Option<Date>,
    /// How urgent it is.
    pub urgency: Urgency,
}

impl Check for AssistanceRequest {
    fn check(&self, c: &mut Checker) {
        c.text("subject", &self.subject, NAME_MAX);
        c.text("request", &self.request, TEXT_MAX);
        c.texts("addressees", &self.addressees, 1, LIST_MAX, NAME_MAX);
        c.optional("respond_by", &self.respond_by);
    }
}

/// How urgent a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// In the normal course.
    Routine,
    /// Within days.
    Urgent,
    /// At once: goods or persons are moving now.
    Immediate,
}

/// Feedback (schema version 1): the outcome of an alert or request it replies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// The outcome.
    pub outcome: Outcome,
    /// The seizure report (a message id of the same group) when the outcome is a seizure.
    #[serde(default)]
    pub seizure_report: Option<MessageRef>,
    /// Anything else to say.
    #[serde(default)]
    pub comment: Option<String>,
}

impl Check for Feedback {
    fn check(&self, c: &mut Checker) {
        c.optional("seizure_report", &self.seizure_report);
        if self.seizure_report.is_some() && self.outcome != Outcome::SeizureMade {
            c.at("seizure_report", |c| {
                c.fail("only a feedback with the outcome seizure_made links a seizure report")
            });
        }
        c.optional_text("comment", &self.comment, TEXT_MAX);
    }
}

/// The outcome of an alert or request.
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
pub enum Outcome {
    /// A seizure was made.
    SeizureMade,
    /// Checked: nothing found.
    CheckedNothingFound,
    /// Under investigation: no result yet.
    UnderInvestigation,
    /// Not actionable (out of scope, too late, not enough to act on).
    NotActionable,
}

impl Outcome {
    /// Its name in JSON (`seizure_made`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::SeizureMade => "seizure_made",
            Outcome::CheckedNothingFound => "checked_nothing_found",
            Outcome::UnderInvestigation => "under_investigation",
            Outcome::NotActionable => "not_actionable",
        }
    }

    /// Whether it closes what it answers (every outcome but `under_investigation`).
    pub fn is_final(self) -> bool {
        self != Outcome::UnderInvestigation
    }
}

/// A note (schema version 1): free text with a subject, the message of before records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// The subject line (at most 512 bytes).
    pub subject: String,
    /// The text.
    #[serde(default)]
    pub body: String,
}

impl Check for Note {
    fn check(&self, c: &mut Checker) {
        c.at("subject", |c| {
            c.text_here(&self.subject, 1, crate::message::MAX_SUBJECT_LEN);
            if self.subject.len() > crate::message::MAX_SUBJECT_LEN {
                c.fail(format!("at most {} bytes", crate::message::MAX_SUBJECT_LEN));
            }
        });
        c.at("body", |c| c.text_here(&self.body, 0, super::NOTE_MAX));
    }
}
