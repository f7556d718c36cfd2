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
//! | `GET /v1/messages[?group=G]`                 | any     | list messages (no bodies)         |
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
use crate::node::{Command, NodeHandle};
use crate::store::StoreError;
use crate::views::{self, Created, ErrorBody};

mod backup;
mod batch;
mod posts;

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
        .route("/v1/groups/{group}/messages", post(post_message))
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

    /// Runs `make(reply)` as `who`.
    async fn ask<T>(
        &self,
        who: &Principal,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        self.node.as_officer(who.clone()).ask(make).await
    }
}

async fn status(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<views::Status> {
    s.admin_only(&who, "status", "node").await?;
    Ok(Json(s.node.as_admin().status().await?))
}

async fn peers(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<views::PeerView>> {
    s.admin_only(&who, "peer.list", "peers").await?;
    Ok(Json(s.node.as_admin().peers().await?))
}

async fn add_peer(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::AddPeer>, JsonRejection>,
) -> ApiResult<views::PeerView> {
    let Json(body) = body?;
    s.admin_only(&who, "peer.add", &body.node_id).await?;
    let target = format!("{} {}", body.name, body.node_id);
    let result = async {
        let node: NodeId = body
            .node_id
            .parse()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        if body.replace {
            s.node
                .as_admin()
                .replace_peer(body.name, node, body.address)
                .await
        } else {
            s.node
                .as_admin()
                .add_peer(body.name, node, body.address)
                .await
        }
    }
    .await;
    Ok(Json(s.audited(&who, "peer.add", &target, result).await?))
}

async fn rosters(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<crate::federation::RosterView>> {
    s.admin_only(&who, "roster.show", "").await?;
    let result = s.node.as_admin().rosters().await;
    Ok(Json(s.audited(&who, "roster.show", "", result).await?))
}

async fn load_roster(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::LoadRoster>, JsonRejection>,
) -> ApiResult<views::RosterLoaded> {
    let Json(body) = body?;
    s.admin_only(&who, "roster.load", "").await?;
    let result = async {
        let bytes = hex::decode(body.roster.trim())
            .map_err(|_| Error::Invalid("the roster is not hex".into()))?;
        s.node.as_admin().load_roster(bytes).await
    }
    .await;
    let target = match &result {
        Ok(r) => format!("{} version {}", r.federation, r.version),
        Err(_) => String::new(),
    };
    Ok(Json(s.audited(&who, "roster.load", &target, result).await?))
}

async fn rotate_keys(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::RotateKeys>, JsonRejection>,
) -> ApiResult<views::Rotated> {
    let Json(body) = body?;
    s.admin_only(&who, "key.rotate", "").await?;
    let result = s.node.as_admin().rotate_keys(body.exchange_only).await;
    let target = match &result {
        Ok(r) => format!("{} -> {}", r.old_node_id, r.node_id),
        Err(_) => String::new(),
    };
    Ok(Json(s.audited(&who, "key.rotate", &target, result).await?))
}

async fn remove_peer(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(peer): Path<String>,
) -> ApiResult<views::Removed> {
    s.admin_only(&who, "peer.remove", &peer).await?;
    let target = peer.clone();
    let result = async { s.node.as_admin().remove_peer(peer).await }.await;
    s.audited(&who, "peer.remove", &target, result).await?;
    Ok(Json(views::Removed { removed: true }))
}

async fn groups(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<views::GroupView>> {
    let result = s.node.as_officer(who.clone()).groups().await;
    Ok(Json(s.audited(&who, "group.list", "all", result).await?))
}

async fn group(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
) -> ApiResult<views::GroupView> {
    let target = group.clone();
    let result = async { s.node.as_officer(who.clone()).group(group).await }.await;
    Ok(Json(s.audited(&who, "group.show", &target, result).await?))
}

async fn create_group(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::CreateGroup>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    s.admin_only(&who, "group.create", &body.name).await?;
    let name = body.name.clone();
    let result = async { s.node.as_admin().create_group(name).await }.await;
    let id = s.audited(&who, "group.create", &body.name, result).await?;
    Ok(Json(Created { id: id.to_string() }))
}

async fn add_member(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Json<views::AddMember>, JsonRejection>,
) -> ApiResult<views::GroupView> {
    let Json(body) = body?;
    let target = format!("{group} {}", body.peer);
    s.admin_only(&who, "group.add", &target).await?;
    let result = async {
        let role: Role = body
            .role
            .as_deref()
            .unwrap_or("member")
            .parse()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        s.node.as_admin().add_member(group, body.peer, role).await
    }
    .await;
    Ok(Json(s.audited(&who, "group.add", &target, result).await?))
}

async fn remove_member(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((group, peer)): Path<(String, String)>,
) -> ApiResult<views::GroupView> {
    let target = format!("{group} {peer}");
    s.admin_only(&who, "group.remove", &target).await?;
    let result = async { s.node.as_admin().remove_member(group, peer).await }.await;
    Ok(Json(
        s.audited(&who, "group.remove", &target, result).await?,
    ))
}

async fn post_message(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Json<views::PostMessage>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    let target = group.clone();
    let result = async {
        let post = posts::message_post(&who, body)?;
        s.post_one(&who, group, post).await
    }
    .await;
    let id = s.audited_post(&who, &target, result).await?;
    Ok(Json(Created { id: id.to_string() }))
}

async fn post_record(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    let target = group.clone();
    let result = async {
        let post = posts::record_post(&who, body)?;
        s.post_one(&who, group, post).await
    }
    .await;
    let id = s.audited_post(&who, &target, result).await?;
    Ok(Json(Created { id: id.to_string() }))
}

async fn stats(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
) -> ApiResult<views::StatsView> {
    let target = group.clone();
    let result = async { s.ask(&who, |reply| Command::Stats { group, reply }).await? }.await;
    Ok(Json(s.audited(&who, "stats", &target, result).await?))
}

async fn thread(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<views::ThreadView> {
    let target = id.clone();
    let result = async {
        let id = find_message(&s, &who, &id).await?;
        s.ask(&who, |reply| Command::Thread { id, reply }).await?
    }
    .await;
    Ok(Json(s.audited(&who, "thread", &target, result).await?))
}

async fn schemas() -> Json<Vec<views::SchemaInfo>> {
    Json(
        RecordKind::ALL
            .into_iter()
            .map(|k| views::SchemaInfo {
                kind: k.as_str().to_owned(),
                title: k.title().to_owned(),
                code: k.code(),
                version: k.schema(),
                href: format!("/v1/schemas/{k}"),
            })
            .collect(),
    )
}

fn record_kind(kind: &str) -> Result<RecordKind, ApiError> {
    kind.parse().map_err(|e: liaison_protocol::ParseError| {
        ApiError::new(StatusCode::NOT_FOUND, e.to_string())
    })
}

async fn schema(Path(kind): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(record::json_schema(record_kind(&kind)?)))
}

async fn schema_template(Path(kind): Path<String>) -> Result<Response, ApiError> {
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        record::template(record_kind(&kind)?),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    include_nominal: bool,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
    /// With `format=csv`: the kind of record.
    #[serde(default)]
    kind: Option<String>,
}

async fn export(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let csv_kind = match (q.format.as_deref(), q.kind.as_deref()) {
        (None | Some("json"), _) => None,
        (Some("csv"), Some(kind)) => Some(
            kind.parse::<RecordKind>()
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
        (Some("csv"), None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "format=csv needs kind=KIND (one CSV per kind)".into(),
            ))
        }
        (Some(other), _) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?}: json or csv"),
            ))
        }
    };
    let include_nominal = q.include_nominal;
    let target = format!(
        "{group}{}{}",
        if include_nominal {
            " with nominal data"
        } else {
            ""
        },
        csv_kind.map(|k| format!(" as {k} CSV")).unwrap_or_default()
    );
    let result = async {
        s.ask(&who, |reply| Command::Export {
            group,
            include_nominal,
            reply,
        })
        .await?
    }
    .await;
    let outcome_target = match &result {
        Ok(v) => format!(
            "{target} ({} exported, {} refused: {})",
            v.exported.len(),
            v.refused.len(),
            v.refused
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Err(_) => target,
    };
    let view = s.audited(&who, "export", &outcome_target, result).await?;
    match csv_kind {
        None => Ok(Json(view).into_response()),
        Some(kind) => {
            let text = crate::records::csv(kind.as_str(), &view.exported).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("CSV: {e}"))
            })?;
            Ok((
                [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                text,
            )
                .into_response())
        }
    }
}

#[derive(Deserialize)]
struct GroupQuery {
    group: Option<String>,
}

async fn inbox(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<GroupQuery>,
) -> ApiResult<Vec<views::MessageView>> {
    let target = q.group.clone().unwrap_or_else(|| "all".into());
    let result = async {
        s.ask(&who, |reply| Command::Inbox {
            group: q.group,
            reply,
        })
        .await?
    }
    .await;
    Ok(Json(s.audited(&who, "list", &target, result).await?))
}

fn attachment_ids(texts: &[String]) -> Result<Vec<AttachmentId>, Error> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e| Error::Invalid(format!("attachment {t}: {e}")))
        })
        .collect()
}

/// `POST /v1/attachments` options.
#[derive(Debug, Deserialize)]
struct UploadQuery {
    /// The file name (no path).
    name: String,
    /// Keep the image metadata (GPS position, serial numbers): off unless asked.
    #[serde(default)]
    keep_metadata: bool,
}

async fn upload(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let result = async {
        let Query(query) = query.map_err(|e| {
            Error::Invalid(format!(
                "{}: give the file name as ?name=photo.jpg",
                e.body_text()
            ))
        })?;
        let bytes = body.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => Error::TooLarge(format!(
                "the attachment is over this node's limit of {} bytes ({} MiB, [attachments] max_mb)",
                s.attachments.options().max_bytes,
                s.attachments.options().max_bytes / (1024 * 1024)
            )),
            other => Error::Invalid(format!("cannot read the upload: {}", other.body_text())),
        })?;
        s.attachments.check_len(bytes.len() as u64)?;
        let attachments = s.attachments.clone();
        let owner = who.name().to_owned();
        tokio::task::spawn_blocking(move || {
            attachments.upload(&owner, &query.name, bytes.to_vec(), query.keep_metadata)
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }
    .await;
    let target = match &result {
        Ok(u) => u.id.clone(),
        Err(_) => String::new(),
    };
    let uploaded = s.audited(&who, "upload", &target, result).await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// The plaintext of attachment `id` for `who`, and its reference.
async fn open_attachment(
    s: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(Vec<u8>, AttachmentRef), Error> {
    let id: AttachmentId = id
        .parse()
        .map_err(|e| Error::Invalid(format!("attachment {id}: {e}")))?;
    let reference = s.node.as_officer(who.clone()).attachment(id).await?;
    crate::attachments::open_plain(s.attachments.clone(), reference).await
}

/// `GET /v1/attachments/{id}`: the whole file, or with a `Range: bytes=A-B` header one range
/// of it (206, `Content-Range`; 416 when the range lies beyond the file). A request for several
/// ranges gets the whole file, as HTTP allows.
async fn download(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let result = open_attachment(&s, &who, &id).await;
    let (plain, reference) = s.audited(&who, "attachment", &id, result).await?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        crate::attachments::header_file_name(&reference.name)
    );
    let len = plain.len() as u64;
    let common = [
        (header::CONTENT_TYPE, reference.media_type.clone()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
    ];
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        // Another unit than bytes is ignored, as HTTP allows.
        .filter(|v| v.trim_start().starts_with("bytes="))
        .map(|v| http_range_header::parse_range_header(v).and_then(|r| r.validate(len)));
    match asked {
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let (start, end) = (*ranges[0].start(), *ranges[0].end());
            let part = plain
                .get(
                    usize::try_from(start).unwrap_or(usize::MAX)
                        ..=usize::try_from(end).unwrap_or(usize::MAX),
                )
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            Ok((
                StatusCode::PARTIAL_CONTENT,
                common,
                [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
                part,
            )
                .into_response())
        }
        Some(Err(_)) => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            "the range lies beyond the file, or is not bytes=START-END",
        )
            .into_response()),
        _ => Ok((common, plain).into_response()),
    }
}

/// `GET /v1/attachments/{id}/thumbnail` options.
#[derive(Debug, Deserialize)]
struct ThumbnailQuery {
    /// Longest edge in pixels (16 to 1024; default 256).
    #[serde(default = "default_thumbnail")]
    max: u32,
}

fn default_thumbnail() -> u32 {
    256
}

async fn thumbnail(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<ThumbnailQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let Query(query) = query.map_err(|e| Error::Invalid(e.body_text()))?;
        let (plain, reference) = open_attachment(&s, &who, &id).await?;
        tokio::task::spawn_blocking(move || {
            crate::attachments::media::thumbnail(&plain, &reference.media_type, query.max)
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }
    .await;
    let (bytes, media_type) = s.audited(&who, "attachment.thumbnail", &id, result).await?;
    Ok((
        [
            (header::CONTENT_TYPE, media_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

fn message_id(text: &str) -> Result<MessageId, Error> {
    text.parse().map_err(|e| Error::Invalid(format!("{e}")))
}

/// A message named by its whole id, or by an unambiguous prefix of at least 8 hex digits
/// among the messages `who` may read (as `inbox` prints them).
async fn find_message(s: &AppState, who: &Principal, text: &str) -> Result<MessageId, Error> {
    if text.len() == 64 {
        return message_id(text);
    }
    let prefix = text.to_owned();
    s.ask(who, |reply| Command::ResolveId { prefix, reply })
        .await?
}

async fn read(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<views::MessageView> {
    let target = id.clone();
    let result = async {
        let id = find_message(&s, &who, &id).await?;
        s.ask(&who, |reply| Command::Read { id, reply }).await?
    }
    .await;
    Ok(Json(s.audited(&who, "read", &target, result).await?))
}

async fn receipts(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Vec<views::ReceiptView>> {
    let target = id.clone();
    let result = async {
        let id = find_message(&s, &who, &id).await?;
        s.ask(&who, |reply| Command::Receipts { id, reply }).await?
    }
    .await;
    Ok(Json(s.audited(&who, "receipts", &target, result).await?))
}

/// How often an open event stream re-reads its officer's access when no message comes.
const ACCESS_RECHECK: Duration = Duration::from_secs(2);

/// `who` as the accounts say now, or why the stream must end: the account is gone, or the
/// grant of the one group watched is.
fn access_now(s: &AppState, who: &Principal, group: Option<&GroupId>) -> Result<Principal, String> {
    let now = match who {
        Principal::Admin => Principal::Admin,
        Principal::Officer { name, .. } => s
            .accounts
            .principal(name)
            .ok_or_else(|| format!("the account {name} was removed"))?,
    };
    if let Some(g) = group {
        if now.access(g).is_none() {
            return Err(format!("access to group {g} was revoked"));
        }
    }
    Ok(now)
}

/// Server-sent events: one `message` event (a message view without body) per new message the
/// caller may see, optionally only of one group.
async fn events(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<GroupQuery>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let target = q.group.clone().unwrap_or_else(|| "all".into());
    let result = async {
        let group = match &q.group {
            Some(g) => {
                let g = g.clone();
                let view = s.node.as_officer(who.clone()).group(g).await?;
                Some(
                    view.id
                        .parse::<GroupId>()
                        .map_err(|e| Error::Invalid(format!("group {}: {e}", view.id)))?,
                )
            }
            None => None,
        };
        let feed = s.node.ask(Command::Subscribe).await?;
        Ok::<_, Error>((group, feed))
    }
    .await;
    let (group, feed) = s.audited(&who, "watch", &target, result).await?;
    // The feed is taken away once an `end` event is sent: the stream stops after it.
    let state = (s, who, group, Some(feed));
    let stream = futures_util::stream::unfold(state, |(s, who, group, feed)| async move {
        let mut feed = feed?;
        let mut recheck =
            tokio::time::interval_at(tokio::time::Instant::now() + ACCESS_RECHECK, ACCESS_RECHECK);
        loop {
            // Access is read afresh at each message and every ACCESS_RECHECK: a deleted
            // account or a revoked grant ends the stream with an `end` event saying why.
            if let Err(why) = access_now(&s, &who, group.as_ref()) {
                let event = SseEvent::default().event("end").data(why);
                return Some((Ok(event), (s, who, group, None)));
            }
            let fresh = tokio::select! {
                received = feed.recv() => match received {
                    Ok(fresh) => fresh,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let event = SseEvent::default().event("lagged").data(format!(
                            "{n} messages were skipped; list the inbox to catch up"
                        ));
                        return Some((Ok(event), (s, who, group, Some(feed))));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = recheck.tick() => continue,
            };
            let now = match access_now(&s, &who, group.as_ref()) {
                Ok(p) => p,
                Err(why) => {
                    let event = SseEvent::default().event("end").data(why);
                    return Some((Ok(event), (s, who, group, None)));
                }
            };
            // Opened once by the node for every stream (see `crate::node::Fresh`).
            let Some(mut view) = fresh.view_for(&now, true) else {
                continue;
            };
            if group
                .as_ref()
                .is_some_and(|g| g.to_string() != view.group_id)
            {
                continue;
            }
            view.body = None;
            let Ok(data) = serde_json::to_string(&view) else {
                continue;
            };
            let event = SseEvent::default().event("message").data(data);
            return Some((Ok(event), (s, who, group, Some(feed))));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

// ----- accounts -------------------------------------------------------------------------

pub use crate::views::{AddUser, GrantBody, NewUser, UserView};

impl AppState {
    async fn resolve_grant(&self, spec: &str) -> Result<(GroupId, Access), Error> {
        let (group, access) = match spec.rsplit_once(':') {
            Some((g, a)) if a == "read" || a == "post" => (g, a.parse()?),
            _ => (spec, Access::Read),
        };
        let g = group.to_owned();
        let view = match self.node.as_admin().group(g).await {
            Ok(view) => view,
            // `ops:write` names no group; say what is wrong with it rather than "unknown group".
            Err(Error::NotFound(_)) if spec.rsplit_once(':').is_some() && group == spec => {
                let (_, a) = spec.rsplit_once(':').unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "grant {spec:?}: access {a:?} is neither read nor post \
                     (give GROUP:read or GROUP:post)"
                )));
            }
            Err(e) => return Err(e),
        };
        let id = view
            .id
            .parse::<GroupId>()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        Ok((id, access))
    }
}

async fn users(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<UserView>> {
    s.admin_only(&who, "user.list", "users").await?;
    let list = s.accounts.list().into_iter().map(UserView::from).collect();
    Ok(Json(s.audited(&who, "user.list", "users", Ok(list)).await?))
}

async fn add_user(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<AddUser>, JsonRejection>,
) -> ApiResult<NewUser> {
    let Json(body) = body?;
    s.admin_only(&who, "user.add", &body.name).await?;
    let target = format!(
        "{} {}{}",
        body.name,
        body.grants.join(" "),
        body.login
            .as_deref()
            .map(|l| format!(" login:{l}"))
            .unwrap_or_default()
    );
    let result = async {
        let mut grants = BTreeMap::new();
        for spec in &body.grants {
            let (g, a) = s.resolve_grant(spec).await?;
            grants.insert(g, a);
        }
        let login = body.login.as_deref().unwrap_or("");
        if !matches!(login, "" | "enrol" | "password") {
            return Err(Error::Invalid(format!(
                "login {login:?} is neither enrol nor password"
            )));
        }
        let token = s.accounts.add(&body.name, grants).await?;
        if body.operator {
            s.accounts
                .update(&body.name, |a| {
                    a.operator = true;
                    Ok(())
                })
                .await?;
        }
        let (mut enrolment_code, mut password) = (None, None);
        match login {
            "enrol" => {
                enrolment_code = Some(s.accounts.issue_enrolment(&body.name).await?.to_string())
            }
            "password" => password = Some(s.accounts.issue_password(&body.name).await?.to_string()),
            _ => {}
        }
        let user = s
            .accounts
            .list()
            .into_iter()
            .find(|a| a.name == body.name)
            .map(UserView::from)
            .ok_or_else(|| Error::Invalid("account vanished".into()))?;
        Ok(NewUser {
            user,
            token: token.to_string(),
            enrolment_code,
            password,
        })
    }
    .await;
    Ok(Json(s.audited(&who, "user.add", &target, result).await?))
}

async fn remove_user(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<views::Removed> {
    s.admin_only(&who, "user.remove", &name).await?;
    let result = s.accounts.remove(&name).await;
    s.audited(&who, "user.remove", &name, result).await?;
    Ok(Json(views::Removed { removed: true }))
}

async fn grant(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<GrantBody>, JsonRejection>,
) -> ApiResult<UserView> {
    let Json(body) = body?;
    let target = format!("{name} {}", body.grant);
    s.admin_only(&who, "user.grant", &target).await?;
    let result = async {
        let (g, a) = s.resolve_grant(&body.grant).await?;
        s.accounts
            .set_grant(&name, g, Some(a))
            .await
            .map(UserView::from)
    }
    .await;
    Ok(Json(s.audited(&who, "user.grant", &target, result).await?))
}

async fn revoke(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((name, group)): Path<(String, String)>,
) -> ApiResult<UserView> {
    let target = format!("{name} {group}");
    s.admin_only(&who, "user.revoke", &target).await?;
    let result = async {
        let (g, _) = s.resolve_grant(&group).await?;
        s.accounts
            .set_grant(&name, g, None)
            .await
            .map(UserView::from)
    }
    .await;
    Ok(Json(s.audited(&who, "user.revoke", &target, result).await?))
}

#[derive(Deserialize)]
struct AuditQuery {
    since_ms: Option<u64>,
}

/// `GET /v1/audit`: a JSON array, one record per line, streamed from the store a page at a
/// time (see [`crate::audit::read::json_array`]), so that neither side holds the whole log.
async fn audit_log(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    s.admin_only(&who, "audit.read", "audit").await?;
    // The reading itself is recorded first, so that it appears in what is returned.
    s.audited(&who, "audit.read", "audit", Ok(())).await?;
    let records = crate::audit::read::json_array(s.audit.store().clone(), q.since_ms.unwrap_or(0));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(records),
    )
        .into_response())
}

async fn quarantined(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<views::QuarantineView>> {
    s.admin_only(&who, "quarantine.list", "quarantine").await?;
    let result = s.node.as_admin().quarantined().await;
    Ok(Json(
        s.audited(&who, "quarantine.list", "quarantine", result)
            .await?,
    ))
}

async fn quarantine(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::QuarantineRequest>, JsonRejection>,
) -> ApiResult<views::QuarantineView> {
    let Json(body) = body?;
    s.admin_only(&who, "quarantine.add", &body.id).await?;
    let target = body.id.clone();
    let result = async {
        let id = message_id(&body.id)?;
        let reason = body.reason;
        s.node.as_admin().quarantine(id, reason).await
    }
    .await;
    Ok(Json(
        s.audited(&who, "quarantine.add", &target, result).await?,
    ))
}

async fn release(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<views::QuarantineView> {
    s.admin_only(&who, "quarantine.release", &id).await?;
    let target = id.clone();
    let result = async {
        let id = message_id(&id)?;
        s.node.as_admin().release(id).await
    }
    .await;
    Ok(Json(
        s.audited(&who, "quarantine.release", &target, result)
            .await?,
    ))
}

async fn audit_verify(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Verification> {
    s.admin_only(&who, "audit.verify", "audit").await?;
    let store = s.audit.store().clone();
    let result = tokio::task::spawn_blocking(move || crate::audit::verify(&store))
        .await
        .map_err(|_| Error::ShuttingDown)
        .and_then(|r| r);
    Ok(Json(
        s.audited(&who, "audit.verify", "audit", result).await?,
    ))
}

/// `POST /v1/audit/checkpoint`: the chain's head, signed now (its own record included).
async fn audit_checkpoint(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<crate::audit::checkpoint::Checkpoint> {
    s.admin_only(&who, "audit.checkpoint", "audit").await?;
    // Recorded and durable first, so that the checkpoint covers its own request.
    s.audited(&who, "audit.checkpoint", "audit", Ok(())).await?;
    let dir = s.dir.clone();
    let key = tokio::task::spawn_blocking(move || dir.identity_key())
        .await
        .map_err(|_| Error::ShuttingDown)??;
    let checkpoint = crate::audit::checkpoint::take(&s.audit, &key)
        .await
        .ok_or_else(|| Error::NotYet("the audit log is empty".into()))?;
    Ok(Json(checkpoint))
}

/// `POST /v1/audit/verify` with a checkpoint this node signed: the chain, and that the record
/// the checkpoint names still has the signed hash.
async fn audit_verify_checkpoint(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<crate::audit::checkpoint::Checkpoint>, JsonRejection>,
) -> ApiResult<Verification> {
    let Json(checkpoint) = body?;
    s.admin_only(&who, "audit.verify", "audit").await?;
    let target = format!("audit checkpoint {}", checkpoint.seq);
    let dir = s.dir.clone();
    let store = s.audit.store().clone();
    let result = tokio::task::spawn_blocking(move || {
        let anchor = checkpoint.check(&dir.node_id()?)?;
        crate::audit::read::verify(&store, Some(anchor))
    })
    .await
    .map_err(|_| Error::ShuttingDown)
    .and_then(|r| r);
    Ok(Json(
        s.audited(&who, "audit.verify", &target, result).await?,
    ))
}
