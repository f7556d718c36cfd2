//! `liaison demo`: a federation of four real nodes on loopback, each with its own data
//! directory, store and QUIC endpoint, driven through the same commands the API serves.
//!
//! A RILO coordinates; two customs administrations are peered only with the RILO; a museum
//! (academia partner) reads the operation group. The transcript shows delivery through the
//! RILO, receipts, that the museum reads but cannot post, and never sees the customs-only group.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use liaison_protocol::group::LocalKeys;
use liaison_protocol::message::MessageId;
use liaison_protocol::{
    ExchangeSecret, GroupId, GroupState, Handling, IdentityKey, Role, Timestamp,
};

use crate::config::Config;
use crate::daemon::RunningNode;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::node::{NodeHandle, Post};
use crate::views::MessageView;

/// How long the demo waits for any one step.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `count` nodes named `names` in fresh directories under `root`, all on loopback with
/// ports chosen by the system. Used by the demo, the benchmark and the tests.
pub async fn start_nodes(
    root: &std::path::Path,
    names: &[&str],
    sync_interval_ms: u64,
) -> Result<Vec<RunningNode>> {
    let mut nodes = Vec::new();
    for name in names {
        let dir = init_node(root, name, sync_interval_ms)?;
        nodes.push(crate::daemon::start(&dir).await?);
    }
    Ok(nodes)
}

/// Creates node `name` in a fresh directory under `root`, on loopback with ports chosen by the
/// system at each start, without starting it.
pub fn init_node(root: &std::path::Path, name: &str, sync_interval_ms: u64) -> Result<DataDir> {
    let dir = DataDir::new(root.join(name));
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::new(name, any, any);
    config.sync.interval_ms = sync_interval_ms;
    config.transport.redial_min_ms = 100;
    config.transport.redial_max_ms = 2_000;
    dir.init(&config, &mut rand_core::OsRng)?;
    Ok(dir)
}

/// A fresh identity and the state of a group it just created alone, as the owner sees it
/// (epoch key included): for sealing messages without a node.
pub fn solo_group(gid: GroupId) -> Result<(IdentityKey, GroupState)> {
    let identity = IdentityKey::generate(&mut rand_core::OsRng);
    let exchange = ExchangeSecret::generate(&mut rand_core::OsRng);
    let genesis = GroupState::create(
        &identity,
        "bench",
        exchange.public(),
        gid,
        "bench",
        Timestamp(1),
        &mut rand_core::OsRng,
    )?;
    let local = LocalKeys {
        node: identity.node_id(),
        exchange: &exchange,
    };
    let state = GroupState::from_genesis(&genesis, Some(local))?;
    Ok((identity, state))
}

/// Pins `a` and `b` to each other.
pub async fn peer(a: &RunningNode, b: &RunningNode) -> Result<()> {
    for (x, y) in [(a, b), (b, a)] {
        let (name, node, address) = (y.name.clone(), y.node_id, y.quic_addr.to_string());
        x.handle.as_admin().add_peer(name, node, address).await?;
    }
    Ok(())
}

/// Polls `check` until it is true or `STEP_TIMEOUT` passes.
pub async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(());
        }
        if start.elapsed() > STEP_TIMEOUT {
            return Err(Error::Invalid(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `node`'s peer `name` is connected and has sent its descriptor.
pub async fn peer_ready(node: &NodeHandle, name: &str) -> bool {
    match node.as_admin().peers().await {
        Ok(peers) => peers
            .iter()
            .any(|p| p.name == name && p.state == "connected" && p.descriptor_name.is_some()),
        Err(_) => false,
    }
}

/// Whether `node` holds message `id`.
pub async fn holds(node: &NodeHandle, id: MessageId) -> bool {
    node.as_admin().read(id).await.is_ok()
}

/// Whether `node` knows group `group`.
pub async fn knows_group(node: &NodeHandle, group: GroupId) -> bool {
    node.as_admin().group(group.to_string()).await.is_ok()
}

/// Creates a group on `owner` and adds members.
pub async fn create_group(
    owner: &RunningNode,
    name: &str,
    members: &[(&RunningNode, Role)],
) -> Result<GroupId> {
    let members: Vec<(&str, Role)> = members.iter().map(|(m, r)| (m.name.as_str(), *r)).collect();
    create_group_of(&owner.handle, name, &members).await
}

/// Creates a group on `owner` and adds members, named as `owner` knows its peers.
pub async fn create_group_of(
    owner: &NodeHandle,
    name: &str,
    members: &[(&str, Role)],
) -> Result<GroupId> {
    let name = name.to_owned();
    let gid = owner.as_admin().create_group(name).await?;
    for (peer, role) in members {
        let (group, peer, role) = (gid.to_string(), (*peer).to_owned(), *role);
        owner.as_admin().add_member(group, peer, role).await?;
    }
    Ok(gid)
}

/// Posts a text message as `officer`.
pub async fn post(
    node: &RunningNode,
    group: GroupId,
    officer: &str,
    subject: &str,
    body: &str,
    handling: Handling,
) -> Result<MessageId> {
    let post = Post {
        officer: officer.to_owned(),
        recipients: Vec::new(),
        subject: subject.to_owned(),
        body: body.to_owned(),
        record: None,
        handling,
        reply_to: None,
        attachments: Vec::new(),
    };
    node.handle.as_admin().post(group.to_string(), post).await
}

/// The password of every demo officer.
pub const DEMO_PASSWORD: &str = "liaison-demo-2026";

/// Makes one officer per demo node with a web password and grants for every group the node
/// holds (post where the node is a member, read where it is a reader); the RILO's officer is
/// also an operator. Returns one line per node: name, URL, officer and password.
pub async fn demo_officers(nodes: &[RunningNode]) -> Result<Vec<String>> {
    let officers = [
        ("rilo-wca", "analyst"),
        ("customs-nl", "j.devries"),
        ("customs-be", "m.peeters"),
        ("museum-rmo", "curator"),
    ];
    let mut lines = Vec::new();
    for n in nodes {
        let officer = officers
            .iter()
            .find(|(node, _)| *node == n.name)
            .map_or("officer", |(_, o)| *o);
        let groups = n.handle.as_admin().groups().await?;
        let mut grants = std::collections::BTreeMap::new();
        for g in groups {
            let access = if g.role == "member" {
                crate::accounts::Access::Post
            } else {
                crate::accounts::Access::Read
            };
            if let Ok(id) = g.id.parse::<GroupId>() {
                grants.insert(id, access);
            }
        }
        n.accounts.add(officer, grants).await?;
        n.accounts
            .set_password(officer, DEMO_PASSWORD, false)
            .await?;
        let operator = n.name == "rilo-wca";
        if operator {
            n.accounts
                .update(officer, |a| {
                    a.operator = true;
                    Ok(())
                })
                .await?;
        }
        lines.push(format!(
            "{:<11} {}  officer {} password {}{}",
            n.name,
            n.web_url.as_deref().unwrap_or("(web workspace off)"),
            officer,
            DEMO_PASSWORD,
            if operator { "  (operator)" } else { "" }
        ));
    }
    Ok(lines)
}

struct Transcript {
    failures: usize,
}

impl Transcript {
    fn step(&mut self, ok: bool, text: &str) {
        if ok {
            println!("  ok    {text}");
        } else {
            self.failures += 1;
            println!("  FAIL  {text}");
        }
    }
}

/// Runs the demo; with `exit` it stops after the transcript.
pub async fn run(exit: bool) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("liaison-demo-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary directory", e))?;
    println!("Liaison demo federation in {}", tmp.path().display());
    let names = ["rilo-wca", "customs-nl", "customs-be", "museum-rmo"];
    let nodes = start_nodes(tmp.path(), &names, 1_000).await?;
    let result = script(&nodes).await;
    match &result {
        Ok(0) => println!("\nAll steps succeeded."),
        Ok(n) => println!("\n{n} step(s) failed."),
        Err(e) => println!("\nThe demo stopped: {e}"),
    }
    if result.is_ok() {
        match demo_officers(&nodes).await {
            Ok(lines) => {
                println!("\nWeb workspaces (open in a browser on this machine; log in as shown):");
                for line in lines {
                    println!("  {line}");
                }
            }
            Err(e) => println!("\nThe demo officers could not be made: {e}"),
        }
    }
    if !exit {
        println!("\nThe four nodes keep running. Point the CLI at any of them, for example:");
        for n in &nodes {
            println!(
                "  liaison --data {} inbox",
                tmp.path().join(&n.name).display()
            );
        }
        println!("Press Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    for n in nodes {
        n.shutdown().await?;
    }
    match result {
        Ok(0) => Ok(()),
        Ok(n) => Err(Error::Invalid(format!("{n} demo step(s) failed"))),
        Err(e) => Err(e),
    }
}

async fn script(nodes: &[RunningNode]) -> Result<usize> {
    let [rilo, nl, be, museum] = nodes else {
        return Err(Error::Invalid("the demo needs four nodes".into()));
    };
    let mut t = Transcript { failures: 0 };
    println!(
        "\n1. Peering: every node pins the RILO; the two administrations do not pin each other."
    );
    for n in [nl, be, museum] {
        peer(rilo, n).await?;
    }
    for n in [nl, be, museum] {
        wait_until("peers to connect", || peer_ready(&rilo.handle, &n.name)).await?;
        wait_until("peers to connect", || peer_ready(&n.handle, &rilo.name)).await?;
        t.step(
            true,
            &format!(
                "{} <-> {} connected (QUIC, raw public keys)",
                rilo.name, n.name
            ),
        );
    }

    println!("\n2. The RILO creates the groups.");
    let op = create_group(
        rilo,
        "Operation Heritage 2026",
        &[
            (nl, Role::Member),
            (be, Role::Member),
            (museum, Role::Reader),
        ],
    )
    .await?;
    t.step(
        true,
        &format!(
            "\"Operation Heritage 2026\" {op}: customs-nl, customs-be members; museum-rmo reader"
        ),
    );
    let customs = create_group(
        rilo,
        "Customs only",
        &[(nl, Role::Member), (be, Role::Member)],
    )
    .await?;
    t.step(
        true,
        &format!("\"Customs only\" {customs}: customs-nl, customs-be"),
    );
    for n in [nl, be, museum] {
        wait_until("group to reach members", || knows_group(&n.handle, op)).await?;
    }
    for n in [nl, be] {
        wait_until("group to reach members", || knows_group(&n.handle, customs)).await?;
    }

    println!("\n3. The administrations post.");
    let seizure = post(
        nl,
        op,
        "j.devries",
        "Seizure: Roman bronze statuette, Rotterdam",
        "Container MSCU 123456-7 from Beirut held at Rotterdam; export licence appears forged.",
        Handling::Amber,
    )
    .await?;
    t.step(
        true,
        &format!("customs-nl posted seizure report {}", seizure.short()),
    );
    let rfa = post(
        be,
        customs,
        "m.peeters",
        "Request for assistance: consignee check",
        "Please check consignee 'Antwerp Fine Arts BVBA' against your records.",
        Handling::AmberStrict,
    )
    .await?;
    t.step(
        true,
        &format!("customs-be posted request for assistance {}", rfa.short()),
    );

    println!("\n4. Delivery through the RILO (customs-nl and customs-be are not peered).");
    let ok = wait_until("delivery", || holds(&be.handle, seizure))
        .await
        .is_ok();
    t.step(ok, "customs-be holds the seizure report from customs-nl");
    let ok = wait_until("delivery", || holds(&nl.handle, rfa))
        .await
        .is_ok();
    t.step(
        ok,
        "customs-nl holds the request for assistance from customs-be",
    );
    let ok = wait_until("delivery", || holds(&museum.handle, seizure))
        .await
        .is_ok();
    t.step(
        ok,
        "museum-rmo holds the seizure report (reader of the operation group)",
    );
    let read: Result<MessageView> = museum.handle.as_admin().read(seizure).await;
    if let Ok(m) = &read {
        println!(
            "        museum-rmo reads: [{}] {} — \"{}\"",
            m.author_name,
            m.subject,
            m.body.as_deref().unwrap_or("")
        );
    }
    t.step(read.is_ok(), "museum-rmo decrypts and reads it");

    println!("\n5. Receipts.");
    let receipts_ok = wait_until("receipts", || async {
        match nl.handle.as_admin().receipts(seizure).await {
            Ok(r) => r.len() >= 3,
            _ => false,
        }
    })
    .await
    .is_ok();
    if let Ok(r) = nl.handle.as_admin().receipts(seizure).await {
        for x in r {
            println!(
                "        receipt from {} at {}",
                x.receiver_name, x.stored_at
            );
        }
    }
    t.step(
        receipts_ok,
        "customs-nl holds signed receipts from the RILO, customs-be and the museum",
    );

    println!("\n6. Access rules.");
    let denied = post(
        museum,
        op,
        "curator",
        "test",
        "a reader tries to post",
        Handling::Green,
    )
    .await;
    t.step(
        matches!(denied, Err(Error::Forbidden(_))),
        &format!(
            "museum-rmo cannot post to the operation group ({})",
            denied
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "it could!".into())
        ),
    );
    let museum_groups = museum.handle.as_admin().groups().await?;
    t.step(
        !museum_groups.iter().any(|g| g.id == customs.to_string()),
        "museum-rmo does not know the customs-only group",
    );
    t.step(
        !holds(&museum.handle, rfa).await,
        "museum-rmo never received the customs-only message",
    );
    Ok(t.failures)
}
