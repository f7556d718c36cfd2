//! Property tests of the attachment transfer (`transfer`): its request and response round-trip
//! to the same bytes and refuse every prefix and extension, no input makes a decoder panic, and
//! a download fed any mix of answers never asks for a chunk it holds or has asked for, and
//! completes once its peers serve.

use std::collections::BTreeSet;

use liaison_protocol::attachment::{chunk_count, AttachmentId, CHUNK_LEN};
use liaison_protocol::transfer::{
    ChunkRequest, ChunkResponse, ChunkSet, Download, DownloadConfig, MAX_RANGE_CHUNKS,
};
use liaison_protocol::{IdentityKey, MessageId, NodeId, Timestamp};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = ChunkRequest> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        0u64..u64::MAX / 2,
        1..=MAX_RANGE_CHUNKS,
    )
        .prop_map(|(a, m, first, count)| ChunkRequest {
            attachment: AttachmentId::from(a),
            message: MessageId::from(m),
            first,
            count,
        })
}

fn response() -> impl Strategy<Value = ChunkResponse> {
    prop_oneof![
        (any::<u64>(), 1..=MAX_RANGE_CHUNKS, any::<u64>()).prop_map(|(first, count, total)| {
            ChunkResponse::Chunks {
                first,
                count,
                total,
            }
        }),
        Just(ChunkResponse::Missing),
        Just(ChunkResponse::Unavailable),
    ]
}

fn peers(n: u8) -> Vec<NodeId> {
    (1..=n)
        .map(|i| IdentityKey::from_seed(&[i; 32]).node_id())
        .collect()
}

/// What a peer does with one request in the simulation.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Sends this many of the chunks asked (at least one).
    Some(u32),
    Missing,
    Unavailable,
    Failed,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => (1u32..=64).prop_map(Answer::Some),
        1 => Just(Answer::Missing),
        1 => Just(Answer::Unavailable),
        1 => Just(Answer::Failed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(r in request()) {
        let bytes = r.to_bytes().expect("encodes");
        prop_assert_eq!(ChunkRequest::decode(&bytes), Ok(r));
        for n in 0..bytes.len() {
            prop_assert!(ChunkRequest::decode(&bytes[..n]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(ChunkRequest::decode(&longer).is_err());
    }

    #[test]
    fn responses_round_trip(r in response()) {
        let bytes = r.to_bytes().expect("encodes");
        prop_assert_eq!(ChunkResponse::decode(&bytes), Ok(r));
        for n in 0..bytes.len() {
            prop_assert!(ChunkResponse::decode(&bytes[..n]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(ChunkResponse::decode(&longer).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(r) = ChunkRequest::decode(&bytes) {
            prop_assert_eq!(r.to_bytes().expect("encodes"), bytes.clone());
        }
        if let Ok(r) = ChunkResponse::decode(&bytes) {
            prop_assert_eq!(r.to_bytes().expect("encodes"), bytes.clone());
        }
        let _ = ChunkSet::from_bytes(bytes.len() as u64 * 8, &bytes);
    }

    #[test]
    fn downloads_never_ask_twice_and_finish(
        chunks in 1u64..200,
        held_at_start in proptest::collection::vec(any::<bool>(), 200),
        range_chunks in 1u32..=64,
        per_peer in 1usize..4,
        in_flight in 1usize..8,
        answers in proptest::collection::vec(answer(), 1..400),
        peer_count in 1u8..4,
    ) {
        let size = chunks * CHUNK_LEN as u64;
        let mut held = ChunkSet::empty(chunk_count(size));
        for (i, h) in held_at_start.iter().take(chunks as usize).enumerate() {
            if *h {
                held.insert(i as u64);
            }
        }
        let config = DownloadConfig {
            range_chunks,
            per_peer,
            in_flight,
            retry_min_ms: 10,
            retry_max_ms: 100,
        };
        let mut d = Download::new(
            AttachmentId::from([1; 32]),
            MessageId::from([2; 32]),
            size,
            held.clone(),
            config,
        )
        .expect("valid");
        let ps = peers(peer_count);
        for p in &ps {
            d.add_peer(*p);
        }
        let mut now = Timestamp(0);
        let mut asked: Vec<(NodeId, ChunkRequest)> = Vec::new();
        let mut answers = answers.into_iter().cycle();
        let mut steps = 0;
        while !d.is_complete() {
            steps += 1;
            prop_assert!(steps < 100_000, "no progress");
            while let Some(ask) = d.poll_request(now) {
                let r = ask.request;
                let range: BTreeSet<u64> = (r.first..r.first + u64::from(r.count)).collect();
                for i in &range {
                    prop_assert!(!held.contains(*i), "asked for held chunk {}", i);
                }
                for (_, other) in &asked {
                    let theirs = other.first..other.first + u64::from(other.count);
                    prop_assert!(!range.iter().any(|i| theirs.contains(i)), "overlapping asks");
                }
                prop_assert!(r.count <= range_chunks && r.count >= 1);
                prop_assert!(r.first + u64::from(r.count) <= chunks);
                asked.push((ask.peer, r));
                prop_assert!(asked.len() <= in_flight);
            }
            if asked.is_empty() {
                now = d.poll_timeout().expect("a peer to wait for");
                continue;
            }
            // Answer the oldest request; once the scripted answers have had their way for a
            // while, every peer serves in full.
            let (peer, r) = asked.remove(0);
            let a = if steps > 2_000 { Answer::Some(64) } else { answers.next().expect("cycles") };
            match a {
                Answer::Some(n) => {
                    let n = n.min(r.count);
                    for i in r.first..r.first + u64::from(n) {
                        held.insert(i);
                    }
                    d.handle_stored(&peer, r.first, n);
                }
                Answer::Missing => d.handle_missing(now, &peer, r.first),
                Answer::Unavailable => d.handle_unavailable(now, &peer, r.first),
                Answer::Failed => d.handle_failed(now, &peer, r.first),
            }
            prop_assert_eq!(d.held().held(), held.held());
        }
        prop_assert!(held.is_complete());
    }
}
