//! Composing a message in a group, or a reply from a thread: a note (subject and text) or a
//! structured record of any kind, whose form is drawn from the kind's schema
//! ([`crate::web::record_form`]). The node checks the draft as the API does; a refusal is shown
//! next to the field it concerns. RED recipients are chosen per member organisation of the
//! group.

use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use liaison_protocol::attachment::AttachmentId;
use liaison_protocol::RecordKind;
use maud::html;
use serde_json::Value;

use super::groups::{handling_label, kind_label, may_post};
use super::{csrf_field, csrf_refused, error_page, layout, node_error, see_other, Officer};
use crate::views::GroupView;
use crate::web::facade::{Draft, FieldError, PostError, HANDLINGS};
use crate::web::record_form::{self, RecordForm};
use crate::web::{App, MAX_FILES};

/// The query of the compose page.
#[derive(Debug, serde::Deserialize)]
pub struct ComposeQuery {
    reply_to: Option<String>,
    kind: Option<String>,
}

/// The record part of a compose page.
struct RecordPart<'a> {
    kind: RecordKind,
    /// The record as filled in so far.
    value: &'a Value,
    /// Problems, at pointers into the record.
    errors: &'a [liaison_protocol::FieldError],
    /// A list of objects that gets one more row.
    more: Option<&'a str>,
    /// The kind of the message replied to, if any.
    parent_kind: Option<&'a str>,
}

/// The kinds an officer may compose here: feedback only in answer to an alert or a request.
fn kinds_for(parent_kind: Option<&str>) -> Vec<RecordKind> {
    RecordKind::ALL
        .into_iter()
        .filter(|k| *k != RecordKind::Feedback || matches!(parent_kind, Some("alert" | "request")))
        .collect()
}

fn compose_page(
    app: &App,
    officer: &Officer,
    g: &GroupView,
    draft: &Draft,
    per_org: &[(String, String)],
    errors: &[FieldError],
    rec: &RecordPart<'_>,
) -> Response {
    let l = officer.lang();
    let form = (rec.kind != RecordKind::Note).then(|| RecordForm::of(rec.kind));
    let refused = !errors.is_empty() || !rec.errors.is_empty();
    let err = |f: &str| {
        errors
            .iter()
            .find(|e| e.field == f)
            .map(|e| e.message.as_str())
    };
    let general: Vec<&FieldError> = errors.iter().filter(|e| e.field.is_empty()).collect();
    let invalid = |f: &str| err(f).map(|_| "true");
    let described = |f: &str, hint: Option<&str>| -> Option<String> {
        match (err(f), hint) {
            (Some(_), Some(h)) => Some(format!("{f}-error {h}")),
            (Some(_), None) => Some(format!("{f}-error")),
            (None, Some(h)) => Some(h.to_owned()),
            (None, None) => None,
        }
    };
    let field_error = |f: &str| {
        html! {
            @if let Some(m) = err(f) { p class="field-error" id=(format!("{f}-error")) { (m) } }
        }
    };
    let title = if draft.reply_to.is_some() {
        l.t("compose-reply-title")
    } else {
        l.t("compose-title")
    };
    let body = html! {
        h1 { (title) }
        p class="muted" { (l.t_args("compose-in-group", &[("group", &g.name)])) }
        nav class="kinds" aria-label=(l.t("compose-kind")) {
            ul {
                @for k in kinds_for(rec.parent_kind) {
                    li {
                        @if k == rec.kind {
                            span aria-current="page" { (kind_label(l, k.as_str())) }
                        } @else {
                            a href=(kind_href(&g.id, k, draft.reply_to.as_deref())) { (kind_label(l, k.as_str())) }
                        }
                    }
                }
            }
        }
        @if refused {
            div class="alert" role="alert" {
                p { (l.t("compose-refused")) }
                @for e in &general { p { (e.message) } }
                @if !rec.errors.is_empty() { (record_form::summary(l, rec.errors)) }
            }
        }
        form class="panel" method="post" action=(format!("/g/{}/compose", g.id)) enctype="multipart/form-data" novalidate {
            (csrf_field(&officer.csrf))
            @if let Some(r) = &draft.reply_to { input type="hidden" name="reply_to" value=(r); }
            input type="hidden" name="kind" value=(rec.kind.as_str());
            label for="handling" { (l.t("compose-handling")) }
            select id="handling" name="handling" aria-invalid=[invalid("handling")]
                aria-describedby=[described("handling", Some("handling-hint"))] {
                @for h in HANDLINGS {
                    option value=(h) selected[draft.handling == *h] { "TLP:" (h.to_ascii_uppercase()) " — " (handling_label(l, h)) }
                }
            }
            p class="hint" id="handling-hint" { (l.t("compose-handling-hint")) }
            (field_error("handling"))
            fieldset id="recipients" aria-describedby=[described("recipients", Some("recipients-hint"))] {
                legend { (l.t("compose-recipients")) }
                p class="hint" id="recipients-hint" { (l.t("compose-recipients-hint")) }
                @for (org, officers) in per_org {
                    label for=(format!("to-{org}")) { (l.t_args("compose-recipients-at", &[("org", org)])) }
                    input type="text" id=(format!("to-{org}")) name=(format!("to.{org}")) value=(officers)
                        aria-invalid=[invalid("recipients")] autocomplete="off";
                }
                (field_error("recipients"))
            }
            @if let Some(form) = &form {
                div class="record-form" {
                    (record_form::fields(l, form, rec.value, rec.errors, rec.more))
                }
            } @else {
                label for="subject" { (l.t("compose-subject")) }
                input type="text" id="subject" name="subject" value=(draft.subject) maxlength="512"
                    aria-invalid=[invalid("subject")] aria-describedby=[described("subject", None)];
                (field_error("subject"))
                label for="body" { (l.t("compose-body")) }
                textarea id="body" name="body" aria-invalid=[invalid("body")]
                    aria-describedby=[described("body", None)] { (draft.body) }
                (field_error("body"))
            }
            div class="files" {
                label for="files" { (l.t("compose-files")) }
                input type="file" id="files" name="files" multiple data-preview="photo-preview"
                    aria-invalid=[invalid("files")] aria-describedby=[described("files", Some("files-hint"))];
                p class="hint" id="files-hint" {
                    (l.t_args("compose-files-hint", &[
                        ("count", &MAX_FILES.to_string()),
                        ("mib", &(app.attachments.options().max_bytes / (1024 * 1024)).to_string()),
                    ]))
                }
                (field_error("files"))
                div id="photo-preview" class="photo-preview" aria-live="polite"
                    data-metadata-warning=(l.t("compose-files-metadata")) {}
            }
            div { button type="submit" id="send" { (l.t("compose-submit")) } }
        }
    };
    let mut r = layout(app, &officer.ctx, Some(officer), &title, body);
    if refused {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

fn kind_href(group: &str, kind: RecordKind, reply_to: Option<&str>) -> String {
    match reply_to {
        Some(r) => format!("/g/{group}/compose?kind={kind}&reply_to={r}"),
        None => format!("/g/{group}/compose?kind={kind}"),
    }
}

/// A kind named in a query or form; notes when absent.
fn parse_kind(kind: Option<&str>) -> Option<RecordKind> {
    match kind.filter(|k| !k.is_empty()) {
        None => Some(RecordKind::Note),
        Some(k) => k.parse().ok(),
    }
}

/// Member organisations of a group, by name, with no recipients yet.
fn orgs(g: &GroupView) -> Vec<(String, String)> {
    let mut names: Vec<String> = g.members.iter().map(|m| m.name.clone()).collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|n| (n, String::new())).collect()
}

async fn writable_group(app: &App, officer: &Officer, group: &str) -> Result<GroupView, Response> {
    let g = app
        .facade
        .group(&officer.principal, group)
        .await
        .map_err(|e| node_error(app, officer, &e))?;
    if !may_post(officer, &g.id, &g.role) {
        let _ = app
            .audit(&officer.actor(), "post", &g.id, "denied: read-only access")
            .await;
        return Err(error_page(
            app,
            &officer.ctx,
            Some(officer),
            StatusCode::FORBIDDEN,
            &officer.lang().t("compose-read-only"),
        ));
    }
    Ok(g)
}

/// `GET /g/{group}/compose[?reply_to=ID]`.
pub async fn form(
    State(app): State<App>,
    officer: Officer,
    Path(group): Path<String>,
    Query(q): Query<ComposeQuery>,
) -> Response {
    let g = match writable_group(&app, &officer, &group).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let not_found = || {
        error_page(
            &app,
            &officer.ctx,
            Some(&officer),
            StatusCode::NOT_FOUND,
            &officer.lang().t("error-not-found-text"),
        )
    };
    let mut draft = Draft {
        handling: "green".to_owned(),
        ..Draft::default()
    };
    let mut parent_kind = None;
    if let Some(parent) = q.reply_to.as_deref() {
        match app.facade.message(&officer.principal, parent).await {
            Ok(p) if p.group_id == g.id => {
                parent_kind = Some(p.kind.clone());
                draft.subject = if p.subject.starts_with("Re: ") {
                    p.subject.clone()
                } else {
                    format!("Re: {}", p.subject)
                };
                draft.handling = p.handling.clone();
                draft.reply_to = Some(p.id);
            }
            Ok(_) | Err(_) => return not_found(),
        }
    }
    let Some(kind) =
        parse_kind(q.kind.as_deref()).filter(|k| kinds_for(parent_kind.as_deref()).contains(k))
    else {
        return not_found();
    };
    let empty = Value::Object(serde_json::Map::new());
    let rec = RecordPart {
        kind,
        value: &empty,
        errors: &[],
        more: None,
        parent_kind: parent_kind.as_deref(),
    };
    compose_page(&app, &officer, &g, &draft, &orgs(&g), &[], &rec)
}

/// A file chosen in the compose form.
struct Chosen {
    /// Its name, as the browser gave it.
    name: String,
    /// Its content.
    bytes: axum::body::Bytes,
}

/// The fields and files of a compose form, or why they cannot be read.
async fn read_form(
    app: &App,
    mut form: Multipart,
) -> Result<(Vec<(String, String)>, Vec<Chosen>), (StatusCode, String)> {
    let bad = |e: MultipartError| (e.status(), e.body_text());
    let mut fields = Vec::new();
    let mut files = Vec::new();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file_name) => {
                let bytes = field.bytes().await.map_err(bad)?;
                // A file input left empty still sends a part, with no name and no content.
                if file_name.is_empty() && bytes.is_empty() {
                    continue;
                }
                if files.len() == MAX_FILES {
                    return Err((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("at most {MAX_FILES} files per message"),
                    ));
                }
                app.attachments
                    .check_len(bytes.len() as u64)
                    .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
                files.push(Chosen {
                    name: file_name,
                    bytes,
                });
            }
            None => fields.push((name, field.text().await.map_err(bad)?)),
        }
    }
    Ok((fields, files))
}

/// Uploads the chosen files as the officer's, audited one by one; the first refusal (a kind
/// of file this node cannot clean, say) stops and is shown at the file field.
async fn upload(
    app: &App,
    officer: &Officer,
    files: Vec<Chosen>,
) -> Result<Vec<AttachmentId>, FieldError> {
    let mut ids = Vec::with_capacity(files.len());
    for file in files {
        let attachments = app.attachments.clone();
        let owner = officer.name().to_owned();
        let name = file.name.clone();
        let result = tokio::task::spawn_blocking(move || {
            attachments.upload(&owner, &name, file.bytes.to_vec(), false)
        })
        .await
        .unwrap_or(Err(crate::error::Error::ShuttingDown));
        let uploaded = match result {
            Ok(u) => {
                let _ = app.audit(&officer.actor(), "upload", &u.id, "ok").await;
                u
            }
            Err(e) => {
                let _ = app
                    .audit(&officer.actor(), "upload", "", &format!("error: {e}"))
                    .await;
                return Err(FieldError {
                    field: "files",
                    message: format!("{}: {e}", file.name),
                });
            }
        };
        match uploaded.id.parse() {
            Ok(id) => ids.push(id),
            Err(e) => {
                return Err(FieldError {
                    field: "files",
                    message: format!("{}: {e}", file.name),
                })
            }
        }
    }
    Ok(ids)
}

/// `POST /g/{group}/compose`: a multipart form, with the files chosen.
pub async fn submit(
    State(app): State<App>,
    officer: Officer,
    Path(group): Path<String>,
    form: Multipart,
) -> Response {
    let (fields, files) = match read_form(&app, form).await {
        Ok(read) => read,
        Err((status, message)) => {
            return error_page(&app, &officer.ctx, Some(&officer), status, &message);
        }
    };
    let value = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if !officer.csrf_ok(&value("csrf")) {
        return csrf_refused(&app, &officer);
    }
    let g = match writable_group(&app, &officer, &group).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut per_org = orgs(&g);
    for (org, officers) in &mut per_org {
        officers.clone_from(&value(&format!("to.{org}")));
    }
    let handling = value("handling");
    let recipients: Vec<String> = if handling == "red" {
        per_org
            .iter()
            .flat_map(|(org, officers)| {
                officers
                    .split([',', ' ', ';'])
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(move |o| format!("{o}@{org}"))
            })
            .collect()
    } else {
        Vec::new()
    };
    let reply_to = Some(value("reply_to")).filter(|r| !r.is_empty());
    let l = officer.lang();
    let kind_field = value("kind");
    let Some(kind) = parse_kind(Some(&kind_field)) else {
        return error_page(
            &app,
            &officer.ctx,
            Some(&officer),
            StatusCode::BAD_REQUEST,
            &format!("unknown kind of record {kind_field:?}"),
        );
    };
    let parent_kind = match reply_to.as_deref() {
        Some(r) => app
            .facade
            .message(&officer.principal, r)
            .await
            .ok()
            .map(|m| m.kind),
        None => None,
    };
    // A record's fields are named by their JSON pointers; they become the record here.
    let (record, mut record_errors) = if kind == RecordKind::Note {
        (Value::Null, Vec::new())
    } else {
        record_form::build(l, &RecordForm::of(kind), &fields)
    };
    let more = fields
        .iter()
        .find(|(n, _)| n == "more")
        .map(|(_, v)| v.clone());
    let draft = Draft {
        subject: value("subject"),
        body: value("body"),
        handling,
        recipients,
        reply_to,
        record: (kind != RecordKind::Note).then(|| (kind, record.clone())),
        attachments: Vec::new(),
    };
    // Files are uploaded only with a draft that is sent; a form shown again cannot keep them.
    let files_chosen = !files.is_empty();
    let chosen_again = |errors: &mut Vec<FieldError>| {
        if files_chosen {
            errors.push(FieldError {
                field: "files",
                message: l.t("compose-files-again"),
            });
        }
    };
    let page = |errors: &[FieldError], record_errors: &[liaison_protocol::FieldError]| {
        let rec = RecordPart {
            kind,
            value: &record,
            errors: record_errors,
            more: more.as_deref(),
            parent_kind: parent_kind.as_deref(),
        };
        compose_page(&app, &officer, &g, &draft, &per_org, errors, &rec)
    };
    // "Add a row": the same form again, one row longer, nothing sent.
    if more.is_some() {
        let mut errors = Vec::new();
        chosen_again(&mut errors);
        return page(&errors, &[]);
    }
    let mut errors = Vec::new();
    if draft.handling == "red" && draft.recipients.is_empty() {
        errors.push(FieldError {
            field: "recipients",
            message: l.t("compose-recipients-required"),
        });
    }
    if !errors.is_empty() || !record_errors.is_empty() {
        chosen_again(&mut errors);
        return page(&errors, &record_errors);
    }
    let mut sent = draft.clone();
    match upload(&app, &officer, files).await {
        Ok(ids) => sent.attachments = ids,
        Err(e) => return page(&[e], &[]),
    }
    // The record `post GROUP ID ok` is written by the node with the message (one flush).
    let audit =
        crate::audit::PostAudit::new(app.audit.clone(), officer.actor(), "post", g.id.clone());
    match app
        .facade
        .post(&officer.principal, &g.id, sent, Some(audit))
        .await
    {
        Ok(id) => see_other(&format!("/m/{id}")),
        Err(PostError::Fields(errors)) => {
            let _ = app
                .audit(
                    &officer.actor(),
                    "post",
                    &g.id,
                    &format!(
                        "error: {}",
                        errors
                            .iter()
                            .map(|e| e.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )
                .await;
            let mut errors = errors;
            chosen_again(&mut errors);
            page(&errors, &[])
        }
        Err(PostError::Record(errors)) => {
            let _ = app
                .audit(
                    &officer.actor(),
                    "post",
                    &g.id,
                    &format!("error: invalid record ({} problems)", errors.len()),
                )
                .await;
            record_errors = errors;
            let mut errors = Vec::new();
            chosen_again(&mut errors);
            page(&errors, &record_errors)
        }
        Err(PostError::Node(e)) => {
            let _ = app
                .audit(&officer.actor(), "post", &g.id, &format!("denied: {e}"))
                .await;
            node_error(&app, &officer, &e)
        }
    }
}
