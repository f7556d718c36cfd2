//! The local HTTP JSON API (axum), served on loopback by default.
//!
//! Every request needs `Authorization: Bearer TOKEN`: the admin token from `init`, or an
//! officer's token from `liaison user add`. An officer sees only the groups granted to it; any
//! other group, and any message in one, answers 404 exactly as if it did not exist. Every
//! request that reads, posts, lists, changes membership or accounts, exports, or is refused is
//! appended to the audit log before the answer is sent. Errors are JSON `{"error": "..."}`; an
//! invalid record answers 422 with `"fields": [{"pointer": "/record/items/0/hs_code",
//! "reason": "..."}]` as well.
//!
//! | method and path                              | who     | does                              |
//! |----------------------------------------------|---------|-----------------------------------|
//! | `GET /v1/status`                             | admin   | node status                       |
//! | `GET /v1/peers`, `POST /v1/peers`            | admin   | list, pin a peer                  |
//! | `DELETE /v1/peers/{peer}`                    | admin   | unpin a peer, drop its connection |
//! | `GET /v1/roster`, `POST /v1/roster`          | admin   | the federation rosters; take one  |
//! | `POST /v1/key/rotate`                        | admin   | move this node to new keys        |
//! | `POST /v1/backup`                            | admin   | write a consistent copy of the store into a new directory (see [`crate::backup`]) |
//! | `GET /v1/groups`                             | any     | groups visible to the caller      |
//! | `POST /v1/groups`                            | admin   | create a group                    |
//! | `GET /v1/groups/{group}`                     | any     | one group with its members        |
//! | `POST /v1/groups/{group}/members`            | admin   | add a member (owner node only)    |
//! | `DELETE /v1/groups/{group}/members/{peer}`   | admin   | remove a member                   |
//! | `POST /v1/groups/{group}/messages`           | any     | post; answers once durable        |
//! | `POST /v1/groups/{group}/records`           | any     | post a record (`{"kind", "record", …}`); 422 with `fields` if invalid |
//! | `POST /v1/groups/{group}/messages/batch`     | any     | post up to 1,000 messages and records (JSON array or JSON lines); each answered with its id or its error (see [`BatchAnswer`]) |
//! | `GET /v1/groups/{group}/export[?include_nominal=true][&format=csv&kind=K]` | any | messages that may leave (JSON, or one kind as CSV), and why others may not |
//! | `GET /v1/groups/{group}/stats`               | any     | counts by kind, commodity, outcome, month, state |
//! | `GET /v1/schemas`, `GET /v1/schemas/{kind}`  | any     | record kinds; a kind's JSON Schema |
//! | `GET /v1/schemas/{kind}/template`            | any     | a commented example to fill in    |
//! | `POST /v1/attachments?name=N[&keep_metadata=true]` | any | upload a file (raw body, at most `[attachments] max_mb`): media type from content, image metadata removed; answers its id, to name in `attachments` of the post that follows (413 if too large) |
//! | `GET /v1/attachments/{id}`                   | any     | an attachment of a message the caller may read, decrypted (503 while it is being fetched); `Range: bytes=A-B` answers that part (206) |
//! | `GET /v1/attachments/{id}/thumbnail[?max=N]` | any     | a thumbnail of such a photo, made here (JPEG or PNG, longest edge N, default 256) |
//! | `GET /v1/messages[?group=G&limit=N&before=C]` | any     | a page of messages, newest first (no bodies) |
//! | `GET /v1/groups/{group}/messages[?limit=N&before=C]` | any | a page of one group's messages |
//! | `GET /v1/messages/{id}`                      | any     | read one message                  |
//! | `GET /v1/messages/{id}/receipts`             | any     | delivery receipts                 |
//! | `GET /v1/messages/{id}/thread`               | any     | the thread, with alert and request states |
//! | `GET /v1/events[?group=G]`                   | any     | server-sent events: new messages; `end` when the caller's access goes |
//! | `GET /v1/identity?challenge=HEX`             | none    | the node's signature over the challenge: the CLI checks it before sending a token |
//! | `GET /v1/users`, `POST /v1/users`            | admin   | list, add an officer              |
//! | `DELETE /v1/users/{name}`                    | admin   | remove an officer                 |
//! | `POST /v1/users/{name}/grants`               | admin   | grant `GROUP[:read\|:post]`       |
//! | `DELETE /v1/users/{name}/grants/{group}`     | admin   | revoke a grant                    |
//! | `GET /v1/audit[?since_ms=T]`                 | admin   | the audit log                     |
//! | `GET /v1/audit/verify`                       | admin   | check the audit chain             |
//! | `POST /v1/audit/verify`                      | admin   | check it against a checkpoint     |
//! | `POST /v1/audit/checkpoint`                  | admin   | sign the chain's head now         |
//! | `GET /v1/openapi.json`                       | no token | this API's OpenAPI 3.1 description (see [`crate::openapi`]) |
//!
//! Every route here is described in [`crate::openapi`]; a test there compares the two.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::MessageId;
use liaison_protocol::record::{self, RecordKind};
use liaison_protocol::{FieldError, GroupId, NodeId, Role};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::accounts::{Access, Accounts, Principal};
use crate::attachments::{Attachments, Uploaded};
use crate::audit::{AuditLog, Verification};
use crate::datadir::DataDir;
use crate::error::Error;
use crate::node::NodeHandle;
use crate::store::StoreError;
use crate::views::{self, Created, ErrorBody};

mod accounts;
mod attachments;
mod backup;
mod batch;
mod messages;
mod node;
mod posts;

use accounts::*;
use attachments::*;
use messages::*;
use node::*;

pub use crate::views::{AddUser, GrantBody, NewUser, UserView};
pub use batch::{BatchAnswer, ItemAnswer, MAX_BATCH_ITEMS};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    accounts: Arc<Accounts>,
    audit: Arc<AuditLog>,
    attachments: Arc<Attachments>,
    /// The node's data directory: its identity key (read afresh, as `liaison key rotate`
    /// replaces it) signs the challenges of `/v1/identity`.
    dir: DataDir,
    /// The bounded record of requests refused before a handler took them.
    refusals: Arc<crate::audit::refused::Refusals>,
}

/// Serves the API on `listener` until `shutdown` is cancelled.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: NodeHandle,
    accounts: Arc<Accounts>,
    audit: Arc<AuditLog>,
    attachments: Arc<Attachments>,
    dir: DataDir,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    let refusals = Arc::new(crate::audit::refused::Refusals::new(audit.clone()));
    let checkpoints = crate::audit::checkpoint::run(audit.clone(), dir.clone(), shutdown.clone());
    let state = AppState {
        node,
        accounts,
        audit,
        attachments,
        dir,
        refusals: refusals.clone(),
    };
    // Outermost, so that refused requests (401, 413) are timed and counted too.
    let app = router(state).layer(middleware::from_fn_with_state(
        metrics,
        crate::metrics::track_api,
    ));
    let stopping = shutdown.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopping.cancelled().await });
    let (result, (), ()) = tokio::join!(server, refusals.run(shutdown), checkpoints);
    if let Err(e) = result {
        warn!(error = %e, "API server failed");
    }
    info!("API stopped");
}

fn router(state: AppState) -> Router {
    // The upload's own limit, checked again with a clear error in `upload`; a little slack so
    // that a body just over it gets that error rather than the generic one.
    let upload_limit =
        usize::try_from(state.attachments.options().max_bytes).unwrap_or(usize::MAX) + 1;
    let api = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers).post(add_peer))
        .route("/v1/peers/{peer}", delete(remove_peer))
        .route("/v1/roster", get(rosters).post(load_roster))
        .route("/v1/key/rotate", post(rotate_keys))
        .route("/v1/backup", post(backup::take))
        .route("/v1/groups", get(groups).post(create_group))
        .route("/v1/groups/{group}", get(group))
        .route("/v1/groups/{group}/members", post(add_member))
        .route("/v1/groups/{group}/members/{peer}", delete(remove_member))
        .route(
            "/v1/groups/{group}/messages",
            get(group_messages).post(post_message),
        )
        .route("/v1/groups/{group}/records", post(post_record))
        .route("/v1/groups/{group}/messages/batch", post(batch::post_batch))
        .route("/v1/groups/{group}/export", get(export))
        .route("/v1/groups/{group}/stats", get(stats))
        .route("/v1/schemas", get(schemas))
        .route("/v1/schemas/{kind}", get(schema))
        .route("/v1/schemas/{kind}/template", get(schema_template))
        .route(
            "/v1/attachments",
            post(upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/v1/attachments/{id}", get(download))
        .route("/v1/attachments/{id}/thumbnail", get(thumbnail))
        .route("/v1/messages", get(inbox))
        .route("/v1/messages/{id}", get(read))
        .route("/v1/messages/{id}/receipts", get(receipts))
        .route("/v1/messages/{id}/thread", get(thread))
        .route("/v1/events", get(events))
        .route("/v1/users", get(users).post(add_user))
        .route("/v1/users/{name}", delete(remove_user))
        .route("/v1/users/{name}/grants", post(grant))
        .route("/v1/users/{name}/grants/{group}", delete(revoke))
        .route("/v1/quarantine", get(quarantined).post(quarantine))
        .route("/v1/quarantine/{id}", delete(release))
        .route("/v1/audit", get(audit_log))
        .route(
            "/v1/audit/verify",
            get(audit_verify).post(audit_verify_checkpoint),
        )
        .route("/v1/audit/checkpoint", post(audit_checkpoint))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    // Probes for a service manager or a load balancer: no token, and nothing in the answer but
    // whether the node is alive or ready (the reasons are in `/v1/status` and the log).
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/identity", get(identity))
        .route("/v1/openapi.json", get(openapi_json))
        .merge(api)
        .with_state(state)
}

/// `GET /v1/identity?challenge=HEX`.
#[derive(Debug, Deserialize)]
struct IdentityQuery {
    /// 32 random bytes, hex.
    challenge: String,
}

/// `/v1/identity`: the node's signature over a caller's challenge, so that the CLI knows it
/// speaks to its own node before it sends a token (see [`crate::api_identity`]). No token.
async fn identity(
    State(s): State<AppState>,
    query: Result<Query<IdentityQuery>, QueryRejection>,
) -> Result<Json<crate::api_identity::Proof>, ApiError> {
    let Query(query) = query.map_err(|e| Error::Invalid(e.body_text()))?;
    let mut challenge = [0u8; 32];
    hex::decode_to_slice(&query.challenge, &mut challenge)
        .map_err(|_| Error::Invalid("challenge: 64 hex digits".into()))?;
    let dir = s.dir.clone();
    let key = tokio::task::spawn_blocking(move || dir.identity_key())
        .await
        .map_err(|_| Error::ShuttingDown)??;
    Ok(Json(crate::api_identity::prove(&key, &challenge)))
}

/// `/healthz`: the process serves HTTP.
async fn healthz() -> &'static str {
    "alive\n"
}

/// `/readyz`: the node's actor answers and its store is healthy as `liaison status` shows it (no
/// failed flush or write, free disk space above `[store] min_free_mb`, no damaged message still
/// waiting to be fetched again); 503 otherwise.
async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    match s.node.as_admin().status().await {
        Ok(status) if status.store.healthy => (StatusCode::OK, "ready\n"),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the store needs attention (see liaison status)\n",
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the node does not answer\n",
        ),
    }
}

/// `/v1/openapi.json`: the API's description, the same for every node of a release (no
/// token).
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(crate::openapi::json).clone();
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// An error answer.
struct ApiError(StatusCode, String, Vec<FieldError>);

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError(status, message, Vec::new())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                error: self.1,
                fields: self.2,
            }),
        )
            .into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = e.status();
        let fields = match &e {
            Error::InvalidRecord(fields) => fields.clone(),
            _ => Vec::new(),
        };
        let message = match &e {
            Error::Store(se @ StoreError::Engine { .. }) if se.is_disk_full() => {
                format!(
                    "{e}; the disk holding the store is full: free space on it, and the node \
                     takes writes again by itself"
                )
            }
            _ => e.to_string(),
        };
        ApiError(status, message, fields)
    }
}

/// A request refused because its audit record could not be written: never the caller's fault,
/// and a full disk or a store that is reopening is said as such (507, 503).
fn audit_failed(e: Error) -> ApiError {
    let ApiError(status, message, _) = ApiError::from(e);
    let status = if status.is_client_error() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        status
    };
    ApiError::new(
        status,
        format!("refused: its audit record cannot be written: {message}"),
    )
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let status = match e {
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("invalid request body: {}", e.body_text()))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let target = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(presented) = presented else {
        state
            .refusals
            .record(
                source,
                "unknown",
                "auth",
                &method,
                &target,
                "denied: no token",
            )
            .await;
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer TOKEN` (the admin token is in DATA/admin.token)".into(),
        )
        .into_response();
    };
    let Some(who) = state.accounts.authenticate(presented) else {
        state
            .refusals
            .record(
                source,
                "unknown",
                "auth",
                &method,
                &target,
                "denied: wrong token",
            )
            .await;
        return ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token".into())
            .into_response();
    };
    let actor = who.audit_name();
    req.extensions_mut().insert(who);
    // A request refused before its handler wrote a record (a body or query that does not
    // parse, an unknown route or method) is recorded here, bounded like a refused token.
    let (response, audited) = crate::audit::refused::handled(next.run(req)).await;
    let status = response.status();
    if !audited && (status.is_client_error() || status.is_server_error()) {
        let outcome = format!("error: {status}");
        state
            .refusals
            .record(source, &actor, "refused", &method, &target, &outcome)
            .await;
    }
    response
}

impl AppState {
    /// Appends the audit record of a request and passes its result on. A request whose audit
    /// record cannot be written fails.
    async fn audited<T>(
        &self,
        who: &Principal,
        action: &str,
        target: &str,
        result: Result<T, Error>,
    ) -> Result<T, ApiError> {
        crate::audit::refused::mark_audited();
        let outcome = crate::audit::outcome(who, result.as_ref().err());
        let actor = who.audit_name();
        let written = if crate::audit::is_read_only(action) {
            self.audit
                .append_read(&actor, action, target, &outcome)
                .await
        } else {
            self.audit.append(&actor, action, target, &outcome).await
        };
        written.map_err(audit_failed)?;
        result.map_err(ApiError::from)
    }

    /// Refuses officers on admin-only endpoints (audited).
    async fn admin_only(
        &self,
        who: &Principal,
        action: &str,
        target: &str,
    ) -> Result<(), ApiError> {
        if *who == Principal::Admin {
            return Ok(());
        }
        self.audited::<()>(
            who,
            action,
            target,
            Err(Error::Forbidden("this needs the node's admin token".into())),
        )
        .await
    }
}
