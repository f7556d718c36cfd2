//! Peers: who this node admits and why, their connection state, the rosters in force; pin and
//! unpin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};

use super::super::{csrf_field, csrf_refused, error_page, layout, see_other, Operator};
use super::{failure, outcome_of, refused};
use crate::web::App;

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
