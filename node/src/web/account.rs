//! The officer's own account: enrolment with a one-time link or password, the account page
//! (password change, TOTP set-up) and the language switch. Logging in is in `auth`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{field_error, new_totp_secret, totp, with_cookie};
use super::i18n::Lang;
use super::pages::{csrf_field, layout, see_other, Ctx, Officer, LANG_COOKIE};
use super::session::{csrf_matches, Stage};
use super::App;

// ----- enrolment --------------------------------------------------------------------------

/// The enrolment form.
#[derive(Debug, Deserialize)]
pub(super) struct EnrolForm {
    code: String,
    password: String,
    confirm: String,
}

fn enrol_page(app: &App, ctx: &Ctx, error: Option<(&str, String)>) -> Response {
    let l = ctx.lang;
    let err = |f: &str| {
        error
            .as_ref()
            .filter(|(k, _)| *k == f)
            .map(|(_, m)| m.as_str())
    };
    let body = html! {
        h1 { (l.t("enrol-title")) }
        p { (l.t("enrol-intro")) }
        form class="panel" method="post" action="/enrol" {
            label for="code" { (l.t("enrol-code")) }
            input type="text" id="code" name="code" autocomplete="off" required
                aria-invalid=[err("code").map(|_| "true")] aria-describedby=[err("code").map(|_| "code-error")];
            (field_error("code", err("code")))
            (password_fields(l, err("password")))
            button type="submit" { (l.t("enrol-submit")) }
        }
    };
    let mut r = layout(app, ctx, None, &l.t("enrol-title"), body);
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

fn password_fields(l: Lang, error: Option<&str>) -> Markup {
    html! {
        label for="password" { (l.t("password-new")) }
        input type="password" id="password" name="password" autocomplete="new-password" required
            minlength=(crate::accounts::MIN_PASSWORD_LEN) aria-describedby="password-hint"
            aria-invalid=[error.map(|_| "true")];
        p class="hint" id="password-hint" { (l.t_args("password-hint", &[("min", &crate::accounts::MIN_PASSWORD_LEN.to_string())])) }
        (field_error("password", error))
        label for="confirm" { (l.t("password-confirm")) }
        input type="password" id="confirm" name="confirm" autocomplete="new-password" required;
    }
}

/// `GET /enrol`: the code comes from the link's fragment (filled in by the script) or is
/// typed in; it never travels in a URL the server sees.
pub(super) async fn enrol_form(State(app): State<App>, ctx: Ctx) -> Response {
    enrol_page(&app, &ctx, None)
}

/// `POST /enrol`.
pub(super) async fn enrol(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<EnrolForm>,
) -> Response {
    let l = ctx.lang;
    if form.password != form.confirm {
        return enrol_page(&app, &ctx, Some(("password", l.t("password-mismatch"))));
    }
    if let Err(e) = crate::accounts::check_password_rules(&form.password) {
        return enrol_page(&app, &ctx, Some(("password", e.to_string())));
    }
    match app.accounts.enrol(&form.code, &form.password).await {
        Ok(name) => {
            let _ = app
                .audit(
                    &format!("officer:{name}"),
                    "enrol",
                    "web",
                    "ok: password set",
                )
                .await;
            app.sessions.remove_officer(&name);
            see_other("/login?done=enrolled")
        }
        Err(e) => {
            let _ = app
                .audit("unknown", "enrol", "web", &format!("denied: {e}"))
                .await;
            enrol_page(&app, &ctx, Some(("code", l.t("enrol-bad-code"))))
        }
    }
}

// ----- the officer's account ------------------------------------------------------------

/// The password change form.
#[derive(Debug, Deserialize)]
pub(super) struct PasswordForm {
    csrf: String,
    current: String,
    password: String,
    confirm: String,
}

fn account_page(
    app: &App,
    ctx: &Ctx,
    error: Option<(&str, String)>,
    notice: Option<String>,
) -> Response {
    let l = ctx.lang;
    let Some(s) = &ctx.session else {
        return see_other("/login");
    };
    let account = app.accounts.account(&s.officer);
    let must_change = s.stage == Stage::ChangePassword;
    let err = |f: &str| {
        error
            .as_ref()
            .filter(|(k, _)| *k == f)
            .map(|(_, m)| m.as_str())
    };
    let has_totp = account.as_ref().is_some_and(|a| a.totp_secret.is_some());
    let body = html! {
        h1 { (l.t("account-title")) }
        @if let Some(n) = &notice { div class="notice" role="status" { (n) } }
        @if must_change { div class="alert" role="alert" { (l.t("account-must-change")) } }
        section class="panel" aria-labelledby="pw-h" {
            h2 id="pw-h" { (l.t("account-password")) }
            form method="post" action="/account/password" {
                (csrf_field(&s.csrf))
                label for="current" { (l.t("password-current")) }
                input type="password" id="current" name="current" autocomplete="current-password" required
                    aria-invalid=[err("current").map(|_| "true")];
                (field_error("current", err("current")))
                (password_fields(l, err("password")))
                button type="submit" { (l.t("account-password-submit")) }
            }
        }
        @if !must_change {
            section class="panel" aria-labelledby="totp-h" {
                h2 id="totp-h" { (l.t("account-totp")) }
                p { (if has_totp { l.t("account-totp-on") } else { l.t("account-totp-off") }) }
                a class="button" href="/account/totp" { (l.t("account-totp-setup")) }
            }
        }
    };
    let officer = officer_of(app, ctx);
    let mut r = layout(app, ctx, officer.as_ref(), &l.t("account-title"), body);
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

/// The officer for the page shell, when the session is complete.
fn officer_of(app: &App, ctx: &Ctx) -> Option<Officer> {
    let s = ctx.session.as_ref().filter(|s| s.stage == Stage::Full)?;
    Some(Officer {
        ctx: ctx.clone(),
        account: app.accounts.account(&s.officer)?,
        principal: app.accounts.principal(&s.officer)?,
        csrf: s.csrf.clone(),
    })
}

/// `GET /account`.
pub(super) async fn account(State(app): State<App>, ctx: Ctx) -> Response {
    match ctx.session.as_ref().map(|s| s.stage) {
        Some(Stage::Full | Stage::ChangePassword) => account_page(&app, &ctx, None, None),
        Some(Stage::SetupTotp) => see_other("/account/totp"),
        _ => see_other("/login"),
    }
}

/// `POST /account/password`.
pub(super) async fn change_password(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<PasswordForm>,
) -> Response {
    let l = ctx.lang;
    let (Some(s), Some(id)) = (&ctx.session, &ctx.session_id) else {
        return see_other("/login");
    };
    if !matches!(s.stage, Stage::Full | Stage::ChangePassword) || !csrf_matches(s, &form.csrf) {
        return see_other("/login");
    }
    let actor = format!("officer:{}", s.officer);
    if !app
        .accounts
        .check_password(&s.officer, &form.current)
        .await
        .unwrap_or(false)
    {
        let _ = app
            .audit(
                &actor,
                "password.change",
                "web",
                "denied: wrong current password",
            )
            .await;
        return account_page(
            &app,
            &ctx,
            Some(("current", l.t("password-wrong-current"))),
            None,
        );
    }
    if form.password != form.confirm {
        return account_page(
            &app,
            &ctx,
            Some(("password", l.t("password-mismatch"))),
            None,
        );
    }
    if form.password == form.current {
        return account_page(&app, &ctx, Some(("password", l.t("password-same"))), None);
    }
    if let Err(e) = app
        .accounts
        .set_password(&s.officer, &form.password, false)
        .await
    {
        return account_page(&app, &ctx, Some(("password", e.to_string())), None);
    }
    let _ = app.audit(&actor, "password.change", "web", "ok").await;
    // Other sessions of the officer end; this one goes on.
    app.sessions.remove_officer(&s.officer);
    let new_id = app.sessions.create(&s.officer, Stage::Full);
    let _ = id;
    with_cookie(see_other("/"), &app.sessions.cookie(&new_id))
}

fn totp_setup_page(app: &App, ctx: &Ctx, secret: &str, error: Option<String>) -> Response {
    let l = ctx.lang;
    let Some(s) = &ctx.session else {
        return see_other("/login");
    };
    let url = totp(secret, &s.officer)
        .map(|t| t.get_url())
        .unwrap_or_default();
    let body = html! {
        h1 { (l.t("totp-setup-title")) }
        @if s.stage == Stage::SetupTotp { div class="alert" role="alert" { (l.t("totp-setup-required")) } }
        @if let Some(e) = &error { div class="alert" role="alert" { (e) } }
        div class="panel" {
            p { (l.t("totp-setup-intro")) }
            dl class="facts" {
                dt { (l.t("totp-setup-secret")) } dd class="mono" id="totp-secret" { (secret) }
                dt { (l.t("totp-setup-uri")) } dd class="mono" { (url) }
            }
            form method="post" action="/account/totp" {
                (csrf_field(&s.csrf))
                input type="hidden" name="secret" value=(secret);
                label for="code" { (l.t("totp-code")) }
                input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required
                    aria-invalid=[error.as_ref().map(|_| "true")];
                button type="submit" { (l.t("totp-setup-submit")) }
            }
        }
    };
    let officer = officer_of(app, ctx);
    let mut r = layout(app, ctx, officer.as_ref(), &l.t("totp-setup-title"), body);
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

/// `GET /account/totp`: a fresh secret to add to an authenticator app.
pub(super) async fn totp_setup(State(app): State<App>, ctx: Ctx) -> Response {
    match ctx.session.as_ref().map(|s| s.stage) {
        Some(Stage::Full | Stage::SetupTotp) => {
            totp_setup_page(&app, &ctx, &new_totp_secret(), None)
        }
        Some(Stage::ChangePassword) => see_other("/account"),
        _ => see_other("/login"),
    }
}

/// The TOTP set-up form: the secret shown and a code made with it.
#[derive(Debug, Deserialize)]
pub(super) struct TotpSetupForm {
    csrf: String,
    secret: String,
    code: String,
}

/// `POST /account/totp`: keeps the secret once a code made with it is right.
pub(super) async fn totp_confirm(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<TotpSetupForm>,
) -> Response {
    let (Some(s), Some(id)) = (&ctx.session, &ctx.session_id) else {
        return see_other("/login");
    };
    if !matches!(s.stage, Stage::Full | Stage::SetupTotp) || !csrf_matches(s, &form.csrf) {
        return see_other("/login");
    }
    let actor = format!("officer:{}", s.officer);
    if totp(&form.secret, &s.officer).is_none()
        || !app.throttle.totp_ok(&s.officer, &form.secret, &form.code)
    {
        let _ = app
            .audit(&actor, "totp.setup", "web", "denied: wrong code")
            .await;
        return totp_setup_page(&app, &ctx, &form.secret, Some(ctx.lang.t("totp-failed")));
    }
    let secret = form.secret.clone();
    let must_change = match app
        .accounts
        .update(&s.officer, |a| {
            a.totp_secret = Some(secret);
            Ok(())
        })
        .await
    {
        Ok(a) => a.must_change_password,
        Err(e) => return totp_setup_page(&app, &ctx, &form.secret, Some(e.to_string())),
    };
    let _ = app.audit(&actor, "totp.setup", "web", "ok").await;
    let next = if must_change {
        Stage::ChangePassword
    } else {
        Stage::Full
    };
    app.sessions.set_stage(id, next);
    see_other("/account")
}

// ----- language -------------------------------------------------------------------------

/// The language switch.
#[derive(Debug, Deserialize)]
pub(super) struct LangForm {
    lang: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /lang`: keeps the chosen language in a cookie and goes back.
pub(super) async fn set_lang(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<LangForm>,
) -> Response {
    if let Some(s) = &ctx.session {
        if !csrf_matches(s, &form.csrf) {
            return (StatusCode::FORBIDDEN, ctx.lang.t("error-csrf")).into_response();
        }
    }
    let Some(lang) = Lang::from_code(&form.lang) else {
        return (StatusCode::BAD_REQUEST, "unknown language").into_response();
    };
    let next = if form.next.starts_with('/')
        && !form.next.starts_with("//")
        && !form.next.contains('\\')
    {
        form.next
    } else {
        "/".to_owned()
    };
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict{}",
        lang.code(),
        if app.https { "; Secure" } else { "" }
    );
    with_cookie(see_other(&next), &cookie)
}
