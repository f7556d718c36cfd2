//! The seizure report: what was seized, where, how it was found and how it travelled, in the
//! manner of the Customs Enforcement Network's seizure templates. Its core is non-nominal; the
//! persons and companies involved go in the separate [`Nominal`] section, which exports leave
//! out unless asked.

use serde::{Deserialize, Serialize};

use super::check::{self, Check, Checker};
use super::codes::{
    AirWaybill, ContainerNumber, Country, Currency, Date, Decimal, HsCode, ImoNumber, Locode,
};
use super::{LIST_MAX, NAME_MAX, TEXT_MAX};

/// A seizure report (schema version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeizureReport {
    /// The administration that made the seizure: its ISO 3166-1 alpha-2 country code.
    pub reporting_country: Country,
    /// The day of the seizure, YYYY-MM-DD.
    pub date: Date,
    /// Where it was made.
    pub place: Place,
    /// The direction of the goods.
    pub direction: Direction,
    /// The customs procedure the goods were declared under, if any.
    #[serde(default)]
    pub procedure: Option<Procedure>,
    /// How the goods were detected.
    pub detection: DetectionMethod,
    /// The means of conveyance.
    pub conveyance: Conveyance,
    /// How the goods were hidden, if they were.
    #[serde(default)]
    pub concealment: Option<Concealment>,
    /// The route of the goods.
    #[serde(default)]
    pub route: Route,
    /// What was seized: one entry per commodity (at least one).
    pub items: Vec<SeizedItem>,
    /// Containers, ships, flights and transport documents involved.
    #[serde(default)]
    pub identifiers: Identifiers,
    /// Further remarks (non-nominal).
    #[serde(default)]
    pub remarks: Option<String>,
    /// NOMINAL DATA: the persons and companies involved. Kept apart from the rest so that it
    /// can be withheld: exports leave it out unless asked for explicitly.
    #[serde(default)]
    pub nominal: Option<Nominal>,
}

impl Check for SeizureReport {
    fn check(&self, c: &mut Checker) {
        c.field("reporting_country", &self.reporting_country);
        c.field("date", &self.date);
        c.field("place", &self.place);
        c.optional("concealment", &self.concealment);
        c.field("route", &self.route);
        c.items("items", &self.items, 1, LIST_MAX);
        c.field("identifiers", &self.identifiers);
        c.optional_text("remarks", &self.remarks, TEXT_MAX);
        c.optional("nominal", &self.nominal);
    }
}

/// Where a seizure was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// The kind of location.
    pub location_type: LocationType,
    /// Its UN/LOCODE, if it has one (FRLEH).
    #[serde(default)]
    pub locode: Option<Locode>,
    /// The place in words (terminal, border crossing, town).
    #[serde(default)]
    pub description: Option<String>,
}

impl Check for Place {
    fn check(&self, c: &mut Checker) {
        c.optional("locode", &self.locode);
        c.optional_text("description", &self.description, NAME_MAX);
    }
}

/// The kind of location of a seizure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocationType {
    /// An airport.
    Airport,
    /// A seaport.
    Seaport,
    /// A land border crossing.
    LandBorder,
    /// Inland (a warehouse, a road check, premises).
    Inland,
    /// A postal mail centre.
    MailCentre,
    /// An express courier hub.
    ExpressCourierHub,
    /// A free zone.
    FreeZone,
}

/// The direction of the goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Entering the customs territory.
    Import,
    /// Leaving it.
    Export,
    /// Passing through it.
    Transit,
    /// Transferred between means of transport without entering.
    Transhipment,
    /// Within the territory.
    Domestic,
}

/// The customs procedure goods were declared under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Procedure {
    /// Release for free circulation.
    FreeCirculation,
    /// Export.
    Export,
    /// Transit.
    Transit,
    /// Customs warehousing.
    Warehousing,
    /// Temporary admission.
    TemporaryAdmission,
    /// Inward or outward processing.
    Processing,
    /// Free zone.
    FreeZone,
    /// Passenger (no declaration or an oral one).
    Passenger,
    /// Not declared at all.
    Undeclared,
    /// Another procedure.
    Other,
}

/// How goods were detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectionMethod {
    /// Selected by risk profiling.
    RiskProfiling,
    /// Prior intelligence.
    Intelligence,
    /// A routine control.
    RoutineControl,
    /// A random check.
    RandomCheck,
    /// X-ray or other scanning.
    Scanner,
    /// A detector dog.
    Dog,
    /// Documentary check.
    DocumentCheck,
    /// Another method.
    Other,
}

/// The means of conveyance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Conveyance {
    /// Air passenger.
    AirPassenger,
    /// Air cargo.
    AirCargo,
    /// Sea container.
    SeaContainer,
    /// Other sea transport (bulk, ro-ro, vessel).
    SeaOther,
    /// Road vehicle.
    Road,
    /// Rail.
    Rail,
    /// Postal mail.
    Mail,
    /// Express courier.
    ExpressCourier,
    /// On foot.
    Pedestrian,
    /// Another means.
    Other,
}

/// How goods were hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Concealment {
    /// Where they were hidden.
    pub method: ConcealmentMethod,
    /// The concealment in words.
    #[serde(default)]
    pub description: Option<String>,
}

impl Check for Concealment {
    fn check(&self, c: &mut Checker) {
        c.optional_text("description", &self.description, TEXT_MAX);
    }
}

/// Where goods were hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConcealmentMethod {
    /// Not hidden.
    None,
    /// In baggage.
    Baggage,
    /// On or in the body.
    Body,
    /// In clothing.
    Clothing,
    /// Among or inside declared cargo.
    Cargo,
    /// In a structure of a container.
    Container,
    /// In a structure of a vehicle.
    Vehicle,
    /// In a postal item or parcel.
    PostalItem,
    /// Misdeclared goods in plain view.
    Misdeclaration,
    /// Another way.
    Other,
}

/// The countries goods came from, passed through and were going to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Country of departure.
    #[serde(default)]
    pub departure: Option<Country>,
    /// Countries of transit, in order.
    #[serde(default)]
    pub transit: Vec<Country>,
    /// Country of destination.
    #[serde(default)]
    pub destination: Option<Country>,
}

impl Check for Route {
    fn check(&self, c: &mut Checker) {
        c.optional("departure", &self.departure);
        c.items("transit", &self.transit, 0, 16);
        c.optional("destination", &self.destination);
    }
}

/// The thirteen commodity categories of the Customs Enforcement Network.
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
pub enum Commodity {
    /// Drugs.
    Drugs,
    /// Tobacco.
    Tobacco,
    /// Alcohol.
    Alcohol,
    /// Intellectual property rights infringements.
    Ipr,
    /// Medicines.
    Medicines,
    /// Environment: CITES species, waste, ozone-depleting substances.
    Environment,
    /// Weapons and explosives.
    Weapons,
    /// Cultural heritage.
    CulturalHeritage,
    /// Currency and monetary instruments.
    Currency,
    /// Drug precursors.
    Precursors,
    /// Strategic (dual-use) goods.
    StrategicGoods,
    /// Other revenue fraud.
    OtherRevenue,
    /// Anything else.
    Other,
}

impl Commodity {
    /// Its name in JSON (`cultural_heritage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Commodity::Drugs => "drugs",
            Commodity::Tobacco => "tobacco",
            Commodity::Alcohol => "alcohol",
            Commodity::Ipr => "ipr",
            Commodity::Medicines => "medicines",
            Commodity::Environment => "environment",
            Commodity::Weapons => "weapons",
            Commodity::CulturalHeritage => "cultural_heritage",
            Commodity::Currency => "currency",
            Commodity::Precursors => "precursors",
            Commodity::StrategicGoods => "strategic_goods",
            Commodity::OtherRevenue => "other_revenue",
            Commodity::Other => "other",
        }
    }
}

/// One commodity seized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeizedItem {
    /// Its commodity category.
    pub commodity: Commodity,
    /// What it is, in words.
    pub description: String,
    /// Its HS code, if known (4 to 10 digits, no dots).
    #[serde(default)]
    pub hs_code: Option<HsCode>,
    /// How much.
    #[serde(default)]
    pub quantity: Option<Quantity>,
    /// Its estimated value.
    #[serde(default)]
    pub value: Option<Money>,
}

impl Check for SeizedItem {
    fn check(&self, c: &mut Checker) {
        c.text("description", &self.description, TEXT_MAX);
        c.optional("hs_code", &self.hs_code);
        c.optional("quantity", &self.quantity);
        c.optional("value", &self.value);
    }
}

/// An amount with its unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    /// The amount, a plain decimal (12.5).
    pub amount: Decimal,
    /// Its unit.
    pub unit: Unit,
}

impl Check for Quantity {
    fn check(&self, c: &mut Checker) {
        c.field("amount", &self.amount);
    }
}

/// Units of quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Kilograms.
    Kg,
    /// Grams.
    G,
    /// Litres.
    L,
    /// Millilitres.
    Ml,
    /// Pieces (items, objects).
    Pieces,
    /// Cigarettes or cigars (sticks).
    Sticks,
    /// Tablets or capsules.
    Tablets,
    /// Doses or ampoules.
    Doses,
    /// Pairs.
    Pairs,
    /// Cubic metres.
    M3,
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// The amount, a plain decimal (1250.00).
    pub amount: Decimal,
    /// The ISO 4217 currency code (EUR).
    pub currency: Currency,
}

impl Check for Money {
    fn check(&self, c: &mut Checker) {
        c.field("amount", &self.amount);
        c.field("currency", &self.currency);
    }
}

/// Identifiers of the consignment: containers, ships, flights, transport documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifiers {
    /// ISO 6346 container numbers (CSQU3054383).
    #[serde(default)]
    pub containers: Vec<ContainerNumber>,
    /// IMO ship numbers (9074729).
    #[serde(default)]
    pub imo_numbers: Vec<ImoNumber>,
    /// Flight or voyage numbers (AF1234, 052W).
    #[serde(default)]
    pub voyages: Vec<String>,
    /// Air waybill numbers (020-12345675).
    #[serde(default)]
    pub air_waybills: Vec<AirWaybill>,
    /// Bill of lading numbers.
    #[serde(default)]
    pub bills_of_lading: Vec<String>,
}

impl Identifiers {
    /// Whether it names nothing.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.imo_numbers.is_empty()
            && self.voyages.is_empty()
            && self.air_waybills.is_empty()
            && self.bills_of_lading.is_empty()
    }
}

impl Check for Identifiers {
    fn check(&self, c: &mut Checker) {
        c.items("containers", &self.containers, 0, LIST_MAX);
        c.items("imo_numbers", &self.imo_numbers, 0, LIST_MAX);
        c.list("voyages", &self.voyages, 0, LIST_MAX, |c, v| {
            if let Err(e) = check::reference(v, 17) {
                c.fail(e);
            }
        });
        c.items("air_waybills", &self.air_waybills, 0, LIST_MAX);
        c.list(
            "bills_of_lading",
            &self.bills_of_lading,
            0,
            LIST_MAX,
            |c, v| {
                if let Err(e) = check::reference(v, 35) {
                    c.fail(e);
                }
            },
        );
    }
}

/// NOMINAL DATA: persons and companies involved in a seizure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nominal {
    /// Persons.
    #[serde(default)]
    pub persons: Vec<Person>,
    /// Companies.
    #[serde(default)]
    pub companies: Vec<Company>,
}

impl Check for Nominal {
    fn check(&self, c: &mut Checker) {
        c.items("persons", &self.persons, 0, LIST_MAX);
        c.items("companies", &self.companies, 0, LIST_MAX);
        if self.persons.is_empty() && self.companies.is_empty() {
            c.fail("an empty nominal section: leave it out instead");
        }
    }
}

/// A person involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Full name.
    pub name: String,
    /// Role in the case.
    pub role: PersonRole,
    /// Date of birth, YYYY-MM-DD.
    #[serde(default)]
    pub date_of_birth: Option<Date>,
    /// Nationality (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub nationality: Option<Country>,
    /// Passport or identity document number.
    #[serde(default)]
    pub document_number: Option<String>,
}

impl Check for Person {
    fn check(&self, c: &mut Checker) {
        c.text("name", &self.name, NAME_MAX);
        c.optional("date_of_birth", &self.date_of_birth);
        c.optional("nationality", &self.nationality);
        c.optional_text("document_number", &self.document_number, 64);
    }
}

/// The role of a person in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    /// Passenger or traveller.
    Traveller,
    /// Driver or crew.
    Driver,
    /// Sender or consignor.
    Consignor,
    /// Receiver or consignee.
    Consignee,
    /// Owner of goods.
    Owner,
    /// Another role.
    Other,
}

/// A company involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Company {
    /// Its name.
    pub name: String,
    /// Its role in the case.
    pub role: PersonRole,
    /// Country of registration (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub country: Option<Country>,
    /// Registration or EORI number.
    #[serde(default)]
    pub registration_number: Option<String>,
}

impl Check for Company {
    fn check(&self, c: &mut Checker) {
        c.text("name", &self.name, NAME_MAX);
        c.optional("country", &self.country);
        c.optional_text("registration_number", &self.registration_number, 64);
    }
}
