//! The pages: the request context (language, session, officer), the page shell, and the
//! pieces every page uses (TLP labels, dates, CSRF fields, error pages).

pub mod admin;
pub mod attachment;
pub mod compose;
pub mod groups;
pub mod message;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::i18n::{self, Lang};
use super::session::{SessionInfo, Stage};
use super::App;
use crate::accounts::{Account, Principal};
use crate::error::Error;

/// The language cookie.
pub const LANG_COOKIE: &str = "liaison-lang";

/// What every request knows: its language and its session, if any.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The page language.
    pub lang: Lang,
    /// The session id from the cookie, when it names a live session.
    pub session_id: Option<String>,
    /// The live session.
    pub session: Option<SessionInfo>,
    /// The path asked for (to come back to after a language change).
    pub path: String,
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<App> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Ctx, Self::Rejection> {
        let lang = cookie(parts, LANG_COOKIE)
            .and_then(Lang::from_code)
            .unwrap_or_else(|| {
                Lang::negotiate(
                    parts
                        .headers
                        .get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                )
            });
        let session_id = cookie(parts, app.sessions.cookie_name).map(str::to_owned);
        let session = session_id.as_deref().and_then(|id| app.sessions.get(id));
        Ok(Ctx {
            lang,
            session_id: session.as_ref().and(session_id),
            session,
            path: parts
                .uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

/// A logged-in officer (session at [`Stage::Full`]) with its account read afresh.
#[derive(Debug, Clone)]
pub struct Officer {
    /// The request context.
    pub ctx: Ctx,
    /// The account.
    pub account: Account,
    /// The principal reads and posts run as (grants as of this request).
    pub principal: Principal,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Officer {
    /// The officer's name.
    pub fn name(&self) -> &str {
        &self.account.name
    }
    /// The language.
    pub fn lang(&self) -> Lang {
        self.ctx.lang
    }
    /// How the audit log names the officer.
    pub fn actor(&self) -> String {
        format!("officer:{}", self.account.name)
    }
    /// Whether a presented CSRF token is this session's.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        self.ctx
            .session
            .as_ref()
            .is_some_and(|s| super::session::csrf_matches(s, presented))
    }
}

impl FromRequestParts<App> for Officer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Officer, Response> {
        let Ok(ctx) = Ctx::from_request_parts(parts, app).await;
        let Some(session) = ctx.session.clone() else {
            return Err(Redirect::to("/login").into_response());
        };
        match session.stage {
            Stage::Full => {}
            Stage::Totp => return Err(Redirect::to("/login/totp").into_response()),
            Stage::SetupTotp => return Err(Redirect::to("/account/totp").into_response()),
            Stage::ChangePassword => return Err(Redirect::to("/account").into_response()),
        }
        let (Some(account), Some(principal)) = (
            app.accounts.account(&session.officer),
            app.accounts.principal(&session.officer),
        ) else {
            if let Some(id) = &ctx.session_id {
                app.sessions.remove(id);
            }
            return Err(Redirect::to("/login").into_response());
        };
        Ok(Officer {
            csrf: session.csrf.clone(),
            ctx,
            account,
            principal,
        })
    }
}

/// An officer with the operator role.
#[derive(Debug, Clone)]
pub struct Operator(pub Officer);

impl Operator {
    /// How the audit log names the operator.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.0.account.name)
    }
}

impl FromRequestParts<App> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Operator, Response> {
        let officer = Officer::from_request_parts(parts, app).await?;
        if !officer.account.operator {
            let _ = app
                .audit(
                    &officer.actor(),
                    "web.operator",
                    parts.uri.path(),
                    "denied: not an operator",
                )
                .await;
            return Err(error_page(
                app,
                &officer.ctx,
                Some(&officer),
                StatusCode::FORBIDDEN,
                &officer.lang().t("error-operator-only"),
            ));
        }
        Ok(Operator(officer))
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A TLP label in the FIRST TLP 2.0 colours (coloured text on black).
pub fn tlp(handling: &str) -> Markup {
    let class = format!("tlp tlp-{}", handling.replace('+', "-"));
    html! { span class=(class) { "TLP:" (handling.to_ascii_uppercase()) } }
}

/// A time, in the page language, with its machine-readable form.
pub fn time(lang: Lang, ms: u64) -> Markup {
    html! { time datetime=(crate::views::rfc3339(ms)) { (lang.datetime(ms)) } }
}

/// The page shell around `content`.
pub fn layout(
    app: &App,
    ctx: &Ctx,
    officer: Option<&Officer>,
    title: &str,
    content: Markup,
) -> Response {
    let l = ctx.lang;
    let page = html! {
        (DOCTYPE)
        html lang=(l.code()) dir=(l.dir()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Liaison · " (app.node_name) }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body data-events=[officer.map(|_| "/events")] {
                a class="skip" href="#main" { (l.t("nav-skip")) }
                header class="top" {
                    a class="brand" href="/" { "Liaison" }
                    span class="node" { (l.t_args("nav-node", &[("node", &app.node_name)])) }
                    @if let Some(o) = officer {
                        nav aria-label=(l.t("nav-label")) {
                            ul {
                                li { a href="/" { (l.t("nav-groups")) } }
                                @if o.account.operator {
                                    li { a href="/admin/accounts" { (l.t("nav-accounts")) } }
                                    li { a href="/admin/peers" { (l.t("nav-peers")) } }
                                    li { a href="/admin/groups" { (l.t("nav-admin-groups")) } }
                                    li { a href="/admin/audit" { (l.t("nav-audit")) } }
                                }
                            }
                        }
                    }
                    div class="who" {
                        (lang_form(ctx))
                        @if let Some(o) = officer {
                            a href="/account" { (l.t_args("nav-signed-in-as", &[("officer", o.name())])) }
                            form method="post" action="/logout" {
                                (csrf_field(&o.csrf))
                                button type="submit" { (l.t("nav-logout")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (content) }
                div id="live" class="sr-only" aria-live="polite" {}
                footer { (l.t("footer-text")) }
            }
        }
    };
    Html(page.into_string()).into_response()
}

fn lang_form(ctx: &Ctx) -> Markup {
    let l = ctx.lang;
    html! {
        form method="post" action="/lang" {
            @if let Some(s) = &ctx.session { (csrf_field(&s.csrf)) }
            input type="hidden" name="next" value=(ctx.path);
            label for="lang-select" { (l.t("nav-language")) }
            select id="lang-select" name="lang" {
                @for other in i18n::ALL {
                    option value=(other.code()) lang=(other.code()) selected[other == l] { (other.native_name()) }
                }
            }
            button type="submit" { (l.t("nav-language-apply")) }
        }
    }
}

/// An error page with `status`.
pub fn error_page(
    app: &App,
    ctx: &Ctx,
    officer: Option<&Officer>,
    status: StatusCode,
    message: &str,
) -> Response {
    let l = ctx.lang;
    let title = match status {
        StatusCode::NOT_FOUND => l.t("error-not-found"),
        StatusCode::FORBIDDEN => l.t("error-forbidden"),
        StatusCode::BAD_REQUEST => l.t("error-bad-request"),
        _ => l.t("error-failed"),
    };
    let body = html! {
        h1 { (title) }
        div class="alert" role="alert" { p { (message) } }
        p { a href="/" { (l.t("error-back")) } }
    };
    let mut response = layout(app, ctx, officer, &title, body);
    *response.status_mut() = status;
    response
}

/// The page for a node error.
pub fn node_error(app: &App, officer: &Officer, e: &Error) -> Response {
    let status = match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Invalid(_) | Error::Conflict(_) => StatusCode::BAD_REQUEST,
        Error::ShuttingDown | Error::NotYet(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match e {
        Error::NotFound(_) => officer.lang().t("error-not-found-text"),
        other => other.to_string(),
    };
    error_page(app, &officer.ctx, Some(officer), status, &message)
}

/// The page for a refused CSRF token.
pub fn csrf_refused(app: &App, officer: &Officer) -> Response {
    error_page(
        app,
        &officer.ctx,
        Some(officer),
        StatusCode::FORBIDDEN,
        &officer.lang().t("error-csrf"),
    )
}

/// Any other path.
pub async fn not_found(axum::extract::State(app): axum::extract::State<App>, ctx: Ctx) -> Response {
    let text = ctx.lang.t("error-not-found-text");
    error_page(&app, &ctx, None, StatusCode::NOT_FOUND, &text)
}

/// A redirect after a POST (303, so the browser GETs the target).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Raw, already safe markup (for the few fixed entities the templates need).
pub fn raw(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}
