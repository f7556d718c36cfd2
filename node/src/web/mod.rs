//! The officers' web workspace, served by the node on a listener of its own.
//!
//! ```text
//!  browser ──HTTP(S)──▶ security headers ─▶ same-origin check (non-GET) ─▶ page handler
//!                                                                            │
//!            session table (session.rs) ◀── Ctx / Officer extractors ◀──────┤
//!            accounts, audit log        ◀────────────────────────────────────┤
//!            the node                   ◀── Facade (facade.rs) ◀─────────────┘
//! ```
//!
//! - Served over plain HTTP on loopback only; on any other address, or whenever the operator
//!   gave a certificate, over HTTPS ([`tls`]).
//! - Every page is rendered on the server by `maud` templates (checked when the crate is
//!   compiled, escaping every value); one embedded script adds live updates. The
//!   Content-Security-Policy allows scripts, styles, images and connections from this origin
//!   only and no inline script or style; framing is denied; nothing is cached.
//! - Every state change is a POST that must come from this origin (`Sec-Fetch-Site` or
//!   `Origin`) and, once logged in, carry the session's CSRF token.
//! - Grants are read from the officer's account at every request: a revoked group is gone at
//!   the next page load, and a live stream re-checks each message against them.
//! - Logins, failures, lock-outs, logouts, enrolments and every read, post and operator
//!   action are written to the audit log, as the API writes them.

mod account;
pub mod assets;
pub mod auth;
pub mod events;
pub mod facade;
pub mod i18n;
pub mod pages;
pub mod record_form;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::accounts::Accounts;
use crate::attachments::Attachments;
use crate::audit::AuditLog;
use crate::config::WebConfig;
use crate::error::{Error, Result};
use crate::node::NodeHandle;

/// The Content-Security-Policy of every answer.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest request body, in bytes, of a form without files.
pub const MAX_FORM: usize = 256 * 1024;

/// Most files one compose form may carry (each at most `[attachments] max_mb`).
pub const MAX_FILES: usize = 8;

/// A bound, not yet serving, web listener.
#[derive(Debug)]
pub struct Listener {
    listener: std::net::TcpListener,
    tls: Option<tls::Tls>,
    /// The address bound.
    pub addr: SocketAddr,
}

impl Listener {
    /// The URL officers open (`http://127.0.0.1:7443/`, `https://…`).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// The SHA-256 fingerprint of a self-signed certificate, for officers to compare.
    pub fn self_signed_fingerprint(&self) -> Option<&str> {
        self.tls
            .as_ref()
            .filter(|t| t.self_signed)
            .map(|t| t.fingerprint.as_str())
    }
}

/// Binds the workspace's address; loads or makes its certificate when it is served over HTTPS.
pub fn bind(config: &WebConfig, tls_dir: &std::path::Path, node_name: &str) -> Result<Listener> {
    let tls = if config.https() {
        Some(tls::load(config, tls_dir, node_name)?)
    } else {
        None
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        Error::io(
            format!("cannot bind the web workspace on {}", config.listen),
            e,
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("cannot set up the web listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the web address", e))?;
    Ok(Listener {
        listener,
        tls,
        addr,
    })
}

/// What the workspace needs from the node.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The node.
    pub node: NodeHandle,
    /// Officer accounts.
    pub accounts: Arc<Accounts>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// The node's name.
    pub node_name: String,
    /// The `[web]` configuration.
    pub config: WebConfig,
    /// Attachments: photos uploaded with a compose form, and opened from a message page.
    pub attachments: Arc<Attachments>,
}

/// The shared state of the handlers.
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

/// See [`App`].
#[derive(Debug)]
pub struct Inner {
    /// The node.
    pub facade: facade::Facade,
    /// Accounts.
    pub accounts: Arc<Accounts>,
    /// Audit log.
    pub audit: Arc<AuditLog>,
    /// Sessions.
    pub sessions: session::Sessions,
    /// Failed logins.
    pub throttle: auth::Throttle,
    /// Configuration.
    pub config: WebConfig,
    /// Served over HTTPS.
    pub https: bool,
    /// The node's name.
    pub node_name: String,
    /// Attachments.
    pub attachments: Arc<Attachments>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// The state over `parts`.
    pub fn new(parts: Parts, https: bool) -> App {
        let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
        App(Arc::new(Inner {
            facade: facade::Facade::new(parts.node),
            accounts: parts.accounts,
            audit: parts.audit,
            sessions: session::Sessions::new(
                minutes(parts.config.session_idle_minutes),
                minutes(parts.config.session_absolute_minutes),
                https,
            ),
            throttle: auth::Throttle::new(
                parts.config.lockout_after,
                minutes(parts.config.lockout_minutes),
            ),
            https,
            config: parts.config,
            node_name: parts.node_name,
            attachments: parts.attachments,
        }))
    }

    /// Appends an audit record; a failure to write it is logged (the page answers anyway
    /// only for reads; changes check the result themselves).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<()> {
        let result = self.audit.append(actor, action, target, outcome).await;
        if let Err(e) = &result {
            warn!(error = %e, action, "cannot write the audit log");
        }
        result
    }
}

/// Serves the workspace until `shutdown` is cancelled.
pub async fn serve(listener: Listener, parts: Parts, shutdown: CancellationToken) {
    let https = listener.tls.is_some();
    let app = router(App::new(parts, https));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    let service = app.into_make_service();
    let result = match listener.tls {
        Some(tls) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.config);
            axum_server::tls_rustls::from_tcp_rustls(listener.listener, config)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener.listener)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    if let Err(e) = result {
        warn!(error = %e, "web workspace failed");
    }
    info!("web workspace stopped");
}

/// The workspace's routes.
pub fn router(app: App) -> Router {
    // A compose form carries its files in the same request: room for as many as it may name.
    let max_file = usize::try_from(app.attachments.options().max_bytes).unwrap_or(usize::MAX);
    let compose_limit = max_file.saturating_mul(MAX_FILES).saturating_add(MAX_FORM);
    Router::new()
        .route("/", get(pages::groups::index))
        .route("/g/{group}", get(pages::groups::timeline))
        .route(
            "/g/{group}/compose",
            get(pages::compose::form)
                .post(pages::compose::submit)
                .layer(axum::extract::DefaultBodyLimit::max(compose_limit)),
        )
        .route("/m/{id}", get(pages::message::show))
        .route("/a/{id}", get(pages::attachment::open))
        .route("/a/{id}/thumbnail", get(pages::attachment::thumbnail))
        .route("/events", get(events::stream))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/login/totp", get(auth::totp_form).post(auth::totp_submit))
        .route("/logout", post(auth::logout))
        .route("/enrol", get(account::enrol_form).post(account::enrol))
        .route("/account", get(account::account))
        .route("/account/password", post(account::change_password))
        .route(
            "/account/totp",
            get(account::totp_setup).post(account::totp_confirm),
        )
        .route("/lang", post(account::set_lang))
        .route(
            "/admin/accounts",
            get(pages::admin::accounts).post(pages::admin::add_account),
        )
        .route("/admin/accounts/{name}", post(pages::admin::change_account))
        .route(
            "/admin/peers",
            get(pages::admin::peers).post(pages::admin::add_peer),
        )
        .route(
            "/admin/peers/{peer}/remove",
            post(pages::admin::remove_peer),
        )
        .route(
            "/admin/groups",
            get(pages::admin::groups).post(pages::admin::create_group),
        )
        .route(
            "/admin/groups/{group}/members",
            post(pages::admin::change_member),
        )
        .route("/admin/audit", get(pages::admin::audit))
        .route("/static/{name}", get(assets::serve))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), same_origin))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            security_headers,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .with_state(app)
}

/// Headers of every answer: CSP, no framing, no sniffing, no referrer, no caching (a page
/// must never outlive a revoked grant in a cache), HSTS over HTTPS.
async fn security_headers(State(app): State<App>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        h,
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if app.https {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// Refuses a state change (any method but GET and HEAD) that does not come from a page of
/// this origin: the browser's `Sec-Fetch-Site` must say `same-origin`, or, from a browser
/// without it, `Origin` must be this origin. The CSRF token is checked by each handler too.
async fn same_origin(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let allowed = match (text("sec-fetch-site"), text("origin"), text("host")) {
        (Some(site), _, _) => site == "same-origin",
        (None, Some(origin), Some(host)) => {
            let scheme = if app.https { "https" } else { "http" };
            origin == format!("{scheme}://{host}")
        }
        _ => false,
    };
    if !allowed {
        warn!(path = %req.uri().path(), "cross-origin form submission refused");
        let _ = app
            .audit(
                "unknown",
                "web.csrf",
                req.uri().path(),
                "denied: not from this origin",
            )
            .await;
        return (
            StatusCode::FORBIDDEN,
            "refused: this form was not sent from this site",
        )
            .into_response();
    }
    next.run(req).await
}
