//! A hostile peer for tests: a node key that a real node has pinned, which completes the QUIC
//! handshake through `liaison_node::transport` like any peer and then sends whatever the test
//! crafts with `liaison_protocol` — malformed frames, forged signatures, messages it may not
//! post, control events it may not sign.
//!
//! The hostile peer refuses every incoming connection (its allow-list is empty), so the only
//! connection between it and the node under test is the one it dials: tests see exactly which
//! frames arrive on it and when the node closes it.

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use hpke::Deserializable;

use liaison_node::clock::now;
use liaison_node::daemon::RunningNode;
use liaison_node::transport::{self, AllowList, Transport, TransportConfig};
use liaison_protocol::codec;
use liaison_protocol::group::{self, ControlEvent, GroupState, LocalKeys, SignedControl};
use liaison_protocol::identity::Descriptor;
use liaison_protocol::message::{
    self, Content, Envelope, Handling, Header, MessageId, Payload, CIPHERTEXT_CONTEXT,
    COMMITMENT_CONTEXT, ENVELOPE_DOMAIN, HEADER_VERSION, MESSAGE_KEY_CONTEXT,
};
use liaison_protocol::{ExchangeSecret, Frame, GroupId, IdentityKey, NodeId, Timestamp};
use quinn::{Connection, ConnectionError, SendStream};
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;

/// Upper bound for one awaited step; only turns a hang into a failure.
const GUARD: Duration = Duration::from_secs(30);

type Kem = hpke::kem::X25519HkdfSha256;

/// A peer that speaks the protocol only as far as the test wants it to.
pub struct Hostile {
    /// Its name in its descriptor.
    pub name: String,
    /// Its identity key.
    pub identity: IdentityKey,
    /// Its X25519 key, to which group owners wrap epoch keys.
    pub exchange: ExchangeSecret,
    transport: Transport,
}

impl Hostile {
    /// Makes fresh keys and binds a QUIC endpoint on 127.0.0.1 port 0 that refuses every
    /// incoming connection. Must run inside a Tokio runtime.
    pub fn new(name: &str) -> Hostile {
        let identity = IdentityKey::generate(&mut OsRng);
        let exchange = ExchangeSecret::generate(&mut OsRng);
        let transport = Transport::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            identity.signing_key(),
            AllowList::new(),
            TransportConfig::default(),
        )
        .expect("bind the hostile peer's endpoint");
        Hostile {
            name: name.to_owned(),
            identity,
            exchange,
            transport,
        }
    }

    /// Its node id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// Its QUIC address.
    pub fn addr(&self) -> SocketAddr {
        self.transport.local_addr().expect("local address")
    }

    /// Its ed25519 signing key, for forging.
    pub fn signing_key(&self) -> &SigningKey {
        self.identity.signing_key()
    }

    /// Its signed descriptor, valid from an hour ago for a day.
    pub fn descriptor(&self) -> Vec<u8> {
        self.descriptor_from(Timestamp(now().0.saturating_sub(3_600_000)))
    }

    /// Its signed descriptor, valid from `valid_from` for a day: what a node whose clock is off
    /// by the difference to now signs when it starts.
    pub fn descriptor_from(&self, valid_from: Timestamp) -> Vec<u8> {
        Descriptor {
            node: self.node_id(),
            name: self.name.clone(),
            addresses: vec![self.addr().to_string()],
            exchange_key: self.exchange.public(),
            valid_from,
            valid_until: valid_from.plus_millis(86_400_000),
        }
        .sign(&self.identity)
        .expect("sign descriptor")
        .to_bytes()
        .expect("encode descriptor")
    }

    /// Dials `target` (which must have pinned this peer), opens the frame stream and starts
    /// collecting the frames the node sends.
    pub async fn connect(&self, target: &RunningNode) -> Session {
        let conn = tokio::time::timeout(
            GUARD,
            self.transport
                .connect(target.quic_addr, *target.node_id.as_bytes()),
        )
        .await
        .expect("handshake in time")
        .expect("the node accepts the pinned hostile peer");
        let send = conn.open_uni().await.expect("open the frame stream");
        let (tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(conn.clone(), tx));
        Session { conn, send, inbox }
    }

    /// Dials `target` and waits until the connection is closed, the way `target` closed it,
    /// or `None` if the handshake itself failed: for a peer the node drops as soon as it
    /// connects.
    pub async fn connect_and_wait_closed(&self, target: &RunningNode) -> Option<ConnectionError> {
        let conn = tokio::time::timeout(
            GUARD,
            self.transport
                .connect(target.quic_addr, *target.node_id.as_bytes()),
        )
        .await
        .expect("handshake in time")
        .ok()?;
        Some(
            tokio::time::timeout(GUARD, conn.closed())
                .await
                .expect("the node closes the connection in time"),
        )
    }

    /// The group as this peer sees it after applying `controls` (event 1 first), holding the
    /// epoch keys wrapped to it.
    pub fn group_state(&self, controls: &[Vec<u8>]) -> GroupState {
        let local = Some(LocalKeys {
            node: self.node_id(),
            exchange: &self.exchange,
        });
        let (first, rest) = controls.split_first().expect("at least event 1");
        let mut state = GroupState::from_genesis(first, local).expect("valid event 1");
        for event in rest {
            state.apply(event, local).expect("valid control event");
        }
        state
    }

    /// The epoch key that control event `control` wrapped to this peer, unwrapped with HPKE
    /// exactly as a member does (RFC 9180 base mode, info = prefix ‖ group ‖ epoch, aad = node
    /// id). `None` if the event wraps no key to it.
    pub fn epoch_key(&self, control: &[u8]) -> Option<[u8; 32]> {
        let (_, event) = group::decode_control(control).ok()?;
        let me = self.node_id();
        let wrapped = event.keys.iter().find(|k| k.member == me)?;
        let sk =
            <Kem as hpke::Kem>::PrivateKey::from_bytes(self.exchange.to_bytes().as_ref()).ok()?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc).ok()?;
        let mut info = group::EPOCH_KEY_INFO.to_vec();
        info.extend_from_slice(event.group.as_bytes());
        info.extend_from_slice(&event.seq.to_be_bytes());
        let plain =
            hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
                &hpke::OpModeR::Base,
                &sk,
                &enc,
                &info,
                &wrapped.ciphertext,
                me.as_bytes(),
            )
            .ok()?;
        plain.as_slice().try_into().ok()
    }
}

/// One connection of a hostile peer to the node under test.
pub struct Session {
    /// The QUIC connection (for opening more streams, or watching it close).
    pub conn: Connection,
    send: SendStream,
    inbox: mpsc::UnboundedReceiver<Frame>,
}

impl Session {
    /// Sends `bytes` as one length-prefixed frame on the frame stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        transport::write_frame(&mut self.send, bytes)
            .await
            .expect("write a frame");
    }

    /// Encodes and sends `frame`.
    pub async fn send(&mut self, frame: &Frame) {
        let bytes = frame.encode().expect("encode frame");
        self.send_raw(&bytes).await;
    }

    /// Writes `bytes` on the frame stream as they are, without a length prefix.
    pub async fn send_unframed(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("write bytes");
    }

    /// Ends the frame stream.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }

    /// Sends the hostile peer's descriptor, as every node does first.
    pub async fn hello(&mut self, hostile: &Hostile) {
        let descriptor = hostile.descriptor();
        self.send(&Frame::Hello { descriptor }).await;
    }

    /// Waits for a frame from the node for which `pred` holds, skipping others.
    pub async fn expect(&mut self, what: &str, mut pred: impl FnMut(&Frame) -> bool) -> Frame {
        let wait = async {
            while let Some(frame) = self.inbox.recv().await {
                if pred(&frame) {
                    return Some(frame);
                }
            }
            None
        };
        match tokio::time::timeout(GUARD, wait).await {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("connection ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }

    /// Forgets the frames received so far.
    pub fn clear(&mut self) {
        while self.inbox.try_recv().is_ok() {}
    }

    /// Asks for every control event of `group` and returns them (the node answers only while
    /// this peer is, or was, a member).
    pub async fn fetch_controls(&mut self, group: GroupId) -> Vec<Vec<u8>> {
        self.send(&Frame::SyncRequest(liaison_protocol::frame::SyncRequest {
            group,
            control_seq: 0,
            vector: Vec::new(),
            ranges: Vec::new(),
            max_bytes: 0,
        }))
        .await;
        match self
            .expect("the group's control events", |f| {
                matches!(f, Frame::SyncResponse(r) if r.group == group && !r.controls.is_empty())
            })
            .await
        {
            Frame::SyncResponse(r) => r.controls,
            _ => unreachable!("filtered above"),
        }
    }

    /// Waits until the node closes the connection and returns why.
    pub async fn closed(&self) -> ConnectionError {
        tokio::time::timeout(GUARD, self.conn.closed())
            .await
            .expect("the node closes the connection in time")
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Closes the connection from this side.
    pub fn close(&self) {
        self.conn.close(0u32.into(), b"bye");
    }
}

/// Reads every frame the node sends on any stream into `tx`.
async fn read_frames(conn: Connection, tx: mpsc::UnboundedSender<Frame>) {
    while let Ok(mut recv) = conn.accept_uni().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(bytes)) = transport::read_frame(&mut recv, codec::MAX_FRAME_LEN).await
            {
                if let Ok(frame) = Frame::decode(&bytes) {
                    if tx.send(frame).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// What to put into a forged envelope.
pub struct Forge<'a> {
    /// The group named in the header.
    pub group: GroupId,
    /// The epoch named in the header.
    pub epoch: u64,
    /// The author named in the header.
    pub author: NodeId,
    /// The sequence number.
    pub seq: u64,
    /// The epoch key to encrypt with; without it the ciphertext and commitment are random
    /// (but the ciphertext hash matches).
    pub key: Option<[u8; 32]>,
    /// Who signs the header (need not be the author).
    pub signer: &'a SigningKey,
    /// The body text.
    pub body: &'a str,
}

/// Builds an envelope exactly as `message::seal` does (WIRE.md), but from whatever the test
/// says: any author, any epoch, any seq, any signer, without asking the group whether the
/// author may post. Returns its id and bytes.
pub fn forge_envelope(f: &Forge<'_>) -> (MessageId, Vec<u8>) {
    forge_envelope_of(
        f,
        Payload::Text {
            subject: "forged".into(),
            body: f.body.to_owned(),
        },
    )
}

/// [`forge_envelope`] with any payload instead of `f.body`: records of a schema this build
/// does not know, records that break the rules.
pub fn forge_envelope_of(f: &Forge<'_>, payload: Payload) -> (MessageId, Vec<u8>) {
    let content = Content {
        officer: "mallory".into(),
        recipients: Vec::new(),
        reply_to: None,
        payload,
    };
    let plain = codec::encode(&content).expect("encode content");
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let mut header = Header {
        version: HEADER_VERSION,
        group: f.group,
        epoch: f.epoch,
        author: f.author,
        seq: f.seq,
        created_at: now(),
        handling: Handling::Green,
        expires_at: None,
        nonce,
        commitment: [0; 32],
        ciphertext_hash: [0; 32],
    };
    let ciphertext = match f.key {
        Some(key) => {
            use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
            let msg_key = derive(
                MESSAGE_KEY_CONTEXT,
                &[
                    &key,
                    &header.nonce,
                    header.group.as_bytes(),
                    &header.epoch.to_be_bytes(),
                    header.author.as_bytes(),
                    &header.seq.to_be_bytes(),
                ],
            );
            header.commitment = derive(COMMITMENT_CONTEXT, &[&msg_key]);
            let pre = bare(&header);
            let aad = &pre[..pre.len() - 32];
            chacha20poly1305::ChaCha20Poly1305::new((&msg_key).into())
                .encrypt((&[0u8; 12]).into(), AeadPayload { msg: &plain, aad })
                .expect("encrypt")
        }
        None => {
            OsRng.fill_bytes(&mut header.commitment);
            let mut junk = vec![0u8; plain.len() + 16];
            OsRng.fill_bytes(&mut junk);
            junk
        }
    };
    header.ciphertext_hash = derive(CIPHERTEXT_CONTEXT, &[&ciphertext]);
    let header_bytes = bare(&header);
    let signature = sign(f.signer, ENVELOPE_DOMAIN, &header_bytes);
    let id = message::message_id(&header_bytes);
    let bytes = codec::encode(&Envelope {
        header: header_bytes,
        signature,
        ciphertext,
    })
    .expect("encode envelope");
    (id, bytes)
}

/// Signs a control event with `signer` (which need not be the group's owner).
pub fn forge_control(signer: &SigningKey, event: &ControlEvent) -> Vec<u8> {
    let body = bare(event);
    let signature = sign(signer, group::CONTROL_DOMAIN, &body);
    codec::encode(&SignedControl { body, signature }).expect("encode control event")
}

/// Re-encodes a decoded envelope with one byte of its signature flipped.
pub fn flip_signature(envelope: &[u8]) -> Vec<u8> {
    let (mut env, _, _) = message::decode(envelope).expect("a valid envelope");
    env.signature[7] ^= 0x40;
    codec::encode(&env).expect("encode envelope")
}

/// The id of an envelope.
pub fn envelope_id(envelope: &[u8]) -> MessageId {
    message::decode(envelope).expect("a valid envelope").2
}

/// An encoding without the version byte: the form signatures and hashes cover (WIRE.md).
fn bare<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = codec::encode(value).expect("encode");
    bytes.remove(0);
    bytes
}

fn sign(key: &SigningKey, domain: &[u8], body: &[u8]) -> [u8; 64] {
    let mut input = domain.to_vec();
    input.extend_from_slice(body);
    key.sign(&input).to_bytes()
}

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}
