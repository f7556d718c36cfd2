//! Posting through the API: each post's audit record is written by the node with the message,
//! so that one flush makes both durable (see [`crate::audit::stage_posts`]).

use liaison_protocol::message::MessageId;
use liaison_protocol::record::Record;
use liaison_protocol::Handling;
use tokio::sync::oneshot;

use super::{attachment_ids, message_id, ApiError, AppState};
use crate::accounts::Principal;
use crate::audit::PostAudit;
use crate::error::Error;
use crate::node::{Post, PostItem};
use crate::views;

/// The audit action of a post.
pub(super) const POST: &str = "post";

impl AppState {
    /// Posts `posts` to `group` as `who`, in order; each answer comes once its message and
    /// the audit record `post GROUP ID ok` are durable. An answer that is an error has no audit
    /// record yet: pass it to [`AppState::audited_post`].
    pub(super) async fn post_each(
        &self,
        who: &Principal,
        group: String,
        posts: Vec<Post>,
    ) -> Result<Vec<oneshot::Receiver<Result<MessageId, Error>>>, Error> {
        let mut answers = Vec::with_capacity(posts.len());
        let items = posts
            .into_iter()
            .map(|post| {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                PostItem {
                    post,
                    audit: Some(PostAudit::new(
                        self.audit.clone(),
                        who.audit_name(),
                        POST,
                        group.clone(),
                    )),
                    reply,
                }
            })
            .collect();
        self.node
            .as_officer(who.clone())
            .post_each(group, items)
            .await?;
        Ok(answers)
    }

    /// Posts one message (see [`AppState::post_each`]).
    pub(super) async fn post_one(
        &self,
        who: &Principal,
        group: String,
        post: Post,
    ) -> Result<MessageId, Error> {
        let answer = self.post_each(who, group, vec![post]).await?;
        match answer.into_iter().next() {
            Some(answer) => wait(answer).await,
            None => Err(Error::Internal("the node did not answer the post")),
        }
    }

    /// Passes on the answer of a post: a stored post's audit record is durable already; a
    /// refused one's is appended here (`post GROUP error: ...`).
    pub(super) async fn audited_post(
        &self,
        who: &Principal,
        group: &str,
        result: Result<MessageId, Error>,
    ) -> Result<MessageId, ApiError> {
        match result {
            Ok(id) => Ok(id),
            Err(e) => self.audited(who, POST, group, Err(e)).await,
        }
    }
}

/// The answer of one post of [`AppState::post_each`].
pub(super) async fn wait(
    answer: oneshot::Receiver<Result<MessageId, Error>>,
) -> Result<MessageId, Error> {
    answer.await.unwrap_or(Err(Error::Internal(
        "the node failed while handling this post; the fault is in its log",
    )))
}

/// The post a body of `POST /v1/groups/{group}/messages` asks for.
pub(super) fn message_post(who: &Principal, body: views::PostMessage) -> Result<Post, Error> {
    Ok(Post {
        officer: who.name().to_owned(),
        recipients: body.to,
        subject: body.subject,
        body: body.body,
        record: None,
        handling: handling(body.handling.as_deref())?,
        reply_to: body.reply_to.as_deref().map(message_id).transpose()?,
        attachments: attachment_ids(&body.attachments)?,
    })
}

/// The post a body of `POST /v1/groups/{group}/records` asks for (checked against the
/// record's schema: an invalid record is [`Error::InvalidRecord`]).
pub(super) fn record_post(who: &Principal, body: serde_json::Value) -> Result<Post, Error> {
    let record = Record::from_tagged_value(&body).map_err(Error::InvalidRecord)?;
    let post: views::PostRecord = serde_json::from_value(body)
        .map_err(|e| Error::Invalid(format!("invalid request body: {e}")))?;
    Ok(Post {
        officer: who.name().to_owned(),
        recipients: post.to,
        subject: String::new(),
        body: String::new(),
        record: Some(Box::new(record)),
        handling: handling(post.handling.as_deref())?,
        reply_to: post.reply_to.as_deref().map(message_id).transpose()?,
        attachments: attachment_ids(&post.attachments)?,
    })
}

/// One item of a batch: a record if it names a `kind`, else a message.
pub(super) fn item_post(who: &Principal, item: serde_json::Value) -> Result<Post, Error> {
    if !item.is_object() {
        return Err(Error::Invalid(
            "an item is a JSON object: a message or a record".into(),
        ));
    }
    if item.get("kind").is_some() {
        record_post(who, item)
    } else {
        let body: views::PostMessage = serde_json::from_value(item)
            .map_err(|e| Error::Invalid(format!("invalid message: {e}")))?;
        message_post(who, body)
    }
}

fn handling(code: Option<&str>) -> Result<Handling, Error> {
    code.unwrap_or("green")
        .parse()
        .map_err(|e| Error::Invalid(format!("{e}")))
}
