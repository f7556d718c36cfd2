//! The API's OpenAPI 3.1 description, generated from the code: the request and answer types
//! are the API's own (`views`, `api`, `audit`, `attachments`, each deriving
//! [`utoipa::ToSchema`] with its doc comments as descriptions), and each operation below
//! documents one route of [`crate::api`]'s router, its parameters, answers and errors.
//!
//! The node serves the document at `GET /v1/openapi.json` (no token: it is the same for every
//! node of a release), and `docs/openapi.json` is a copy that a test keeps equal to it. Another
//! test compares the operations here with the routes the router has, both ways, so that a
//! route cannot be added without its description. The operation functions below are never
//! called: they only carry the descriptions.
//!
//! The file is long because it holds one description per route (about 50) and each is a few
//! lines of attributes; splitting it by route group would only scatter what the route test
//! compares as one list.
//!
//! Every operation under `/v1/` (except this document and `/v1/identity`) needs a bearer token and may also
//! answer 401 (no or wrong token), 500 (a fault, or the audit record could not be written) and
//! 503 (the node is shutting down or its store is reopening); those three are added to each by
//! [`CommonErrors`] rather than repeated below.

#![allow(dead_code)] // The operation functions only carry descriptions.

use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api_identity::Proof;
use crate::attachments::Uploaded;
use crate::audit::checkpoint::Checkpoint;
use crate::audit::{AuditRecord, Verification};
use crate::federation::RosterView;
pub use crate::views::FieldProblem;
use crate::views::{
    AddMember, AddPeer, CreateGroup, Created, ErrorBody, ExportView, GroupView, LoadRoster,
    MessagePage, MessageView, PeerView, PostMessage, PostRecord, QuarantineRequest, QuarantineView,
    ReceiptView, Removed, RosterLoaded, RotateKeys, Rotated, SchemaInfo, StatsView, Status,
    ThreadView,
};
use crate::views::{AddUser, GrantBody, NewUser, UserView};

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Liaison node API",
        description = "The local HTTP API of a Liaison node: what national systems and the \
            `liaison` CLI use to post, read and administer. Served on loopback by default. \
            Every request under `/v1/` but this document needs `Authorization: Bearer TOKEN`: \
            the node's admin token (`DATA/admin.token`) or an officer's token. An officer sees \
            only the groups granted to it; any other group, and any message in one, answers \
            404 exactly as if it did not exist. Every request that reads, posts, lists, \
            changes membership or accounts, exports, or is refused is written to the node's \
            audit log before it is answered. Errors are `{\"error\": \"...\"}`; request bodies \
            are limited to 1 MiB, uploads to `[attachments] max_mb`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        healthz, readyz, openapi_json, identity,
        status,
        peers, add_peer, remove_peer,
        rosters, load_roster, rotate_keys, backup,
        groups, create_group, group, add_member, remove_member,
        post_message, post_record, post_batch, export, stats,
        schemas, schema, schema_template,
        upload, download, thumbnail,
        inbox, group_messages, read, receipts, thread, events,
        users, add_user, remove_user, grant, revoke,
        quarantined, quarantine, release,
        audit_log, audit_verify, audit_verify_checkpoint, audit_checkpoint,
    ),
    components(schemas(FieldProblem, Binary)),
    modifiers(&CommonErrors),
    tags(
        (name = "probes", description = "Liveness and readiness for a service manager or a load balancer; no token."),
        (name = "node", description = "The node itself, and this description."),
        (name = "peers", description = "The peer nodes this node exchanges with (admin token)."),
        (name = "groups", description = "Closed user groups: membership is changed by the owner node only."),
        (name = "messages", description = "Posting, listing and reading messages, their receipts and threads."),
        (name = "records", description = "Structured records (seizure reports, cultural objects, alerts, requests, feedback) and their JSON Schemas."),
        (name = "attachments", description = "Photos and documents named by messages."),
        (name = "officers", description = "Officer accounts and their grants (admin token)."),
        (name = "quarantine", description = "Taking a stored message out of this node's views (admin token)."),
        (name = "audit", description = "The hash-chained audit log (admin token)."),
    ),
)]
pub struct ApiDoc;

/// The document as the node serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty-printed JSON with a final newline: what `/v1/openapi.json` answers
/// and `docs/openapi.json` holds.
pub fn json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the description did not encode: {e}\"}}"));
    text.push('\n');
    text
}

/// Bytes as they are: an uploaded or downloaded file, a thumbnail.
#[derive(Debug)]
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("The bytes of the file."))
            .into()
    }
}

impl ToSchema for Binary {}

/// The paths under `/v1/` that need no token: this document, and the node's proof of identity.
const UNAUTHENTICATED: [&str; 2] = ["/v1/openapi.json", "/v1/identity"];

/// Adds the bearer scheme, and to every operation that needs it the requirement and the
/// answers every such operation may give (401, 500, 503).
#[derive(Debug)]
pub struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The node's admin token (DATA/admin.token) or an officer's token \
                         (`liaison user add` prints it once).",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (name, description) in [
            (
                "Unauthorized",
                "No bearer token, or a wrong one (the attempt is audited).",
            ),
            (
                "Internal",
                "A fault in the node (its log says which), or the request's audit record \
                 could not be written; nothing was done.",
            ),
            (
                "Unavailable",
                "The node is shutting down, or its store is reopening after a failed flush; \
                 try again.",
            ),
        ] {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(error(description)));
        }
        let requirement =
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new());
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") || UNAUTHENTICATED.contains(&path.as_str()) {
                continue;
            }
            for op in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![requirement.clone()]);
                for (status, name) in [
                    ("401", "Unauthorized"),
                    ("500", "Internal"),
                    ("503", "Unavailable"),
                ] {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

// ----- probes and the description -----------------------------------------------------------

/// The process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses(
    (status = 200, description = "Alive.", content_type = "text/plain", body = String, example = "alive\n"),
))]
fn healthz() {}

/// The node is ready: its actor answers and its store is healthy (no failed flush or write,
/// free disk space above `[store] min_free_mb`, no damaged message waiting to be fetched
/// again). The reasons are in `GET /v1/status` and the log, never here.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "Ready.", content_type = "text/plain", body = String, example = "ready\n"),
    (status = 503, description = "Not ready: the store needs attention, or the node does not answer.", content_type = "text/plain", body = String),
))]
fn readyz() {}

/// This description (OpenAPI 3.1). No token.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node", responses(
    (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = serde_json::Value),
))]
fn openapi_json() {}

/// The node's status: id, addresses, peers, groups, messages, and the store's health (admin
/// token).
#[utoipa::path(get, path = "/v1/status", tag = "node", responses(
    (status = 200, description = "The status.", body = Status),
    (status = 403, description = "An officer's token: this needs the admin token.", body = ErrorBody),
))]
fn status() {}

/// The node's signature, by its identity key, over a caller's 32 random bytes: the `liaison`
/// CLI checks it before it sends a token, so that a process holding a stopped node's port gets
/// none. No token.
#[utoipa::path(get, path = "/v1/identity", tag = "node",
    params(("challenge" = String, Query, description = "32 random bytes, as 64 hex digits.")),
    responses(
        (status = 200, description = "The node id and its signature over `liaison/v1/api-identity\\0` followed by the challenge.", body = Proof),
        (status = 400, description = "No challenge, or not 64 hex digits.", body = ErrorBody),
    ))]
fn identity() {}

// ----- federation ------------------------------------------------------------------------------

/// The federation rosters this node holds, with their state (valid, expiring, expired).
#[utoipa::path(get, path = "/v1/roster", tag = "peers", responses(
    (status = 200, description = "The rosters.", body = Vec<RosterView>),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
))]
fn rosters() {}

/// Takes a signed roster (from a file the operator was given): refused unless signed by a
/// configured authority and newer than the one held.
#[utoipa::path(post, path = "/v1/roster", tag = "peers", request_body = LoadRoster, responses(
    (status = 200, description = "Taken.", body = RosterLoaded),
    (status = 400, description = "Not a roster, a bad signature, an unknown authority, or an older version.", body = ErrorBody),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
))]
fn load_roster() {}

/// Moves the node to new keys with a statement signed by the old key; peers follow it.
#[utoipa::path(post, path = "/v1/key/rotate", tag = "peers", request_body = RotateKeys, responses(
    (status = 200, description = "Rotated.", body = Rotated),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 409, description = "A rotation is under way.", body = ErrorBody),
))]
fn rotate_keys() {}

/// Writes a consistent copy of the store (its index, the envelope log up to one point, the
/// attachments held whole) and the configuration into a new directory on the node's own file
/// system: everything the node acknowledged before the call is in it. Writes pause only while
/// the index is exported. `liaison backup` calls it and adds the manifest (and, if asked, the
/// encrypted keys).
#[utoipa::path(post, path = "/v1/backup", tag = "node", request_body = crate::backup::BackupRequest, responses(
    (status = 200, description = "Written: the files, their checksums, and what the copy holds.", body = crate::backup::DataPart),
    (status = 400, description = "The path is not absolute.", body = ErrorBody),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 409, description = "The directory exists: a backup never overwrites anything.", body = ErrorBody),
    (status = 500, description = "The directory cannot be written, or the store cannot be read (the error says which); nothing is left behind.", body = ErrorBody),
))]
fn backup() {}

/// Posts many messages or records at once (a JSON array, or JSON lines): each item is checked
/// and posted on its own and answered with its id or its error; a bad item changes nothing
/// for the others. At most 1,000 items and 1 MiB.
#[utoipa::path(post, path = "/v1/groups/{group}/messages/batch", tag = "messages",
    params(("group" = String, Path, description = "Group id or name.")),
    request_body(content = serde_json::Value, description = "A JSON array of items, or one item per line; an item with `kind` is a record (as `POST .../records`), else a message (as `POST .../messages`)."),
    responses(
        (status = 200, description = "`{posted, failed, items: [{id} | {error, status, fields}]}`, in the order of the body.", body = serde_json::Value),
        (status = 400, description = "An empty or unreadable body.", body = ErrorBody),
        (status = 404, description = "No such group (for this caller).", body = ErrorBody),
        (status = 413, description = "Over 1,000 items or 1 MiB.", body = ErrorBody),
    ))]
fn post_batch() {}

// ----- peers ---------------------------------------------------------------------------------

/// The pinned peers and their connection state.
#[utoipa::path(get, path = "/v1/peers", tag = "peers", responses(
    (status = 200, description = "The peers.", body = Vec<PeerView>),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
))]
fn peers() {}

/// Pins a peer (takes effect at once): its node id is the only key this node accepts from
/// that address, and it dials it.
#[utoipa::path(post, path = "/v1/peers", tag = "peers", request_body = AddPeer, responses(
    (status = 200, description = "The peer as pinned.", body = PeerView),
    (status = 400, description = "Not a node id, this node's own id, a name with spaces or over 64 characters, an address that is not IP:PORT, or a body that is not the JSON asked for.", body = ErrorBody),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 409, description = "Another peer already has that name.", body = ErrorBody),
    (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
))]
fn add_peer() {}

/// Unpins a peer and drops its connection.
#[utoipa::path(delete, path = "/v1/peers/{peer}", tag = "peers",
    params(("peer" = String, Path, description = "The peer's name or node id.")),
    responses(
        (status = 200, description = "Unpinned.", body = Removed),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
        (status = 404, description = "No such peer.", body = ErrorBody),
    ))]
fn remove_peer() {}

// ----- groups --------------------------------------------------------------------------------

/// The groups the caller may see: every group this node holds for the admin, the granted
/// ones for an officer.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", responses(
    (status = 200, description = "The groups.", body = Vec<GroupView>),
))]
fn groups() {}

/// Creates a group owned by this node (admin token).
#[utoipa::path(post, path = "/v1/groups", tag = "groups", request_body = CreateGroup, responses(
    (status = 200, description = "The new group's id.", body = Created),
    (status = 400, description = "An empty or too long name, or a body that is not the JSON asked for.", body = ErrorBody),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 409, description = "This node already owns a group of that name.", body = ErrorBody),
    (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
    (status = 507, description = "The disk holding the store is full.", body = ErrorBody),
))]
fn create_group() {}

/// One group with its members.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "The group's id or name.")),
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
    ))]
fn group() {}

/// Adds a member (only on the group's owner node; admin token). The peer must have connected
/// once, so that the owner knows the key it wraps the group key to. Opens a new key epoch.
#[utoipa::path(post, path = "/v1/groups/{group}/members", tag = "groups",
    params(("group" = String, Path, description = "The group's id or name.")),
    request_body = AddMember,
    responses(
        (status = 200, description = "The group with its new member.", body = GroupView),
        (status = 400, description = "A role other than member or reader, or a body that is not the JSON asked for.", body = ErrorBody),
        (status = 403, description = "This needs the admin token, or this node does not own the group.", body = ErrorBody),
        (status = 404, description = "No such group or peer.", body = ErrorBody),
        (status = 409, description = "The peer is already a member, the group is full, or the peer has not connected yet.", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
        (status = 507, description = "The disk holding the store is full.", body = ErrorBody),
    ))]
fn add_member() {}

/// Removes a member (owner node only; admin token). It gets no key for the new epoch and
/// nothing posted afterwards.
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{peer}", tag = "groups",
    params(
        ("group" = String, Path, description = "The group's id or name."),
        ("peer" = String, Path, description = "The member's peer name or node id."),
    ),
    responses(
        (status = 200, description = "The group without the member.", body = GroupView),
        (status = 403, description = "This needs the admin token, or this node does not own the group.", body = ErrorBody),
        (status = 404, description = "No such group, or the node is not a member.", body = ErrorBody),
        (status = 409, description = "The owner cannot remove itself.", body = ErrorBody),
        (status = 507, description = "The disk holding the store is full.", body = ErrorBody),
    ))]
fn remove_member() {}

// ----- messages ------------------------------------------------------------------------------

/// Posts a note. Answers once the message is durably stored here; it is pushed to the
/// group's connected members at once and synced to the others.
#[utoipa::path(post, path = "/v1/groups/{group}/messages", tag = "messages",
    params(("group" = String, Path, description = "The group's id or name.")),
    request_body = PostMessage,
    responses(
        (status = 200, description = "The message id.", body = Created),
        (status = 400, description = "An unknown handling code, TLP:RED without recipients, a bad reply-to or attachment id, a subject or body over its limit, or a body that is not the JSON asked for.", body = ErrorBody),
        (status = 403, description = "The caller may only read the group, or this node is a reader in it.", body = ErrorBody),
        (status = 404, description = "No such group, or the caller may not see it; or a named attachment is not the caller's upload.", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
        (status = 507, description = "The disk holding the store is below its free-space floor: posts are refused until space is freed.", body = ErrorBody),
    ))]
fn post_message() {}

/// Posts a structured record, in its tagged JSON form (`{"kind", "record", ...}`: what
/// `GET /v1/schemas/{kind}/template` shows). Answers once it is durably stored here.
#[utoipa::path(post, path = "/v1/groups/{group}/records", tag = "records",
    params(("group" = String, Path, description = "The group's id or name.")),
    request_body = PostRecord,
    responses(
        (status = 200, description = "The message id.", body = Created),
        (status = 400, description = "An unknown handling code, TLP:RED without recipients, a bad reply-to, or a body that is not JSON.", body = ErrorBody),
        (status = 403, description = "The caller may only read the group, or this node is a reader in it.", body = ErrorBody),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
        (status = 422, description = "The record is invalid: `fields` names each problem at its JSON pointer.", body = ErrorBody),
        (status = 507, description = "The disk holding the store is below its free-space floor.", body = ErrorBody),
    ))]
fn post_record() {}

/// The group's messages that may leave the node (JSON with bodies, or one kind of record as
/// CSV), and the ones a handling code keeps in, with the reason. Audited with what was
/// refused.
#[utoipa::path(get, path = "/v1/groups/{group}/export", tag = "records",
    params(
        ("group" = String, Path, description = "The group's id or name."),
        ("include_nominal" = Option<bool>, Query, description = "Include records' nominal section (persons, companies); left out by default."),
        ("format" = Option<String>, Query, description = "`json` (the default) or `csv`."),
        ("kind" = Option<String>, Query, description = "With `format=csv`: the kind of record, one CSV per kind."),
    ),
    responses(
        (status = 200, description = "The export.", content(
            (ExportView = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown format or kind, or `format=csv` without `kind` (JSON); a query parameter that does not parse, such as `include_nominal=maybe` (text).", content(
            (ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
    ))]
fn export() {}

/// Counts of what a group holds, as the caller may read it: by kind, commodity, outcome,
/// month and alert or request state.
#[utoipa::path(get, path = "/v1/groups/{group}/stats", tag = "records",
    params(("group" = String, Path, description = "The group's id or name.")),
    responses(
        (status = 200, description = "The counts.", body = StatsView),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
    ))]
fn stats() {}

/// The record kinds this node reads and writes.
#[utoipa::path(get, path = "/v1/schemas", tag = "records", responses(
    (status = 200, description = "The kinds.", body = Vec<SchemaInfo>),
))]
fn schemas() {}

/// A record kind's JSON Schema.
#[utoipa::path(get, path = "/v1/schemas/{kind}", tag = "records",
    params(("kind" = String, Path, description = "The kind (`seizure`, `cultural_object`, `alert`, `request`, `feedback`, `note`).")),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12).", body = serde_json::Value),
        (status = 404, description = "No such kind.", body = ErrorBody),
    ))]
fn schema() {}

/// A commented example of a record kind to fill in (what `POST
/// /v1/groups/{group}/records` takes once the comments are gone).
#[utoipa::path(get, path = "/v1/schemas/{kind}/template", tag = "records",
    params(("kind" = String, Path, description = "The kind.")),
    responses(
        (status = 200, description = "The template.", content_type = "text/plain", body = String),
        (status = 404, description = "No such kind.", body = ErrorBody),
    ))]
fn schema_template() {}

// ----- attachments ---------------------------------------------------------------------------

/// Uploads a file as the raw body: its media type is found from the content, image metadata
/// (GPS position, serial numbers) is removed unless kept explicitly, and it is stored
/// encrypted. Name the answered id in `attachments` of the post that follows (within an
/// hour).
#[utoipa::path(post, path = "/v1/attachments", tag = "attachments",
    params(
        ("name" = String, Query, description = "The file name (no path)."),
        ("keep_metadata" = Option<bool>, Query, description = "Keep the image metadata; removed by default."),
    ),
    request_body(content = Binary, content_type = "application/octet-stream", description = "The file, at most `[attachments] max_mb`."),
    responses(
        (status = 201, description = "Stored; what was removed from it is listed.", body = Uploaded),
        (status = 400, description = "No or a bad file name, or a file whose content cannot be prepared.", body = ErrorBody),
        (status = 409, description = "Too many uploads wait for their message on this node.", body = ErrorBody),
        (status = 413, description = "The file is over `[attachments] max_mb`.", body = ErrorBody),
        (status = 507, description = "The disk holding the store is full.", body = ErrorBody),
    ))]
fn upload() {}

/// An attachment of a message the caller may read, decrypted, with its media type and file
/// name.
#[utoipa::path(get, path = "/v1/attachments/{id}", tag = "attachments",
    params(("id" = String, Path, description = "The attachment id (64 hex digits).")),
    responses(
        (status = 200, description = "The file, as its media type.", content_type = "application/octet-stream", body = Binary),
        (status = 206, description = "The range asked for with `Range: bytes=A-B` (one range; several get the whole file), with `Content-Range`.", content_type = "application/octet-stream", body = Binary),
        (status = 400, description = "Not an attachment id.", body = ErrorBody),
        (status = 416, description = "The range lies beyond the file (`Content-Range: bytes */LEN`).", content_type = "text/plain", body = String),
        (status = 404, description = "No message the caller may read names it.", body = ErrorBody),
        (status = 503, description = "It is being fetched from the group's nodes; ask again.", body = ErrorBody),
    ))]
fn download() {}

/// A thumbnail of such a photo, made on this node.
#[utoipa::path(get, path = "/v1/attachments/{id}/thumbnail", tag = "attachments",
    params(
        ("id" = String, Path, description = "The attachment id."),
        ("max" = Option<u32>, Query, description = "The longest edge in pixels, 16 to 1024 (default 256)."),
    ),
    responses(
        (status = 200, description = "The thumbnail (JPEG, or PNG for images with transparency).", content(
            (Binary = "image/jpeg"),
            (Binary = "image/png"),
        )),
        (status = 400, description = "Not an attachment id, a size out of range, or not an image this node decodes.", body = ErrorBody),
        (status = 404, description = "No message the caller may read names it.", body = ErrorBody),
        (status = 503, description = "It is being fetched; ask again.", body = ErrorBody),
    ))]
fn thumbnail() {}

// ----- reading -------------------------------------------------------------------------------

/// A page of the messages the caller may read, newest first, without bodies. Pass the
/// answer's `next` as `before` for the next (older) page; paging neither repeats nor skips a
/// message stored when it began.
#[utoipa::path(get, path = "/v1/messages", tag = "messages",
    params(
        ("group" = Option<String>, Query, description = "Only this group (id or name)."),
        ("limit" = Option<usize>, Query, description = "Messages per page, 1 to 1000 (100 by default)."),
        ("before" = Option<String>, Query, description = "The `next` cursor of the previous page."),
    ),
    responses(
        (status = 200, description = "The page.", body = MessagePage),
        (status = 400, description = "A limit out of range, or a cursor this node did not hand out.", body = ErrorBody),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
        (status = 429, description = "The caller already runs as many queries as one principal may.", body = ErrorBody),
    ))]
fn inbox() {}

/// A page of one group's messages the caller may read, newest first, without bodies (as
/// `GET /v1/messages?group=…`).
#[utoipa::path(get, path = "/v1/groups/{group}/messages", tag = "messages",
    params(
        ("group" = String, Path, description = "Group id or name."),
        ("limit" = Option<usize>, Query, description = "Messages per page, 1 to 1000 (100 by default)."),
        ("before" = Option<String>, Query, description = "The `next` cursor of the previous page."),
    ),
    responses(
        (status = 200, description = "The page.", body = MessagePage),
        (status = 400, description = "A limit out of range, or a cursor this node did not hand out.", body = ErrorBody),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
        (status = 429, description = "The caller already runs as many queries as one principal may.", body = ErrorBody),
    ))]
fn group_messages() {}

/// One message, with its body (and its record, for a record).
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The message id (64 hex digits).")),
    responses(
        (status = 200, description = "The message.", body = MessageView),
        (status = 400, description = "Not a message id.", body = ErrorBody),
        (status = 404, description = "No such message, or the caller may not read it (other group, TLP:RED for others, quarantined).", body = ErrorBody),
    ))]
fn read() {}

/// The delivery receipts of a message: which nodes confirmed storing it, each once with the
/// earliest time it signed for.
#[utoipa::path(get, path = "/v1/messages/{id}/receipts", tag = "messages",
    params(("id" = String, Path, description = "The message id.")),
    responses(
        (status = 200, description = "The receipts.", body = Vec<ReceiptView>),
        (status = 400, description = "Not a message id.", body = ErrorBody),
        (status = 404, description = "No such message, or the caller may not read it.", body = ErrorBody),
    ))]
fn receipts() {}

/// The thread a message belongs to, from its root: alerts and requests with their state
/// from the feedback below them.
#[utoipa::path(get, path = "/v1/messages/{id}/thread", tag = "messages",
    params(("id" = String, Path, description = "The message id.")),
    responses(
        (status = 200, description = "The thread.", body = ThreadView),
        (status = 400, description = "Not a message id.", body = ErrorBody),
        (status = 404, description = "No such message, or the caller may not read it.", body = ErrorBody),
    ))]
fn thread() {}

/// Server-sent events: one `message` event (its data a message without body, as in
/// `GET /v1/messages`) per new message the caller may read, as it arrives; a `lagged` event
/// when the stream fell behind (list the inbox to catch up). Kept alive every 15 s.
#[utoipa::path(get, path = "/v1/events", tag = "messages",
    params(("group" = Option<String>, Query, description = "Only this group (id or name).")),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such group, or the caller may not see it.", body = ErrorBody),
    ))]
fn events() {}

// ----- officers ------------------------------------------------------------------------------

/// The officer accounts.
#[utoipa::path(get, path = "/v1/users", tag = "officers", responses(
    (status = 200, description = "The accounts.", body = Vec<UserView>),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
))]
fn users() {}

/// Makes an officer account. The token (and a web enrolment code or password, if asked) is
/// in this answer only; the node keeps its hash.
#[utoipa::path(post, path = "/v1/users", tag = "officers", request_body = AddUser, responses(
    (status = 200, description = "The account and its token.", body = NewUser),
    (status = 400, description = "A bad name, grant or login kind, or a body that is not the JSON asked for.", body = ErrorBody),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 404, description = "A granted group does not exist.", body = ErrorBody),
    (status = 409, description = "An account of that name exists.", body = ErrorBody),
    (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
))]
fn add_user() {}

/// Removes an officer account; its token stops working at once.
#[utoipa::path(delete, path = "/v1/users/{name}", tag = "officers",
    params(("name" = String, Path, description = "The officer's name.")),
    responses(
        (status = 200, description = "Removed.", body = Removed),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
        (status = 404, description = "No such officer.", body = ErrorBody),
    ))]
fn remove_user() {}

/// Grants an officer `read` or `post` access to a group.
#[utoipa::path(post, path = "/v1/users/{name}/grants", tag = "officers",
    params(("name" = String, Path, description = "The officer's name.")),
    request_body = GrantBody,
    responses(
        (status = 200, description = "The account with the grant.", body = UserView),
        (status = 400, description = "An access other than read or post, or a body that is not the JSON asked for.", body = ErrorBody),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
        (status = 404, description = "No such officer or group.", body = ErrorBody),
    ))]
fn grant() {}

/// Revokes an officer's grant of a group.
#[utoipa::path(delete, path = "/v1/users/{name}/grants/{group}", tag = "officers",
    params(
        ("name" = String, Path, description = "The officer's name."),
        ("group" = String, Path, description = "The group's id or name."),
    ),
    responses(
        (status = 200, description = "The account without the grant.", body = UserView),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
        (status = 404, description = "No such officer or group.", body = ErrorBody),
    ))]
fn revoke() {}

// ----- quarantine ----------------------------------------------------------------------------

/// The quarantined messages, and the released ones with when.
#[utoipa::path(get, path = "/v1/quarantine", tag = "quarantine", responses(
    (status = 200, description = "The quarantines.", body = Vec<QuarantineView>),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
))]
fn quarantined() {}

/// Takes a stored message out of every view of this node (it stays stored and synced to
/// members), e.g. one that breaks a view.
#[utoipa::path(post, path = "/v1/quarantine", tag = "quarantine", request_body = QuarantineRequest, responses(
    (status = 200, description = "The quarantine.", body = QuarantineView),
    (status = 400, description = "Not a message id, an empty or too long reason, or a body that is not the JSON asked for.", body = ErrorBody),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
    (status = 404, description = "No such message.", body = ErrorBody),
    (status = 409, description = "It is quarantined already.", body = ErrorBody),
    (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
    (status = 507, description = "The disk holding the store is full.", body = ErrorBody),
))]
fn quarantine() {}

/// Puts a quarantined message back into this node's views.
#[utoipa::path(delete, path = "/v1/quarantine/{id}", tag = "quarantine",
    params(("id" = String, Path, description = "The message id.")),
    responses(
        (status = 200, description = "The released quarantine.", body = QuarantineView),
        (status = 400, description = "Not a message id.", body = ErrorBody),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
        (status = 404, description = "The message is not quarantined.", body = ErrorBody),
        (status = 507, description = "The disk holding the store is full.", body = ErrorBody),
    ))]
fn release() {}

// ----- audit ---------------------------------------------------------------------------------

/// The audit log from a time on (this reading is recorded first, so it is in the answer),
/// streamed from the store a page at a time: a JSON array with one record per line. A store
/// error midway ends the answer early, so an answer that is not a complete array is not the
/// whole log.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(("since_ms" = Option<u64>, Query, description = "Only records from this time on, in milliseconds since the Unix epoch.")),
    responses(
        (status = 200, description = "The records, oldest first.", body = Vec<AuditRecord>),
        (status = 400, description = "`since_ms` is not a number (answered as text).", content_type = "text/plain", body = String),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
    ))]
fn audit_log() {}

/// Checks the audit log's hash chain and names the first broken record.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", responses(
    (status = 200, description = "The result (an intact chain, or where it breaks).", body = Verification),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
))]
fn audit_verify() {}

/// Checks the audit log's hash chain, and that the record a checkpoint this node signed names
/// still has the signed hash: a history rewritten before it, hashes recomputed and all, does
/// not match.
#[utoipa::path(post, path = "/v1/audit/verify", tag = "audit",
    request_body(content = Checkpoint, description = "A checkpoint `POST /v1/audit/checkpoint` gave."),
    responses(
        (status = 200, description = "The result (an intact chain that matches the checkpoint, or where it breaks).", body = Verification),
        (status = 400, description = "The checkpoint is not this node's, or its signature does not verify.", body = ErrorBody),
        (status = 403, description = "This needs the admin token.", body = ErrorBody),
    ))]
fn audit_verify_checkpoint() {}

/// Signs the audit chain's head now (this request's own record included) with the node's
/// identity key: keep it where whoever can write the node's store cannot change it, and check
/// the log against it later.
#[utoipa::path(post, path = "/v1/audit/checkpoint", tag = "audit", responses(
    (status = 200, description = "The signed checkpoint.", body = Checkpoint),
    (status = 403, description = "This needs the admin token.", body = ErrorBody),
))]
fn audit_checkpoint() {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(METHOD, PATH)` of every route in `api.rs`'s router, read from its source: the
    /// router cannot list its routes itself.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("api.rs");
        let mut routes = BTreeSet::new();
        for chunk in source.split(".route(").skip(1) {
            let Some(rest) = chunk.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((path, rest)) = rest.split_once('"') else {
                continue;
            };
            // The method routers up to the closing parenthesis of `.route(`.
            let mut depth = 1usize;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let methods = &rest[..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let found = methods.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !methods[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if found {
                    routes.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
        routes
    }

    fn described() -> BTreeSet<(String, String)> {
        let doc = document();
        let mut ops = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ] {
                if op.is_some() {
                    ops.insert((method.to_owned(), path.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn every_route_is_described_and_every_description_routed() {
        let routed = routed();
        let described = described();
        assert!(routed.len() >= 30, "the source scan found only {routed:?}");
        let undescribed: Vec<_> = routed.difference(&described).collect();
        let unrouted: Vec<_> = described.difference(&routed).collect();
        assert!(
            undescribed.is_empty(),
            "routes without a description in node/src/openapi.rs: {undescribed:?}"
        );
        assert!(
            unrouted.is_empty(),
            "descriptions of routes the router lacks: {unrouted:?}"
        );
    }

    #[test]
    fn every_operation_documents_its_answers_and_parameters() {
        let doc = document();
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                let name = format!("{path} {:?}", op.operation_id);
                assert!(
                    op.summary.as_deref().is_some_and(|s| !s.is_empty()),
                    "{name} has no summary"
                );
                assert!(op.tags.as_ref().is_some_and(|t| !t.is_empty()), "{name}");
                let statuses: Vec<&String> = op.responses.responses.keys().collect();
                assert!(
                    statuses.iter().any(|s| s.starts_with('2')),
                    "{name} documents no success"
                );
                if path.starts_with("/v1/") && !UNAUTHENTICATED.contains(&path.as_str()) {
                    for s in ["401", "500", "503"] {
                        assert!(statuses.contains(&&s.to_owned()), "{name} lacks {s}");
                    }
                    assert!(op.security.is_some(), "{name} names no security");
                }
                // Every `{param}` of the path is a documented parameter.
                let params: BTreeSet<String> = op
                    .parameters
                    .iter()
                    .flatten()
                    .map(|p| p.name.clone())
                    .collect();
                for segment in path.split('/') {
                    if let Some(p) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        assert!(params.contains(p), "{name} does not document {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_names_its_schemas() {
        let value: serde_json::Value = serde_json::from_str(&json()).expect("JSON");
        assert_eq!(value["openapi"], "3.1.0");
        let schemas = value["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "Status",
            "MessageView",
            "ErrorBody",
            "PostRecord",
            "FieldProblem",
        ] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        // Every reference resolves.
        let text = json();
        for chunk in text.split("\"$ref\": \"#/components/").skip(1) {
            let target = chunk.split('"').next().unwrap_or_default();
            let (kind, name) = target.split_once('/').unwrap_or_default();
            assert!(
                value["components"][kind].get(name).is_some(),
                "dangling reference {target}"
            );
        }
    }

    /// The CI check: `docs/openapi.json` is what the code generates. After changing the API,
    /// run `LIAISON_WRITE_OPENAPI=1 cargo test -p liaison-node openapi` and commit the file.
    #[test]
    fn committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = json();
        if std::env::var_os("LIAISON_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the API's code: run \
             `LIAISON_WRITE_OPENAPI=1 cargo test -p liaison-node openapi` and commit it"
        );
    }

    #[test]
    fn field_problem_has_the_shape_of_a_field_error() {
        let error = liaison_protocol::FieldError::new("/items/0/hs_code", "not an HS code");
        let value = serde_json::to_value(&error).expect("encode");
        let problem: FieldProblem = serde_json::from_value(value).expect("same fields");
        assert_eq!(problem.pointer, "/items/0/hs_code");
    }
}
