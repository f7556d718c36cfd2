//! The officer's groups with unread counts, and a group's timeline: paged, newest first,
//! filtered by kind, handling, date and author organisation, live on its first page.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};

use super::{layout, node_error, time, tlp, Officer};
use crate::accounts::Access;
use crate::views::MessageView;
use crate::web::facade::{self, Filter, HANDLINGS, KINDS};
use crate::web::i18n::{self, Lang};
use crate::web::App;

/// `GET /`: the groups the officer may see.
pub async fn index(State(app): State<App>, officer: Officer) -> Response {
    let l = officer.lang();
    let groups = app.facade.groups(&officer.principal).await;
    let _ = app
        .audit(
            &officer.actor(),
            "group.list",
            "all",
            if groups.is_ok() { "ok" } else { "error" },
        )
        .await;
    let groups = match groups {
        Ok(g) => g,
        Err(e) => return node_error(&app, &officer, &e),
    };
    let mut rows = Vec::new();
    for g in &groups {
        let seen = officer.account.seen.get(&g.id).copied().unwrap_or(0);
        let unread = app
            .facade
            .unread(&officer.principal, &g.id, seen)
            .await
            .unwrap_or(0);
        rows.push((g, unread));
    }
    let body = html! {
        h1 { (l.t("groups-title")) }
        @if rows.is_empty() {
            p class="panel" { (l.t("groups-none")) }
        } @else {
            table {
                caption class="sr-only" { (l.t("groups-title")) }
                thead { tr {
                    th scope="col" { (l.t("groups-name")) }
                    th scope="col" { (l.t("groups-unread")) }
                    th scope="col" { (l.t("groups-access")) }
                    th scope="col" { (l.t("groups-owner")) }
                    th scope="col" { (l.t("groups-members")) }
                } }
                tbody {
                    @for (g, unread) in &rows {
                        tr {
                            td { a href=(format!("/g/{}", g.id)) { (g.name) } }
                            td {
                                span class=(if *unread == 0 { "badge zero" } else { "badge" })
                                    data-unread-for=(g.id) data-count=(unread) {
                                    (if *unread >= facade::UNREAD_CAP { format!("{}+", l.number(*unread)) } else { l.number(*unread) })
                                }
                            }
                            td { (access_label(l, access_in(&officer, &g.id), &g.role)) }
                            td { (g.owner_name) }
                            td { (l.number(g.members.len() as u64)) }
                        }
                    }
                }
            }
        }
    };
    layout(
        &app,
        &officer.ctx,
        Some(&officer),
        &l.t("groups-title"),
        body,
    )
}

fn access_label(l: Lang, access: Option<Access>, node_role: &str) -> String {
    match access {
        Some(Access::Post) if node_role == "member" => l.t("access-post"),
        Some(_) => l.t("access-read"),
        None => String::new(),
    }
}

/// The officer's access to a group (by id text).
pub fn access_in(officer: &Officer, group_id: &str) -> Option<Access> {
    group_id
        .parse::<liaison_protocol::GroupId>()
        .ok()
        .and_then(|g| officer.principal.access(&g))
}

/// Whether the officer may compose in a group: a `post` grant and a node that is a member
/// (not a reader) of it.
pub fn may_post(officer: &Officer, group_id: &str, node_role: &str) -> bool {
    access_in(officer, group_id) == Some(Access::Post) && node_role == "member"
}

/// One message as a timeline row (also sent live, so it must not depend on the page).
pub fn row(l: Lang, m: &MessageView) -> Markup {
    let subject = if m.subject.is_empty() {
        l.t("message-no-subject")
    } else {
        m.subject.clone()
    };
    html! {
        li id=(format!("m-{}", m.id)) data-id=(m.id) {
            div { (tlp(&m.handling)) " " a class="subject" href=(format!("/m/{}", m.id)) { (subject) } }
            div class="meta" {
                (kind_label(l, facade::kind_of(m))) " · "
                (l.t_args("message-by", &[("officer", &m.officer), ("org", &m.author_name)])) " · "
                (time(l, m.created_at_ms))
                @if m.reply_to.is_some() { " · " (l.t("message-is-reply")) }
            }
        }
    }
}

/// The name of a kind in the page language.
pub fn kind_label(l: Lang, kind: &str) -> String {
    match kind {
        "note" => l.t("kind-note"),
        "seizure" => l.t("kind-seizure"),
        "cultural_object" => l.t("kind-cultural-object"),
        "alert" => l.t("kind-alert"),
        "request" => l.t("kind-request"),
        "feedback" => l.t("kind-feedback"),
        "unknown" => l.t("kind-unknown"),
        other => other.to_owned(),
    }
}

/// The name of a handling code in the page language.
pub fn handling_label(l: Lang, handling: &str) -> String {
    match handling {
        "clear" => l.t("handling-clear"),
        "green" => l.t("handling-green"),
        "amber" => l.t("handling-amber"),
        "amber+strict" => l.t("handling-amber-strict"),
        "red" => l.t("handling-red"),
        other => other.to_owned(),
    }
}

/// `GET /g/{group}`: one page of the timeline.
pub async fn timeline(
    State(app): State<App>,
    officer: Officer,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let l = officer.lang();
    let who = &officer.principal;
    let g = match app.facade.group(who, &group).await {
        Ok(g) => g,
        Err(e) => {
            let _ = app
                .audit(&officer.actor(), "list", &group, &format!("denied: {e}"))
                .await;
            return node_error(&app, &officer, &e);
        }
    };
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let filter = Filter {
        kind: get("kind").filter(|k| KINDS.contains(&k.as_str())),
        handling: get("handling").filter(|h| HANDLINGS.contains(&h.as_str())),
        from_ms: get("from").and_then(|d| i18n::parse_date(&d)),
        until_ms: get("to")
            .and_then(|d| i18n::parse_date(&d))
            .map(|t| t + 86_400_000),
        org: get("org"),
    };
    let cursor = get("before");
    let page = match app
        .facade
        .timeline(who, &g.id, &filter, cursor.as_deref())
        .await
    {
        Ok(p) => p,
        Err(e) => return node_error(&app, &officer, &e),
    };
    let _ = app.audit(&officer.actor(), "list", &g.id, "ok").await;
    let first_page = cursor.is_none();
    let filtered = filter.kind.is_some()
        || filter.handling.is_some()
        || filter.from_ms.is_some()
        || filter.until_ms.is_some()
        || filter.org.is_some();
    if first_page {
        if let Ok(Some(newest)) = app.facade.newest(who, &g.id).await {
            let seen = officer.account.seen.get(&g.id).copied().unwrap_or(0);
            if newest > seen {
                let gid = g.id.clone();
                let _ = app
                    .accounts
                    .update(officer.name(), move |a| {
                        a.seen.insert(gid, newest);
                        Ok(())
                    })
                    .await;
            }
        }
    }
    let mut next_link = None;
    if let Some(next) = &page.next {
        let mut params: Vec<(String, String)> = ["kind", "handling", "from", "to", "org"]
            .iter()
            .filter_map(|k| get(k).map(|v| ((*k).to_owned(), v)))
            .collect();
        params.push(("before".to_owned(), next.clone()));
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::client::segment(v)))
            .collect::<Vec<_>>()
            .join("&");
        next_link = Some(format!("/g/{}?{query}", g.id));
    }
    let selected = |k: &str, v: &str| get(k).as_deref() == Some(v);
    let body = html! {
        h1 { (g.name) }
        p class="muted" {
            (l.t_args("timeline-owner", &[("owner", &g.owner_name)])) " · "
            (l.t_args("timeline-members", &[("count", &l.number(g.members.len() as u64))])) " · "
            (access_label(l, access_in(&officer, &g.id), &g.role))
        }
        @if may_post(&officer, &g.id, &g.role) {
            p { a class="button" href=(format!("/g/{}/compose", g.id)) { (l.t("timeline-compose")) } }
        }
        form class="panel filters" method="get" action=(format!("/g/{}", g.id)) role="search" aria-label=(l.t("filter-label")) {
            div {
                label for="f-kind" { (l.t("filter-kind")) }
                select id="f-kind" name="kind" {
                    option value="" { (l.t("filter-any")) }
                    @for k in KINDS { option value=(k) selected[selected("kind", k)] { (kind_label(l, k)) } }
                }
            }
            div {
                label for="f-handling" { (l.t("filter-handling")) }
                select id="f-handling" name="handling" {
                    option value="" { (l.t("filter-any")) }
                    @for h in HANDLINGS { option value=(h) selected[selected("handling", h)] { (handling_label(l, h)) } }
                }
            }
            div {
                label for="f-from" { (l.t("filter-from")) }
                input type="date" id="f-from" name="from" value=[get("from")];
            }
            div {
                label for="f-to" { (l.t("filter-to")) }
                input type="date" id="f-to" name="to" value=[get("to")];
            }
            div {
                label for="f-org" { (l.t("filter-org")) }
                select id="f-org" name="org" {
                    option value="" { (l.t("filter-any")) }
                    @for o in &page.orgs { option value=(o) selected[selected("org", o)] { (o) } }
                }
            }
            div { button type="submit" { (l.t("filter-apply")) } }
        }
        h2 class="sr-only" { (l.t("timeline-messages")) }
        @if page.items.is_empty() {
            p class="panel" id="empty-timeline" { (l.t("timeline-empty")) }
        }
        ol class="timeline" data-group=(g.id) data-live=[(first_page && !filtered).then_some("1")] aria-label=(l.t("timeline-messages")) {
            @for m in &page.items { (row(l, m)) }
        }
        nav class="pager" aria-label=(l.t("timeline-pages")) {
            @if !first_page { a href=(format!("/g/{}", g.id)) { (l.t("timeline-newest")) } }
            @if let Some(link) = &next_link { a href=(link) rel="next" { (l.t("timeline-older")) } }
        }
    };
    layout(&app, &officer.ctx, Some(&officer), &g.name, body)
}
