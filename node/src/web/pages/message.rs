//! One message: its TLP banner, who wrote it where, the organisations holding it, its text or
//! its record (in the record kind's shape), its attachments, and its thread with the state of
//! each alert and request and the outcome of each feedback.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{html, Markup};

use super::attachment::is_photo;
use super::groups::{handling_label, kind_label, may_post};
use super::{layout, node_error, time, tlp, Officer};
use crate::views::{AttachmentView, MessageView, ThreadEntry};
use crate::web::facade;
use crate::web::i18n::Lang;
use crate::web::record_form::{self, RecordForm};
use crate::web::App;

/// A feedback outcome in the page language.
pub fn outcome_label(l: Lang, outcome: &str) -> String {
    match outcome {
        "seizure_made" => l.t("outcome-seizure-made"),
        "checked_nothing_found" => l.t("outcome-checked-nothing-found"),
        "under_investigation" => l.t("outcome-under-investigation"),
        "not_actionable" => l.t("outcome-not-actionable"),
        other => other.to_owned(),
    }
}

/// What a thread entry says of its state: an alert's or request's state (with the outcome that
/// closed it), or a feedback's outcome.
pub fn state_label(l: Lang, e: &ThreadEntry) -> Option<String> {
    match (
        e.state.as_deref(),
        e.closed_by.as_deref(),
        e.outcome.as_deref(),
    ) {
        (Some("closed"), Some(by), _) => {
            Some(l.t_args("state-closed-by", &[("outcome", &outcome_label(l, by))]))
        }
        (Some("closed"), None, _) => Some(l.t("state-closed")),
        (Some("actioned"), _, _) => Some(l.t("state-actioned")),
        (Some("open"), _, _) => Some(l.t("state-open")),
        (Some(other), _, _) => Some(other.to_owned()),
        (None, _, Some(o)) => Some(outcome_label(l, o)),
        (None, _, None) => None,
    }
}

/// What a TLP code asks of the reader, in the page language.
fn tlp_rule(l: Lang, handling: &str) -> String {
    match handling {
        "clear" => l.t("tlp-rule-clear"),
        "green" => l.t("tlp-rule-green"),
        "amber" => l.t("tlp-rule-amber"),
        "amber+strict" => l.t("tlp-rule-amber-strict"),
        "red" => l.t("tlp-rule-red"),
        _ => String::new(),
    }
}

/// The TLP banner at the top of a message.
pub fn banner(l: Lang, handling: &str) -> Markup {
    let class = format!("tlp tlp-banner tlp-{}", handling.replace('+', "-"));
    html! {
        div class=(class) role="note" aria-label=(l.t("message-handling")) {
            "TLP:" (handling.to_ascii_uppercase()) " — " (tlp_rule(l, handling))
        }
    }
}

/// One item of a thread list (also sent live), with its state when known.
pub fn thread_item(
    l: Lang,
    m: &MessageView,
    depth: usize,
    current: bool,
    state: Option<&str>,
) -> Markup {
    let subject = if m.subject.is_empty() {
        l.t("message-no-subject")
    } else {
        m.subject.clone()
    };
    let indent = "— ".repeat(depth.min(8));
    html! {
        li data-id=(m.id) class=[current.then_some("current")] aria-current=[current.then_some("page")] {
            (indent) (tlp(&m.handling)) " "
            @if current { (subject) } @else { a href=(format!("/m/{}", m.id)) { (subject) } }
            @if let Some(s) = state { " " span class="state" { (s) } }
            span class="meta" { " · " (kind_label(l, facade::kind_of(m))) " · " (m.officer) "@" (m.author_name) " · " (time(l, m.created_at_ms)) }
        }
    }
}

/// `GET /m/{id}`.
pub async fn show(State(app): State<App>, officer: Officer, Path(id): Path<String>) -> Response {
    let l = officer.lang();
    let who = &officer.principal;
    let m = match app.facade.message(who, &id).await {
        Ok(m) => m,
        Err(e) => {
            let _ = app
                .audit(&officer.actor(), "read", &id, &format!("denied: {e}"))
                .await;
            return node_error(&app, &officer, &e);
        }
    };
    if let Err(e) = app.audit(&officer.actor(), "read", &m.id, "ok").await {
        return node_error(&app, &officer, &e);
    }
    let receipts = app.facade.receipts(who, &m.id).await.unwrap_or_default();
    let thread = app
        .facade
        .thread(who, &m)
        .await
        .map(|t| t.items)
        .unwrap_or_default();
    let states = app
        .facade
        .thread_states(who, &m.id)
        .await
        .map(|t| t.entries)
        .unwrap_or_default();
    let state_of = |id: &str| {
        states
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| state_label(l, e))
    };
    let form = m
        .kind
        .parse::<liaison_protocol::RecordKind>()
        .ok()
        .map(RecordForm::of);
    let answerable = matches!(m.kind.as_str(), "alert" | "request");
    let group = app.facade.group(who, &m.group_id).await.ok();
    let can_reply = group
        .as_ref()
        .is_some_and(|g| may_post(&officer, &g.id, &g.role));
    let subject = if m.subject.is_empty() {
        l.t("message-no-subject")
    } else {
        m.subject.clone()
    };
    let body = html! {
        (banner(l, &m.handling))
        h1 { (subject) }
        div class="grid2" {
            section class="panel" aria-labelledby="facts-h" {
                h2 id="facts-h" class="sr-only" { (l.t("message-facts")) }
                dl class="facts" {
                    dt { (l.t("message-group")) } dd { a href=(format!("/g/{}", m.group_id)) { (m.group_name) } }
                    dt { (l.t("message-kind")) } dd { (kind_label(l, facade::kind_of(&m))) }
                    dt { (l.t("message-org")) } dd { (m.author_name) }
                    dt { (l.t("message-officer")) } dd { (m.officer) }
                    dt { (l.t("message-created")) } dd { (time(l, m.created_at_ms)) }
                    dt { (l.t("message-handling")) } dd { (tlp(&m.handling)) " " (handling_label(l, &m.handling)) }
                    @if !m.recipients.is_empty() {
                        dt { (l.t("message-recipients")) } dd { (m.recipients.join(", ")) }
                    }
                    @if let Some(r) = &m.reply_to {
                        dt { (l.t("message-reply-to")) } dd { a href=(format!("/m/{r}")) { (l.t("message-parent")) } }
                    }
                    @if answerable || m.kind == "feedback" {
                        dt { (l.t("message-outcome")) }
                        dd id="state" { (state_of(&m.id).unwrap_or_else(|| l.t("message-outcome-none"))) }
                    }
                }
            }
            section class="panel" aria-labelledby="receipts-h" {
                h2 id="receipts-h" { (l.t("message-receipts")) }
                @if receipts.is_empty() {
                    p class="muted" { (l.t("message-receipts-none")) }
                } @else {
                    table {
                        thead { tr { th scope="col" { (l.t("message-receipt-org")) } th scope="col" { (l.t("message-receipt-at")) } } }
                        tbody {
                            @for r in &receipts {
                                tr { td { (r.receiver_name) } td { (stored_at(l, &r.stored_at)) } }
                            }
                        }
                    }
                }
            }
        }
        @if let (Some(record), Some(form)) = (&m.record, &form) {
            section class="panel" aria-labelledby="body-h" {
                h2 id="body-h" { (l.t("message-record")) }
                (record_form::show(l, form, record))
            }
        } @else if let Some(why) = &m.unreadable {
            section class="panel" aria-labelledby="body-h" {
                h2 id="body-h" { (l.t("message-record")) }
                p { (l.t("message-unreadable")) }
                p class="muted" { (why) }
            }
        } @else {
            section class="panel" aria-labelledby="body-h" {
                h2 id="body-h" { (l.t("message-body")) }
                div class="body" { (m.body.clone().unwrap_or_default()) }
            }
        }
        section class="panel" aria-labelledby="att-h" {
            h2 id="att-h" { (l.t("message-attachments")) }
            @if m.attachments.is_empty() {
                p class="muted" { (l.t("message-attachments-none")) }
            } @else {
                ul class="attachments" {
                    @for a in &m.attachments { (attachment_item(l, a)) }
                }
            }
        }
        section class="panel" aria-labelledby="thread-h" {
            h2 id="thread-h" { (l.t("message-thread")) }
            ol class="thread" data-root=(thread.first().map_or(m.id.as_str(), |(t, _)| t.id.as_str())) {
                @for (t, depth) in &thread { (thread_item(l, t, *depth, t.id == m.id, state_of(&t.id).as_deref())) }
            }
            @if can_reply {
                div class="actions" {
                    a class="button" href=(format!("/g/{}/compose?reply_to={}", m.group_id, m.id)) { (l.t("message-reply")) }
                    @if answerable {
                        " "
                        a class="button" id="give-feedback" href=(format!("/g/{}/compose?kind=feedback&reply_to={}", m.group_id, m.id)) { (l.t("message-feedback")) }
                    }
                }
            }
        }
    };
    layout(&app, &officer.ctx, Some(&officer), &subject, body)
}

/// One attachment: a photo held here as a thumbnail that opens it, anything else as a link;
/// one not yet held says it is fetched from the group's nodes when opened.
fn attachment_item(l: Lang, a: &AttachmentView) -> Markup {
    let href = format!("/a/{}", a.id);
    let size = l.t_args(
        "message-attachment-size",
        &[("kib", &l.number(a.size.div_ceil(1024)))],
    );
    html! {
        li data-attachment=(a.id) {
            @if a.held && is_photo(&a.media_type) {
                a class="photo" href=(href) {
                    img src=(format!("{href}/thumbnail")) alt=(l.t_args("message-photo-alt", &[("name", &a.name)]));
                }
            }
            a href=(href) { (a.name) }
            " "
            span class="muted" { (a.media_type) ", " (size) }
            @if !a.held {
                " "
                span class="muted fetching" { (l.t("message-attachment-fetched")) }
            }
        }
    }
}

fn stored_at(l: Lang, rfc3339: &str) -> Markup {
    match humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
    {
        Some(ms) => time(l, ms),
        None => html! { (rfc3339) },
    }
}
