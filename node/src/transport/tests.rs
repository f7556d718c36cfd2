//! Tests of the QUIC transport, over loopback only.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::SigningKey;
use quinn::Connection;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;

use super::tls;
use super::*;

/// Upper bound for steps that must complete promptly; only turns a hang into a failure.
const GUARD: Duration = Duration::from_secs(20);

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn public(key: &SigningKey) -> [u8; 32] {
    key.verifying_key().to_bytes()
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn bind(key: &SigningKey, allow: &AllowList) -> Transport {
    Transport::bind(loopback(), key, allow.clone(), TransportConfig::default()).expect("bind")
}

fn addr(transport: &Transport) -> SocketAddr {
    transport.local_addr().expect("local address")
}

/// Dials `server` (whose key is `server_key`) from `client` and accepts on `server`; returns the
/// dialler's connection, the listener's connection and the key the listener saw.
async fn connect_pair(
    client: &Transport,
    server: &Transport,
    server_key: [u8; 32],
) -> (Connection, Connection, [u8; 32]) {
    let (dialled, accepted) =
        tokio::join!(client.connect(addr(server), server_key), server.accept());
    let dialled = dialled.expect("connect");
    let (accepted, key) = accepted.expect("accept");
    (dialled, accepted, key)
}

#[tokio::test]
async fn mutual_peers_exchange_frames_both_ways() {
    let (a, b) = (signing_key(1), signing_key(2));
    let (allow_a, allow_b) = (AllowList::new(), AllowList::new());
    allow_a.insert(public(&b));
    allow_b.insert(public(&a));
    let ta = bind(&a, &allow_a);
    let tb = bind(&b, &allow_b);

    let (conn_a, conn_b, seen_by_b) = connect_pair(&ta, &tb, public(&b)).await;
    assert_eq!(seen_by_b, public(&a));
    assert_eq!(peer_key(&conn_b), Some(public(&a)));
    assert_eq!(peer_key(&conn_a), Some(public(&b)));

    // Bidirectional stream: requests one way, replies the other.
    let (mut send_a, mut recv_a) = conn_a.open_bi().await.expect("open bi");
    for i in 0..5u8 {
        write_frame(&mut send_a, &vec![i; usize::from(i) * 100])
            .await
            .expect("write");
    }
    write_frame(&mut send_a, b"")
        .await
        .expect("write empty frame");
    send_a.finish().expect("finish");

    let (mut send_b, mut recv_b) = conn_b.accept_bi().await.expect("accept bi");
    for i in 0..5u8 {
        let frame = read_frame(&mut recv_b, 1024)
            .await
            .expect("read")
            .expect("frame");
        assert_eq!(frame, vec![i; usize::from(i) * 100]);
        write_frame(&mut send_b, format!("ack {i}").as_bytes())
            .await
            .expect("reply");
    }
    assert_eq!(
        read_frame(&mut recv_b, 1024).await.expect("read"),
        Some(Vec::new())
    );
    assert_eq!(
        read_frame(&mut recv_b, 1024).await.expect("clean end"),
        None
    );
    send_b.finish().expect("finish");

    for i in 0..5u8 {
        let reply = read_frame(&mut recv_a, 1024)
            .await
            .expect("read")
            .expect("frame");
        assert_eq!(reply, format!("ack {i}").as_bytes());
    }
    assert_eq!(
        read_frame(&mut recv_a, 1024).await.expect("clean end"),
        None
    );

    // Unidirectional stream from the listener: the dialler's first accept_uni gets it, not the
    // transport's internal confirmation stream.
    let mut uni = conn_b.open_uni().await.expect("open uni");
    write_frame(&mut uni, b"from the listener")
        .await
        .expect("write");
    uni.finish().expect("finish");
    let mut recv = conn_a.accept_uni().await.expect("accept uni");
    let frame = read_frame(&mut recv, 1024).await.expect("read");
    assert_eq!(frame.as_deref(), Some(&b"from the listener"[..]));
    assert_eq!(read_frame(&mut recv, 1024).await.expect("clean end"), None);
}

#[tokio::test]
async fn dialler_not_on_allow_list_is_refused() {
    let (server, good, bad) = (signing_key(10), signing_key(11), signing_key(12));
    let allow = AllowList::new();
    allow.insert(public(&good));
    let ts = bind(&server, &allow);
    let t_good = bind(&good, &AllowList::new());
    let t_bad = bind(&bad, &AllowList::new());

    let err = t_bad
        .connect(addr(&ts), public(&server))
        .await
        .expect_err("a key off the allow-list must be refused");
    assert!(
        matches!(err, TransportError::Refused { .. }),
        "unexpected error: {err}"
    );
    let message = err.to_string();
    assert!(message.contains("allow-list"), "{message}");
    assert!(message.contains(&short_key(&public(&bad))), "{message}");

    // The refused dialler never reached accept: the next accepted connection is the good one.
    let (_dialled, accepted, key) = connect_pair(&t_good, &ts, public(&server)).await;
    assert_eq!(key, public(&good));
    assert_eq!(peer_key(&accepted), Some(public(&good)));
}

#[tokio::test]
async fn dialling_with_wrong_pinned_key_fails() {
    let (server, client, other) = (signing_key(20), signing_key(21), signing_key(22));
    let allow = AllowList::new();
    allow.insert(public(&client));
    let ts = bind(&server, &allow);
    let tc = bind(&client, &AllowList::new());

    let err = tc
        .connect(addr(&ts), public(&other))
        .await
        .expect_err("a different server key must be refused");
    match &err {
        TransportError::KeyMismatch {
            addr: at,
            presented,
            pinned,
        } => {
            assert_eq!(*at, addr(&ts));
            assert_eq!(*presented, short_key(&public(&server)));
            assert_eq!(*pinned, short_key(&public(&other)));
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("was pinned"), "{message}");
    assert!(
        !message.contains(&hex::encode(public(&server))),
        "full key in {message}"
    );

    // The listener did not hand out the aborted connection.
    let (_dialled, _accepted, key) = connect_pair(&tc, &ts, public(&server)).await;
    assert_eq!(key, public(&client));
}

#[tokio::test]
async fn allow_list_changes_apply_to_the_next_handshake() {
    let (server, client, other) = (signing_key(30), signing_key(31), signing_key(32));
    let allow = AllowList::new();
    let ts = bind(&server, &allow);
    let tc = bind(&client, &AllowList::new());
    let to = bind(&other, &AllowList::new());
    let server_addr = addr(&ts);

    assert!(tc.connect(server_addr, public(&server)).await.is_err());

    assert!(allow.insert(public(&client)));
    assert!(allow.contains(&public(&client)));
    let (dialled, _accepted, key) = connect_pair(&tc, &ts, public(&server)).await;
    assert_eq!(key, public(&client));
    dialled.close(0u32.into(), b"done");

    assert!(allow.remove(&public(&client)));
    assert!(!allow.remove(&public(&client)));
    let err = tc
        .connect(server_addr, public(&server))
        .await
        .expect_err("a removed key must be refused again (no session resumption)");
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");

    // Only the allowed peer comes out of accept.
    allow.insert(public(&other));
    let (_dialled, _accepted, key) = connect_pair(&to, &ts, public(&server)).await;
    assert_eq!(key, public(&other));
}

#[tokio::test]
async fn read_frame_rejects_oversized_prefix_before_reading_the_body() {
    let (a, b) = (signing_key(40), signing_key(41));
    let allow_b = AllowList::new();
    allow_b.insert(public(&a));
    let ta = bind(&a, &AllowList::new());
    let tb = bind(&b, &allow_b);
    let (conn_a, conn_b, _) = connect_pair(&ta, &tb, public(&b)).await;

    // Announce a 4 GiB frame, send no body and keep the stream open: reading (or allocating)
    // the body would block, so a prompt error shows the prefix alone was rejected.
    let mut send = conn_a.open_uni().await.expect("open");
    send.write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("write prefix");
    let mut recv = conn_b.accept_uni().await.expect("accept");
    let result = tokio::time::timeout(GUARD, read_frame(&mut recv, 1024))
        .await
        .expect("read_frame must not wait for the body");
    match result {
        Err(FrameError::TooLarge { len, max }) => {
            assert_eq!(len, u64::from(u32::MAX));
            assert_eq!(max, 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // Exactly at the limit is fine; one over is not.
    let mut send = conn_a.open_uni().await.expect("open");
    write_frame(&mut send, &[7; 16]).await.expect("write");
    write_frame(&mut send, &[8; 17]).await.expect("write");
    send.finish().expect("finish");
    let mut recv = conn_b.accept_uni().await.expect("accept");
    assert_eq!(
        read_frame(&mut recv, 16).await.expect("read"),
        Some(vec![7; 16])
    );
    assert!(matches!(
        read_frame(&mut recv, 16).await,
        Err(FrameError::TooLarge { len: 17, max: 16 })
    ));

    // A stream ending inside a prefix or a body is truncated, not a clean end.
    let mut send = conn_a.open_uni().await.expect("open");
    send.write_all(&[0, 0]).await.expect("write");
    send.finish().expect("finish");
    let mut recv = conn_b.accept_uni().await.expect("accept");
    assert!(matches!(
        read_frame(&mut recv, 16).await,
        Err(FrameError::Truncated {
            expected: 4,
            received: 2
        })
    ));
    let mut send = conn_a.open_uni().await.expect("open");
    send.write_all(&10u32.to_be_bytes()).await.expect("write");
    send.write_all(&[1, 2, 3]).await.expect("write");
    send.finish().expect("finish");
    let mut recv = conn_b.accept_uni().await.expect("accept");
    assert!(matches!(
        read_frame(&mut recv, 16).await,
        Err(FrameError::Truncated {
            expected: 10,
            received: 3
        })
    ));
}

/// Extracts the cipher suites and the supported_versions extension of a ClientHello record.
fn parse_client_hello(record: &[u8]) -> (Vec<u16>, Vec<u8>) {
    let be16 = |b: &[u8], at: usize| usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
    assert_eq!(record[0], 0x16, "handshake record");
    let body = &record[5..];
    assert_eq!(body[0], 0x01, "client_hello");
    let mut at = 4 + 2 + 32; // handshake header, legacy_version, random
    at += 1 + usize::from(body[at]); // session id
    let suites_len = be16(body, at);
    let suites = body[at + 2..at + 2 + suites_len]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    at += 2 + suites_len;
    at += 1 + usize::from(body[at]); // compression methods
    let end = at + 2 + be16(body, at);
    at += 2;
    let mut versions = Vec::new();
    while at < end {
        let (kind, len) = (be16(body, at), be16(body, at + 2));
        if kind == 0x002b {
            versions = body[at + 5..at + 4 + len].to_vec();
        }
        at += 4 + len;
    }
    (suites, versions)
}

#[tokio::test]
async fn only_tls13_is_offered_or_accepted() {
    let provider = tls::provider();
    assert!(provider
        .cipher_suites
        .iter()
        .all(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_))));

    // What our dialler offers: TLS 1.3 only, TLS 1.3 suites only.
    let key = signing_key(50);
    let identity = tls::certified_key(&key).expect("identity");
    let verifier = Arc::new(tls::PinnedServerVerifier::new(public(&key), &provider));
    let config = tls::client_config(provider.clone(), identity.clone(), verifier.clone())
        .expect("client config");
    let name = ServerName::try_from(SERVER_NAME).expect("server name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name.clone()).expect("client");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("client hello");
    let (suites, versions) = parse_client_hello(&hello);
    assert_eq!(
        versions,
        vec![0x03, 0x04],
        "supported_versions must be exactly TLS 1.3"
    );
    assert!(!suites.is_empty());
    assert!(
        suites
            .iter()
            .all(|s| (0x1301..=0x13ff).contains(s) || *s == 0x00ff),
        "non-TLS 1.3 suite offered: {suites:04x?}"
    );

    // What our listener accepts: a TLS 1.2-only ClientHello is refused.
    let tls12_client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("TLS 1.2 config")
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    let mut old = rustls::ClientConnection::new(Arc::new(tls12_client), name).expect("client");
    let mut hello = Vec::new();
    old.write_tls(&mut hello).expect("client hello");
    let server_config =
        tls::server_config(provider, identity, AllowList::new()).expect("server config");
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).expect("server");
    server.read_tls(&mut hello.as_slice()).expect("read hello");
    let err = server
        .process_new_packets()
        .expect_err("a TLS 1.2 ClientHello must be refused");
    assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err}");
}

#[tokio::test]
async fn forged_client_signature_is_refused() {
    let (server, victim, attacker) = (signing_key(60), signing_key(61), signing_key(62));
    let allow = AllowList::new();
    allow.insert(public(&victim));
    let ts = bind(&server, &allow);

    // Presents the allowed key but signs the handshake with another one.
    let victim_id = tls::certified_key(&victim).expect("identity");
    let attacker_id = tls::certified_key(&attacker).expect("identity");
    let forged = Arc::new(CertifiedKey::new(
        victim_id.cert.clone(),
        attacker_id.key.clone(),
    ));
    let tf = Transport::bind_with(
        loopback(),
        forged,
        public(&victim),
        AllowList::new(),
        TransportConfig::default(),
    )
    .expect("bind");
    let err = tf
        .connect(addr(&ts), public(&server))
        .await
        .expect_err("a bad CertificateVerify signature must be refused");
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");

    let tv = bind(&victim, &AllowList::new());
    let (_dialled, _accepted, key) = connect_pair(&tv, &ts, public(&server)).await;
    assert_eq!(key, public(&victim));
}

#[tokio::test]
async fn forged_server_signature_is_refused() {
    let (victim, attacker, client) = (signing_key(70), signing_key(71), signing_key(72));
    let allow = AllowList::new();
    allow.insert(public(&client));
    let victim_id = tls::certified_key(&victim).expect("identity");
    let attacker_id = tls::certified_key(&attacker).expect("identity");
    let forged = Arc::new(CertifiedKey::new(
        victim_id.cert.clone(),
        attacker_id.key.clone(),
    ));
    let ts = Transport::bind_with(
        loopback(),
        forged,
        public(&victim),
        allow,
        TransportConfig::default(),
    )
    .expect("bind");
    let tc = bind(&client, &AllowList::new());
    let err = tc
        .connect(addr(&ts), public(&victim))
        .await
        .expect_err("a bad CertificateVerify signature must be refused");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
}

#[test]
fn spki_parsing_is_strict() {
    let key = signing_key(80);
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .expect("spki")
        .into_vec();
    assert_eq!(spki[..12], tls::ED25519_SPKI_PREFIX);
    assert_eq!(tls::parse_ed25519_spki(&spki), Some(public(&key)));

    let mut longer = spki.clone();
    longer.push(0);
    assert_eq!(tls::parse_ed25519_spki(&longer), None);
    assert_eq!(tls::parse_ed25519_spki(&spki[..spki.len() - 1]), None);
    assert_eq!(tls::parse_ed25519_spki(&[]), None);
    let mut x25519 = spki.clone();
    x25519[8] = 0x6e; // OID 1.3.101.110 (X25519)
    assert_eq!(tls::parse_ed25519_spki(&x25519), None);
    let mut unused_bits = spki;
    unused_bits[11] = 1;
    assert_eq!(tls::parse_ed25519_spki(&unused_bits), None);
}

#[test]
fn config_is_validated() {
    let valid = TransportConfig::default();
    assert!(valid.to_quinn().is_ok());
    for bad in [
        TransportConfig {
            max_streams: 0,
            ..valid.clone()
        },
        TransportConfig {
            keep_alive: Duration::from_secs(30),
            ..valid.clone()
        },
        TransportConfig {
            idle_timeout: Duration::ZERO,
            ..valid.clone()
        },
    ] {
        assert!(matches!(
            bad.to_quinn(),
            Err(TransportError::InvalidConfig(_))
        ));
    }
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let err = Transport::bind(
        loopback(),
        &signing_key(90),
        AllowList::new(),
        TransportConfig::default(),
    )
    .expect_err("no runtime");
    assert!(matches!(err, TransportError::NoRuntime));
}

#[tokio::test]
async fn close_ends_accept_and_connect() {
    let (a, b) = (signing_key(100), signing_key(101));
    let allow_b = AllowList::new();
    allow_b.insert(public(&a));
    let ta = bind(&a, &AllowList::new());
    let tb = bind(&b, &allow_b);
    let (conn_a, _conn_b, _) = connect_pair(&ta, &tb, public(&b)).await;

    tb.close();
    assert!(tb.accept().await.is_none());
    let closed = conn_a.closed().await;
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c)
            if c.error_code == VarInt::from_u32(CLOSE_SHUTDOWN)),
        "{closed}"
    );
    tb.wait_idle().await;
    assert!(tb.connect(addr(&ta), public(&a)).await.is_err());
}
