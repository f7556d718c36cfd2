//! Officer accounts and their grants: list, add (with a one-time enrolment link or password),
//! change roles and grants, remove.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};

use super::super::{csrf_field, csrf_refused, layout, see_other, Operator};
use super::{failure, group_name, outcome_of, refused};
use crate::accounts::Access;
use crate::error::Error;
use crate::web::App;

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
