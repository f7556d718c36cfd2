//! An in-process UDP relay that puts a bad network between two nodes: loss (up to 30% and
//! more), delay, reordering, duplication and full partitions, in both directions, with no
//! kernel features (no netem, no namespaces). Every random choice comes from a seeded RNG.
//!
//! ```text
//!  node A ──UDP──▶ relay front (127.0.0.1:port) ──▶ back socket ──UDP──▶ node B
//!  node A ◀──────── relay front ◀──────────────── back socket ◀──────── node B
//! ```
//!
//! A node reaches its peer through a relay by pinning the peer at the relay's address
//! ([`Relay::addr`]). For every client address seen on the front socket the relay opens one back
//! socket towards the target, so the target sees one stable source per client and its answers
//! find their way back. [`Mesh`] wires a set of nodes pairwise through relays, one per direction
//! of dialling, and cuts or heals the links between groups of nodes.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use liaison_node::daemon::RunningNode;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// Most client addresses one relay serves (each gets a back socket).
const MAX_CLIENTS: usize = 16;
/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;

/// What the relay does to each datagram, in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is dropped (0.0 to 1.0).
    pub loss: f64,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Smallest added delay, in milliseconds.
    pub delay_min_ms: u64,
    /// Largest added delay, in milliseconds (jitter between the two reorders datagrams).
    pub delay_max_ms: u64,
    /// Probability that a datagram is held back an extra 5 to 25 ms, so that later ones
    /// overtake it.
    pub reorder: f64,
    /// Drop everything: the link is cut.
    pub partitioned: bool,
}

impl Faults {
    /// A lossy, jittery link: `loss` loss, 1% duplication, 1–8 ms delay, 5% reordering.
    pub fn lossy(loss: f64) -> Faults {
        Faults {
            loss,
            duplicate: 0.01,
            delay_min_ms: 1,
            delay_max_ms: 8,
            reorder: 0.05,
            partitioned: false,
        }
    }
}

/// Datagrams the relay saw, by fate.
#[derive(Debug, Default)]
pub struct Stats {
    /// Forwarded (duplicates counted once).
    pub forwarded: AtomicU64,
    /// Dropped by loss or partition.
    pub dropped: AtomicU64,
    /// Sent a second time.
    pub duplicated: AtomicU64,
    /// Held back to be reordered.
    pub reordered: AtomicU64,
}

struct Shared {
    faults: Mutex<Faults>,
    rng: Mutex<ChaCha8Rng>,
    stats: Stats,
}

impl Shared {
    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A uniform draw in [0, 1).
    fn chance(&self) -> f64 {
        let x = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64();
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let x = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64();
        lo + x % (hi - lo + 1)
    }

    /// Sends `data` from `socket` to `to`, as the faults say.
    async fn deliver(
        self: &Arc<Self>,
        tasks: &Mutex<JoinSet<()>>,
        socket: &Arc<UdpSocket>,
        to: SocketAddr,
        data: Vec<u8>,
    ) {
        let f = self.faults();
        if f.partitioned || (f.loss > 0.0 && self.chance() < f.loss) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if f.duplicate > 0.0 && self.chance() < f.duplicate {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        for _ in 0..copies {
            let mut delay = self.between(f.delay_min_ms, f.delay_max_ms);
            if f.reorder > 0.0 && self.chance() < f.reorder {
                self.stats.reordered.fetch_add(1, Ordering::Relaxed);
                delay += self.between(5, 25);
            }
            if delay == 0 {
                let _ = socket.send_to(&data, to).await;
            } else {
                let (socket, data) = (socket.clone(), data.clone());
                let mut tasks = tasks.lock().unwrap_or_else(PoisonError::into_inner);
                while tasks.try_join_next().is_some() {}
                tasks.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let _ = socket.send_to(&data, to).await;
                });
            }
        }
    }
}

/// One relay in front of one target address.
pub struct Relay {
    front: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    /// Binds a front socket on 127.0.0.1 port 0 that relays to `target`, drawing every random
    /// choice from `seed`.
    pub async fn start(target: SocketAddr, seed: u64) -> Relay {
        let front = Arc::new(
            UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .expect("bind relay"),
        );
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            stats: Stats::default(),
        });
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let addr = front.local_addr().expect("relay address");
        let run = run_front(front, target, shared.clone(), tasks.clone());
        tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(run);
        Relay {
            front: addr,
            target,
            shared,
            tasks,
        }
    }

    /// The address to pin instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.front
    }

    /// The address relayed to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Replaces the faults.
    pub fn set(&self, faults: Faults) {
        *self
            .shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Cuts (`true`) or restores (`false`) the link, keeping the other faults.
    pub fn partition(&self, cut: bool) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .partitioned = cut;
    }

    /// What happened to the datagrams so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
    }
}

async fn run_front(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
) {
    let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            return;
        };
        let back = match backs.get(&client) {
            Some(b) => b.clone(),
            None => {
                if backs.len() >= MAX_CLIENTS {
                    continue;
                }
                let Ok(socket) = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
                else {
                    continue;
                };
                let socket = Arc::new(socket);
                backs.insert(client, socket.clone());
                let run = run_back(
                    socket.clone(),
                    front.clone(),
                    client,
                    shared.clone(),
                    tasks.clone(),
                );
                tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .spawn(run);
                socket
            }
        };
        shared
            .deliver(&tasks, &back, target, buf[..n].to_vec())
            .await;
    }
}

/// Relays the target's answers on one back socket to `client`, through the front socket.
async fn run_back(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, _)) = back.recv_from(&mut buf).await else {
            return;
        };
        shared
            .deliver(&tasks, &front, client, buf[..n].to_vec())
            .await;
    }
}

/// Nodes wired pairwise through relays: node `i` reaches node `j` only through the relay
/// `(i, j)` in front of `j`.
pub struct Mesh {
    relays: BTreeMap<(usize, usize), Relay>,
}

impl Mesh {
    /// Puts a relay on both directions of every pair in `pairs` and pins each node of a pair
    /// on the other at the relay's address. Relay seeds derive from `seed`.
    pub async fn wire(nodes: &[&RunningNode], pairs: &[(usize, usize)], seed: u64) -> Mesh {
        let mut relays = BTreeMap::new();
        for &(a, b) in pairs {
            for (from, to) in [(a, b), (b, a)] {
                let relay_seed = seed ^ ((from as u64) << 32 | to as u64).wrapping_mul(0x9e37_79b9);
                let relay = Relay::start(nodes[to].quic_addr, relay_seed).await;
                crate::nodes::pin(
                    nodes[from],
                    &nodes[to].name,
                    nodes[to].node_id,
                    relay.addr(),
                )
                .await;
                relays.insert((from, to), relay);
            }
        }
        Mesh { relays }
    }

    /// Every pair of `0..n`.
    pub fn full(n: usize) -> Vec<(usize, usize)> {
        (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect()
    }

    /// Sets `faults` on every relay (keeping partitions as they are).
    pub fn set_all(&self, faults: Faults) {
        for relay in self.relays.values() {
            let cut = relay.shared.faults().partitioned;
            relay.set(Faults {
                partitioned: cut,
                ..faults
            });
        }
    }

    /// Cuts every link between a node of `a` and a node of `b`, both directions.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for (&(from, to), relay) in &self.relays {
            let crosses =
                (a.contains(&from) && b.contains(&to)) || (b.contains(&from) && a.contains(&to));
            if crosses {
                relay.partition(true);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for relay in self.relays.values() {
            relay.partition(false);
        }
    }

    /// The relay in front of `to` used by `from`.
    pub fn relay(&self, from: usize, to: usize) -> &Relay {
        &self.relays[&(from, to)]
    }

    /// Datagrams dropped and forwarded by all relays together.
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for r in self.relays.values() {
            let s = r.stats();
            t.0 += s.forwarded.load(Ordering::Relaxed);
            t.1 += s.dropped.load(Ordering::Relaxed);
            t.2 += s.duplicated.load(Ordering::Relaxed);
            t.3 += s.reordered.load(Ordering::Relaxed);
        }
        t
    }
}
