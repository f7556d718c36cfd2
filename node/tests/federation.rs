//! Federations set up from a signed roster, as operators do it: the authority makes its key and
//! signs rosters with `liaison authority` (no node running, no network), every node lists the
//! authority's key in `federation.authorities` and takes the roster file with `liaison roster
//! load`; nobody runs `peer add`. Real `liaison run` processes on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{eventually, init, json, liaison, link, ok, succeeded, Daemon, BIN};

/// Runs `liaison authority ARGS...` in `cwd`, with no data directory at all.
fn authority(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .arg("authority")
        .args(args)
        .env_remove("LIAISON_DATA")
        .env_remove("LIAISON_TOKEN")
        .output()
        .expect("run liaison authority")
}

fn authority_ok(cwd: &Path, args: &[&str]) -> String {
    succeeded(authority(cwd, args), args)
}

/// Changes `dir`'s node.toml: `key = value` lines replace the defaults `liaison init` wrote in
/// `[federation]`; a key written `section.key` goes to that section instead.
fn federation_config(dir: &Path, lines: &[(&str, String)]) {
    let path = dir.join("node.toml");
    let text = std::fs::read_to_string(&path).expect("node.toml");
    let placed = |section: &str| -> Vec<(&str, &String)> {
        lines
            .iter()
            .filter_map(|(k, v)| match k.split_once('.') {
                Some((s, key)) if s == section => Some((key, v)),
                None if section == "federation" => Some((*k, v)),
                _ => None,
            })
            .collect()
    };
    let mut out = String::new();
    let mut section = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = name.to_owned();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        if placed(&section).iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if trimmed.starts_with('[') {
            for (k, v) in placed(&section) {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
    }
    assert!(
        out.contains("[federation]"),
        "node.toml has no [federation]"
    );
    std::fs::write(&path, out).expect("write node.toml");
}

/// A node: its data directory and what `liaison id` prints.
struct Member {
    dir: PathBuf,
    name: String,
    id: String,
    address: String,
}

/// Inits a node per name under `root`, trusting `authority_key`, and starts them all.
fn start_nodes(
    root: &Path,
    names: &[&str],
    authority_key: &str,
    extra: impl Fn(&str) -> Vec<(&'static str, String)>,
) -> (Vec<Member>, Vec<Daemon>) {
    let mut members = Vec::new();
    let mut daemons = Vec::new();
    for name in names {
        let dir = root.join(name);
        init(&dir, name);
        let mut lines = vec![("authorities", format!("[\"{authority_key}\"]"))];
        lines.extend(extra(name));
        federation_config(&dir, &lines);
        daemons.push(Daemon::start(&dir));
        members.push(member(&dir));
    }
    (members, daemons)
}

/// A roster file listing `members`, revoking `revoked` (node id, RFC 3339 time, reason).
fn roster_toml(
    version: u64,
    validity: &str,
    members: &[&Member],
    revoked: &[(&str, &str)],
) -> String {
    let mut text = format!("federation = \"WCO Europe\"\nversion = {version}\n{validity}\n");
    for (i, m) in members.iter().enumerate() {
        let kind = ["rilo", "customs", "police", "academia"][i % 4];
        text.push_str(&format!(
            "\n[[node]]\nid = \"{}\"\nname = \"{}\"\norganisation = \"Organisation {i}\"\ncountry = \"NL\"\nkind = \"{kind}\"\naddresses = [\"{}\"]\n",
            m.id, m.name, m.address
        ));
    }
    for (id, at) in revoked {
        text.push_str(&format!(
            "\n[[revoked]]\nid = \"{id}\"\nat = \"{at}\"\nreason = \"key compromised\"\n"
        ));
    }
    text
}

/// Writes and signs a roster; returns the signed file.
fn sign(root: &Path, file: &str, text: &str) -> PathBuf {
    std::fs::write(root.join(file), text).expect("write roster");
    let out = authority_ok(root, &["sign", file]);
    assert!(out.contains("signed WCO Europe"), "{out}");
    root.join(Path::new(file).with_extension("roster"))
}

fn peers(dir: &Path) -> Vec<serde_json::Value> {
    json(dir, &["peer", "list", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The peer `name` on `dir`, as `peer list --json` shows it.
fn peer(dir: &Path, name: &str) -> Option<serde_json::Value> {
    peers(dir).into_iter().find(|p| p["name"] == name)
}

fn connected(dir: &Path) -> usize {
    peers(dir)
        .iter()
        .filter(|p| p["state"] == "connected" && !p["descriptor_name"].is_null())
        .count()
}

fn inbox_ids(dir: &Path) -> Vec<String> {
    json(dir, &["inbox", "--json"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

/// Six nodes, one roster, no `peer add`: every node connects to the five others (one refuses
/// another locally, and those two stay apart), a group is made of roster names, and a message
/// posted by one member reaches the five others.
#[test]
fn six_nodes_set_up_from_one_roster_exchange_a_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    // The authority's tools need no node: no data directory exists at all yet.
    let key = authority_ok(root, &["init"]);
    assert_eq!(key.len(), 64, "authority public key: {key}");
    assert!(root.join("authority.key").exists());
    let again = authority(root, &["init"]);
    assert!(
        !again.status.success(),
        "an authority key is never overwritten"
    );

    let names = [
        "rilo-wca",
        "customs-nl",
        "customs-be",
        "police-fr",
        "museum-de",
        "customs-es",
    ];
    // museum-de refuses police-fr locally, whatever the roster says; police-fr's id is known
    // only once it exists, so the refusal is written and museum-de restarted below.
    let (members, mut daemons) = start_nodes(root, &names, &key, |_| Vec::new());
    let all: Vec<&Member> = members.iter().collect();
    let signed = sign(
        root,
        "europe.toml",
        &roster_toml(1, "valid_for = \"30days\"", &all, &[]),
    );
    let shown = authority_ok(root, &["show", signed.to_str().expect("utf-8")]);
    assert!(shown.contains("WCO Europe version 1"), "{shown}");

    let museum = 4;
    let police = 3;
    daemons.remove(museum).stop();
    federation_config(
        &members[museum].dir,
        &[
            ("authorities", format!("[\"{key}\"]")),
            ("refuse", format!("[\"{}\"]", members[police].id)),
        ],
    );
    daemons.insert(museum, Daemon::start(&members[museum].dir));

    for m in &members {
        let out = ok(&m.dir, &["roster", "load", signed.to_str().expect("utf-8")]);
        assert!(out.contains("version 1 in force"), "{out}");
    }
    for (i, m) in members.iter().enumerate() {
        let want = if i == museum || i == police { 4 } else { 5 };
        eventually(&format!("{} connected to {want} peers", m.name), || {
            (connected(&m.dir) == want).then_some(())
        });
        for p in peers(&m.dir) {
            assert_eq!(p["source"], "roster", "{p}");
        }
    }
    let refused = peer(&members[museum].dir, "police-fr").expect("listed");
    assert!(
        refused["blocked"]
            .as_str()
            .is_some_and(|b| b.contains("refused here")),
        "{refused}"
    );
    assert_ne!(refused["state"], "connected");
    // No pin was made anywhere.
    for m in &members {
        let status = json(&m.dir, &["status", "--json"]);
        assert_eq!(status["rosters"][0]["version"], 1, "{status}");
        assert_eq!(status["rosters"][0]["state"], "valid", "{status}");
    }

    let owner = &members[0];
    let group = ok(&owner.dir, &["group", "create", "Operation Heritage"]);
    for m in &members[1..] {
        ok(
            &owner.dir,
            &["group", "add", &group, &m.name, "--role", "member"],
        );
    }
    for m in &members[1..] {
        eventually(&format!("{} holds the group", m.name), || {
            let groups = json(&m.dir, &["group", "list", "--json"]);
            (groups.as_array().map(Vec::len) == Some(1)).then_some(())
        });
    }
    let author = &members[police];
    let id = ok(
        &author.dir,
        &[
            "send",
            &group,
            "--subject",
            "Seizure",
            "Bronze statuette held at Le Havre",
        ],
    );
    for m in members.iter().filter(|m| m.name != author.name) {
        eventually(&format!("{} receives the message", m.name), || {
            inbox_ids(&m.dir).contains(&id).then_some(())
        });
    }
    let read = json(&members[museum].dir, &["read", &id, "--json"]);
    assert_eq!(read["author_name"], "police-fr");
    assert_eq!(read["body"], "Bronze statuette held at Le Havre");
    for d in daemons {
        d.stop();
    }
}

/// Starts a daemon whose log goes to `log`.
fn start_logged(data: &Path, log: &Path) -> Daemon {
    let file = std::fs::File::create(log).expect("log file");
    let child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("run")
        .env("RUST_LOG", "info")
        .env_remove("LIAISON_DATA")
        .env_remove("LIAISON_TOKEN")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn daemon");
    eventually("daemon API", || {
        liaison(data, &["status"]).status.success().then_some(())
    });
    Daemon {
        child,
        data: data.to_path_buf(),
    }
}

/// A node revoked in a newer roster given to one node only: every node takes the roster from
/// its peers, closes the revoked node's connection and refuses its handshakes; the messages it
/// created from the revocation time on disappear everywhere, those from before stay; the owner
/// removes it from its group; an older roster is refused afterwards. The nodes sync only every
/// ten minutes: none of this waits for a sync round.
#[test]
fn a_revoked_node_is_cut_off_by_every_node_and_its_later_messages_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let key = authority_ok(root, &["init"]);
    let names = ["rilo-wca", "customs-nl", "customs-be", "rogue"];
    let mut members = Vec::new();
    let mut daemons = Vec::new();
    for name in names {
        let dir = root.join(name);
        init(&dir, name);
        federation_config(&dir, &[("authorities", format!("[\"{key}\"]"))]);
        let path = dir.join("node.toml");
        let text = std::fs::read_to_string(&path).expect("node.toml");
        let text = text.replace("interval_ms = 5000", "interval_ms = 600000");
        assert!(text.contains("interval_ms = 600000"), "{text}");
        std::fs::write(&path, text).expect("node.toml");
        daemons.push(Daemon::start(&dir));
        members.push(member(&dir));
    }
    let all: Vec<&Member> = members.iter().collect();
    let v1 = sign(
        root,
        "v1.toml",
        &roster_toml(1, "valid_for = \"30days\"", &all, &[]),
    );
    for m in &members {
        ok(&m.dir, &["roster", "load", v1.to_str().expect("utf-8")]);
    }
    for m in &members {
        eventually(&format!("{} connected to 3 peers", m.name), || {
            (connected(&m.dir) == 3).then_some(())
        });
    }
    let (owner, nl, be, rogue) = (&members[0], &members[1], &members[2], &members[3]);
    let group = ok(&owner.dir, &["group", "create", "Operation Heritage"]);
    for m in [nl, be, rogue] {
        ok(
            &owner.dir,
            &["group", "add", &group, &m.name, "--role", "member"],
        );
    }
    for m in [nl, be, rogue] {
        eventually(&format!("{} holds the group", m.name), || {
            let groups = json(&m.dir, &["group", "list", "--json"]);
            (groups.as_array().map(Vec::len) == Some(1)).then_some(())
        });
    }
    let before = ok(&rogue.dir, &["send", &group, "--subject", "s", "before"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let at_ms = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let after = ok(&rogue.dir, &["send", &group, "--subject", "s", "after"]);
    for m in [owner, nl, be] {
        eventually(&format!("{} holds both messages", m.name), || {
            let ids = inbox_ids(&m.dir);
            (ids.contains(&before) && ids.contains(&after)).then_some(())
        });
    }

    let at = liaison_node::views::rfc3339(at_ms);
    let members3 = [owner, nl, be];
    let v2 = sign(
        root,
        "v2.toml",
        &roster_toml(2, "valid_for = \"30days\"", &members3, &[(&rogue.id, &at)]),
    );
    // Only customs-nl is given the new roster; the others take it from their peers.
    let out = ok(&nl.dir, &["roster", "load", v2.to_str().expect("utf-8")]);
    assert!(out.contains("1 newly revoked"), "{out}");
    for m in members3 {
        // Known only through the roster, it is no peer any more.
        eventually(&format!("{} cuts the rogue off", m.name), || {
            (peer(&m.dir, "rogue").is_none()
                && json(&m.dir, &["status", "--json"])["connected"] == 2)
                .then_some(())
        });
        let shown = json(&m.dir, &["roster", "show", "--json"]);
        assert_eq!(
            shown[0]["revocations"][0]["node_id"],
            rogue.id.as_str(),
            "{shown}"
        );
        eventually(
            &format!("{} drops the message created after the revocation", m.name),
            || {
                let ids = inbox_ids(&m.dir);
                (ids.contains(&before) && !ids.contains(&after)).then_some(())
            },
        );
        assert!(!liaison(&m.dir, &["read", &after]).status.success());
        let status = json(&m.dir, &["status", "--json"]);
        assert_eq!(status["rosters"][0]["version"], 2, "{status}");
    }
    // The owner removed it from the group (a new epoch the others follow), with its cut-off:
    // the rogue's two messages are the last of its that count, whatever its stolen key signs
    // (even dated before the revocation).
    for m in members3 {
        let g = eventually(&format!("{} sees the rogue removed", m.name), || {
            let g = json(&m.dir, &["group", "show", &group, "--json"]);
            let members = g["members"].as_array()?;
            (!members.iter().any(|x| x["node_id"] == rogue.id.as_str())).then_some(g)
        });
        let removed = &g["removed"][0];
        assert_eq!(removed["node_id"], rogue.id.as_str(), "{g}");
        let cutoff = removed["cutoff"]
            .as_array()
            .expect("a removal with a cut-off");
        assert_eq!(cutoff.len(), 1, "{g}");
        assert_eq!(cutoff[0]["last_seq"], 2, "{g}");
    }
    // The rogue keeps dialling and every handshake fails.
    eventually("the rogue connected to nobody, its dials refused", || {
        let list = peers(&rogue.dir);
        (list.len() == 3
            && list
                .iter()
                .all(|p| p["state"] != "connected" && !p["last_error"].is_null()))
        .then_some(())
    });
    for m in members3 {
        assert_eq!(
            json(&m.dir, &["status", "--json"])["connected"],
            2,
            "{} still connected to the rogue",
            m.name
        );
    }

    // An older roster is refused, and changes nothing.
    let refused = liaison(&owner.dir, &["roster", "load", v1.to_str().expect("utf-8")]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("older"), "{err}");
    assert_eq!(
        json(&owner.dir, &["status", "--json"])["rosters"][0]["version"],
        2
    );
    // A roster not signed by a trusted authority is refused too.
    let other = root.join("other");
    std::fs::create_dir(&other).expect("dir");
    authority_ok(&other, &["init"]);
    let forged = sign(
        &other,
        "v9.toml",
        &roster_toml(9, "valid_for = \"30days\"", &all, &[]),
    );
    let refused = liaison(
        &owner.dir,
        &["roster", "load", forged.to_str().expect("utf-8")],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("authority"), "{err}");
    // A roster whose bytes were changed after signing is refused.
    let mut bytes = std::fs::read(&v2).expect("v2");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = root.join("tampered.roster");
    std::fs::write(&tampered, bytes).expect("write");
    assert!(!liaison(
        &owner.dir,
        &["roster", "load", tampered.to_str().expect("utf-8")]
    )
    .status
    .success());
    for d in daemons {
        d.stop();
    }
}

/// A roster past its `valid_until` keeps established connections but admits no new one once
/// the grace period is over, and says so in the log and the status; a pin still admits.
#[test]
fn an_expired_roster_is_warned_about_and_stops_admitting_after_the_grace() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let key = authority_ok(root, &["init"]);
    let mut members = Vec::new();
    let mut daemons = Vec::new();
    for name in ["customs-nl", "customs-be"] {
        let dir = root.join(name);
        init(&dir, name);
        federation_config(
            &dir,
            &[
                ("authorities", format!("[\"{key}\"]")),
                ("expiry_grace_ms", "1000".into()),
            ],
        );
        daemons.push(start_logged(&dir, &root.join(format!("{name}.log"))));
        members.push(member(&dir));
    }
    let all: Vec<&Member> = members.iter().collect();
    // Valid for a few more seconds: the nodes connect while it is valid.
    let until = liaison_node::views::rfc3339(now_ms() + 15_000);
    let signed = sign(
        root,
        "short.toml",
        &roster_toml(1, &format!("valid_until = \"{until}\""), &all, &[]),
    );
    for m in &members {
        ok(&m.dir, &["roster", "load", signed.to_str().expect("utf-8")]);
    }
    for m in &members {
        eventually(&format!("{} connected", m.name), || {
            (connected(&m.dir) == 1).then_some(())
        });
        let status = json(&m.dir, &["status", "--json"]);
        assert_eq!(status["rosters"][0]["state"], "expiring", "{status}");
        assert!(
            status["roster_warning"]
                .as_str()
                .is_some_and(|w| w.contains("expires")),
            "{status}"
        );
    }
    let (nl, be) = (&members[0], &members[1]);
    eventually("the roster expired past its grace on customs-nl", || {
        let status = json(&nl.dir, &["status", "--json"]);
        (status["rosters"][0]["state"] == "expired").then_some(())
    });
    let status = json(&nl.dir, &["status", "--json"]);
    assert!(
        status["roster_warning"]
            .as_str()
            .is_some_and(|w| w.contains("expired")),
        "{status}"
    );
    // The established connection stays; the peer is no longer admitted for a new one (the
    // node looks at expiry once a second).
    let p = eventually("customs-nl no longer admits customs-be", || {
        peer(&nl.dir, "customs-be")
            .filter(|p| p["blocked"].as_str().is_some_and(|b| b.contains("expired")))
    });
    assert_eq!(p["state"], "connected", "{p}");
    let log = std::fs::read_to_string(root.join("customs-nl.log")).expect("log");
    assert!(log.contains("the federation roster has expired"), "{log}");

    // customs-be restarts and pins customs-nl (a pin admits whatever the roster says): it
    // dials, and customs-nl, which knows customs-be only through the expired roster, refuses.
    let be_daemon = daemons.remove(1);
    be_daemon.stop();
    let be_daemon = start_logged(&be.dir, &root.join("customs-be-2.log"));
    ok(&be.dir, &["peer", "add", &nl.name, &nl.id, &nl.address]);
    eventually("customs-be's dials to customs-nl fail", || {
        let p = peer(&be.dir, "customs-nl")?;
        (p["state"] != "connected" && !p["last_error"].is_null()).then_some(())
    });
    assert_ne!(
        peer(&nl.dir, "customs-be").expect("listed")["state"],
        "connected"
    );
    be_daemon.stop();
    for d in daemons {
        d.stop();
    }
}

/// Names come from the roster, never from a node's own descriptor: a node outside the roster
/// calling itself by a roster member's name is pinned under another name, connects, and its
/// descriptor is refused, so it cannot be added to a group; `group add NAME` and
/// `OFFICER@NAME` resolve the roster name to the roster's node.
#[test]
fn a_descriptor_claiming_a_roster_name_with_another_key_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let (members, mut daemons) = one_roster(root, &["rilo-wca", "customs-nl"], |_| Vec::new());
    let (owner, nl) = (&members[0], &members[1]);
    // The impostor trusts no authority and calls itself customs-nl.
    let impostor = root.join("impostor");
    init(&impostor, "customs-nl");
    let log = root.join("rilo.log");
    daemons.remove(0).stop();
    daemons.insert(0, start_logged(&owner.dir, &log));
    daemons.push(Daemon::start(&impostor));
    let line = ok(&impostor, &["id"]);
    let parts: Vec<&str> = line.split_whitespace().collect();
    let impostor_id = parts[1].to_owned();
    // Pinning it under the roster name of another node is refused; under another name it is
    // taken.
    let clash = liaison(
        &owner.dir,
        &["peer", "add", "customs-nl", parts[1], parts[2]],
    );
    assert!(!clash.status.success());
    assert!(
        String::from_utf8_lossy(&clash.stderr).contains("roster"),
        "{}",
        String::from_utf8_lossy(&clash.stderr)
    );
    ok(&owner.dir, &["peer", "add", "visitor", parts[1], parts[2]]);
    ok(
        &impostor,
        &["peer", "add", &owner.name, &owner.id, &owner.address],
    );
    eventually(
        "the impostor connects and its descriptor is refused",
        || {
            let p = peer(&owner.dir, "visitor")?;
            let log = std::fs::read_to_string(&log).ok()?;
            (p["state"] == "connected"
                && p["descriptor_name"].is_null()
                && log.contains("claims the roster name"))
            .then_some(())
        },
    );
    eventually("rilo connected to customs-nl", || {
        peer(&owner.dir, "customs-nl")
            .filter(|p| p["state"] == "connected" && p["descriptor_name"] == "customs-nl")
    });

    // A local pin overrides the roster's name for customs-nl; the roster name still resolves.
    ok(
        &owner.dir,
        &["peer", "add", "dutch-customs", &nl.id, &nl.address],
    );
    let pinned = peer(&owner.dir, "dutch-customs").expect("pinned");
    assert_eq!(pinned["source"], "pin+roster", "{pinned}");
    assert!(peer(&owner.dir, "customs-nl").is_none());

    let group = ok(&owner.dir, &["group", "create", "Operation Heritage"]);
    let refused = liaison(&owner.dir, &["group", "add", &group, &impostor_id]);
    assert!(!refused.status.success(), "the impostor was added");
    ok(&owner.dir, &["group", "add", &group, "customs-nl"]);
    let shown = json(&owner.dir, &["group", "show", &group, "--json"]);
    let member = shown["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["node_id"] == nl.id.as_str())
        .cloned()
        .expect("customs-nl is a member");
    assert_eq!(member["name"], "dutch-customs", "{member}");
    assert_eq!(member["node_id"], nl.id.as_str());
    let red = ok(
        &owner.dir,
        &[
            "send",
            &group,
            "--subject",
            "For one officer",
            "--handling",
            "red",
            "--to",
            "j.devries@customs-nl",
            "Eyes only",
        ],
    );
    let read = json(&owner.dir, &["read", &red, "--json"]);
    assert_eq!(read["recipients"][0], "j.devries@dutch-customs", "{read}");
    let unknown = liaison(
        &owner.dir,
        &[
            "send",
            &group,
            "--handling",
            "red",
            "--to",
            "x@customs-xx",
            "No one",
        ],
    );
    assert!(!unknown.status.success());
    for d in daemons {
        d.stop();
    }
}

/// `liaison key rotate` on a member: the node moves to a new identity key, its peer follows
/// the signed statement without an operator (the roster entry, the connection, the owner's
/// group moving the member to its new key), its earlier message stays readable on both sides,
/// and its next message, signed with the new key, arrives.
#[test]
fn a_rotated_node_keeps_its_group_and_history_and_peers_follow() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (members, daemons, group, before) = owner_and_member(tmp.path(), |_| Vec::new());
    let (owner, nl) = (&members[0], &members[1]);

    let out = ok(&nl.dir, &["key", "rotate"]);
    assert!(out.contains(&format!("node {} is now", nl.id)), "{out}");
    let new_id = ok(&nl.dir, &["id"])
        .split_whitespace()
        .nth(1)
        .expect("id")
        .to_owned();
    assert_ne!(new_id, nl.id);
    eventually("rilo follows: connected to the new key", || {
        peers(&owner.dir)
            .iter()
            .any(|p| p["node_id"] == new_id.as_str() && p["state"] == "connected")
            .then_some(())
    });
    eventually("the owner moves the member to its new key", || {
        let g = json(&owner.dir, &["group", "show", &group, "--json"]);
        g["members"]
            .as_array()?
            .iter()
            .any(|m| m["node_id"] == new_id.as_str())
            .then_some(())
    });
    let after = eventually("customs-nl posts under its new key", || {
        let out = liaison(
            &nl.dir,
            &["send", &group, "--subject", "s", "after the rotation"],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    eventually("rilo receives the message signed with the new key", || {
        inbox_ids(&owner.dir).contains(&after).then_some(())
    });
    for dir in [&owner.dir, &nl.dir] {
        let read = json(dir, &["read", &before, "--json"]);
        assert_eq!(read["body"], "before the rotation", "{read}");
        assert_eq!(read["author_id"], nl.id.as_str());
    }
    let read = json(&owner.dir, &["read", &after, "--json"]);
    assert_eq!(read["author_id"], new_id.as_str());
    for d in daemons {
        d.stop();
    }
}

/// An authority, and `names` started (see [`start_nodes`]) and given one roster, valid for 30
/// days, that lists them all.
fn one_roster(
    root: &Path,
    names: &[&str],
    extra: impl Fn(&str) -> Vec<(&'static str, String)>,
) -> (Vec<Member>, Vec<Daemon>) {
    let key = authority_ok(root, &["init"]);
    let (members, daemons) = start_nodes(root, names, &key, extra);
    let all: Vec<&Member> = members.iter().collect();
    let signed = sign(
        root,
        "europe.toml",
        &roster_toml(1, "valid_for = \"30days\"", &all, &[]),
    );
    for m in &members {
        ok(&m.dir, &["roster", "load", signed.to_str().expect("utf-8")]);
    }
    (members, daemons)
}

/// `rilo-wca` (owner) and `customs-nl` (member) from one roster, with `extra` config lines per
/// node (see [`federation_config`]), connected, in one group, and a first message of
/// customs-nl that rilo-wca received. Returns the nodes, the daemons, the group and the
/// message.
fn owner_and_member(
    root: &Path,
    extra: impl Fn(&str) -> Vec<(&'static str, String)>,
) -> (Vec<Member>, Vec<Daemon>, String, String) {
    let (members, daemons) = one_roster(root, &["rilo-wca", "customs-nl"], extra);
    let (owner, nl) = (&members[0], &members[1]);
    for m in &members {
        eventually(&format!("{} connected", m.name), || {
            (connected(&m.dir) == 1).then_some(())
        });
    }
    let group = ok(&owner.dir, &["group", "create", "Operation Heritage"]);
    ok(&owner.dir, &["group", "add", &group, "customs-nl"]);
    eventually("customs-nl holds the group", || {
        let groups = json(&nl.dir, &["group", "list", "--json"]);
        (groups.as_array().map(Vec::len) == Some(1)).then_some(())
    });
    let before = ok(
        &nl.dir,
        &["send", &group, "--subject", "s", "before the rotation"],
    );
    eventually("rilo receives the first message", || {
        inbox_ids(&owner.dir).contains(&before).then_some(())
    });
    (members, daemons, group, before)
}

/// The current epoch of `group` as `dir` holds it.
fn epoch(dir: &Path, group: &str) -> u64 {
    json(dir, &["group", "show", group, "--json"])["epoch"]
        .as_u64()
        .expect("epoch")
}

/// Posts `body` on `dir` as soon as the node lets it (a member waits for its owner's move
/// after a rotation), and waits until `reader` holds it; returns its id.
fn post_and_deliver(dir: &Path, group: &str, body: &str, reader: &Path) -> String {
    let id = eventually(&format!("post {body:?}"), || {
        let out = liaison(dir, &["send", group, "--subject", "s", body]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    eventually(&format!("{body:?} delivered"), || {
        inbox_ids(reader).contains(&id).then_some(())
    });
    id
}

/// `liaison key rotate --exchange-only`: the node keeps its id, its owner opens an epoch whose
/// key only the new exchange key unwraps, the member reads the owner's message of that epoch,
/// and what it read under its old exchange key stays readable, after a restart too.
#[test]
fn an_exchange_key_rotation_opens_an_epoch_and_keeps_history_readable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (members, mut daemons, group, before) = owner_and_member(tmp.path(), |_| Vec::new());
    let (owner, nl) = (&members[0], &members[1]);
    let first = epoch(&owner.dir, &group);
    let from_owner = post_and_deliver(&owner.dir, &group, "under the old keys", &nl.dir);

    let out = ok(&nl.dir, &["key", "rotate", "--exchange-only"]);
    assert!(out.contains(&nl.id), "{out}");
    let id = ok(&nl.dir, &["id"]);
    assert_eq!(id.split_whitespace().nth(1), Some(nl.id.as_str()), "{id}");
    eventually("the owner opens an epoch for the new exchange key", || {
        (epoch(&owner.dir, &group) > first && epoch(&nl.dir, &group) > first).then_some(())
    });
    let new_epoch = epoch(&owner.dir, &group);
    let owner_after = post_and_deliver(&owner.dir, &group, "under the new keys", &nl.dir);
    let nl_after = post_and_deliver(&nl.dir, &group, "after the rotation", &owner.dir);

    // The member's previous exchange key survives a restart: every epoch stays readable.
    let nl_daemon = daemons.pop().expect("customs-nl");
    nl_daemon.stop();
    daemons.push(Daemon::start(&nl.dir));
    for (id, body, epoch_at_least) in [
        (&before, "before the rotation", first),
        (&from_owner, "under the old keys", first),
        (&owner_after, "under the new keys", new_epoch),
        (&nl_after, "after the rotation", new_epoch),
    ] {
        let read = json(&nl.dir, &["read", id, "--json"]);
        assert_eq!(read["body"], body, "{read}");
        assert!(read["epoch"].as_u64() >= Some(epoch_at_least), "{read}");
    }
    let read = json(&owner.dir, &["read", &nl_after, "--json"]);
    assert_eq!(read["body"], "after the rotation", "{read}");
    assert_eq!(read["author_id"], nl.id.as_str());
    for d in daemons {
        d.stop();
    }
}

/// `groups.rotate_after`: the owner opens new epochs on its own, the member follows, and
/// messages of the new epochs are read on both sides.
#[test]
fn an_owner_rotates_group_epochs_on_its_timer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (members, daemons, group, before) = owner_and_member(tmp.path(), |name| {
        if name == "rilo-wca" {
            vec![("groups.rotate_after", "\"1s\"".to_owned())]
        } else {
            Vec::new()
        }
    });
    let (owner, nl) = (&members[0], &members[1]);
    let first = json(&owner.dir, &["read", &before, "--json"])["epoch"]
        .as_u64()
        .expect("epoch");
    eventually("two timed epochs later, on both nodes", || {
        (epoch(&owner.dir, &group) >= first + 2 && epoch(&nl.dir, &group) >= first + 2)
            .then_some(())
    });
    let from_owner = post_and_deliver(&owner.dir, &group, "a later epoch", &nl.dir);
    let from_nl = post_and_deliver(&nl.dir, &group, "a later epoch too", &owner.dir);
    for dir in [&owner.dir, &nl.dir] {
        for (id, body) in [
            (&before, "before the rotation"),
            (&from_owner, "a later epoch"),
            (&from_nl, "a later epoch too"),
        ] {
            let read = json(dir, &["read", id, "--json"]);
            assert_eq!(read["body"], body, "{read}");
        }
        let read = json(dir, &["read", &from_nl, "--json"]);
        assert!(read["epoch"].as_u64() >= Some(first + 2), "{read}");
    }
    // The member of the group is still the only other member: a timed epoch changes no one.
    let g = json(&owner.dir, &["group", "show", &group, "--json"]);
    assert_eq!(g["members"].as_array().map(Vec::len), Some(2), "{g}");
    for d in daemons {
        d.stop();
    }
}

fn member(dir: &Path) -> Member {
    let id = ok(dir, &["id"]);
    let parts: Vec<&str> = id.split_whitespace().collect();
    Member {
        dir: dir.to_path_buf(),
        name: parts[0].to_owned(),
        id: parts[1].to_owned(),
        address: parts[2].to_owned(),
    }
}

/// The id of the first attachment message `id` names, as `dir` shows it.
fn attachment_of(dir: &Path, id: &str) -> String {
    let read = json(dir, &["read", id, "--json"]);
    read["attachments"][0]["id"]
        .as_str()
        .expect("the message names an attachment")
        .to_owned()
}

/// A file a revoked node attached to a message it created after its revocation time is
/// withheld like the message: a node that learnt of the revocation neither opens it nor
/// serves it to a peer that has not learnt of it yet (and still shows the message), while
/// another author's file still travels between the same two nodes.
#[test]
fn a_revoked_authors_later_attachment_is_not_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let key = authority_ok(root, &["init"]);
    let (o, b, x) = (
        root.join("rilo-wca"),
        root.join("customs-nl"),
        root.join("rogue"),
    );
    init(&o, "rilo-wca");
    init(&b, "customs-nl");
    init(&x, "rogue");
    // Only the owner trusts the authority; customs-nl fetches files only when asked.
    federation_config(&o, &[("authorities", format!("[\"{key}\"]"))]);
    federation_config(&b, &[("attachments.eager_max_mb", "0".to_owned())]);
    let mut daemons = vec![Daemon::start(&o), Daemon::start(&b), Daemon::start(&x)];
    link(&o, &b);
    link(&o, &x);
    link(&b, &x);
    let group = ok(&o, &["group", "create", "Operation Heritage"]);
    ok(&o, &["group", "add", &group, "customs-nl"]);
    ok(&o, &["group", "add", &group, "rogue"]);
    for dir in [&b, &x] {
        eventually("the members hold the group", || {
            let g = json(dir, &["group", "show", &group, "--json"]);
            (g["members"].as_array().map(Vec::len) == Some(3)).then_some(())
        });
    }

    let at_ms = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let file = root.join("ledger.txt");
    std::fs::write(&file, b"the rogue's ledger").expect("write");
    let from_rogue = ok(
        &x,
        &[
            "send",
            &group,
            "--subject",
            "s",
            "ledger",
            "--attach",
            file.to_str().expect("utf-8"),
        ],
    );
    eventually("both nodes hold the rogue's message", || {
        let ids = (inbox_ids(&o), inbox_ids(&b));
        (ids.0.contains(&from_rogue) && ids.1.contains(&from_rogue)).then_some(())
    });
    let rogue_file = attachment_of(&o, &from_rogue);
    // The owner fetches it at once (eagerly); customs-nl does not.
    ok(
        &o,
        &[
            "attachment",
            "get",
            &rogue_file,
            "--wait",
            "60",
            "-o",
            "/dev/null",
        ],
    );
    daemons.pop().expect("rogue").stop();

    let owner = member(&o);
    let rogue = member(&x);
    let at = liaison_node::views::rfc3339(at_ms);
    let roster = sign(
        root,
        "v1.toml",
        &roster_toml(1, "valid_for = \"30days\"", &[&owner], &[(&rogue.id, &at)]),
    );
    ok(&o, &["roster", "load", roster.to_str().expect("utf-8")]);
    eventually("the owner withholds the rogue's message", || {
        (!liaison(&o, &["read", &from_rogue, "--json"])
            .status
            .success())
        .then_some(())
    });
    let opened = liaison(&o, &["attachment", "get", &rogue_file, "--wait", "0"]);
    assert!(!opened.status.success(), "the owner opens a withheld file");

    // The same two nodes still pass another author's file.
    let control = root.join("control.txt");
    std::fs::write(&control, b"the owner's note").expect("write");
    let from_owner = ok(
        &o,
        &[
            "send",
            &group,
            "--subject",
            "s",
            "note",
            "--attach",
            control.to_str().expect("utf-8"),
        ],
    );
    eventually("customs-nl holds the owner's message", || {
        inbox_ids(&b).contains(&from_owner).then_some(())
    });
    let saved = root.join("saved.txt");
    ok(
        &b,
        &[
            "attachment",
            "get",
            &attachment_of(&b, &from_owner),
            "--wait",
            "60",
            "-o",
            saved.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(std::fs::read(&saved).expect("saved"), b"the owner's note");

    // customs-nl, which knows nothing of the revocation, still shows the message and asks
    // for its file; the rogue is down and the owner refuses.
    assert_eq!(attachment_of(&b, &from_rogue), rogue_file);
    let asked = liaison(&b, &["attachment", "get", &rogue_file, "--wait", "3"]);
    assert!(
        !asked.status.success(),
        "customs-nl got the rogue's file: {}",
        String::from_utf8_lossy(&asked.stdout)
    );
    for d in daemons {
        d.stop();
    }
}
