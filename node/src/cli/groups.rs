//! Groups and their members, and the quarantine of messages.

use super::*;

pub(super) async fn quarantine(client: &Client, cmd: QuarantineCmd) -> Result<()> {
    match cmd {
        QuarantineCmd::Add { id, reason, json } => {
            let q: views::QuarantineView = client
                .post("/v1/quarantine", &views::QuarantineRequest { id, reason })
                .await?;
            if json {
                return print_json(&q);
            }
            say!("quarantined {} ({})", q.id, q.reason);
            Ok(())
        }
        QuarantineCmd::List { json } => {
            let list: Vec<views::QuarantineView> = client.get("/v1/quarantine").await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                say!("no message is quarantined");
            }
            for q in &list {
                say!("{}  {}  {}", q.id, q.at, q.reason);
            }
            Ok(())
        }
        QuarantineCmd::Release { id, json } => {
            let q: views::QuarantineView = client
                .delete(&format!("/v1/quarantine/{}", segment(&id)))
                .await?;
            if json {
                return print_json(&q);
            }
            say!("released {}", q.id);
            Ok(())
        }
    }
}

pub(super) async fn group(client: &Client, cmd: GroupCmd) -> Result<()> {
    match cmd {
        GroupCmd::Create { name, json } => {
            let c: Created = client
                .post("/v1/groups", &views::CreateGroup { name: name.clone() })
                .await?;
            if json {
                return print_json(&serde_json::json!({ "id": c.id, "name": name }));
            }
            say!("{}", c.id);
            Ok(())
        }
        GroupCmd::Add {
            group,
            peer,
            role,
            json,
        } => {
            let g: GroupView = client
                .post(
                    &format!("/v1/groups/{}/members", segment(&group)),
                    &views::AddMember {
                        peer: peer.clone(),
                        role: Some(role.clone()),
                    },
                )
                .await?;
            if json {
                return print_json(&g);
            }
            say!("added {peer} to {} as {role} (epoch {})", g.name, g.epoch);
            for w in &g.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        GroupCmd::Remove { group, peer, json } => {
            let g: GroupView = client
                .delete(&format!(
                    "/v1/groups/{}/members/{}",
                    segment(&group),
                    segment(&peer)
                ))
                .await?;
            if json {
                return print_json(&g);
            }
            say!("removed {peer} from {} (epoch {})", g.name, g.epoch);
            Ok(())
        }
        GroupCmd::List { json } => {
            let groups: Vec<GroupView> = client.get("/v1/groups").await?;
            if json {
                return print_json(&groups);
            }
            if groups.is_empty() {
                say!("no groups");
            }
            for g in &groups {
                say!(
                    "{}  {:<30} owner {:<16} {:<8} {} members, epoch {}",
                    g.id,
                    g.name,
                    g.owner_name,
                    g.role,
                    g.members.len(),
                    g.epoch
                );
            }
            Ok(())
        }
        GroupCmd::Show { group, json } => {
            let g: GroupView = client
                .get(&format!("/v1/groups/{}", segment(&group)))
                .await?;
            if json {
                return print_json(&g);
            }
            say!("group   {} ({})", g.name, g.id);
            say!("owner   {} ({})", g.owner_name, g.owner_id);
            say!("epoch   {}", g.epoch);
            say!("you     {}", g.role);
            for m in &g.members {
                say!("  {:<20} {:<7} {}", m.name, m.role, m.node_id);
            }
            Ok(())
        }
    }
}
