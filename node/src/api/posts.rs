//! Posting through the API: each post's audit record is written by the node with the message,
//! so that one flush makes both durable (see [`crate::audit::store_posts`]).

use liaison_protocol::message::MessageId;
use tokio::sync::oneshot;

use super::{ApiError, AppState};
use crate::accounts::Principal;
use crate::audit::PostAudit;
use crate::error::Error;
use crate::node::{Command, Post, PostItem};

/// The audit action of a post.
const POST: &str = "post";

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
        self.ask(who, |reply| Command::PostEach {
            group,
            items,
            reply,
        })
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
