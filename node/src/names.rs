//! Names people type, resolved to node ids: the only place a name becomes a node.
//!
//! A node's self-chosen descriptor name is never trusted for this. Names come from what the
//! operator or a trusted party stated: the member names the group owner signed into the group's
//! control events, the names in a verified roster, and the names of
//! pinned peers. RED recipients are resolved once, when the message is posted, and travel as
//! node ids inside the encrypted content, so every node matches them by id.

use liaison_protocol::group::GroupState;
use liaison_protocol::message::Recipient;
use liaison_protocol::NodeId;

use crate::error::{Error, Result};

/// Resolves `OFFICER@NODE` recipients against the members of `group`'s current epoch. `NODE`
/// is a member name as the owner stated it, or a node id; this node (`me`) is also found by
/// its own configured name `own_name`; a name no member has is looked up with `known` (this
/// node's pins and the rosters in force), and taken if it names a member. Unknown and
/// ambiguous names are refused.
pub fn resolve_recipients(
    group: &GroupState,
    me: NodeId,
    own_name: &str,
    known: &dyn Fn(&str) -> Option<NodeId>,
    recipients: &[String],
) -> Result<Vec<Recipient>> {
    let mut out: Vec<Recipient> = Vec::with_capacity(recipients.len());
    for text in recipients {
        let (officer, node) = text
            .rsplit_once('@')
            .ok_or_else(|| Error::Invalid(format!("recipient {text:?} is not OFFICER@NODE")))?;
        liaison_protocol::fields::check_officer_name(officer)
            .map_err(|e| Error::Invalid(format!("recipient {text:?}: {e}")))?;
        let node = resolve_member(group, me, own_name, known, node).map_err(|why| {
            Error::Invalid(format!(
                "recipient {text:?}: {why} (`liaison group show {}` lists the members)",
                group.id()
            ))
        })?;
        let recipient = Recipient {
            officer: officer.to_owned(),
            node,
        };
        if !out.contains(&recipient) {
            out.push(recipient);
        }
    }
    Ok(out)
}

/// A member of `group`'s current epoch by member name or node id.
fn resolve_member(
    group: &GroupState,
    me: NodeId,
    own_name: &str,
    known: &dyn Fn(&str) -> Option<NodeId>,
    sel: &str,
) -> std::result::Result<NodeId, String> {
    if let Ok(node) = sel.parse::<NodeId>() {
        return if group.members().contains_key(&node) {
            Ok(node)
        } else {
            Err(format!(
                "node {} is not a member of the group",
                node.short()
            ))
        };
    }
    let mut found: Vec<NodeId> = group
        .members()
        .iter()
        .filter(|(_, m)| m.name == sel)
        .map(|(n, _)| *n)
        .collect();
    if sel == own_name && group.members().contains_key(&me) && !found.contains(&me) {
        found.push(me);
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => match known(sel) {
            Some(node) if group.members().contains_key(&node) => Ok(node),
            Some(node) => Err(format!(
                "{sel:?} is node {}, which is not a member of the group",
                node.short()
            )),
            None => Err(format!("no member of the group is named {sel:?}")),
        },
        _ => Err(format!(
            "several members answer to {sel:?}; give the node id after '@'"
        )),
    }
}

/// Whether `officer` on node `me` is named among `recipients`.
pub fn is_recipient(recipients: &[Recipient], me: NodeId, officer: &str) -> bool {
    recipients
        .iter()
        .any(|r| r.node == me && r.officer == officer)
}
