//! Groups and their members: create a group, add and remove members.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};

use super::super::{csrf_field, csrf_refused, layout, see_other, Operator};
use super::{failure, outcome_of, refused};
use crate::web::App;

async fn groups_page(app: &App, op: &Operator, notice: Option<Markup>) -> Response {
    let o = &op.0;
    let l = o.lang();
    let me = app
        .facade
        .status()
        .await
        .map(|s| s.node_id)
        .unwrap_or_default();
    let groups = app.facade.all_groups().await.unwrap_or_default();
    let peers = app.facade.peers().await.unwrap_or_default();
    let body = html! {
        h1 { (l.t("admin-groups-title")) }
        @if let Some(n) = notice { (n) }
        @for g in &groups {
            section class="panel" aria-labelledby=(format!("g-{}", g.id)) {
                h2 id=(format!("g-{}", g.id)) { (g.name) }
                p class="muted mono" { (g.id) }
                p class="muted" { (l.t_args("timeline-owner", &[("owner", &g.owner_name)])) " · " (l.t_args("admin-group-epoch", &[("epoch", &g.epoch.to_string())])) }
                table {
                    thead { tr {
                        th scope="col" { (l.t("admin-member")) }
                        th scope="col" { (l.t("admin-member-role")) }
                        @if g.owner_id == me { th scope="col" { (l.t("admin-account-actions")) } }
                    } }
                    tbody {
                        @for m in &g.members {
                            tr {
                                td { (m.name) }
                                td { (if m.role == "reader" { l.t("role-reader") } else { l.t("role-member") }) }
                                @if g.owner_id == me {
                                    td {
                                        @if m.node_id != me {
                                            form class="inline" method="post" action=(format!("/admin/groups/{}/members", g.id)) {
                                                (csrf_field(&o.csrf))
                                                input type="hidden" name="action" value="remove";
                                                input type="hidden" name="peer" value=(m.node_id);
                                                button type="submit" class="danger" aria-label=(format!("{} — {}", l.t("admin-member-remove"), m.name)) { (l.t("admin-member-remove")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if g.owner_id == me {
                    form method="post" action=(format!("/admin/groups/{}/members", g.id)) {
                        (csrf_field(&o.csrf))
                        input type="hidden" name="action" value="add";
                        label for=(format!("add-{}", g.id)) { (l.t("admin-member-add")) }
                        select id=(format!("add-{}", g.id)) name="peer" {
                            @for p in &peers { option value=(p.name) { (p.name) } }
                        }
                        label for=(format!("role-{}", g.id)) { (l.t("admin-member-role")) }
                        select id=(format!("role-{}", g.id)) name="role" {
                            option value="member" { (l.t("role-member")) }
                            option value="reader" { (l.t("role-reader")) }
                        }
                        button type="submit" class="secondary" { (l.t("admin-member-add")) }
                    }
                }
            }
        }
        h2 { (l.t("admin-group-create")) }
        form class="panel" method="post" action="/admin/groups" {
            (csrf_field(&o.csrf))
            label for="group-name" { (l.t("groups-name")) }
            input type="text" id="group-name" name="name" required;
            button type="submit" { (l.t("admin-group-create")) }
        }
    };
    layout(app, &o.ctx, Some(o), &l.t("admin-groups-title"), body)
}

/// `GET /admin/groups`.
pub async fn groups(State(app): State<App>, op: Operator) -> Response {
    let _ = app.audit(&op.actor(), "group.list", "all", "ok").await;
    groups_page(&app, &op, None).await
}

/// The create-group form.
#[derive(Debug, serde::Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
}

/// `POST /admin/groups`.
pub async fn create_group(
    State(app): State<App>,
    op: Operator,
    Form(f): Form<CreateForm>,
) -> Response {
    if !op.0.csrf_ok(&f.csrf) {
        return csrf_refused(&app, &op.0);
    }
    let r = app.facade.create_group(f.name.trim().to_owned()).await;
    let _ = app
        .audit(&op.actor(), "group.create", &f.name, &outcome_of(&r))
        .await;
    match r {
        Ok(_) => see_other("/admin/groups"),
        Err(e) => refused(groups_page(&app, &op, Some(failure(&op, &e))).await),
    }
}

/// The member form.
#[derive(Debug, serde::Deserialize)]
pub struct MemberForm {
    csrf: String,
    action: String,
    peer: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/groups/{group}/members`: add (`action=add`, `peer`, `role`) or remove.
pub async fn change_member(
    State(app): State<App>,
    op: Operator,
    Path(group): Path<String>,
    Form(f): Form<MemberForm>,
) -> Response {
    if !op.0.csrf_ok(&f.csrf) {
        return csrf_refused(&app, &op.0);
    }
    let target = format!("{group} {}", f.peer);
    let (action, r) = if f.action == "add" {
        (
            "group.add",
            app.facade
                .add_member(
                    group.clone(),
                    f.peer.clone(),
                    if f.role.is_empty() { "member" } else { &f.role },
                )
                .await,
        )
    } else {
        (
            "group.remove",
            app.facade
                .remove_member(group.clone(), f.peer.clone())
                .await,
        )
    };
    let _ = app
        .audit(&op.actor(), action, &target, &outcome_of(&r))
        .await;
    match r {
        Ok(_) => see_other("/admin/groups"),
        Err(e) => refused(groups_page(&app, &op, Some(failure(&op, &e))).await),
    }
}
