//! The cultural object record, after the Object ID standard (the checklist INTERPOL's stolen
//! works of art database asks for), with the status of the object in a case, its country of
//! origin or discovery, reference numbers, provenance and export certificate.

use serde::{Deserialize, Serialize};

use super::check::{Check, Checker};
use super::codes::{Country, Date, Decimal};
use super::{LIST_MAX, NAME_MAX, TEXT_MAX};

/// A cultural object (schema version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CulturalObject {
    /// Object ID: type of object (icon, sculpture, manuscript, coin).
    pub object_type: String,
    /// Object ID: materials and techniques (tempera on wood, bronze, cast).
    #[serde(default)]
    pub materials: Option<String>,
    /// Object ID: measurements.
    #[serde(default)]
    pub measurements: Measurements,
    /// Object ID: inscriptions and markings (signatures, dedications, stamps, labels).
    #[serde(default)]
    pub inscriptions: Option<String>,
    /// Object ID: distinguishing features (damage, repairs, defects).
    #[serde(default)]
    pub distinguishing_features: Option<String>,
    /// Object ID: title, if it has one.
    #[serde(default)]
    pub title: Option<String>,
    /// Object ID: subject (what is pictured or represented).
    #[serde(default)]
    pub subject: Option<String>,
    /// Object ID: date or period (1890s, early 16th century, Ming dynasty).
    #[serde(default)]
    pub date_or_period: Option<String>,
    /// Object ID: maker (artist, workshop, culture).
    #[serde(default)]
    pub maker: Option<String>,
    /// Object ID: a short description.
    pub description: String,
    /// Its status in the case.
    pub status: ObjectStatus,
    /// Country of origin (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub country_of_origin: Option<Country>,
    /// Country where it was found or excavated (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub country_of_discovery: Option<Country>,
    /// Reference numbers.
    #[serde(default)]
    pub references: References,
    /// Provenance documents.
    #[serde(default)]
    pub provenance: Vec<ProvenanceDocument>,
    /// Reference of the export certificate (UNESCO-WCO model certificate), if one was shown.
    #[serde(default)]
    pub export_certificate: Option<String>,
}

impl Check for CulturalObject {
    fn check(&self, c: &mut Checker) {
        c.text("object_type", &self.object_type, NAME_MAX);
        c.optional_text("materials", &self.materials, NAME_MAX);
        c.field("measurements", &self.measurements);
        c.optional_text("inscriptions", &self.inscriptions, TEXT_MAX);
        c.optional_text(
            "distinguishing_features",
            &self.distinguishing_features,
            TEXT_MAX,
        );
        c.optional_text("title", &self.title, NAME_MAX);
        c.optional_text("subject", &self.subject, NAME_MAX);
        c.optional_text("date_or_period", &self.date_or_period, NAME_MAX);
        c.optional_text("maker", &self.maker, NAME_MAX);
        c.text("description", &self.description, TEXT_MAX);
        c.optional("country_of_origin", &self.country_of_origin);
        c.optional("country_of_discovery", &self.country_of_discovery);
        c.field("references", &self.references);
        c.items("provenance", &self.provenance, 0, LIST_MAX);
        c.optional_text("export_certificate", &self.export_certificate, 64);
    }
}

/// The status of a cultural object in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectStatus {
    /// Seized.
    Seized,
    /// Suspected of being illicit; not seized.
    Suspected,
    /// Reported stolen.
    ReportedStolen,
    /// Looted from a site.
    Looted,
    /// Returned to its owner or country.
    Returned,
}

/// Object ID measurements; each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    /// Height.
    #[serde(default)]
    pub height: Option<Length>,
    /// Width.
    #[serde(default)]
    pub width: Option<Length>,
    /// Depth.
    #[serde(default)]
    pub depth: Option<Length>,
    /// Diameter.
    #[serde(default)]
    pub diameter: Option<Length>,
    /// Weight.
    #[serde(default)]
    pub weight: Option<Weight>,
}

impl Check for Measurements {
    fn check(&self, c: &mut Checker) {
        c.optional("height", &self.height);
        c.optional("width", &self.width);
        c.optional("depth", &self.depth);
        c.optional("diameter", &self.diameter);
        c.optional("weight", &self.weight);
    }
}

/// A length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Length {
    /// The value, a plain decimal.
    pub value: Decimal,
    /// Its unit.
    pub unit: LengthUnit,
}

impl Check for Length {
    fn check(&self, c: &mut Checker) {
        c.field("value", &self.value);
    }
}

/// Units of length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Millimetres.
    Mm,
    /// Centimetres.
    Cm,
    /// Metres.
    M,
    /// Inches.
    In,
}

/// A weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Weight {
    /// The value, a plain decimal.
    pub value: Decimal,
    /// Its unit.
    pub unit: WeightUnit,
}

impl Check for Weight {
    fn check(&self, c: &mut Checker) {
        c.field("value", &self.value);
    }
}

/// Units of weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightUnit {
    /// Grams.
    G,
    /// Kilograms.
    Kg,
    /// Pounds.
    Lb,
}

/// Reference numbers of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// INTERPOL stolen works of art database number.
    #[serde(default)]
    pub interpol: Option<String>,
    /// Museum or collection inventory number.
    #[serde(default)]
    pub inventory: Option<String>,
    /// Other references (police case, national database).
    #[serde(default)]
    pub other: Vec<String>,
}

impl Check for References {
    fn check(&self, c: &mut Checker) {
        c.optional_text("interpol", &self.interpol, 64);
        c.optional_text("inventory", &self.inventory, 64);
        c.texts("other", &self.other, 0, LIST_MAX, NAME_MAX);
    }
}

/// A document about where an object has been.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceDocument {
    /// What it is (invoice, auction catalogue, excavation permit) and what it says.
    pub description: String,
    /// Its date, YYYY-MM-DD.
    #[serde(default)]
    pub date: Option<Date>,
    /// Its reference.
    #[serde(default)]
    pub reference: Option<String>,
}

impl Check for ProvenanceDocument {
    fn check(&self, c: &mut Checker) {
        c.text("description", &self.description, TEXT_MAX);
        c.optional("date", &self.date);
        c.optional_text("reference", &self.reference, 64);
    }
}
