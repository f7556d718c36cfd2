//! The audit log, filtered and paged, with the result of checking its chain.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::super::{error_page, layout, time, Operator};
use crate::error::Error;
use crate::web::App;

/// Audit records per page.
const AUDIT_PAGE: usize = 50;

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
