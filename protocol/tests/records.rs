//! Records: every validation rule has a failing case with its error (JSON pointer and
//! reason); records travel through a sealed envelope and read back equal; a record of a newer
//! schema or an unknown kind is kept and shown as such; feedback needs a reply-to.

use liaison_protocol::attachment::{AttachmentId, AttachmentKey, AttachmentRef};
use liaison_protocol::group::{GroupState, LocalKeys};
use liaison_protocol::message::{self, Draft};
use liaison_protocol::record::codes::{
    AirWaybill, ContainerNumber, Country, Currency, Date, Decimal, HsCode, ImoNumber, Locode,
    MessageRef,
};
use liaison_protocol::record::seizure::Nominal;
use liaison_protocol::record::{
    self, FieldError, NewerRecord, Readable, Record, RecordKind, LIST_MAX, NAME_MAX,
};
use liaison_protocol::{
    Content, ExchangeSecret, GroupId, Handling, IdentityKey, Payload, RecordData, Rejection,
    Timestamp, UsageError,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn seizure() -> record::SeizureReport {
    match Record::example(RecordKind::Seizure) {
        Record::Seizure(s) => s,
        _ => unreachable!(),
    }
}

fn alert() -> record::Alert {
    match Record::example(RecordKind::Alert) {
        Record::Alert(a) => a,
        _ => unreachable!(),
    }
}

fn cultural() -> record::CulturalObject {
    match Record::example(RecordKind::CulturalObject) {
        Record::CulturalObject(o) => o,
        _ => unreachable!(),
    }
}

/// Asserts that `record` fails validation with exactly one error at `pointer` whose reason
/// contains `reason`.
#[track_caller]
fn fails(record: Record, pointer: &str, reason: &str) {
    let errors = record.validate().expect_err("the record is invalid");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].pointer, pointer, "{errors:?}");
    assert!(
        errors[0].reason.contains(reason),
        "{:?} does not contain {reason:?}",
        errors[0].reason
    );
    // The same record is refused when sealed, and reads as invalid from a payload built
    // around the checks.
    assert!(matches!(record.to_payload(vec![]), Err(UsageError::InvalidRecord(e)) if e == errors));
}

#[test]
fn every_example_is_valid() {
    for kind in RecordKind::ALL {
        let r = Record::example(kind);
        assert_eq!(r.kind(), kind);
        assert_eq!(r.validate(), Ok(()), "{kind}");
    }
}

#[test]
fn required_text_empty_or_blank() {
    let mut s = seizure();
    s.items[0].description = "  ".into();
    fails(Record::Seizure(s), "/items/0/description", "required");
    let mut o = cultural();
    o.description.clear();
    fails(Record::CulturalObject(o), "/description", "required");
}

#[test]
fn text_over_its_length() {
    let mut o = cultural();
    o.title = Some("x".repeat(NAME_MAX + 1));
    fails(
        Record::CulturalObject(o),
        "/title",
        "at most 200 characters",
    );
}

#[test]
fn text_with_control_characters() {
    let mut a = alert();
    a.title = "bad\u{7}bell".into();
    fails(Record::Alert(a), "/title", "control characters");
}

#[test]
fn list_needs_an_entry() {
    let mut s = seizure();
    s.items.clear();
    fails(Record::Seizure(s), "/items", "at least one entry");
    let mut a = alert();
    a.risk_indicators.clear();
    fails(Record::Alert(a), "/risk_indicators", "at least one entry");
}

#[test]
fn list_over_its_length() {
    let mut s = seizure();
    s.identifiers.containers = vec![ContainerNumber::from("CSQU3054383"); LIST_MAX + 1];
    fails(
        Record::Seizure(s),
        "/identifiers/containers",
        "at most 100 entries",
    );
}

#[test]
fn container_check_digit_and_form() {
    let mut s = seizure();
    s.identifiers.containers = vec![ContainerNumber::from("CSQU3054384")];
    fails(
        Record::Seizure(s.clone()),
        "/identifiers/containers/0",
        "check digit is 3, not 4",
    );
    s.identifiers.containers = vec![ContainerNumber::from("CSQU305438")];
    fails(
        Record::Seizure(s.clone()),
        "/identifiers/containers/0",
        "ISO 6346",
    );
    s.identifiers.containers = vec![ContainerNumber::from("CSQX3054383")];
    fails(Record::Seizure(s), "/identifiers/containers/0", "U, J or Z");
}

#[test]
fn imo_check_digit_and_form() {
    let mut s = seizure();
    s.identifiers.imo_numbers = vec![ImoNumber::from("9074728")];
    fails(
        Record::Seizure(s.clone()),
        "/identifiers/imo_numbers/0",
        "check digit is 9, not 8",
    );
    s.identifiers.imo_numbers = vec![ImoNumber::from("IMO 9074729")];
    fails(Record::Seizure(s), "/identifiers/imo_numbers/0", "7 digits");
}

#[test]
fn air_waybill_check_digit() {
    let mut s = seizure();
    s.identifiers.air_waybills = vec![AirWaybill::from("020-12345670")];
    fails(
        Record::Seizure(s.clone()),
        "/identifiers/air_waybills/0",
        "check digit is 5, not 0",
    );
    s.identifiers.air_waybills = vec![AirWaybill::from("02012345675")];
    fails(
        Record::Seizure(s),
        "/identifiers/air_waybills/0",
        "3 digits, '-', 8 digits",
    );
}

#[test]
fn hs_code_format_and_list() {
    for (code, reason) in [
        ("9706.00", "without dots"),
        ("97060", "4, 6, 8 or 10 digits"),
        ("770100", "77 is not an HS chapter"),
        ("980100", "98 is not an HS chapter"),
        ("000100", "00 is not an HS chapter"),
        ("970000", "heading 00"),
    ] {
        let mut s = seizure();
        s.items[0].hs_code = Some(HsCode::from(code));
        fails(Record::Seizure(s), "/items/0/hs_code", reason);
    }
}

#[test]
fn country_codes_from_the_list() {
    for (code, reason) in [
        ("XX", "not an ISO 3166-1"),
        ("fr", "2 capital letters"),
        ("FRA", "2 capital letters"),
    ] {
        let mut s = seizure();
        s.reporting_country = Country::from(code);
        fails(Record::Seizure(s), "/reporting_country", reason);
    }
    let mut s = seizure();
    s.route.transit = vec![Country::from("TR"), Country::from("ZZ")];
    fails(
        Record::Seizure(s),
        "/route/transit/1",
        "ZZ is not an ISO 3166-1",
    );
}

#[test]
fn currency_codes_from_the_list() {
    for (code, reason) in [
        ("XYZ", "not an ISO 4217"),
        ("FRF", "no longer an ISO 4217"),
        ("eur", "3 capital letters"),
    ] {
        let mut s = seizure();
        s.items[0].value.as_mut().expect("a value").currency = Currency::from(code);
        fails(Record::Seizure(s), "/items/0/value/currency", reason);
    }
}

#[test]
fn locode_form_and_country() {
    let mut s = seizure();
    s.place.locode = Some(Locode::from("XXLEH"));
    fails(
        Record::Seizure(s.clone()),
        "/place/locode",
        "UN/LOCODE country",
    );
    s.place.locode = Some(Locode::from("FR LEH"));
    fails(Record::Seizure(s), "/place/locode", "expected a UN/LOCODE");
}

#[test]
fn dates_are_calendar_dates() {
    for (date, reason) in [
        ("2026-02-29", "no day 29"),
        ("2026-13-01", "month 13"),
        ("26-01-01", "YYYY-MM-DD"),
        ("0999-01-01", "four digits"),
        ("2026-04-31", "no day 31"),
    ] {
        let mut s = seizure();
        s.date = Date::from(date);
        fails(Record::Seizure(s), "/date", reason);
    }
}

#[test]
fn validity_period_in_order() {
    let mut a = alert();
    a.valid_until = Some(Date::from("2026-01-14"));
    fails(Record::Alert(a), "/valid_until", "not be before valid_from");
}

#[test]
fn decimals_written_plainly() {
    for (value, reason) in [
        ("-1", "no sign"),
        ("1,5", "no sign"),
        ("01", "leading zeros"),
        ("1.1234567", "6 digits"),
    ] {
        let mut s = seizure();
        s.items[0].quantity.as_mut().expect("a quantity").amount = Decimal::from(value);
        fails(Record::Seizure(s), "/items/0/quantity/amount", reason);
    }
}

#[test]
fn references_in_their_alphabet() {
    let mut s = seizure();
    s.identifiers.voyages = vec!["af 123".into()];
    fails(
        Record::Seizure(s.clone()),
        "/identifiers/voyages/0",
        "capital letters",
    );
    s.identifiers.voyages = vec![];
    s.identifiers.bills_of_lading = vec!["X".repeat(36)];
    fails(
        Record::Seizure(s),
        "/identifiers/bills_of_lading/0",
        "at most 35",
    );
}

#[test]
fn empty_nominal_section_is_refused() {
    let mut s = seizure();
    s.nominal = Some(Nominal::default());
    fails(Record::Seizure(s), "/nominal", "leave it out");
}

#[test]
fn feedback_links_a_seizure_only_with_that_outcome() {
    let Record::Feedback(mut f) = Record::example(RecordKind::Feedback) else {
        unreachable!()
    };
    f.outcome = record::Outcome::CheckedNothingFound;
    fails(
        Record::Feedback(f.clone()),
        "/seizure_report",
        "seizure_made",
    );
    f.outcome = record::Outcome::SeizureMade;
    f.seizure_report = Some(MessageRef::from("CE06"));
    fails(Record::Feedback(f), "/seizure_report", "64 lowercase hex");
}

#[test]
fn note_subject_required_and_bounded() {
    fails(
        Record::Note(record::Note {
            subject: String::new(),
            body: "text".into(),
        }),
        "/subject",
        "required",
    );
    fails(
        Record::Note(record::Note {
            subject: "é".repeat(300),
            body: String::new(),
        }),
        "/subject",
        "at most 512 bytes",
    );
}

#[test]
fn several_errors_are_reported_together() {
    let mut s = seizure();
    s.date = Date::from("2026-02-30");
    s.items[0].hs_code = Some(HsCode::from("12"));
    s.identifiers.containers = vec![ContainerNumber::from("CSQU3054384")];
    let errors = Record::Seizure(s).validate().expect_err("invalid");
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/date", "/items/0/hs_code", "/identifiers/containers/0"]
    );
}

// ----- JSON -----------------------------------------------------------------------------------

#[test]
fn json_round_trip_of_every_kind() {
    for kind in RecordKind::ALL {
        let r = Record::example(kind);
        let json = serde_json::to_string(&r.to_json_value()).expect("serializes");
        assert_eq!(Record::from_json(kind, &json), Ok(r.clone()), "{kind}");
        // The tagged form of the API.
        let tagged = serde_json::to_value(&r).expect("serializes");
        assert_eq!(tagged["kind"], kind.as_str());
        assert_eq!(serde_json::from_value::<Record>(tagged).expect("reads"), r);
    }
}

fn json_error(kind: RecordKind, edit: impl FnOnce(&mut serde_json::Value)) -> FieldError {
    let mut v = Record::example(kind).to_json_value();
    edit(&mut v);
    let errors = Record::from_value(kind, v).expect_err("invalid");
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

#[test]
fn json_value_outside_a_vocabulary() {
    let e = json_error(RecordKind::Seizure, |v| {
        v["place"]["location_type"] = "airpot".into()
    });
    assert_eq!(e.pointer, "/place/location_type");
    assert!(e.reason.contains("unknown variant `airpot`"), "{e}");
    assert!(e.reason.contains("airport"), "{e}");
    let e = json_error(RecordKind::Seizure, |v| {
        v["items"][0]["commodity"] = "gold".into()
    });
    assert_eq!(e.pointer, "/items/0/commodity");
}

#[test]
fn json_missing_required_field() {
    let e = json_error(RecordKind::Seizure, |v| {
        v.as_object_mut().expect("object").remove("date");
    });
    assert_eq!(e.pointer, "");
    assert!(e.reason.contains("missing field `date`"), "{e}");
    let e = json_error(RecordKind::Seizure, |v| {
        v["place"]
            .as_object_mut()
            .expect("object")
            .remove("location_type");
    });
    assert_eq!(e.pointer, "/place");
    assert!(e.reason.contains("missing field `location_type`"), "{e}");
}

#[test]
fn json_unknown_field() {
    let e = json_error(RecordKind::Alert, |v| v["colour"] = "red".into());
    assert!(e.reason.contains("unknown field `colour`"), "{e}");
    assert_eq!(e.pointer, "/colour");
}

#[test]
fn json_wrong_type() {
    let e = json_error(RecordKind::Seizure, |v| {
        v["items"][0]["description"] = 5.into()
    });
    assert_eq!(e.pointer, "/items/0/description");
    assert!(e.reason.contains("invalid type"), "{e}");
}

#[test]
fn json_with_trailing_garbage() {
    let json =
        serde_json::to_string(&Record::example(RecordKind::Note).to_json_value()).expect("json");
    let errors = Record::from_json(RecordKind::Note, &format!("{json} x")).expect_err("invalid");
    assert!(errors[0].reason.contains("trailing"), "{errors:?}");
}

#[test]
fn optional_fields_may_be_left_out_of_json() {
    let json = r#"{"outcome": "checked_nothing_found"}"#;
    let r = Record::from_json(RecordKind::Feedback, json).expect("valid");
    assert_eq!(
        r,
        Record::Feedback(record::Feedback {
            outcome: record::Outcome::CheckedNothingFound,
            seizure_report: None,
            comment: None,
        })
    );
}

// ----- through a sealed envelope ----------------------------------------------------------------

struct Fixture {
    owner: IdentityKey,
    group: GroupState,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let owner = IdentityKey::from_seed(&[1; 32]);
    let x = ExchangeSecret::from_seed(&[2; 32]);
    let genesis = GroupState::create(
        &owner,
        "owner",
        x.public(),
        GroupId::from([7; 16]),
        "records",
        Timestamp(1),
        &mut rng,
    )
    .expect("creates");
    let group = GroupState::from_genesis(
        &genesis,
        Some(LocalKeys {
            node: owner.node_id(),
            exchange: &x,
        }),
    )
    .expect("genesis");
    Fixture { owner, group }
}

fn seal(f: &Fixture, content: &Content) -> Result<Vec<u8>, UsageError> {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    message::seal(
        &f.group,
        &f.owner,
        Draft {
            seq: 1,
            now: Timestamp(2),
            handling: Handling::Amber,
            expires_at: None,
            content,
        },
        &mut rng,
    )
    .map(|s| s.bytes)
}

fn content(payload: Payload, reply_to: Option<liaison_protocol::MessageId>) -> Content {
    Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to,
        payload,
    }
}

fn attachment() -> AttachmentRef {
    AttachmentRef {
        id: AttachmentId::from([3; 32]),
        key: AttachmentKey::from_bytes([4; 32]),
        size: 1234,
        media_type: "image/jpeg".into(),
        name: "icon.jpg".into(),
    }
}

#[test]
fn every_kind_reads_back_equal_through_an_envelope() {
    let f = fixture();
    let parent = Some(liaison_protocol::MessageId::from([9; 32]));
    for kind in RecordKind::ALL {
        let r = Record::example(kind);
        for attachments in [vec![], vec![attachment(), attachment()]] {
            let payload = r.to_payload(attachments.clone()).expect("valid");
            let bytes = seal(&f, &content(payload, parent)).expect("seals");
            let (_, opened) = message::verify_and_open(&bytes, &f.group).expect("opens");
            assert_eq!(
                record::read(&opened.payload),
                Ok(Readable::Known(r.clone())),
                "{kind}"
            );
            assert_eq!(opened.payload.attachments(), &attachments[..]);
        }
    }
}

#[test]
fn a_note_without_attachments_travels_as_text() {
    let r = Record::example(RecordKind::Note);
    let Payload::Text { subject, .. } = r.to_payload(vec![]).expect("valid") else {
        panic!("a note without attachments is Payload::Text");
    };
    assert_eq!(subject, "Change of contact point");
    assert!(matches!(
        r.to_payload(vec![attachment()]),
        Ok(Payload::Record(RecordData { kind: 0, .. }))
    ));
}

#[test]
fn feedback_needs_a_reply_to() {
    let f = fixture();
    let payload = Record::example(RecordKind::Feedback)
        .to_payload(vec![])
        .expect("valid");
    let err = seal(&f, &content(payload, None)).expect_err("refused");
    let UsageError::InvalidRecord(errors) = err else {
        panic!("{err:?}");
    };
    assert_eq!(errors[0].pointer, "/reply_to");
}

fn raw(kind: u16, schema: u16, body: Vec<u8>) -> Payload {
    Payload::Record(RecordData {
        kind,
        schema,
        body,
        attachments: vec![],
    })
}

#[test]
fn a_newer_schema_is_kept_and_shown_as_such() {
    let f = fixture();
    // Schema 2 of the seizure report: a body this build cannot read.
    let payload = raw(
        RecordKind::Seizure.code(),
        2,
        b"a body in a later format".to_vec(),
    );
    let bytes = seal(&f, &content(payload, None)).expect("seals: the author's node knew it");
    let (_, opened) = message::verify_and_open(&bytes, &f.group).expect("kept, not rejected");
    let Ok(Readable::Newer(newer)) = record::read(&opened.payload) else {
        panic!("shown as newer");
    };
    assert_eq!(
        newer,
        NewerRecord {
            kind: Some(RecordKind::Seizure),
            kind_code: 1,
            schema: 2
        }
    );
    assert!(newer
        .to_string()
        .contains("schema version 2, newer than this node reads (1)"));
}

#[test]
fn an_unknown_kind_is_kept_and_shown_as_such() {
    let f = fixture();
    let payload = raw(77, 1, vec![1, 2, 3]);
    let bytes = seal(&f, &content(payload, None)).expect("seals");
    let (_, opened) = message::verify_and_open(&bytes, &f.group).expect("kept");
    let Ok(Readable::Newer(newer)) = record::read(&opened.payload) else {
        panic!("shown as unknown");
    };
    assert_eq!(newer.kind, None);
    assert!(newer.to_string().contains("kind 77"));
}

#[test]
fn a_known_schema_that_does_not_decode_is_refused() {
    for body in [vec![], vec![0xff; 40], {
        let Payload::Record(d) = Record::example(RecordKind::Alert)
            .to_payload(vec![attachment()])
            .expect("valid")
        else {
            unreachable!()
        };
        let mut b = d.body;
        b.push(0);
        b
    }] {
        let errors = record::read(&raw(RecordKind::Alert.code(), 1, body)).expect_err("refused");
        assert!(errors[0].reason.contains("does not decode"), "{errors:?}");
    }
    let errors = record::read(&raw(1, 0, vec![])).expect_err("refused");
    assert!(errors[0].reason.contains("schema version 0"));
}

/// Seals `content` exactly as `message::seal` does (WIRE.md §5) but without its checks: what
/// a node that skips validation would send.
fn seal_unchecked(f: &Fixture, content: &Content) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
    use ed25519_dalek::Signer;
    use liaison_protocol::codec;
    use liaison_protocol::message::{Envelope, Header, HEADER_VERSION};
    fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(context);
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    }
    // The fixture's epoch key: the first 32 bytes of its RNG (WIRE.md §9).
    let mut epoch_key = [0u8; 32];
    rand_chacha::rand_core::RngCore::fill_bytes(
        &mut ChaCha20Rng::from_seed([4; 32]),
        &mut epoch_key,
    );
    let mut header = Header {
        version: HEADER_VERSION,
        group: f.group.id(),
        epoch: 1,
        author: f.owner.node_id(),
        seq: 1,
        created_at: Timestamp(2),
        handling: Handling::Amber,
        expires_at: None,
        nonce: [6; 24],
        commitment: [0; 32],
        ciphertext_hash: [0; 32],
    };
    let msg_key = derive(
        "liaison/v1/message-key",
        &[
            &epoch_key,
            &header.nonce,
            header.group.as_bytes(),
            &1u64.to_be_bytes(),
            header.author.as_bytes(),
            &1u64.to_be_bytes(),
        ],
    );
    header.commitment = derive("liaison/v1/key-commitment", &[&msg_key]);
    let pre = codec::encode(&header).expect("encodes")[1..].to_vec();
    let plain = codec::encode(content).expect("encodes");
    let ciphertext = chacha20poly1305::ChaCha20Poly1305::new((&msg_key).into())
        .encrypt(
            (&[0u8; 12]).into(),
            AeadPayload {
                msg: &plain,
                aad: &pre[..pre.len() - 32],
            },
        )
        .expect("encrypts");
    header.ciphertext_hash = derive("liaison/v1/ciphertext", &[&ciphertext]);
    let header_bytes = codec::encode(&header).expect("encodes")[1..].to_vec();
    let mut signed = message::ENVELOPE_DOMAIN.to_vec();
    signed.extend_from_slice(&header_bytes);
    let signature = f.owner.signing_key().sign(&signed).to_bytes();
    codec::encode(&Envelope {
        header: header_bytes,
        signature,
        ciphertext,
    })
    .expect("encodes")
}

#[test]
fn the_unchecked_sealer_matches_seal() {
    // Guards the helper: for valid content it is message::seal.
    let f = fixture();
    let c = content(
        Record::example(RecordKind::Alert)
            .to_payload(vec![])
            .expect("valid"),
        None,
    );
    let bytes = seal_unchecked(&f, &c);
    assert_eq!(
        message::verify_and_open(&bytes, &f.group).expect("opens").1,
        c
    );
}

#[test]
fn a_receiver_rejects_an_invalid_record() {
    let f = fixture();
    // The encoded body of a valid report, with the container's check digit changed.
    let Payload::Record(d) = Record::example(RecordKind::Seizure)
        .to_payload(vec![])
        .expect("valid")
    else {
        unreachable!()
    };
    let mut body = d.body;
    let at = body
        .windows(11)
        .position(|w| w == b"CSQU3054383")
        .expect("the container is in the body");
    body[at + 10] = b'4';
    let c = content(raw(1, 1, body), None);
    assert!(matches!(seal(&f, &c), Err(UsageError::InvalidRecord(_))));
    let bytes = seal_unchecked(&f, &c);
    let Err(Rejection::InvalidContent(errors)) = message::verify_and_open(&bytes, &f.group) else {
        panic!("the receiver refuses it");
    };
    assert_eq!(errors[0].pointer, "/identifiers/containers/0");
    assert!(errors[0].reason.contains("check digit"));
    // Feedback without reply_to, likewise.
    let c = content(
        Record::example(RecordKind::Feedback)
            .to_payload(vec![])
            .expect("valid"),
        None,
    );
    let bytes = seal_unchecked(&f, &c);
    let Err(Rejection::InvalidContent(errors)) = message::verify_and_open(&bytes, &f.group) else {
        panic!("the receiver refuses it");
    };
    assert_eq!(errors[0].pointer, "/reply_to");
}

#[test]
fn attachment_limits() {
    let mut a = attachment();
    a.size = liaison_protocol::attachment::MAX_ATTACHMENT_LEN + 1;
    let c = content(
        Record::example(RecordKind::Note)
            .to_payload(vec![a])
            .expect("payload"),
        None,
    );
    assert_eq!(c.check().expect_err("too big")[0].pointer, "/attachments/0");
    for (media_type, name) in [
        ("image", "x.jpg"),
        ("IMAGE/JPEG", "x.jpg"),
        ("image/jpeg", "../x"),
        ("image/jpeg", ""),
    ] {
        let mut a = attachment();
        a.media_type = media_type.into();
        a.name = name.into();
        let c = content(
            Record::example(RecordKind::Note)
                .to_payload(vec![a])
                .expect("payload"),
            None,
        );
        assert_eq!(
            c.check().expect_err("refused")[0].pointer,
            "/attachments/0",
            "{media_type} {name}"
        );
    }
    let c = content(
        Record::example(RecordKind::Note)
            .to_payload(vec![attachment(); record::MAX_ATTACHMENTS + 1])
            .expect("payload"),
        None,
    );
    assert_eq!(c.check().expect_err("too many")[0].pointer, "/attachments");
}

#[test]
fn export_leaves_the_nominal_section_behind() {
    let r = Record::example(RecordKind::Seizure);
    assert!(r.has_nominal());
    let bare = r.without_nominal();
    assert!(!bare.has_nominal());
    assert!(!serde_json::to_string(&bare)
        .expect("json")
        .contains("Petrenko"));
}

#[test]
fn tagged_json_names_kind_and_record() {
    let mut v = serde_json::to_value(Record::example(RecordKind::Alert)).expect("json");
    assert_eq!(
        Record::from_tagged_value(&v),
        Ok(Record::example(RecordKind::Alert))
    );
    v["record"]["valid_from"] = "2026-1-1".into();
    let errors = Record::from_tagged_value(&v).expect_err("invalid");
    assert_eq!(errors[0].pointer, "/record/valid_from");
    v["kind"] = "parcel".into();
    assert_eq!(
        Record::from_tagged_value(&v).expect_err("invalid")[0].pointer,
        "/kind"
    );
    let errors =
        Record::from_tagged_value(&serde_json::json!({"kind": "note"})).expect_err("invalid");
    assert_eq!(errors[0].pointer, "/record");
}

#[test]
fn case_state_follows_feedback() {
    use liaison_protocol::record::{case_state, CaseState, Outcome::*};
    let t = Timestamp;
    assert_eq!(case_state([]), CaseState::Open);
    assert_eq!(
        case_state([(t(1), UnderInvestigation)]),
        CaseState::Actioned
    );
    assert_eq!(
        case_state([(t(1), UnderInvestigation), (t(2), CheckedNothingFound)]),
        CaseState::Closed(CheckedNothingFound)
    );
    // The latest decides, in whatever order given.
    assert_eq!(
        case_state([(t(3), UnderInvestigation), (t(2), NotActionable)]),
        CaseState::Actioned
    );
    // A seizure closes it whatever came after.
    assert_eq!(
        case_state([(t(1), SeizureMade), (t(5), UnderInvestigation)]),
        CaseState::Closed(SeizureMade)
    );
}

#[test]
fn a_text_message_with_terminal_escapes_is_refused() {
    let text = |subject: &str, body: &str| {
        content(
            Payload::Text {
                subject: subject.into(),
                body: body.into(),
            },
            None,
        )
        .check()
    };
    // What repainted an AMBER line as "TLP:CLEAR" on a terminal.
    let errors = text("\u{1b}[2K\rTLP:CLEAR routine", "body").expect_err("refused");
    assert!(errors[0].reason.contains("control character"), "{errors:?}");
    assert!(text("subject\nsecond line", "body").is_err());
    assert!(text("subject", "text \u{1b}[31mred\u{1b}[0m").is_err());
    assert!(text("subject", "C1 \u{9b}31m").is_err());
    assert_eq!(
        text("Seizure at Rotterdam", "line one\nline two\r\n\tindented"),
        Ok(())
    );
}
