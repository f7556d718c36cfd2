//! The local HTTP JSON API (axum), served on loopback by default.
//!
//! Every request needs `Authorization: Bearer TOKEN` with the admin token from `init`
//! (compared in constant time). Errors are JSON `{"error": "..."}` with a 4xx or 5xx status.
//!
//! | method and path                              | does                                  |
//! |----------------------------------------------|---------------------------------------|
//! | `GET /v1/status`                             | node status                           |
//! | `GET /v1/peers`, `POST /v1/peers`            | list, pin a peer                      |
//! | `DELETE /v1/peers/{peer}`                    | unpin a peer and drop its connection  |
//! | `GET /v1/groups`, `POST /v1/groups`          | list, create a group                  |
//! | `GET /v1/groups/{group}`                     | one group with its members            |
//! | `POST /v1/groups/{group}/members`            | add a member (owner only)             |
//! | `DELETE /v1/groups/{group}/members/{peer}`   | remove a member (owner only)          |
//! | `POST /v1/groups/{group}/messages`           | post; answers once durably stored     |
//! | `GET /v1/messages[?group=G]`                 | list messages (no bodies)             |
//! | `GET /v1/messages/{id}`                      | read one message                      |
//! | `GET /v1/messages/{id}/receipts`             | delivery receipts of a message        |

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use liaison_protocol::message::MessageId;
use liaison_protocol::{Handling, NodeId, Role};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::node::{Command, NodeHandle, Post};
use crate::views::{self, Created, ErrorBody};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    token_hash: [u8; 32],
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: NodeHandle,
    admin_token: Zeroizing<String>,
    shutdown: CancellationToken,
) {
    let state = AppState {
        node,
        token_hash: *blake3::hash(admin_token.as_bytes()).as_bytes(),
    };
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        warn!(error = %e, "API server failed");
    }
    info!("API stopped");
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers).post(add_peer))
        .route("/v1/peers/{peer}", delete(remove_peer))
        .route("/v1/groups", get(groups).post(create_group))
        .route("/v1/groups/{group}", get(group))
        .route("/v1/groups/{group}/members", post(add_member))
        .route("/v1/groups/{group}/members/{peer}", delete(remove_member))
        .route("/v1/groups/{group}/messages", post(post_message))
        .route("/v1/messages", get(inbox))
        .route("/v1/messages/{id}", get(read))
        .route("/v1/messages/{id}/receipts", get(receipts))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// An error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let status = match e {
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, format!("invalid request body: {}", e.body_text()))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer TOKEN` (the admin token is in DATA/admin.token)".into(),
        )
        .into_response();
    };
    let hash = blake3::hash(presented.as_bytes());
    if !bool::from(hash.as_bytes().ct_eq(&state.token_hash)) {
        warn!("API request with a wrong token refused");
        return ApiError(StatusCode::UNAUTHORIZED, "wrong bearer token".into()).into_response();
    }
    next.run(req).await
}

async fn status(State(s): State<AppState>) -> ApiResult<views::Status> {
    Ok(Json(s.node.ask(Command::Status).await?))
}

async fn peers(State(s): State<AppState>) -> ApiResult<Vec<views::PeerView>> {
    Ok(Json(s.node.ask(Command::Peers).await?))
}

async fn add_peer(
    State(s): State<AppState>,
    body: Result<Json<views::AddPeer>, JsonRejection>,
) -> ApiResult<views::PeerView> {
    let Json(body) = body?;
    let node: NodeId = body
        .node_id
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e}")))?;
    let view = s
        .node
        .ask(|reply| Command::AddPeer {
            name: body.name,
            node,
            address: body.address,
            reply,
        })
        .await??;
    Ok(Json(view))
}

async fn remove_peer(
    State(s): State<AppState>,
    Path(peer): Path<String>,
) -> ApiResult<serde_json::Value> {
    s.node
        .ask(|reply| Command::RemovePeer { peer, reply })
        .await??;
    Ok(Json(serde_json::json!({"removed": true})))
}

async fn groups(State(s): State<AppState>) -> ApiResult<Vec<views::GroupView>> {
    Ok(Json(s.node.ask(Command::Groups).await?))
}

async fn group(
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<views::GroupView> {
    Ok(Json(
        s.node
            .ask(|reply| Command::Group { group, reply })
            .await??,
    ))
}

async fn create_group(
    State(s): State<AppState>,
    body: Result<Json<views::CreateGroup>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    let id = s
        .node
        .ask(|reply| Command::CreateGroup {
            name: body.name,
            reply,
        })
        .await??;
    Ok(Json(Created { id: id.to_string() }))
}

async fn add_member(
    State(s): State<AppState>,
    Path(group): Path<String>,
    body: Result<Json<views::AddMember>, JsonRejection>,
) -> ApiResult<views::GroupView> {
    let Json(body) = body?;
    let role: Role = body
        .role
        .as_deref()
        .unwrap_or("member")
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e}")))?;
    let view = s
        .node
        .ask(|reply| Command::AddMember {
            group,
            peer: body.peer,
            role,
            reply,
        })
        .await??;
    Ok(Json(view))
}

async fn remove_member(
    State(s): State<AppState>,
    Path((group, peer)): Path<(String, String)>,
) -> ApiResult<views::GroupView> {
    Ok(Json(
        s.node
            .ask(|reply| Command::RemoveMember { group, peer, reply })
            .await??,
    ))
}

async fn post_message(
    State(s): State<AppState>,
    Path(group): Path<String>,
    body: Result<Json<views::PostMessage>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    let handling: Handling = body
        .handling
        .as_deref()
        .unwrap_or("green")
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e}")))?;
    let reply_to = body
        .reply_to
        .as_deref()
        .map(str::parse::<MessageId>)
        .transpose()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e}")))?;
    let post = Post {
        officer: "admin".into(),
        subject: body.subject,
        body: body.body,
        handling,
        reply_to,
    };
    let id = s
        .node
        .ask(|reply| Command::Post { group, post, reply })
        .await??;
    Ok(Json(Created { id: id.to_string() }))
}

#[derive(Deserialize)]
struct InboxQuery {
    group: Option<String>,
}

async fn inbox(
    State(s): State<AppState>,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Vec<views::MessageView>> {
    Ok(Json(
        s.node
            .ask(|reply| Command::Inbox {
                group: q.group,
                reply,
            })
            .await??,
    ))
}

fn message_id(text: &str) -> Result<MessageId, ApiError> {
    text.parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e}")))
}

async fn read(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<views::MessageView> {
    let id = message_id(&id)?;
    Ok(Json(
        s.node.ask(|reply| Command::Read { id, reply }).await??,
    ))
}

async fn receipts(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Vec<views::ReceiptView>> {
    let id = message_id(&id)?;
    Ok(Json(
        s.node
            .ask(|reply| Command::Receipts { id, reply })
            .await??,
    ))
}
