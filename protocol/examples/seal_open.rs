//! Seal a message on one node and open it on another, with the protocol crate alone (no
//! network, no store): two node identities, a group that the first node owns and the second
//! joins, one sealed envelope, and what the receiver checks before it shows the message.
//!
//! ```text
//! cargo run -p liaison-protocol --example seal_open
//! ```
//!
//! The random number generator is seeded so that every run prints the same; a node draws its
//! randomness from the operating system.

use liaison_protocol::group::{Change, LocalKeys};
use liaison_protocol::message::{self, Draft};
use liaison_protocol::{
    Content, ExchangeSecret, GroupId, GroupState, Handling, IdentityKey, Payload, Role, Timestamp,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// 2026-01-01T00:00:00Z in milliseconds.
const T0: u64 = 1_767_225_600_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);

    // Each node has an identity key (its node id) and a key that receives group keys.
    let (rilo, rilo_x) = (
        IdentityKey::generate(&mut rng),
        ExchangeSecret::generate(&mut rng),
    );
    let (customs, customs_x) = (
        IdentityKey::generate(&mut rng),
        ExchangeSecret::generate(&mut rng),
    );
    let rilo_keys = LocalKeys {
        node: rilo.node_id(),
        exchange: &rilo_x,
    };
    let customs_keys = LocalKeys {
        node: customs.node_id(),
        exchange: &customs_x,
    };
    println!("rilo-wca    node {}", rilo.node_id().short());
    println!("customs-nl  node {}", customs.node_id().short());

    // The RILO creates the group (control event 1) and adds the customs node (event 2, a new
    // epoch whose key is wrapped to both members' exchange keys).
    let mut gid = [0; 16];
    rand_chacha::rand_core::RngCore::fill_bytes(&mut rng, &mut gid);
    let genesis = GroupState::create(
        &rilo,
        "rilo-wca",
        rilo_x.public(),
        GroupId::from(gid),
        "Operation Heritage 2026",
        Timestamp(T0),
        &mut rng,
    )?;
    let mut at_rilo = GroupState::from_genesis(&genesis, Some(rilo_keys))?;
    let add = at_rilo.propose(
        &rilo,
        Change::Add {
            member: customs.node_id(),
            name: "customs-nl".into(),
            role: Role::Member,
            exchange_key: customs_x.public(),
        },
        Timestamp(T0 + 1_000),
        &mut rng,
    )?;
    at_rilo.apply(&add, Some(rilo_keys))?;
    println!(
        "group \"{}\" at epoch {}, {} members",
        at_rilo.name(),
        at_rilo.epoch(),
        at_rilo.members().len()
    );

    // The customs node receives the two control events and reaches the same state.
    let mut at_customs = GroupState::from_genesis(&genesis, Some(customs_keys))?;
    at_customs.apply(&add, Some(customs_keys))?;

    // The RILO seals a message: encrypted once for the group, signed by its author.
    let content = Content {
        officer: "analyst".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: "Icons seized at Schiphol".into(),
            body: "Three 18th-century icons in a declared shipment of picture frames.".into(),
        },
    };
    let sealed = message::seal(
        &at_rilo,
        &rilo,
        Draft {
            seq: 1,
            now: Timestamp(T0 + 60_000),
            handling: Handling::Amber,
            expires_at: None,
            content: &content,
        },
        &mut rng,
    )?;
    println!(
        "sealed message {} ({} bytes on the wire)",
        sealed.id.short(),
        sealed.bytes.len()
    );

    // The customs node checks the signature, that the author may post in that epoch, the key
    // commitment, and decrypts.
    let (verified, opened) = message::verify_and_open(&sealed.bytes, &at_customs)?;
    let Payload::Text { subject, body } = &opened.payload else {
        return Err("expected a text message".into());
    };
    println!(
        "opened at customs-nl: {} from {} (officer {}), TLP:{}\n  {subject}\n  {body}",
        verified.id.short(),
        verified.header.author.short(),
        opened.officer,
        verified.header.handling.to_string().to_uppercase(),
    );

    // One flipped bit anywhere, and the receiver refuses the envelope.
    let mut tampered = sealed.bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    match message::verify_and_open(&tampered, &at_customs) {
        Ok(_) => Err("a tampered envelope opened".into()),
        Err(e) => {
            println!("a tampered copy is refused: {e}");
            Ok(())
        }
    }
}
