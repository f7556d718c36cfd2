//! `POST /v1/groups/{group}/messages/batch`: many posts in one request, for integrations that
//! send records in bulk.
//!
//! The body is a JSON array of items, or JSON lines (one item a line; blank lines are skipped),
//! at most [`MAX_BODY`](super::MAX_BODY) bytes and [`MAX_BATCH_ITEMS`] items. Each item is what
//! `POST /v1/groups/{group}/records` takes if it names a `kind`, else what
//! `POST /v1/groups/{group}/messages` takes. Each item is checked and posted on its own, in
//! order: the answer (200 once every item is settled) holds one entry per item, its message id
//! or its own error (`error`, the HTTP `status` it would have had alone, and `fields` for an
//! invalid record). A bad item changes nothing for the others. Every item has its own audit
//! record (`post GROUP ID ok`, or the error); the posts of a batch are stored, with their audit
//! records, in the node's next write rounds and share their flushes.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use liaison_protocol::FieldError;
use serde::{Deserialize, Serialize};

use super::posts::{self, POST};
use super::{ApiError, AppState};
use crate::accounts::Principal;
use crate::audit::{outcome, Staged};
use crate::error::Error;

/// The most items one batch may hold.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// The audit action of a batch refused as a whole (unreadable, empty or too large).
const BATCH: &str = "post.batch";

/// The answer to a batch: one entry per item, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchAnswer {
    /// Items posted.
    pub posted: usize,
    /// Items refused.
    pub failed: usize,
    /// Per item, in the order of the body.
    pub items: Vec<ItemAnswer>,
}

/// How one item of a batch went: its message id, or its error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemAnswer {
    /// The new message's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why the item was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status the item would have been answered with on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For an invalid record: each problem at its JSON pointer into the item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl ItemAnswer {
    fn failed(e: ApiError) -> ItemAnswer {
        let ApiError(status, error, fields) = e;
        ItemAnswer {
            id: None,
            error: Some(error),
            status: Some(status.as_u16()),
            fields,
        }
    }
}

/// The items of a batch body, each parsed on its own (a JSON line that does not parse is that
/// item's error), or why the body as a whole is refused.
pub(super) fn split(body: &[u8]) -> Result<Vec<Result<serde_json::Value, Error>>, Error> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let items: Vec<Result<serde_json::Value, Error>> = match start.map(|i| body[i]) {
        None => Vec::new(),
        Some(b'[') => serde_json::from_slice::<Vec<serde_json::Value>>(body)
            .map_err(|e| Error::Invalid(format!("invalid batch: not a JSON array: {e}")))?
            .into_iter()
            .map(Ok)
            .collect(),
        Some(_) => body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|(n, line)| {
                serde_json::from_slice(line)
                    .map_err(|e| Error::Invalid(format!("line {}: not JSON: {e}", n + 1)))
            })
            .collect(),
    };
    if items.is_empty() {
        return Err(Error::Invalid(
            "empty batch: send a JSON array of posts, or one post a line".into(),
        ));
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(Error::TooLarge(format!(
            "a batch holds at most {MAX_BATCH_ITEMS} items, this one {}: split it",
            items.len()
        )));
    }
    Ok(items)
}

pub(super) async fn post_batch(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let items = match body {
        Ok(body) => split(&body),
        Err(e) => Err(Error::TooLarge(format!(
            "invalid batch body: {}; a batch is at most {} bytes",
            e.body_text(),
            super::MAX_BODY
        ))),
    };
    let items = match items {
        Ok(items) => items,
        Err(e) => return s.audited(&who, BATCH, &group, Err(e)).await,
    };
    let prepared: Vec<Result<crate::node::Post, Error>> = items
        .into_iter()
        .map(|item| item.and_then(|value| posts::item_post(&who, value)))
        .collect();
    let mut valid = Vec::new();
    let mut slots = Vec::with_capacity(prepared.len());
    for p in prepared {
        match p {
            Ok(post) => {
                slots.push(None);
                valid.push(post);
            }
            Err(e) => slots.push(Some(e)),
        }
    }
    let mut answers = match s.post_each(&who, group.clone(), valid).await {
        Ok(answers) => answers.into_iter(),
        Err(e) => return s.audited(&who, BATCH, &group, Err(e)).await,
    };
    // Each refused item's record is written without waiting, then all are waited for at once.
    let mut items = Vec::with_capacity(slots.len());
    let mut pending: Vec<(usize, Staged)> = Vec::new();
    for slot in slots {
        let result = match slot {
            Some(e) => Err(e),
            None => match answers.next() {
                Some(answer) => posts::wait(answer).await,
                None => Err(Error::Internal(
                    "the node did not answer a post of the batch",
                )),
            },
        };
        let e = match result {
            Ok(id) => {
                items.push(ItemAnswer {
                    id: Some(id.to_string()),
                    ..ItemAnswer::default()
                });
                continue;
            }
            Err(e) => e,
        };
        let record = s
            .audit
            .stage(&who.audit_name(), POST, &group, &outcome(&who, Some(&e)))
            .await;
        match record {
            Ok(staged) => pending.push((items.len(), staged)),
            Err(audit) => {
                items.push(ItemAnswer::failed(super::audit_failed(audit)));
                continue;
            }
        }
        items.push(ItemAnswer::failed(ApiError::from(e)));
    }
    for (at, staged) in pending {
        if let Err(e) = s.audit.settle(staged).await {
            if let Some(item) = items.get_mut(at) {
                *item = ItemAnswer::failed(super::audit_failed(e));
            }
        }
    }
    let failed = items.iter().filter(|i| i.id.is_none()).count();
    Ok(Json(BatchAnswer {
        posted: items.len() - failed,
        failed,
        items,
    }))
}
