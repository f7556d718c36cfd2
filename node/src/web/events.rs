//! Live updates: `GET /events` streams, as server-sent events, each new message the officer
//! may see, ready to insert into the page (a timeline row, a thread item) by the script.
//!
//! Each message is checked against the officer's grants as they are when it arrives, and the
//! stream ends when the session does (logout, timeout, account removed). A reader that falls
//! behind the node's bounded feed skips what it missed (the next page load shows it).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::broadcast;

use super::pages::groups::row;
use super::pages::message::thread_item;
use super::pages::{node_error, Officer};
use super::App;

#[derive(Serialize)]
struct Live {
    group: String,
    id: String,
    reply_to: Option<String>,
    own: bool,
    row: String,
    thread_item: String,
    announce: String,
}

/// `GET /events`.
pub async fn stream(State(app): State<App>, officer: Officer) -> Response {
    let feed = match app.facade.subscribe(&officer.principal) {
        Ok(f) => f,
        Err(e) => return node_error(&app, &officer, &e),
    };
    let _ = app.audit(&officer.actor(), "watch", "all", "ok").await;
    let state = (app, officer, feed);
    let stream = futures_util::stream::unfold(state, |(app, officer, mut feed)| async move {
        loop {
            let fresh = match feed.recv().await {
                Ok(fresh) => fresh,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            // The session must still be live, and the grants are read afresh.
            let alive = officer
                .ctx
                .session_id
                .as_deref()
                .and_then(|s| app.sessions.get(s))
                .is_some();
            let principal = app.accounts.principal(officer.name()).filter(|_| alive)?;
            // Opened once by the node for every stream (see `crate::node::Fresh`).
            let Some(m) = fresh.view_for(&principal, true) else {
                continue;
            };
            let l = officer.lang();
            let live = Live {
                group: m.group_id.clone(),
                id: m.id.clone(),
                reply_to: m.reply_to.clone(),
                own: m.officer == officer.name() && m.author_name == app.node_name,
                row: row(l, &m).into_string(),
                thread_item: thread_item(l, &m, 1, false, None).into_string(),
                announce: l.t_args(
                    "live-new-message",
                    &[("group", &m.group_name), ("subject", &m.subject)],
                ),
            };
            let Ok(data) = serde_json::to_string(&live) else {
                continue;
            };
            let event = Event::default().event("message").data(data);
            return Some((Ok::<_, Infallible>(event), (app, officer, feed)));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
