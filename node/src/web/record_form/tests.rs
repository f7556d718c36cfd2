//! Forms drawn from every kind's schema, read back into records.

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
