//! Rosters, revocations and rotation statements: every rule of WIRE.md §12 refuses what it
//! must, and a group follows a rotated member and a rotated owner.

use ed25519_dalek::{Signer, SigningKey};
use liaison_protocol::codec;
use liaison_protocol::group::{Change, LocalKeys};
use liaison_protocol::message::{self, Draft};
use liaison_protocol::roster::{
    Admission, AuthorityKey, Entry, Federation, Kind, Revocation, Roster, RosterUpdate, Rotation,
    RotationUpdate, SignedRoster,
};
use liaison_protocol::{
    Content, ExchangeSecret, GroupId, GroupState, Handling, IdentityKey, NodeId, Payload,
    Rejection, Role, Timestamp,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T0: u64 = 1_767_225_600_000;
const DAY: u64 = 86_400_000;

fn node(seed: u8) -> NodeId {
    IdentityKey::from_seed(&[seed; 32]).node_id()
}

fn entry(seed: u8, name: &str) -> Entry {
    Entry {
        node: node(seed),
        name: name.into(),
        organisation: format!("Organisation {name}"),
        country: "NL".into(),
        kind: Kind::Customs,
        addresses: vec![format!("{name}.example:7400")],
    }
}

fn roster(authority: &AuthorityKey, version: u64, entries: Vec<Entry>) -> Roster {
    let mut entries = entries;
    entries.sort_by_key(|e| e.node);
    Roster {
        authority: authority.id(),
        federation: "WCO Europe".into(),
        version,
        issued_at: Timestamp(T0),
        valid_until: Timestamp(T0 + 30 * DAY),
        entries,
        revocations: vec![],
    }
}

/// Signs `roster` without checking it, as a careless or hostile signer would.
fn sign_unchecked(seed: [u8; 32], roster: &Roster) -> Vec<u8> {
    let body = codec::encode(roster).expect("encodes")[1..].to_vec();
    let mut input = b"liaison/v1/roster\0".to_vec();
    input.extend_from_slice(&body);
    let signature = SigningKey::from_bytes(&seed).sign(&input).to_bytes();
    codec::encode(&SignedRoster { body, signature }).expect("encodes")
}

#[test]
fn a_roster_verifies_only_under_a_trusted_authority_and_its_signature() {
    let authority = AuthorityKey::from_seed(&[0x10; 32]);
    let other = AuthorityKey::from_seed(&[0x20; 32]);
    let r = roster(
        &authority,
        1,
        vec![entry(1, "rilo-wca"), entry(2, "customs-nl")],
    );
    let bytes = authority.sign(&r).expect("signs");
    assert_eq!(
        SignedRoster::verify(&bytes, &[authority.id()]),
        Ok(r.clone())
    );
    assert_eq!(
        SignedRoster::verify(&bytes, &[other.id()]),
        Err(Rejection::UnknownAuthority(authority.id()))
    );
    // Any changed byte of the body breaks the signature or the encoding.
    let mut tampered = bytes.clone();
    let at = tampered.len() - 64 - 5;
    tampered[at] ^= 1;
    assert!(SignedRoster::verify(&tampered, &[authority.id()]).is_err());
    // Signed by another key than the one it names.
    let forged = sign_unchecked([0x20; 32], &r);
    assert_eq!(
        SignedRoster::verify(&forged, &[authority.id()]),
        Err(Rejection::BadSignature("roster"))
    );
    // The authority's own tool refuses to sign a roster naming another authority.
    assert!(other.sign(&r).is_err());
}

#[test]
fn every_roster_rule_is_enforced() {
    let authority = AuthorityKey::from_seed(&[0x10; 32]);
    let seed = [0x10; 32];
    let base = roster(
        &authority,
        1,
        vec![entry(1, "rilo-wca"), entry(2, "customs-nl")],
    );
    type Breaker = fn(&mut Roster);
    let cases: Vec<(&str, Breaker)> = vec![
        ("version 0", |r| r.version = 0),
        ("validity ends first", |r| r.valid_until = Timestamp(T0 - 1)),
        ("empty federation", |r| r.federation.clear()),
        ("control in federation", |r| {
            r.federation = "WCO\u{1b}[2J".into()
        }),
        ("unsorted", |r| r.entries.reverse()),
        ("duplicate node", |r| {
            let first = r.entries[0].clone();
            r.entries.insert(0, first);
        }),
        ("duplicate name", |r| {
            let name = r.entries[0].name.clone();
            r.entries[1].name = name;
        }),
        ("bad name", |r| r.entries[0].name = "Customs NL".into()),
        ("bad country", |r| r.entries[0].country = "nl".into()),
        ("empty organisation", |r| r.entries[0].organisation.clear()),
        ("bad address", |r| {
            r.entries[0].addresses = vec!["customs:0".into()]
        }),
        ("too many addresses", |r| {
            r.entries[0].addresses = vec!["a.example:1".into(); 5];
        }),
        ("entry and revoked", |r| {
            r.revocations = vec![Revocation {
                node: r.entries[0].node,
                at: Timestamp(T0),
                reason: String::new(),
            }];
        }),
        ("unsorted revocations", |r| {
            let mut revs = vec![
                Revocation {
                    node: node(7),
                    at: Timestamp(T0),
                    reason: "a".into(),
                },
                Revocation {
                    node: node(8),
                    at: Timestamp(T0),
                    reason: "b".into(),
                },
            ];
            revs.sort_by_key(|x| std::cmp::Reverse(x.node));
            r.revocations = revs;
        }),
        ("reason with a newline", |r| {
            r.revocations = vec![Revocation {
                node: node(7),
                at: Timestamp(T0),
                reason: "left\nthe federation".into(),
            }];
        }),
    ];
    for (what, breaker) in cases {
        let mut r = base.clone();
        breaker(&mut r);
        assert!(authority.sign(&r).is_err(), "{what}: signed");
        let bytes = sign_unchecked(seed, &r);
        assert!(
            matches!(
                SignedRoster::verify(&bytes, &[authority.id()]),
                Err(Rejection::InvalidRoster(_))
            ),
            "{what}: accepted"
        );
    }
    // Trailing bytes, a wrong version byte and an oversized input never decode.
    let good = authority.sign(&base).expect("signs");
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(SignedRoster::verify(&trailing, &[authority.id()]).is_err());
    let mut version = good.clone();
    version[0] = 2;
    assert!(SignedRoster::verify(&version, &[authority.id()]).is_err());
    assert!(SignedRoster::verify(&vec![1; codec::MAX_ROSTER_LEN + 1], &[authority.id()]).is_err());
}

#[test]
fn only_newer_rosters_take_effect_and_revocations_stay() {
    let authority = AuthorityKey::from_seed(&[0x10; 32]);
    let mut fed = Federation::new(vec![authority.id()]);
    let v1 = authority
        .sign(&roster(
            &authority,
            1,
            vec![entry(1, "rilo-wca"), entry(2, "customs-nl")],
        ))
        .expect("signs");
    let mut r2 = roster(
        &authority,
        2,
        vec![entry(1, "rilo-wca"), entry(3, "police-be")],
    );
    r2.revocations = vec![Revocation {
        node: node(2),
        at: Timestamp(T0 + DAY),
        reason: "left the federation".into(),
    }];
    let v2 = authority.sign(&r2).expect("signs");
    let v3 = authority
        .sign(&roster(
            &authority,
            3,
            vec![entry(1, "rilo-wca"), entry(3, "police-be")],
        ))
        .expect("signs");

    assert!(matches!(
        fed.take_roster(&v1),
        Ok(RosterUpdate::New {
            version: 1,
            previous: None,
            ..
        })
    ));
    assert_eq!(fed.take_roster(&v1), Ok(RosterUpdate::Known));
    match fed.take_roster(&v2) {
        Ok(RosterUpdate::New {
            version: 2,
            previous: Some(1),
            revoked,
            joined,
            left,
        }) => {
            assert_eq!(revoked, vec![node(2)]);
            assert_eq!(joined, vec![node(3)]);
            assert_eq!(left, vec![node(2)]);
        }
        other => panic!("{other:?}"),
    }
    // An older roster is refused without error; the newer stays in force.
    assert_eq!(
        fed.take_roster(&v1),
        Ok(RosterUpdate::Older {
            offered: 1,
            held: 2
        })
    );
    // Another roster under a version in force: the authority equivocated.
    let mut other2 = roster(&authority, 2, vec![entry(1, "rilo-wca")]);
    other2.federation = "WCO Europe (b)".into();
    assert!(matches!(
        fed.take_roster(&authority.sign(&other2).expect("signs")),
        Err(Rejection::ConflictingRoster { version: 2, .. })
    ));
    // Version 3 leaves the revocation out: it stays.
    assert!(fed.take_roster(&v3).is_ok());
    let now = Timestamp(T0 + 2 * DAY);
    assert!(matches!(
        fed.admission(&node(2), now, DAY),
        Admission::Revoked(Revocation { at, .. }) if at == Timestamp(T0 + DAY)
    ));
    assert!(matches!(
        fed.admission(&node(3), now, DAY),
        Admission::Member { .. }
    ));
    assert_eq!(fed.admission(&node(9), now, DAY), Admission::Unknown);
    // A roster of an authority not trusted here changes nothing.
    let stranger = AuthorityKey::from_seed(&[0x30; 32]);
    let foreign = stranger
        .sign(&roster(&stranger, 9, vec![entry(9, "rilo-wca")]))
        .expect("signs");
    assert!(matches!(
        fed.take_roster(&foreign),
        Err(Rejection::UnknownAuthority(_))
    ));
    assert_eq!(fed.resolve_name("rilo-wca"), Ok(Some(node(1))));
}

#[test]
fn an_expired_roster_stops_admitting_after_the_grace_period() {
    let authority = AuthorityKey::from_seed(&[0x10; 32]);
    let mut fed = Federation::new(vec![authority.id()]);
    let r = roster(&authority, 1, vec![entry(1, "rilo-wca")]);
    let until = r.valid_until;
    fed.take_roster(&authority.sign(&r).expect("signs"))
        .expect("takes");
    let grace = DAY;
    assert!(matches!(
        fed.admission(&node(1), until, grace),
        Admission::Member { .. }
    ));
    assert!(matches!(
        fed.admission(&node(1), until.plus_millis(grace), grace),
        Admission::Member { .. }
    ));
    assert_eq!(
        fed.admission(&node(1), until.plus_millis(grace + 1), grace),
        Admission::Expired { valid_until: until }
    );
    // Names still resolve: an expired roster keeps naming, it only stops admitting.
    assert_eq!(fed.resolve_name("rilo-wca"), Ok(Some(node(1))));
    assert_eq!(fed.valid_until(), Some(until));
}

#[test]
fn names_resolve_only_when_unambiguous_across_rosters() {
    let wco = AuthorityKey::from_seed(&[0x10; 32]);
    let rilo = AuthorityKey::from_seed(&[0x11; 32]);
    let mut fed = Federation::new(vec![wco.id(), rilo.id()]);
    fed.take_roster(
        &wco.sign(&roster(
            &wco,
            1,
            vec![entry(1, "rilo-wca"), entry(2, "customs-nl")],
        ))
        .expect("signs"),
    )
    .expect("takes");
    fed.take_roster(
        &rilo
            .sign(&roster(
                &rilo,
                1,
                vec![entry(1, "rilo-wca"), entry(3, "customs-nl")],
            ))
            .expect("signs"),
    )
    .expect("takes");
    assert_eq!(fed.resolve_name("rilo-wca"), Ok(Some(node(1))));
    assert!(fed.resolve_name("customs-nl").is_err());
    assert_eq!(fed.resolve_name("nobody"), Ok(None));
    let names = fed.names();
    assert_eq!(names.get("rilo-wca"), Some(&node(1)));
    assert_eq!(names.get("customs-nl"), None);
}

#[test]
fn rotation_statements_move_a_node_and_conflicts_are_refused() {
    let authority = AuthorityKey::from_seed(&[0x10; 32]);
    let mut fed = Federation::new(vec![authority.id()]);
    fed.take_roster(
        &authority
            .sign(&roster(
                &authority,
                1,
                vec![entry(1, "rilo-wca"), entry(2, "customs-nl")],
            ))
            .expect("signs"),
    )
    .expect("takes");
    let old = IdentityKey::from_seed(&[2; 32]);
    let new = IdentityKey::from_seed(&[0x42; 32]);
    let other = IdentityKey::from_seed(&[0x43; 32]);
    let x = ExchangeSecret::from_seed(&[0x44; 32]).public();
    let rotation = Rotation {
        old: old.node_id(),
        new: new.node_id(),
        exchange_key: x,
        at: Timestamp(T0 + DAY),
    };
    let bytes = rotation.sign(&old, &new).expect("signs");
    // Both keys must sign.
    assert!(rotation.sign(&old, &other).is_err());
    let mut forged = bytes.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        Rotation::verify(&forged),
        Err(Rejection::BadSignature("rotation"))
    );
    assert_eq!(
        fed.take_rotation(&bytes),
        Ok(RotationUpdate::New(rotation.clone()))
    );
    assert_eq!(fed.take_rotation(&bytes), Ok(RotationUpdate::Known));
    let now = Timestamp(T0 + 2 * DAY);
    assert_eq!(
        fed.admission(&old.node_id(), now, 0),
        Admission::Rotated { new: new.node_id() }
    );
    // The new key inherits the entry until a roster names it; names follow.
    match fed.admission(&new.node_id(), now, 0) {
        Admission::Member { entry, .. } => assert_eq!(entry.name, "customs-nl"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fed.resolve_name("customs-nl"), Ok(Some(new.node_id())));
    assert_eq!(fed.exchange_key(&new.node_id()), Some(x));
    // A second rotation of the same key elsewhere is refused.
    let conflicting = Rotation {
        new: other.node_id(),
        ..rotation.clone()
    }
    .sign(&old, &other)
    .expect("signs");
    assert_eq!(
        fed.take_rotation(&conflicting),
        Err(Rejection::ConflictingRotation(old.node_id()))
    );
    // Exchange key rotations: the latest holds.
    let n = IdentityKey::from_seed(&[1; 32]);
    let ex = |at: u64, seed: u8| {
        Rotation {
            old: n.node_id(),
            new: n.node_id(),
            exchange_key: ExchangeSecret::from_seed(&[seed; 32]).public(),
            at: Timestamp(at),
        }
        .sign(&n, &n)
        .expect("signs")
    };
    assert!(matches!(
        fed.take_rotation(&ex(T0 + 5, 0x50)),
        Ok(RotationUpdate::New(_))
    ));
    assert_eq!(
        fed.take_rotation(&ex(T0 + 4, 0x51)),
        Ok(RotationUpdate::Known)
    );
    assert!(matches!(
        fed.take_rotation(&ex(T0 + 6, 0x52)),
        Ok(RotationUpdate::New(_))
    ));
    assert_eq!(
        fed.exchange_key(&n.node_id()),
        Some(ExchangeSecret::from_seed(&[0x52; 32]).public())
    );
}

#[test]
fn a_revoked_key_cannot_rotate_away() {
    let authority = AuthorityKey::from_seed(&[0x10; 32]);
    let mut fed = Federation::new(vec![authority.id()]);
    let mut r = roster(&authority, 1, vec![entry(1, "rilo-wca")]);
    r.revocations = vec![Revocation {
        node: node(2),
        at: Timestamp(T0),
        reason: "compromised".into(),
    }];
    fed.take_roster(&authority.sign(&r).expect("signs"))
        .expect("takes");
    let old = IdentityKey::from_seed(&[2; 32]);
    let new = IdentityKey::from_seed(&[0x42; 32]);
    let bytes = Rotation {
        old: old.node_id(),
        new: new.node_id(),
        exchange_key: ExchangeSecret::from_seed(&[3; 32]).public(),
        at: Timestamp(T0 + 1),
    }
    .sign(&old, &new)
    .expect("signs");
    assert_eq!(
        fed.take_rotation(&bytes),
        Err(Rejection::Revoked(old.node_id()))
    );
    assert_eq!(
        fed.admission(&new.node_id(), Timestamp(T0), 0),
        Admission::Unknown
    );
}

fn content(text: &str) -> Content {
    Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: text.into(),
            body: text.into(),
        },
    }
}

#[test]
fn a_group_follows_a_rotated_member_and_a_rotated_owner() {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let owner = IdentityKey::from_seed(&[1; 32]);
    let owner_x = ExchangeSecret::from_seed(&[2; 32]);
    let member = IdentityKey::from_seed(&[3; 32]);
    let member_x = ExchangeSecret::from_seed(&[4; 32]);
    let gid = GroupId::from([7; 16]);
    let genesis = GroupState::create(
        &owner,
        "rilo-wca",
        owner_x.public(),
        gid,
        "ops",
        Timestamp(T0),
        &mut rng,
    )
    .expect("creates");
    let owner_keys = LocalKeys {
        node: owner.node_id(),
        exchange: &owner_x,
    };
    let mut state = GroupState::from_genesis(&genesis, Some(owner_keys)).expect("genesis");
    let add = state
        .propose(
            &owner,
            Change::Add {
                member: member.node_id(),
                name: "customs-nl".into(),
                role: Role::Member,
                exchange_key: member_x.public(),
            },
            Timestamp(T0 + 1),
            &mut rng,
        )
        .expect("proposes");
    state.apply(&add, Some(owner_keys)).expect("applies");
    let mut events = vec![genesis, add];
    let mut member_state = GroupState::from_genesis(
        &events[0],
        Some(LocalKeys {
            node: member.node_id(),
            exchange: &member_x,
        }),
    )
    .expect("genesis");
    member_state
        .apply(
            &events[1],
            Some(LocalKeys {
                node: member.node_id(),
                exchange: &member_x,
            }),
        )
        .expect("applies");
    let before = message::seal(
        &member_state,
        &member,
        Draft {
            seq: 1,
            now: Timestamp(T0 + 2),
            handling: Handling::Green,
            expires_at: None,
            content: &content("before"),
        },
        &mut rng,
    )
    .expect("seals");

    // The member rotates both keys; the owner moves it.
    let new_member = IdentityKey::from_seed(&[0x33; 32]);
    let new_member_x = ExchangeSecret::from_seed(&[0x34; 32]);
    let rekey = Change::Rekey {
        member: member.node_id(),
        node: new_member.node_id(),
        exchange_key: new_member_x.public(),
    };
    // Only the owner may, and only onto a non-member.
    assert!(state
        .propose(&member, rekey.clone(), Timestamp(T0 + 3), &mut rng)
        .is_err());
    assert!(state
        .propose(
            &owner,
            Change::Rekey {
                member: member.node_id(),
                node: owner.node_id(),
                exchange_key: new_member_x.public(),
            },
            Timestamp(T0 + 3),
            &mut rng
        )
        .is_err());
    let e3 = state
        .propose(&owner, rekey, Timestamp(T0 + 3), &mut rng)
        .expect("proposes");
    state.apply(&e3, Some(owner_keys)).expect("applies");
    events.push(e3);
    let m = &state.members()[&new_member.node_id()];
    assert_eq!((m.name.as_str(), m.role), ("customs-nl", Role::Member));
    assert!(!state.members().contains_key(&member.node_id()));

    // The rotated node, replaying the chain with its new and old keys, reads every epoch.
    let keyring = [
        LocalKeys {
            node: new_member.node_id(),
            exchange: &new_member_x,
        },
        LocalKeys {
            node: member.node_id(),
            exchange: &member_x,
        },
    ];
    let mut rotated = GroupState::from_genesis_with(&events[0], &keyring).expect("genesis");
    for e in &events[1..] {
        rotated.apply_with(e, &keyring).expect("applies");
    }
    assert!(rotated.epoch_key(2).is_some() && rotated.epoch_key(3).is_some());
    let (_, opened) = message::verify_and_open(&before.bytes, &rotated).expect("opens");
    assert_eq!(opened, content("before"));
    let after = message::seal(
        &rotated,
        &new_member,
        Draft {
            seq: 1,
            now: Timestamp(T0 + 4),
            handling: Handling::Green,
            expires_at: None,
            content: &content("after"),
        },
        &mut rng,
    )
    .expect("the new key posts");
    assert!(message::verify_and_open(&after.bytes, &state).is_ok());
    // The old key can no longer post into the current epoch.
    assert!(message::seal(
        &rotated,
        &member,
        Draft {
            seq: 2,
            now: Timestamp(T0 + 4),
            handling: Handling::Green,
            expires_at: None,
            content: &content("old key"),
        },
        &mut rng,
    )
    .is_err());

    // The owner rotates: its old key signs the move, its new key everything after.
    let new_owner = IdentityKey::from_seed(&[0x11; 32]);
    let new_owner_x = ExchangeSecret::from_seed(&[0x12; 32]);
    let e4 = state
        .propose(
            &owner,
            Change::Rekey {
                member: owner.node_id(),
                node: new_owner.node_id(),
                exchange_key: new_owner_x.public(),
            },
            Timestamp(T0 + 5),
            &mut rng,
        )
        .expect("proposes");
    state.apply(&e4, Some(owner_keys)).expect("applies");
    assert_eq!(state.owner(), new_owner.node_id());
    assert!(state
        .propose(&owner, Change::Rotate, Timestamp(T0 + 6), &mut rng)
        .is_err());
    let e5 = state
        .propose(&new_owner, Change::Rotate, Timestamp(T0 + 6), &mut rng)
        .expect("the new owner proposes");
    // The same event signed by the old owner key is refused.
    let mut stale = state.clone();
    let (signed, _) = liaison_protocol::group::decode_control(&e5).expect("decodes");
    let mut input = b"liaison/v1/control\0".to_vec();
    input.extend_from_slice(&signed.body);
    let forged = codec::encode(&liaison_protocol::group::SignedControl {
        body: signed.body.clone(),
        signature: SigningKey::from_bytes(&[1; 32]).sign(&input).to_bytes(),
    })
    .expect("encodes");
    assert_eq!(stale.apply(&forged, None), Err(Rejection::NotOwner(gid)));
    stale
        .apply(&e5, None)
        .expect("the new owner's event applies");
    assert!(message::verify(&before.bytes, &stale).is_ok());
    assert!(message::verify(&after.bytes, &stale).is_ok());
}
