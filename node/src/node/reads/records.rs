//! Queries over structured records: the thread a message belongs to with the state of its
//! alerts and requests, per-group statistics, and the export of a group.
//!
//! Each reads the group's messages the caller may see through [`Ctx::read`], so the caller's
//! grants and the TLP:RED rule apply exactly as to a page.

use std::collections::BTreeMap;

use liaison_protocol::record::{case_state, CaseState, Outcome};
use liaison_protocol::{GroupId, MessageId, Timestamp};

use super::view::Ctx;
use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::views::{ExportView, MessageView, Refused, StatsView, ThreadEntry, ThreadView};

/// Most messages of a thread shown.
const MAX_THREAD: usize = 10_000;

/// What an export of a group will send, decided before its first byte (see
/// [`Ctx::export_plan`]).
#[derive(Debug)]
pub(crate) struct ExportPlan {
    /// The group.
    pub(crate) group: GroupId,
    /// The messages to export, oldest first.
    pub(crate) ids: Vec<MessageId>,
    /// The messages a handling code keeps in.
    pub(crate) refused: Vec<Refused>,
}

/// Why a handling code keeps a message in, if it does.
fn kept_in(handling: &str) -> Option<&'static str> {
    match handling {
        "red" => Some("TLP:RED is for its named recipients only and is never exported"),
        "amber+strict" => Some("TLP:AMBER+STRICT may not leave the organisation"),
        _ => None,
    }
}

impl Ctx<'_> {
    /// The messages of `group` that `who` may export, oldest first, and those a handling code
    /// keeps in, from the messages' headers: only TLP:RED messages are opened (whether `who`
    /// is a recipient is in the body). The export itself opens each planned message as it is
    /// sent ([`Ctx::read`]), so its memory is one message, not the group.
    pub(crate) fn export_plan(&self, who: &Principal, group: &str) -> Result<ExportPlan> {
        let gid = self.snap.visible_group(who, group)?;
        let mut listed = self
            .store
            .listing(&gid, None)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        listed.reverse();
        let mut ids = Vec::new();
        let mut refused = Vec::new();
        for entry in listed {
            let header = match self.header(who, &entry.id) {
                Ok(h) => h,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let handling = header.handling.to_string();
            if header.handling == liaison_protocol::Handling::Red {
                match self.open(who, &entry.id) {
                    Ok(_) => {}
                    Err(Error::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            match kept_in(&handling) {
                Some(reason) => refused.push(Refused {
                    id: entry.id.to_string(),
                    handling,
                    reason: reason.to_owned(),
                }),
                None => ids.push(entry.id),
            }
        }
        Ok(ExportPlan {
            group: gid,
            ids,
            refused,
        })
    }

    /// The messages of `group` that `who` may export, oldest first, and those a handling
    /// code keeps in: TLP:RED is for its named recipients only, TLP:AMBER+STRICT may not
    /// leave the organisation.
    pub(crate) fn export(
        &self,
        who: &Principal,
        group: &str,
        include_nominal: bool,
    ) -> Result<ExportView> {
        let gid = self.snap.visible_group(who, group)?;
        let mut exported = Vec::new();
        let mut refused = Vec::new();
        for mut view in self.readable(who, &gid)? {
            if !include_nominal {
                view.nominal_withheld = crate::records::withhold_nominal(&mut view);
            }
            match kept_in(&view.handling) {
                Some(r) => refused.push(Refused {
                    id: view.id,
                    handling: view.handling,
                    reason: r.to_owned(),
                }),
                None => exported.push(view),
            }
        }
        Ok(ExportView {
            group_id: gid.to_string(),
            exported,
            refused,
        })
    }

    /// The thread `id` belongs to: from its root (the first ancestor whose parent is not here
    /// or not readable), each reply below the message it answers, replies oldest first. Reads
    /// the thread's own messages, found through the store's reply index, never the group.
    pub(crate) fn thread(&self, who: &Principal, id: &MessageId) -> Result<ThreadView> {
        let start = self.read(who, id, true)?;
        let group: GroupId = start
            .group_id
            .parse()
            .map_err(|e| Error::Corrupt(format!("stored group id: {e}")))?;
        // Up to the root; a cycle is impossible (ids commit to their content, which names the
        // parent), but the walk is bounded anyway.
        let (mut root_key, mut root) = (*id, start);
        for _ in 0..MAX_THREAD {
            let Some(parent) = root.reply_to.as_deref().and_then(|p| p.parse().ok()) else {
                break;
            };
            match self.read(who, &parent, true) {
                Ok(view) if view.group_id == root.group_id => (root_key, root) = (parent, view),
                Ok(_) | Err(Error::NotFound(_)) => break,
                Err(e) => return Err(e),
            }
        }
        let (root_id, root_replies_to) = (root.id.clone(), root.reply_to.clone());
        let mut entries = Vec::new();
        let mut stack = vec![(root_key, root, 0usize)];
        while let Some((key, m, depth)) = stack.pop() {
            if entries.len() >= MAX_THREAD {
                break;
            }
            let kids = self.replies(who, &group, &key)?;
            entries.push(entry(&m, depth, kids.iter().map(|(_, k)| k)));
            stack.extend(kids.into_iter().rev().map(|(k, v)| (k, v, depth + 1)));
        }
        Ok(ThreadView {
            group_id: group.to_string(),
            root: root_id,
            root_replies_to,
            entries,
        })
    }

    /// The replies to `parent` in `group` that `who` may read, oldest first (as a group's
    /// listing orders them).
    fn replies(
        &self,
        who: &Principal,
        group: &GroupId,
        parent: &MessageId,
    ) -> Result<Vec<(MessageId, MessageView)>> {
        let shown = parent.to_string();
        let mut kids = Vec::new();
        for reply in self.store.replies(group, parent)? {
            match self.read(who, &reply, true) {
                // The entry was written from the reply's content, which says so again.
                Ok(view) if view.reply_to.as_deref() == Some(shown.as_str()) => {
                    kids.push((reply, view));
                }
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        kids.sort_by(|(_, a), (_, b)| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(kids)
    }

    /// Counts of `group`'s messages that `who` may read: by kind, commodity, outcome, month,
    /// and the state of alerts and requests.
    pub(crate) fn stats(&self, who: &Principal, group: &str) -> Result<StatsView> {
        let gid = self.snap.visible_group(who, group)?;
        let all = self.readable(who, &gid)?;
        let mut feedback: BTreeMap<&str, Vec<&MessageView>> = BTreeMap::new();
        for m in &all {
            if let (Some(parent), "feedback") = (m.reply_to.as_deref(), m.kind.as_str()) {
                feedback.entry(parent).or_default().push(m);
            }
        }
        let mut s = StatsView {
            group_id: gid.to_string(),
            ..StatsView::default()
        };
        let bump = |map: &mut BTreeMap<String, u64>, key: &str| {
            *map.entry(key.to_owned()).or_default() += 1;
        };
        for m in &all {
            s.messages += 1;
            bump(&mut s.by_kind, &m.kind);
            bump(&mut s.by_month, m.created_at.get(..7).unwrap_or("unknown"));
            if let Some(outcome) = outcome_of(m) {
                bump(&mut s.by_outcome, outcome.as_str());
            }
            if let Some(items) = m
                .record
                .as_ref()
                .filter(|_| m.kind == "seizure")
                .and_then(|r| r.get("items"))
                .and_then(|i| i.as_array())
            {
                for item in items {
                    if let Some(c) = item.get("commodity").and_then(|c| c.as_str()) {
                        bump(&mut s.by_commodity, c);
                    }
                }
            }
            if matches!(m.kind.as_str(), "alert" | "request") {
                let answers = feedback
                    .get(m.id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let state = state_of(answers.iter().copied());
                bump(&mut s.by_state, state.as_str());
            }
        }
        Ok(s)
    }
}

/// The outcome of a feedback message.
fn outcome_of(m: &MessageView) -> Option<Outcome> {
    if m.kind != "feedback" {
        return None;
    }
    let value = m.record.as_ref()?.get("outcome")?.clone();
    serde_json::from_value(value).ok()
}

/// The state of an alert or request from the feedback among `replies`.
fn state_of<'a>(replies: impl Iterator<Item = &'a MessageView>) -> CaseState {
    case_state(replies.filter_map(|r| Some((Timestamp(r.created_at_ms), outcome_of(r)?))))
}

fn entry<'a>(
    m: &MessageView,
    depth: usize,
    replies: impl Iterator<Item = &'a MessageView>,
) -> ThreadEntry {
    let (state, closed_by) = if matches!(m.kind.as_str(), "alert" | "request") {
        let state = state_of(replies);
        let by = match state {
            CaseState::Closed(o) => Some(o.as_str().to_owned()),
            _ => None,
        };
        (Some(state.as_str().to_owned()), by)
    } else {
        (None, None)
    };
    ThreadEntry {
        id: m.id.clone(),
        reply_to: m.reply_to.clone(),
        depth,
        kind: m.kind.clone(),
        summary: m.subject.clone(),
        author: format!("{} [{}]", m.author_name, m.officer),
        created_at: m.created_at.clone(),
        outcome: outcome_of(m).map(|o| o.as_str().to_owned()),
        state,
        closed_by,
    }
}
