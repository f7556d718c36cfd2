//! Peers, rosters and the federation authority.

use super::*;

pub(super) async fn peer(client: &Client, cmd: PeerCmd) -> Result<()> {
    match cmd {
        PeerCmd::Add {
            name,
            node_id,
            address,
            replace,
            json,
        } => {
            let p: PeerView = client
                .post(
                    "/v1/peers",
                    &views::AddPeer {
                        name,
                        node_id,
                        address,
                        replace,
                    },
                )
                .await?;
            if json {
                return print_json(&p);
            }
            say!("pinned {} ({}) at {}", p.name, p.node_id, p.address);
            Ok(())
        }
        PeerCmd::List { json } => {
            let peers: Vec<PeerView> = client.get("/v1/peers").await?;
            if json {
                return print_json(&peers);
            }
            if peers.is_empty() {
                say!("no peers: pin one with `liaison peer add NAME NODE_ID HOST:PORT`");
            }
            for p in &peers {
                say!(
                    "{:<20} {:<12} {:<10} {:<22} {}{}",
                    p.name,
                    p.state,
                    p.source,
                    p.address,
                    p.node_id,
                    p.blocked
                        .as_deref()
                        .or(p.last_error.as_deref())
                        .map(|e| format!("  ({e})"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        PeerCmd::Remove { peer, json } => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/peers/{}", segment(&peer)))
                .await?;
            if json {
                return print_json(&serde_json::json!({ "removed": peer }));
            }
            say!("removed {peer}");
            Ok(())
        }
    }
}

pub(super) fn authority(cmd: AuthorityCmd) -> Result<()> {
    match cmd {
        AuthorityCmd::Init { key, json } => {
            let id = crate::authority::init(&key, &mut rand_core::OsRng)?;
            if json {
                return print_json(&serde_json::json!({
                    "authority": id.to_string(),
                    "key": key,
                }));
            }
            eprintln!(
                "authority key written to {}; keep it offline. Every node of the federation lists this public key in federation.authorities:",
                key.display()
            );
            say!("{id}");
            Ok(())
        }
        AuthorityCmd::Sign {
            roster,
            key,
            out,
            json,
        } => {
            let (r, path) =
                crate::authority::sign(&key, &roster, out.as_deref(), crate::clock::now())?;
            if json {
                return print_json(&serde_json::json!({
                    "federation": r.federation,
                    "version": r.version,
                    "entries": r.entries.len(),
                    "revocations": r.revocations.len(),
                    "valid_until": views::rfc3339(r.valid_until.0),
                    "out": path,
                }));
            }
            say!(
                "signed {} version {}: {} node(s), {} revoked, valid until {} -> {}",
                r.federation,
                r.version,
                r.entries.len(),
                r.revocations.len(),
                views::rfc3339(r.valid_until.0),
                path.display()
            );
            Ok(())
        }
        AuthorityCmd::Show { file, json } => {
            let (r, _) = crate::authority::read_signed(&file)?;
            if json {
                let value = serde_json::json!({
                    "authority": r.authority.to_string(),
                    "federation": r.federation,
                    "version": r.version,
                    "issued_at": views::rfc3339(r.issued_at.0),
                    "valid_until": views::rfc3339(r.valid_until.0),
                    "entries": r.entries.iter().map(|e| serde_json::json!({
                        "node_id": e.node.to_string(),
                        "name": e.name,
                        "organisation": e.organisation,
                        "country": e.country,
                        "kind": e.kind.to_string(),
                        "addresses": e.addresses,
                    })).collect::<Vec<_>>(),
                    "revocations": r.revocations.iter().map(|x| serde_json::json!({
                        "node_id": x.node.to_string(),
                        "at": views::rfc3339(x.at.0),
                        "reason": x.reason,
                    })).collect::<Vec<_>>(),
                });
                return print_json(&value);
            }
            say!(
                "{} version {} by authority {}",
                r.federation,
                r.version,
                r.authority
            );
            say!(
                "issued {}, valid until {}",
                views::rfc3339(r.issued_at.0),
                views::rfc3339(r.valid_until.0)
            );
            for e in &r.entries {
                say!(
                    "  {:<20} {:<8} {} {:<30} {}",
                    e.name,
                    e.kind,
                    e.country,
                    e.organisation,
                    e.node
                );
            }
            for x in &r.revocations {
                say!(
                    "  revoked {} from {}: {}",
                    x.node,
                    views::rfc3339(x.at.0),
                    x.reason
                );
            }
            Ok(())
        }
    }
}

pub(super) async fn roster(client: &Client, cmd: RosterCmd) -> Result<()> {
    match cmd {
        RosterCmd::Load { file, json } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
            let r: views::RosterLoaded = client
                .post(
                    "/v1/roster",
                    &views::LoadRoster {
                        roster: hex::encode(bytes),
                    },
                )
                .await?;
            if json {
                return print_json(&r);
            }
            match r.outcome.as_str() {
                "new" => say!(
                    "{} version {} in force: {} joined, {} left, {} newly revoked",
                    r.federation,
                    r.version,
                    r.joined.len(),
                    r.left.len(),
                    r.revoked.len()
                ),
                _ => say!(
                    "{} version {} was already in force",
                    r.federation,
                    r.version
                ),
            }
            Ok(())
        }
        RosterCmd::Show { json } => {
            let rosters: Vec<crate::federation::RosterView> = client.get("/v1/roster").await?;
            if json {
                return print_json(&rosters);
            }
            if rosters.is_empty() {
                say!("no roster: `liaison roster load FILE`, or wait for a peer to pass one on");
            }
            for r in &rosters {
                say!(
                    "{} version {} ({}), valid until {}, authority {}",
                    r.federation,
                    r.version,
                    r.state,
                    r.valid_until,
                    r.authority
                );
                for e in &r.entries {
                    say!(
                        "  {:<20} {:<8} {} {:<24} {}",
                        e.name,
                        e.kind,
                        e.country,
                        e.standing,
                        e.node_id
                    );
                }
                for x in &r.revocations {
                    say!("  revoked {} from {}: {}", x.node_id, x.at, x.reason);
                }
            }
            Ok(())
        }
    }
}
