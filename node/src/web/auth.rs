//! Logging in and out, and the second factor at login (enrolment, the officer's own account
//! page and the language switch are in `account`).
//!
//! Login: officer name and password (argon2id, see [`crate::accounts`]); then, if the officer
//! has TOTP or the operator requires it, the code (or its set-up); then, after a one-time
//! password, a new password. Each stage is a session [`Stage`]; pages other than the stage's
//! own are closed until it is done. A new session id is made at login, so an id planted
//! before cannot be used after.
//!
//! Failed logins and failed TOTP codes of one officer name count in a row ([`Throttle`]):
//! each failure slows the next answer (250 ms, doubling up to 4 s), and after
//! `web.lockout_after` the name is locked for `web.lockout_minutes`, even for the right
//! password. Names without an account are counted the same, so answers do not tell which
//! names exist. Each login, failure, lock-out and logout is in the audit log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use super::pages::{csrf_field, layout, see_other, Ctx};
use super::session::{csrf_matches, Stage};
use super::App;

/// Officer names tracked for failures at most (the oldest entry makes room).
const MAX_TRACKED: usize = 10_000;

/// Failed logins per officer name.
#[derive(Debug)]
pub struct Throttle {
    after: u32,
    lock_for: Duration,
    failures: Mutex<HashMap<String, Failures>>,
    /// The last TOTP time step accepted per officer: a code is good once.
    used_steps: Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Throttle {
    /// Locks a name after `after` failures in a row, for `lock_for`.
    pub fn new(after: u32, lock_for: Duration) -> Throttle {
        Throttle {
            after,
            lock_for,
            failures: Mutex::new(HashMap::new()),
            used_steps: Mutex::new(HashMap::new()),
        }
    }

    fn key(name: &str) -> String {
        name.trim().to_lowercase()
    }

    /// Whether `name` is locked now.
    pub fn locked(&self, name: &str) -> bool {
        let now = Instant::now();
        self.failures
            .lock()
            .ok()
            .and_then(|f| f.get(&Self::key(name)).and_then(|e| e.locked_until))
            .is_some_and(|until| until > now)
    }

    /// Counts a failure; returns how long to wait before answering and whether the name is
    /// now locked.
    pub fn fail(&self, name: &str) -> (Duration, bool) {
        let now = Instant::now();
        let Ok(mut table) = self.failures.lock() else {
            return (Duration::from_secs(4), true);
        };
        if table.len() >= MAX_TRACKED {
            let oldest = table
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                table.remove(&k);
            }
        }
        let entry = table.entry(Self::key(name)).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if entry.locked_until.is_some_and(|u| u <= now) {
            // The lock ran out: count afresh.
            entry.count = 0;
            entry.locked_until = None;
        }
        entry.count += 1;
        entry.last = now;
        let locked = entry.count >= self.after;
        if locked {
            entry.locked_until = Some(now + self.lock_for);
        }
        let delay = Duration::from_millis(250u64 << (entry.count - 1).min(4));
        (delay, locked)
    }

    /// Clears the failures of `name` after a success.
    pub fn succeed(&self, name: &str) {
        if let Ok(mut table) = self.failures.lock() {
            table.remove(&Self::key(name));
        }
    }

    /// Checks a TOTP code against `secret` (base32) for `officer`, allowing one step of
    /// clock skew each way, and refuses a code (a time step) already used.
    pub fn totp_ok(&self, officer: &str, secret: &str, code: &str) -> bool {
        let Some(totp) = totp(secret, officer) else {
            return false;
        };
        let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let step = now.as_secs() / 30;
        let code = code.trim().replace(' ', "");
        let mut matched = None;
        for s in [step.saturating_sub(1), step, step + 1] {
            if bool::from(totp.generate(s * 30).as_bytes().ct_eq(code.as_bytes())) {
                matched = Some(s);
            }
        }
        let Some(s) = matched else { return false };
        let Ok(mut used) = self.used_steps.lock() else {
            return false;
        };
        if used.get(officer).is_some_and(|last| *last >= s) {
            return false;
        }
        if used.len() >= MAX_TRACKED {
            used.clear();
        }
        used.insert(officer.to_owned(), s);
        true
    }
}

/// The TOTP of a base32 secret (SHA-1, 6 digits, 30 s: what authenticator apps expect).
pub fn totp(secret: &str, officer: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("Liaison".to_owned()),
        officer.replace(':', "_"),
    )
    .ok()
}

/// A fresh TOTP secret (160 bits), base32.
pub fn new_totp_secret() -> String {
    let mut bytes = vec![0u8; 20];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    match Secret::Raw(bytes).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    }
}

pub(super) fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub(super) fn field_error(id: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p class="field-error" id=(format!("{id}-error")) { (m) }
        }
    }
}

// ----- login ----------------------------------------------------------------------------

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
}

fn login_page(
    app: &App,
    ctx: &Ctx,
    name: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let l = ctx.lang;
    let body = html! {
        h1 { (l.t("login-title")) }
        @if let Some(n) = notice { div class="notice" role="status" { (n) } }
        @if let Some(e) = error { div class="alert" role="alert" id="login-error" { (e) } }
        form class="panel" method="post" action="/login" {
            label for="name" { (l.t("login-name")) }
            input type="text" id="name" name="name" value=(name) autocomplete="username" required
                autofocus aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "login-error")];
            label for="password" { (l.t("login-password")) }
            input type="password" id="password" name="password" autocomplete="current-password" required
                aria-invalid=[error.map(|_| "true")];
            button type="submit" { (l.t("login-submit")) }
        }
        p { a href="/enrol" { (l.t("login-enrol-link")) } }
    };
    let mut html = layout(
        app,
        ctx,
        None,
        &l.t("login-title"),
        html! { div class="narrow-box" { (body) } },
    );
    if error.is_some() {
        *html.status_mut() = StatusCode::UNAUTHORIZED;
    }
    html
}

/// `GET /login`.
pub async fn login_form(
    State(app): State<App>,
    ctx: Ctx,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if ctx.session.as_ref().is_some_and(|s| s.stage == Stage::Full) {
        return see_other("/");
    }
    let notice = match q.get("done").map(String::as_str) {
        Some("enrolled") => Some(ctx.lang.t("login-enrolled")),
        Some("logout") => Some(ctx.lang.t("login-logged-out")),
        _ => None,
    };
    login_page(&app, &ctx, "", None, notice.as_deref())
}

/// `POST /login`.
pub async fn login(State(app): State<App>, ctx: Ctx, Form(form): Form<LoginForm>) -> Response {
    let l = ctx.lang;
    let name = form.name.trim().to_owned();
    let exists = app.accounts.account(&name).is_some();
    let actor = if exists {
        format!("officer:{name}")
    } else {
        "unknown".to_owned()
    };
    let target = if exists {
        "web".to_owned()
    } else {
        format!("web as {name:?}")
    };
    if app.throttle.locked(&name) {
        let _ = app
            .audit(
                &actor,
                "login",
                &target,
                "denied: locked after failed logins",
            )
            .await;
        return login_page(&app, &ctx, &name, Some(&l.t("login-locked")), None);
    }
    let ok = app
        .accounts
        .check_password(&name, &form.password)
        .await
        .unwrap_or(false);
    if !ok {
        let (delay, locked) = app.throttle.fail(&name);
        let outcome = if locked {
            "denied: wrong name or password; now locked"
        } else {
            "denied: wrong name or password"
        };
        let _ = app.audit(&actor, "login", &target, outcome).await;
        tokio::time::sleep(delay).await;
        let message = if locked {
            l.t("login-locked")
        } else {
            l.t("login-failed")
        };
        return login_page(&app, &ctx, &name, Some(&message), None);
    }
    app.throttle.succeed(&name);
    let Some(account) = app.accounts.account(&name) else {
        return login_page(&app, &ctx, &name, Some(&l.t("login-failed")), None);
    };
    let stage = if account.totp_secret.is_some() {
        Stage::Totp
    } else if app.config.require_totp {
        Stage::SetupTotp
    } else if account.must_change_password {
        Stage::ChangePassword
    } else {
        Stage::Full
    };
    if let Some(old) = &ctx.session_id {
        app.sessions.remove(old);
    }
    let id = app.sessions.create(&name, stage);
    let outcome = match stage {
        Stage::Full => "ok",
        Stage::Totp => "ok: password; TOTP code due",
        Stage::SetupTotp => "ok: password; TOTP set-up due",
        Stage::ChangePassword => "ok: one-time password; new password due",
    };
    let _ = app.audit(&actor, "login", "web", outcome).await;
    let to = match stage {
        Stage::Full => "/",
        Stage::Totp => "/login/totp",
        Stage::SetupTotp => "/account/totp",
        Stage::ChangePassword => "/account",
    };
    with_cookie(see_other(to), &app.sessions.cookie(&id))
}

/// The TOTP form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

fn totp_page(app: &App, ctx: &Ctx, csrf: &str, error: Option<&str>) -> Response {
    let l = ctx.lang;
    let body = html! {
        h1 { (l.t("totp-title")) }
        @if let Some(e) = error { div class="alert" role="alert" { (e) } }
        form class="panel" method="post" action="/login/totp" {
            (csrf_field(csrf))
            label for="code" { (l.t("totp-code")) }
            input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code"
                pattern="[0-9 ]{6,7}" required autofocus aria-describedby="code-hint"
                aria-invalid=[error.map(|_| "true")];
            p class="hint" id="code-hint" { (l.t("totp-hint")) }
            button type="submit" { (l.t("totp-submit")) }
        }
    };
    let mut r = layout(app, ctx, None, &l.t("totp-title"), body);
    if error.is_some() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    r
}

/// `GET /login/totp`.
pub async fn totp_form(State(app): State<App>, ctx: Ctx) -> Response {
    match &ctx.session {
        Some(s) if s.stage == Stage::Totp => {
            let csrf = s.csrf.clone();
            totp_page(&app, &ctx, &csrf, None)
        }
        _ => see_other("/login"),
    }
}

/// `POST /login/totp`.
pub async fn totp_submit(State(app): State<App>, ctx: Ctx, Form(form): Form<CodeForm>) -> Response {
    let (Some(s), Some(id)) = (&ctx.session, &ctx.session_id) else {
        return see_other("/login");
    };
    if s.stage != Stage::Totp || !csrf_matches(s, &form.csrf) {
        return see_other("/login");
    }
    let actor = format!("officer:{}", s.officer);
    let Some(account) = app.accounts.account(&s.officer) else {
        app.sessions.remove(id);
        return see_other("/login");
    };
    let secret = account.totp_secret.clone().unwrap_or_default();
    if app.throttle.locked(&s.officer) || !app.throttle.totp_ok(&s.officer, &secret, &form.code) {
        let (delay, locked) = app.throttle.fail(&s.officer);
        let _ = app
            .audit(
                &actor,
                "login.totp",
                "web",
                if locked {
                    "denied: wrong code; now locked"
                } else {
                    "denied: wrong code"
                },
            )
            .await;
        tokio::time::sleep(delay).await;
        if locked || app.throttle.locked(&s.officer) {
            app.sessions.remove(id);
            let l = ctx.lang;
            return login_page(&app, &ctx, &s.officer, Some(&l.t("login-locked")), None);
        }
        return totp_page(&app, &ctx, &s.csrf, Some(&ctx.lang.t("totp-failed")));
    }
    app.throttle.succeed(&s.officer);
    let next = if account.must_change_password {
        Stage::ChangePassword
    } else {
        Stage::Full
    };
    app.sessions.set_stage(id, next);
    let _ = app.audit(&actor, "login.totp", "web", "ok").await;
    see_other(if next == Stage::Full { "/" } else { "/account" })
}

/// A form with only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(State(app): State<App>, ctx: Ctx, Form(form): Form<CsrfOnly>) -> Response {
    if let (Some(s), Some(id)) = (&ctx.session, &ctx.session_id) {
        if !csrf_matches(s, &form.csrf) {
            return (StatusCode::FORBIDDEN, ctx.lang.t("error-csrf")).into_response();
        }
        app.sessions.remove(id);
        let _ = app
            .audit(&format!("officer:{}", s.officer), "logout", "web", "ok")
            .await;
    }
    with_cookie(
        see_other("/login?done=logout"),
        &app.sessions.clear_cookie(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_after_failures_and_reset_on_success() {
        let t = Throttle::new(3, Duration::from_secs(60));
        assert!(!t.locked("Ana"));
        let (d1, l1) = t.fail("ana");
        let (d2, l2) = t.fail("ANA ");
        assert!(!l1 && !l2 && d2 > d1, "back-off grows");
        let (_, l3) = t.fail("ana");
        assert!(l3 && t.locked("ana"));
        t.succeed("ana");
        assert!(!t.locked("ana"));
    }

    #[test]
    fn a_totp_code_is_good_once() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let secret = new_totp_secret();
        let code = totp(&secret, "ana")
            .expect("totp")
            .generate_current()
            .expect("clock");
        assert!(!t.totp_ok("ana", &secret, "000000x"));
        assert!(t.totp_ok("ana", &secret, &code));
        assert!(!t.totp_ok("ana", &secret, &code), "replayed code accepted");
    }
}
