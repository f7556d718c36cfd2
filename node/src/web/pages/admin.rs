//! The operator pages: officer accounts and their grants, peers, groups and members, and the
//! audit log with its verification — what `liaison user|peer|group|audit` do, for operators
//! (officers with the operator role). Node changes run as the node's admin; each is audited
//! under `operator:NAME`.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::Operator;
use crate::error::Error;
use crate::views::GroupView;

mod accounts;
mod audit;
mod groups;
mod peers;

pub use accounts::{accounts, add_account, change_account};
pub use audit::audit;
pub use groups::{change_member, create_group, groups};
pub use peers::{add_peer, peers, remove_peer};

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
