//! One complete, valid example of every kind: the templates officers fill in, and fixtures of
//! the tests.

use super::alert::{
    Alert, AssistanceRequest, Feedback, Note, Outcome, RequestedAction, Targets, Urgency,
};
use super::codes::{
    AirWaybill, ContainerNumber, Country, Currency, Date, Decimal, HsCode, ImoNumber, Locode,
    MessageRef,
};
use super::cultural::{
    CulturalObject, Length, LengthUnit, Measurements, ObjectStatus, ProvenanceDocument, References,
    Weight, WeightUnit,
};
use super::seizure::{
    Commodity, Company, Concealment, ConcealmentMethod, Conveyance, DetectionMethod, Direction,
    Identifiers, LocationType, Money, Nominal, Person, PersonRole, Place, Procedure, Quantity,
    Route, SeizedItem, SeizureReport, Unit,
};
use super::{Record, RecordKind};

pub(super) fn example(kind: RecordKind) -> Record {
    match kind {
        RecordKind::Note => Record::Note(Note {
            subject: "Change of contact point".into(),
            body: "From 1 March the duty officer of the Le Havre unit is reachable on the usual line.".into(),
        }),
        RecordKind::Seizure => Record::Seizure(seizure()),
        RecordKind::CulturalObject => Record::CulturalObject(cultural_object()),
        RecordKind::Alert => Record::Alert(Alert {
            title: "Icons declared as modern reproductions, Black Sea ports".into(),
            commodities: vec![Commodity::CulturalHeritage],
            risk_indicators: vec![
                "Icons declared as souvenirs or reproductions at low value".into(),
                "Consignee a newly registered antiques dealer".into(),
            ],
            modus_operandi: Some(
                "Genuine 18th-19th century icons mixed with reproductions in personal effects".into(),
            ),
            targets: Targets {
                identifiers: Identifiers {
                    containers: vec![ContainerNumber::from("CSQU3054383")],
                    imo_numbers: vec![ImoNumber::from("9074729")],
                    ..Identifiers::default()
                },
                companies: vec!["Pontic Trading Ltd".into()],
                routes: vec![Route {
                    departure: Some(Country::from("UA")),
                    transit: vec![Country::from("TR")],
                    destination: Some(Country::from("FR")),
                }],
            },
            valid_from: Date::from("2026-01-15"),
            valid_until: Some(Date::from("2026-06-30")),
            requested_action: RequestedAction::ControlAndReport,
            action_details: Some("Examine and send feedback, with photos of any icon found.".into()),
        }),
        RecordKind::Request => Record::Request(AssistanceRequest {
            subject: "Consignee of container CSQU3054383".into(),
            request: "Please tell us whether Pontic Trading Ltd is known to your service and who its directors are.".into(),
            addressees: vec!["Customs Turkey, Istanbul intelligence unit".into()],
            respond_by: Some(Date::from("2026-02-15")),
            urgency: Urgency::Urgent,
        }),
        RecordKind::Feedback => Record::Feedback(Feedback {
            outcome: Outcome::SeizureMade,
            seizure_report: Some(MessageRef::from(
                "ce068fdbf1ee35b6c80ac9f1b25d470c9fb121ca3b7525e5b2426df2eb9a1903",
            )),
            comment: Some("Three icons found in container CSQU3054383; see the seizure report.".into()),
        }),
    }
}

fn seizure() -> SeizureReport {
    SeizureReport {
        reporting_country: Country::from("FR"),
        date: Date::from("2026-01-20"),
        place: Place {
            location_type: LocationType::Seaport,
            locode: Some(Locode::from("FRLEH")),
            description: Some("Le Havre, Terminal de France".into()),
        },
        direction: Direction::Import,
        procedure: Some(Procedure::FreeCirculation),
        detection: DetectionMethod::RiskProfiling,
        conveyance: Conveyance::SeaContainer,
        concealment: Some(Concealment {
            method: ConcealmentMethod::Cargo,
            description: Some("Wrapped in blankets among household effects".into()),
        }),
        route: Route {
            departure: Some(Country::from("UA")),
            transit: vec![Country::from("TR")],
            destination: Some(Country::from("FR")),
        },
        items: vec![SeizedItem {
            commodity: Commodity::CulturalHeritage,
            description: "Three painted wooden icons, 18th-19th century".into(),
            hs_code: Some(HsCode::from("970600")),
            quantity: Some(Quantity {
                amount: Decimal::from("3"),
                unit: Unit::Pieces,
            }),
            value: Some(Money {
                amount: Decimal::from("45000"),
                currency: Currency::from("EUR"),
            }),
        }],
        identifiers: Identifiers {
            containers: vec![ContainerNumber::from("CSQU3054383")],
            imo_numbers: vec![ImoNumber::from("9074729")],
            voyages: vec!["052W".into()],
            air_waybills: vec![AirWaybill::from("020-12345675")],
            bills_of_lading: vec!["MEDU1234567".into()],
        },
        remarks: Some("Declared as personal effects.".into()),
        nominal: Some(Nominal {
            persons: vec![Person {
                name: "Ivan Petrenko".into(),
                role: PersonRole::Consignee,
                date_of_birth: Some(Date::from("1971-04-02")),
                nationality: Some(Country::from("UA")),
                document_number: Some("FE123456".into()),
            }],
            companies: vec![Company {
                name: "Pontic Trading Ltd".into(),
                role: PersonRole::Consignor,
                country: Some(Country::from("TR")),
                registration_number: None,
            }],
        }),
    }
}

fn cultural_object() -> CulturalObject {
    CulturalObject {
        object_type: "Icon".into(),
        materials: Some("Tempera and gold leaf on wood".into()),
        measurements: Measurements {
            height: Some(Length {
                value: Decimal::from("31.5"),
                unit: LengthUnit::Cm,
            }),
            width: Some(Length {
                value: Decimal::from("26"),
                unit: LengthUnit::Cm,
            }),
            depth: Some(Length {
                value: Decimal::from("2.5"),
                unit: LengthUnit::Cm,
            }),
            diameter: None,
            weight: Some(Weight {
                value: Decimal::from("1.2"),
                unit: WeightUnit::Kg,
            }),
        },
        inscriptions: Some(
            "Church Slavonic inscription in the upper margin; inventory label on the back".into(),
        ),
        distinguishing_features: Some(
            "Vertical crack through the left third; old repair at the lower edge".into(),
        ),
        title: Some("Saint Nicholas the Wonderworker".into()),
        subject: Some("Saint Nicholas, half-length, blessing".into()),
        date_or_period: Some("Late 18th century".into()),
        maker: Some("Unknown, Russian provincial workshop".into()),
        description: "Painted wooden icon of Saint Nicholas with a silvered riza missing".into(),
        status: ObjectStatus::Seized,
        country_of_origin: Some(Country::from("UA")),
        country_of_discovery: None,
        references: References {
            interpol: Some("2026/1234-1".into()),
            inventory: Some("KM-ICON-0457".into()),
            other: vec![],
        },
        provenance: vec![ProvenanceDocument {
            description: "Invoice of an Istanbul antiques shop, no description of the object"
                .into(),
            date: Some(Date::from("2025-11-03")),
            reference: Some("INV-2025-771".into()),
        }],
        export_certificate: None,
    }
}
