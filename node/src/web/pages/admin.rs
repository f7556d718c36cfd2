//! The operator pages: officer accounts and their grants, peers, groups and members, and the
//! audit log with its verification — what `liaison user|peer|group|audit` do, for operators
//! (officers with the operator role). Node changes run as the node's admin; each is audited
//! under `operator:NAME`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};

use super::{csrf_field, csrf_refused, error_page, layout, see_other, time, Operator};
use crate::accounts::Access;
use crate::error::Error;
use crate::views::GroupView;
use crate::web::App;

/// Audit records per page.
const AUDIT_PAGE: usize = 50;

fn flash(kind: &str, text: &str) -> Markup {
    html! { div class=(kind) role=(if kind == "alert" { "alert" } else { "status" }) { (text) } }
}

/// The alert an operator's failed action shows above the page it came from.
fn failure(op: &Operator, e: &impl std::fmt::Display) -> Markup {
    flash("alert", &format!("{}: {e}", op.0.lang().t("admin-failed")))
}

/// `page`, answered as a refused request (400).
fn refused(mut page: Response) -> Response {
    *page.status_mut() = StatusCode::BAD_REQUEST;
    page
}

fn outcome_of<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

fn group_name(groups: &[GroupView], id: &str) -> String {
    groups
        .iter()
        .find(|g| g.id == id)
        .map_or_else(|| id.to_owned(), |g| g.name.clone())
}

// ----- accounts -------------------------------------------------------------------------

async fn accounts_page(app: &App, op: &Operator, notice: Option<Markup>) -> Response {
    let o = &op.0;
    let l = o.lang();
    let groups = app.facade.all_groups().await.unwrap_or_default();
    let accounts = app.accounts.list();
    let body = html! {
        h1 { (l.t("admin-accounts-title")) }
        @if let Some(n) = notice { (n) }
        table {
            caption class="sr-only" { (l.t("admin-accounts-title")) }
            thead { tr {
                th scope="col" { (l.t("admin-account-name")) }
                th scope="col" { (l.t("admin-account-login")) }
                th scope="col" { (l.t("admin-account-grants")) }
                th scope="col" { (l.t("admin-account-actions")) }
            } }
            tbody {
                @for a in &accounts {
                    tr {
                        th scope="row" {
                            (a.name)
                            @if a.operator { br; span class="muted" { (l.t("admin-account-operator")) } }
                        }
                        td {
                            (if a.password_hash.is_none() { l.t("admin-login-none") }
                             else if a.must_change_password { l.t("admin-login-one-time") }
                             else { l.t("admin-login-password") })
                            br;
                            span class="muted" { (if a.totp_secret.is_some() { l.t("admin-totp-on") } else { l.t("admin-totp-off") }) }
                        }
                        td {
                            ul {
                                @for (g, access) in &a.grants {
                                    li {
                                        (group_name(&groups, g)) ": " (access.to_string()) " "
                                        form class="inline" method="post" action=(format!("/admin/accounts/{}", a.name)) {
                                            (csrf_field(&o.csrf))
                                            input type="hidden" name="action" value="revoke";
                                            input type="hidden" name="group" value=(g);
                                            button type="submit" class="secondary" aria-label=(l.t_args("admin-revoke-label", &[("group", &group_name(&groups, g)), ("officer", &a.name)])) { (l.t("admin-revoke")) }
                                        }
                                    }
                                }
                            }
                            form method="post" action=(format!("/admin/accounts/{}", a.name)) {
                                (csrf_field(&o.csrf))
                                input type="hidden" name="action" value="grant";
                                label for=(format!("grant-g-{}", a.name)) { (l.t("admin-grant-group")) }
                                select id=(format!("grant-g-{}", a.name)) name="group" {
                                    @for g in &groups { option value=(g.id) { (g.name) } }
                                }
                                label for=(format!("grant-a-{}", a.name)) { (l.t("admin-grant-access")) }
                                select id=(format!("grant-a-{}", a.name)) name="access" {
                                    option value="read" { (l.t("access-read")) }
                                    option value="post" { (l.t("access-post")) }
                                }
                                button type="submit" class="secondary" { (l.t("admin-grant")) }
                            }
                        }
                        td {
                            @for (action, key) in [("enrol", "admin-action-enrol"), ("password", "admin-action-password"), ("operator", if a.operator { "admin-action-unoperator" } else { "admin-action-operator" }), ("totp-reset", "admin-action-totp-reset"), ("remove", "admin-action-remove")] {
                                form class="inline" method="post" action=(format!("/admin/accounts/{}", a.name)) {
                                    (csrf_field(&o.csrf))
                                    input type="hidden" name="action" value=(action);
                                    button type="submit" class=(if action == "remove" { "danger" } else { "secondary" })
                                        aria-label=(format!("{} — {}", l.t(key), a.name)) { (l.t(key)) }
                                }
                                " "
                            }
                        }
                    }
                }
            }
        }
        h2 { (l.t("admin-add-account")) }
        form class="panel" method="post" action="/admin/accounts" {
            (csrf_field(&o.csrf))
            label for="new-name" { (l.t("admin-account-name")) }
            input type="text" id="new-name" name="name" required pattern="[A-Za-z0-9._\\-]{1,64}" aria-describedby="new-name-hint";
            p class="hint" id="new-name-hint" { (l.t("admin-account-name-hint")) }
            fieldset {
                legend { (l.t("admin-account-login")) }
                label class="check" { input type="radio" name="login" value="enrol" checked; (l.t("admin-login-enrol")) }
                label class="check" { input type="radio" name="login" value="password"; (l.t("admin-login-issue-password")) }
            }
            label class="check" { input type="checkbox" name="operator" value="1"; (l.t("admin-account-operator")) }
            fieldset {
                legend { (l.t("admin-account-grants")) }
                @for g in &groups {
                    label for=(format!("new-grant-{}", g.id)) { (g.name) }
                    select id=(format!("new-grant-{}", g.id)) name=(format!("grant.{}", g.id)) {
                        option value="" { (l.t("access-none")) }
                        option value="read" { (l.t("access-read")) }
                        option value="post" { (l.t("access-post")) }
                    }
                }
            }
            button type="submit" { (l.t("admin-add-account")) }
        }
    };
    layout(app, &o.ctx, Some(o), &l.t("admin-accounts-title"), body)
}

/// `GET /admin/accounts`.
pub async fn accounts(State(app): State<App>, op: Operator) -> Response {
    let _ = app.audit(&op.actor(), "user.list", "users", "ok").await;
    accounts_page(&app, &op, None).await
}

fn origin(app: &App, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{}://{host}", if app.https { "https" } else { "http" })
}

/// What an operator was given to hand over, once.
fn handover(app: &App, op: &Operator, headers: &HeaderMap, name: &str, issued: &Issued) -> Markup {
    let l = op.0.lang();
    match issued {
        Issued::Enrolment(code) => {
            let link = format!("{}/enrol#{}", origin(app, headers), code.as_str());
            html! { div class="notice" role="status" {
                p { (l.t_args("admin-enrol-issued", &[("officer", name)])) }
                p class="mono" id="enrolment-link" { (link) }
            } }
        }
        Issued::Password(p) => html! { div class="notice" role="status" {
            p { (l.t_args("admin-password-issued", &[("officer", name)])) }
            p class="mono" id="issued-password" { (p.as_str()) }
        } },
    }
}

enum Issued {
    Enrolment(zeroize::Zeroizing<String>),
    Password(zeroize::Zeroizing<String>),
}

/// `POST /admin/accounts`: a new officer with grants, and an enrolment link or a one-time
/// password shown once.
pub async fn add_account(
    State(app): State<App>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if !op.0.csrf_ok(&value("csrf")) {
        return csrf_refused(&app, &op.0);
    }
    let name = value("name").trim().to_owned();
    let mut grants = BTreeMap::new();
    for (k, v) in &f {
        if let (Some(g), Ok(a)) = (k.strip_prefix("grant."), v.parse::<Access>()) {
            if let Ok(gid) = g.parse() {
                grants.insert(gid, a);
            }
        }
    }
    let target = format!(
        "{name} {}",
        grants
            .iter()
            .map(|(g, a)| format!("{g}:{a}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let result: Result<Issued, Error> = async {
        app.accounts.add(&name, grants).await?;
        if value("operator") == "1" {
            app.accounts
                .update(&name, |a| {
                    a.operator = true;
                    Ok(())
                })
                .await?;
        }
        if value("login") == "password" {
            Ok(Issued::Password(app.accounts.issue_password(&name).await?))
        } else {
            Ok(Issued::Enrolment(
                app.accounts.issue_enrolment(&name).await?,
            ))
        }
    }
    .await;
    let _ = app
        .audit(&op.actor(), "user.add", &target, &outcome_of(&result))
        .await;
    match result {
        Ok(issued) => {
            let notice = handover(&app, &op, &headers, &name, &issued);
            accounts_page(&app, &op, Some(notice)).await
        }
        Err(e) => refused(accounts_page(&app, &op, Some(failure(&op, &e))).await),
    }
}

/// `POST /admin/accounts/{name}`: one change to an account (`action`: grant, revoke,
/// operator, totp-reset, enrol, password, remove).
pub async fn change_account(
    State(app): State<App>,
    op: Operator,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let value = |k: &str| f.get(k).cloned().unwrap_or_default();
    if !op.0.csrf_ok(&value("csrf")) {
        return csrf_refused(&app, &op.0);
    }
    let action = value("action");
    let group = value("group");
    let (audit_action, result): (&str, Result<Option<Issued>, Error>) = match action.as_str() {
        "grant" => {
            let r = async {
                let gid = group.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
                let access: Access = value("access").parse()?;
                app.accounts
                    .set_grant(&name, gid, Some(access))
                    .await
                    .map(|_| None)
            }
            .await;
            ("user.grant", r)
        }
        "revoke" => {
            let r = async {
                let gid = group.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
                app.accounts.set_grant(&name, gid, None).await.map(|_| None)
            }
            .await;
            ("user.revoke", r)
        }
        "operator" => (
            "user.operator",
            app.accounts
                .update(&name, |a| {
                    a.operator = !a.operator;
                    Ok(())
                })
                .await
                .map(|_| None),
        ),
        "totp-reset" => (
            "user.totp-reset",
            app.accounts
                .update(&name, |a| {
                    a.totp_secret = None;
                    Ok(())
                })
                .await
                .map(|_| None),
        ),
        "enrol" => (
            "user.enrol",
            app.accounts
                .issue_enrolment(&name)
                .await
                .map(|c| Some(Issued::Enrolment(c))),
        ),
        "password" => (
            "user.password",
            app.accounts
                .issue_password(&name)
                .await
                .map(|p| Some(Issued::Password(p))),
        ),
        "remove" => {
            let r = app.accounts.remove(&name).await.map(|()| None);
            if r.is_ok() {
                app.sessions.remove_officer(&name);
            }
            ("user.remove", r)
        }
        _ => (
            "user.change",
            Err(Error::Invalid(format!("unknown action {action:?}"))),
        ),
    };
    if matches!(action.as_str(), "password" | "totp-reset") && result.is_ok() {
        // A new password or a removed second factor ends the officer's sessions.
        app.sessions.remove_officer(&name);
    }
    let target = if group.is_empty() {
        name.clone()
    } else {
        format!("{name} {group}")
    };
    let _ = app
        .audit(&op.actor(), audit_action, &target, &outcome_of(&result))
        .await;
    match result {
        Ok(Some(issued)) => {
            let notice = handover(&app, &op, &headers, &name, &issued);
            accounts_page(&app, &op, Some(notice)).await
        }
        Ok(None) => see_other("/admin/accounts"),
        Err(e) => refused(accounts_page(&app, &op, Some(failure(&op, &e))).await),
    }
}

// ----- peers ------------------------------------------------------------------------------

async fn peers_page(app: &App, op: &Operator, notice: Option<Markup>) -> Response {
    let o = &op.0;
    let l = o.lang();
    let status = app.facade.status().await.ok();
    let peers = app.facade.peers().await.unwrap_or_default();
    let body = html! {
        h1 { (l.t("admin-peers-title")) }
        @if let Some(n) = notice { (n) }
        @if let Some(s) = &status {
            div class="panel" {
                p { (l.t("admin-this-node")) }
                p class="mono" { (s.name) " " (s.node_id) " " (s.quic_addr) }
                p class="muted" { (l.t_args("admin-node-counts", &[("groups", &l.number(s.groups as u64)), ("messages", &l.number(s.messages as u64)), ("connected", &l.number(s.connected as u64)), ("peers", &l.number(s.peers as u64))])) }
            }
        }
        @if let Some(s) = &status {
            @if let Some(w) = &s.roster_warning { div class="alert" role="alert" { (w) } }
            @if !s.rosters.is_empty() {
                h2 { (l.t("admin-rosters-title")) }
                table {
                    caption class="sr-only" { (l.t("admin-rosters-title")) }
                    thead { tr {
                        th scope="col" { (l.t("admin-roster-federation")) }
                        th scope="col" { (l.t("admin-roster-version")) }
                        th scope="col" { (l.t("admin-roster-valid-until")) }
                        th scope="col" { (l.t("admin-roster-state")) }
                        th scope="col" { (l.t("admin-roster-counts")) }
                    } }
                    tbody {
                        @for r in &s.rosters {
                            tr {
                                th scope="row" { (r.federation) br; span class="mono muted" { (r.authority) } }
                                td { (l.number(r.version)) }
                                td { (r.valid_until) }
                                td { (r.state) }
                                td { (l.t_args("admin-roster-entries", &[("entries", &l.number(r.entries as u64)), ("revoked", &l.number(r.revoked as u64))])) }
                            }
                        }
                    }
                }
            }
        }
        table {
            caption class="sr-only" { (l.t("admin-peers-title")) }
            thead { tr {
                th scope="col" { (l.t("admin-peer-name")) }
                th scope="col" { (l.t("admin-peer-id")) }
                th scope="col" { (l.t("admin-peer-address")) }
                th scope="col" { (l.t("admin-peer-source")) }
                th scope="col" { (l.t("admin-peer-state")) }
                th scope="col" { (l.t("admin-account-actions")) }
            } }
            tbody {
                @for p in &peers {
                    tr {
                        th scope="row" { (p.name) }
                        td class="mono" { (p.node_id) }
                        td class="mono" { (p.address) }
                        td { (match p.source.as_str() { "pin+roster" => l.t("peer-source-both"), "roster" => l.t("peer-source-roster"), _ => l.t("peer-source-pin") }) }
                        td {
                            @if let Some(why) = &p.blocked {
                                strong { (l.t_args("peer-blocked", &[("reason", why)])) }
                            } @else {
                                (match p.state.as_str() { "connected" => l.t("peer-connected"), "connecting" => l.t("peer-connecting"), _ => l.t("peer-disconnected") })
                            }
                            @if let Some(e) = &p.last_error { br; span class="muted" { (e) } }
                        }
                        td {
                            // A node admitted only by the roster has no pin to remove: it is
                            // refused in `[federation] refuse`, or revoked by the authority.
                            @if p.source != "roster" {
                                form class="inline" method="post" action=(format!("/admin/peers/{}/remove", p.name)) {
                                    (csrf_field(&o.csrf))
                                    button type="submit" class="danger" aria-label=(format!("{} — {}", l.t("admin-peer-remove"), p.name)) { (l.t("admin-peer-remove")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (l.t("admin-peer-add")) }
        form class="panel" method="post" action="/admin/peers" {
            (csrf_field(&o.csrf))
            label for="peer-name" { (l.t("admin-peer-name")) }
            input type="text" id="peer-name" name="name" required;
            label for="peer-id" { (l.t("admin-peer-id")) }
            input type="text" id="peer-id" name="node_id" required;
            label for="peer-address" { (l.t("admin-peer-address")) }
            input type="text" id="peer-address" name="address" required placeholder="203.0.113.7:7400";
            button type="submit" { (l.t("admin-peer-add")) }
        }
    };
    layout(app, &o.ctx, Some(o), &l.t("admin-peers-title"), body)
}

/// `GET /admin/peers`.
pub async fn peers(State(app): State<App>, op: Operator) -> Response {
    let _ = app.audit(&op.actor(), "peer.list", "peers", "ok").await;
    peers_page(&app, &op, None).await
}

/// The add-peer form.
#[derive(Debug, serde::Deserialize)]
pub struct PeerForm {
    csrf: String,
    name: String,
    node_id: String,
    address: String,
}

/// `POST /admin/peers`.
pub async fn add_peer(State(app): State<App>, op: Operator, Form(f): Form<PeerForm>) -> Response {
    if !op.0.csrf_ok(&f.csrf) {
        return csrf_refused(&app, &op.0);
    }
    let target = format!("{} {}", f.name, f.node_id);
    let r = app
        .facade
        .add_peer(
            f.name.trim().to_owned(),
            &f.node_id,
            f.address.trim().to_owned(),
        )
        .await;
    let _ = app
        .audit(&op.actor(), "peer.add", &target, &outcome_of(&r))
        .await;
    match r {
        Ok(_) => see_other("/admin/peers"),
        Err(e) => refused(peers_page(&app, &op, Some(failure(&op, &e))).await),
    }
}

/// A form with only the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /admin/peers/{peer}/remove`.
pub async fn remove_peer(
    State(app): State<App>,
    op: Operator,
    Path(peer): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !op.0.csrf_ok(&f.csrf) {
        return csrf_refused(&app, &op.0);
    }
    let r = app.facade.remove_peer(peer.clone()).await;
    let _ = app
        .audit(&op.actor(), "peer.remove", &peer, &outcome_of(&r))
        .await;
    match r {
        Ok(()) => see_other("/admin/peers"),
        Err(e) => error_page(
            &app,
            &op.0.ctx,
            Some(&op.0),
            StatusCode::BAD_REQUEST,
            &e.to_string(),
        ),
    }
}

// ----- groups -----------------------------------------------------------------------------

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

// ----- audit ------------------------------------------------------------------------------

/// What the audit page shows: records whose actor contains `actor`, whose action is `action`
/// and whose outcome is of the class `outcome` (`ok`, `denied`, `error`).
#[derive(Debug, Clone, Default)]
struct AuditFilter {
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
}

/// The classes of outcome the audit page filters by.
const OUTCOMES: [&str; 3] = ["ok", "denied", "error"];

impl AuditFilter {
    fn from_query(q: &HashMap<String, String>) -> AuditFilter {
        let get = |k: &str| {
            q.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        AuditFilter {
            actor: get("actor"),
            action: get("action"),
            outcome: get("outcome").filter(|o| OUTCOMES.contains(&o.as_str())),
        }
    }

    fn matches(&self, r: &crate::audit::AuditRecord) -> bool {
        self.actor.as_deref().is_none_or(|a| r.actor.contains(a))
            && self.action.as_deref().is_none_or(|a| r.action == a)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| r.outcome == o || r.outcome.starts_with(&format!("{o}:")))
    }

    /// The filter as query parameters, followed by `extra`.
    fn query(&self, extra: Option<(&str, u64)>) -> String {
        let mut params: Vec<String> = [
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", crate::client::segment(v)))
        })
        .collect();
        if let Some((k, v)) = extra {
            params.push(format!("{k}={v}"));
        }
        if params.is_empty() {
            "/admin/audit".to_owned()
        } else {
            format!("/admin/audit?{}", params.join("&"))
        }
    }
}

/// One page of the audit log as the operator's page shows it.
#[derive(Debug, Default)]
struct AuditPage {
    /// The records shown, newest first.
    records: Vec<crate::audit::AuditRecord>,
    /// Whether matching records newer than those shown exist.
    has_newer: bool,
    /// Whether matching records older than those shown exist.
    has_older: bool,
    /// How many records match.
    matching: usize,
    /// Every action in the log, sorted, for the filter.
    actions: Vec<String>,
}

/// The page of `records` (oldest first) that matches `filter`, newest first: the
/// [`AUDIT_PAGE`] records before `before`, or, going back towards the newest, after `after`.
/// One pass that holds at most a page of records, however long the log.
fn audit_page(
    records: impl Iterator<Item = crate::error::Result<crate::audit::AuditRecord>>,
    filter: &AuditFilter,
    before: Option<u64>,
    after: Option<u64>,
) -> crate::error::Result<AuditPage> {
    let mut page = std::collections::VecDeque::with_capacity(AUDIT_PAGE + 1);
    let mut actions = std::collections::BTreeSet::new();
    let (mut matching, mut beyond, mut behind) = (0usize, false, false);
    for r in records {
        let r = r?;
        if !actions.contains(&r.action) {
            actions.insert(r.action.clone());
        }
        if !filter.matches(&r) {
            continue;
        }
        matching += 1;
        match (after, before) {
            // The oldest page after `after`: `beyond` if more follow, `behind` if any precede.
            (Some(after), _) if r.seq <= after => behind = true,
            (Some(_), _) if page.len() == AUDIT_PAGE => beyond = true,
            (Some(_), _) => page.push_back(r),
            // The newest page before `before`: `behind` if it pushed older ones out.
            (None, Some(before)) if r.seq >= before => beyond = true,
            (None, _) => {
                page.push_back(r);
                if page.len() > AUDIT_PAGE {
                    page.pop_front();
                    behind = true;
                }
            }
        }
    }
    let shown = !page.is_empty();
    Ok(AuditPage {
        records: page.into_iter().rev().collect(),
        has_newer: shown && beyond,
        has_older: shown && behind,
        matching,
        actions: actions.into_iter().collect(),
    })
}

/// `GET /admin/audit[?actor=…&action=…&outcome=…&before=SEQ|after=SEQ]`: the audit log,
/// newest first, in pages of 50, filtered by actor, action and outcome, with the
/// verification of the whole chain.
pub async fn audit(
    State(app): State<App>,
    op: Operator,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let o = &op.0;
    let l = o.lang();
    let _ = app.audit(&op.actor(), "audit.read", "audit", "ok").await;
    let filter = AuditFilter::from_query(&q);
    let seq = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
    let (before, after) = (seq("before"), seq("after"));
    // Both read the log a page at a time, on the blocking pool.
    let store = app.audit.store().clone();
    let read = {
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || {
            let verification = crate::audit::verify(&store);
            let page = audit_page(
                crate::audit::read::records(store, 1),
                &filter,
                before,
                after,
            );
            (verification, page)
        })
        .await
    };
    let (verification, page) = match read {
        Ok((v, p)) => (v, p),
        Err(_) => (Err(Error::ShuttingDown), Err(Error::ShuttingDown)),
    };
    let AuditPage {
        records: page,
        has_newer,
        has_older,
        matching,
        actions,
    } = match page {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                &app,
                &o.ctx,
                Some(o),
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            )
        }
    };
    let newer = page
        .first()
        .filter(|_| has_newer)
        .map(|r| filter.query(Some(("after", r.seq))));
    let older = page
        .last()
        .filter(|_| has_older)
        .map(|r| filter.query(Some(("before", r.seq))));
    let chosen = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let body = html! {
        h1 { (l.t("admin-audit-title")) }
        @match &verification {
            Ok(v) if v.intact => { div class="notice" role="status" { (l.t_args("audit-intact", &[("count", &l.number(v.records))])) } }
            Ok(v) => { div class="alert" role="alert" {
                (l.t_args("audit-broken", &[("record", &v.first_broken.unwrap_or(0).to_string())]))
                " " (v.reason.clone().unwrap_or_default())
            } }
            Err(e) => { div class="alert" role="alert" { (e.to_string()) } }
        }
        form class="panel filters" method="get" action="/admin/audit" role="search" aria-label=(l.t("audit-filter")) {
            div {
                label for="a-actor" { (l.t("audit-actor")) }
                input type="text" id="a-actor" name="actor" value=[filter.actor.as_deref()];
            }
            div {
                label for="a-action" { (l.t("audit-action")) }
                select id="a-action" name="action" {
                    option value="" { (l.t("filter-any")) }
                    @for a in &actions { option value=(a) selected[chosen(&filter.action, a)] { (a) } }
                }
            }
            div {
                label for="a-outcome" { (l.t("audit-outcome")) }
                select id="a-outcome" name="outcome" {
                    option value="" { (l.t("filter-any")) }
                    option value="ok" selected[chosen(&filter.outcome, "ok")] { (l.t("audit-outcome-ok")) }
                    option value="denied" selected[chosen(&filter.outcome, "denied")] { (l.t("audit-outcome-denied")) }
                    option value="error" selected[chosen(&filter.outcome, "error")] { (l.t("audit-outcome-error")) }
                }
            }
            div { button type="submit" { (l.t("filter-apply")) } }
        }
        p id="audit-count" class="muted" {
            (l.t_args("audit-showing", &[
                ("shown", &l.number(page.len() as u64)),
                ("matching", &l.number(matching as u64)),
            ]))
        }
        table {
            caption class="sr-only" { (l.t("admin-audit-title")) }
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (l.t("audit-when")) }
                th scope="col" { (l.t("audit-actor")) }
                th scope="col" { (l.t("audit-action")) }
                th scope="col" { (l.t("audit-target")) }
                th scope="col" { (l.t("audit-outcome")) }
            } }
            tbody {
                @for r in &page {
                    tr data-seq=(r.seq) {
                        td { (r.seq) }
                        td { (time(l, r.at_ms)) }
                        td { (r.actor) }
                        td { (r.action) }
                        td class="mono" { (r.target) }
                        td { (r.outcome) }
                    }
                }
            }
        }
        nav class="pager" aria-label=(l.t("timeline-pages")) {
            @if has_newer { a href=(filter.query(None)) { (l.t("timeline-newest")) } }
            @if let Some(link) = &newer { a href=(link) rel="prev" id="audit-newer" { (l.t("audit-newer")) } }
            @if let Some(link) = &older { a href=(link) rel="next" id="audit-older" { (l.t("timeline-older")) } }
        }
    };
    layout(&app, &o.ctx, Some(o), &l.t("admin-audit-title"), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    fn log(n: u64) -> Vec<AuditRecord> {
        (1..=n)
            .map(|seq| AuditRecord {
                seq,
                at_ms: seq * 1000,
                actor: if seq % 2 == 0 { "officer:ana" } else { "admin" }.to_owned(),
                action: if seq % 3 == 0 { "login" } else { "read" }.to_owned(),
                target: "web".to_owned(),
                outcome: if seq % 5 == 0 { "denied: locked" } else { "ok" }.to_owned(),
                prev: String::new(),
                hash: String::new(),
            })
            .collect()
    }

    fn seqs(page: &AuditPage) -> Vec<u64> {
        page.records.iter().map(|r| r.seq).collect()
    }

    /// `audit_page` over `records`, as (page, has_newer, has_older, matching).
    fn page_of(
        records: &[AuditRecord],
        filter: &AuditFilter,
        before: Option<u64>,
        after: Option<u64>,
    ) -> (AuditPage, bool, bool, usize) {
        let p = audit_page(records.iter().cloned().map(Ok), filter, before, after).expect("page");
        let (newer, older, n) = (p.has_newer, p.has_older, p.matching);
        (p, newer, older, n)
    }

    #[test]
    fn audit_pages_go_back_and_forth_through_what_matches() {
        let records = log(120);
        let all = AuditFilter::default();
        let (first, newer, older, n) = page_of(&records, &all, None, None);
        assert_eq!(
            (first.records.len(), newer, older, n),
            (AUDIT_PAGE, false, true, 120)
        );
        assert_eq!(first.records[0].seq, 120);
        assert_eq!(first.actions, ["login", "read"]);
        let (second, newer, older, _) = page_of(&records, &all, Some(71), None);
        assert_eq!(seqs(&second), (21..=70).rev().collect::<Vec<_>>());
        assert!(newer && older);
        let (last, _, older, _) = page_of(&records, &all, Some(21), None);
        assert_eq!(seqs(&last), (1..=20).rev().collect::<Vec<_>>());
        assert!(!older);
        // Back towards the newest from the last page: the page just above it.
        let (back, newer, _, _) = page_of(&records, &all, None, Some(20));
        assert_eq!(seqs(&back), (21..=70).rev().collect::<Vec<_>>());
        assert!(newer);

        let q = |pairs: &[(&str, &str)]| {
            AuditFilter::from_query(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let denied = q(&[("outcome", "denied"), ("actor", "ana")]);
        let (page, newer, older, n) = page_of(&records, &denied, None, None);
        assert_eq!(n, 12, "even seqs divisible by 5: 10, 20, ..., 120");
        assert!(page.records.iter().all(|r| r.seq % 10 == 0));
        assert!(!newer && !older);
        assert_eq!(
            denied.query(Some(("before", 7))),
            "/admin/audit?actor=ana&outcome=denied&before=7"
        );
        // An unknown outcome class is no filter; an exact action is.
        let (_, _, _, n) = page_of(&records, &q(&[("outcome", "maybe")]), None, None);
        assert_eq!(n, 120);
        let (_, _, _, n) = page_of(&records, &q(&[("action", "login")]), None, None);
        assert_eq!(n, 40);
    }
}
