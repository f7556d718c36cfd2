//! Messages and records: posting, listing in pages, reading, receipts, threads, statistics,
//! the record kinds' schemas, exports, and the live event stream.

use super::*;

pub(super) async fn post_message(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Json<views::PostMessage>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    let target = group.clone();
    let result = async {
        let post = posts::message_post(&who, body)?;
        s.post_one(&who, group, post).await
    }
    .await;
    let id = s.audited_post(&who, &target, result).await?;
    Ok(Json(Created { id: id.to_string() }))
}

pub(super) async fn post_record(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    let target = group.clone();
    let result = async {
        let post = posts::record_post(&who, body)?;
        s.post_one(&who, group, post).await
    }
    .await;
    let id = s.audited_post(&who, &target, result).await?;
    Ok(Json(Created { id: id.to_string() }))
}

pub(super) async fn stats(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
) -> ApiResult<views::StatsView> {
    let target = group.clone();
    let result = s.node.as_officer(who.clone()).stats(group).await;
    Ok(Json(s.audited(&who, "stats", &target, result).await?))
}

pub(super) async fn thread(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<views::ThreadView> {
    let target = id.clone();
    let result = async {
        let id = find_message(&s, &who, &id).await?;
        s.node.as_officer(who.clone()).thread(id).await
    }
    .await;
    Ok(Json(s.audited(&who, "thread", &target, result).await?))
}

pub(super) async fn schemas() -> Json<Vec<views::SchemaInfo>> {
    Json(
        RecordKind::ALL
            .into_iter()
            .map(|k| views::SchemaInfo {
                kind: k.as_str().to_owned(),
                title: k.title().to_owned(),
                code: k.code(),
                version: k.schema(),
                href: format!("/v1/schemas/{k}"),
            })
            .collect(),
    )
}

pub(super) fn record_kind(kind: &str) -> Result<RecordKind, ApiError> {
    kind.parse().map_err(|e: liaison_protocol::ParseError| {
        ApiError::new(StatusCode::NOT_FOUND, e.to_string())
    })
}

pub(super) async fn schema(Path(kind): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(record::json_schema(record_kind(&kind)?)))
}

pub(super) async fn schema_template(Path(kind): Path<String>) -> Result<Response, ApiError> {
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        record::template(record_kind(&kind)?),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    #[serde(default)]
    include_nominal: bool,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
    /// With `format=csv`: the kind of record.
    #[serde(default)]
    kind: Option<String>,
}

pub(super) async fn export(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let csv_kind = match (q.format.as_deref(), q.kind.as_deref()) {
        (None | Some("json"), _) => None,
        (Some("csv"), Some(kind)) => Some(
            kind.parse::<RecordKind>()
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
        (Some("csv"), None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "format=csv needs kind=KIND (one CSV per kind)".into(),
            ))
        }
        (Some(other), _) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?}: json or csv"),
            ))
        }
    };
    let include_nominal = q.include_nominal;
    let target = format!(
        "{group}{}{}",
        if include_nominal {
            " with nominal data"
        } else {
            ""
        },
        csv_kind.map(|k| format!(" as {k} CSV")).unwrap_or_default()
    );
    let scoped = s.node.as_officer(who.clone());
    let Some(kind) = csv_kind else {
        // JSON: sent one message at a time, as `ExportView` serializes.
        let result = scoped.export_stream(group, include_nominal).await;
        let outcome_target = match &result {
            Ok(e) => exported_target(&target, e.exported, &e.refused),
            Err(_) => target,
        };
        let export = s.audited(&who, "export", &outcome_target, result).await?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            axum::body::Body::from_stream(export_body(export)),
        )
            .into_response());
    };
    // CSV: its header names every field met in the export, so the planned export is read
    // twice, a message at a time: once for the columns, once for the rows.
    let result = async {
        let mut first = scoped.export_stream(group, include_nominal).await?;
        let mut columns = crate::records::CsvColumns::default();
        while let Some(view) = first.next().await {
            columns.add(kind.as_str(), &view?);
        }
        Ok((columns.header(), first.again()))
    }
    .await;
    let outcome_target = match &result {
        Ok((_, rows)) => exported_target(&target, rows.exported, &rows.refused),
        Err(_) => target,
    };
    let (header, rows) = s.audited(&who, "export", &outcome_target, result).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        axum::body::Body::from_stream(csv_body(kind, header, rows)),
    )
        .into_response())
}

/// The CSV of one kind of record, sent a line at a time: `header`, then a row for each message
/// of `rows` of that kind. A message that fails to open ends the body early.
fn csv_body(
    kind: RecordKind,
    header: Vec<String>,
    rows: crate::node::ExportStream,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let csv_err = |e: csv::Error| std::io::Error::other(format!("CSV: {e}"));
    let head = crate::records::csv_line(&header)
        .map(Bytes::from)
        .map_err(csv_err);
    let lines = futures_util::stream::unfold(
        (rows, header, false),
        move |(mut rows, header, done)| async move {
            if done {
                return None;
            }
            loop {
                match rows.next().await? {
                    Ok(view) => {
                        let Some(cells) = crate::records::csv_cells(kind.as_str(), &view) else {
                            continue;
                        };
                        let line =
                            crate::records::csv_line(&crate::records::row_of(&header, &cells))
                                .map(Bytes::from)
                                .map_err(csv_err);
                        return Some((line, (rows, header, false)));
                    }
                    Err(e) => {
                        let e = std::io::Error::other(e.to_string());
                        return Some((Err(e), (rows, header, true)));
                    }
                }
            }
        },
    );
    futures_util::StreamExt::chain(futures_util::stream::once(async move { head }), lines)
}

/// What the audit record of an export names: the counts and the ids refused.
pub(super) fn exported_target(target: &str, exported: usize, refused: &[views::Refused]) -> String {
    format!(
        "{target} ({exported} exported, {} refused: {})",
        refused.len(),
        refused
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The JSON of an [`views::ExportView`], byte for byte as `serde_json` writes it, sent piece
/// by piece: the head, each exported message as it is opened, the refused ones last. A
/// message that fails to open ends the body early (the client sees a truncated answer).
pub(super) fn export_body(
    export: crate::node::ExportStream,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    enum At {
        Head,
        Items { first: bool },
        Done,
    }
    let json_err = |e: serde_json::Error| std::io::Error::other(e.to_string());
    futures_util::stream::unfold((export, At::Head), move |(mut export, at)| async move {
        match at {
            At::Head => {
                let head = serde_json::to_string(&export.group_id)
                    .map(|g| Bytes::from(format!("{{\"group_id\":{g},\"exported\":[")))
                    .map_err(json_err);
                Some((head, (export, At::Items { first: true })))
            }
            At::Items { first } => match export.next().await {
                Some(Ok(view)) => {
                    let item = serde_json::to_vec(&view).map_err(json_err).map(|v| {
                        let mut out = Vec::with_capacity(v.len() + 1);
                        if !first {
                            out.push(b',');
                        }
                        out.extend_from_slice(&v);
                        Bytes::from(out)
                    });
                    Some((item, (export, At::Items { first: false })))
                }
                Some(Err(e)) => Some((
                    Err(std::io::Error::other(e.to_string())),
                    (export, At::Done),
                )),
                None => {
                    let tail = serde_json::to_string(&export.refused)
                        .map(|r| Bytes::from(format!("],\"refused\":{r}}}")))
                        .map_err(json_err);
                    Some((tail, (export, At::Done)))
                }
            },
            At::Done => None,
        }
    })
}

#[derive(Deserialize)]
pub(super) struct GroupQuery {
    group: Option<String>,
}

/// `GET /v1/messages` and `GET /v1/groups/{group}/messages` options.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    /// Group id or name (`/v1/messages` only): that group alone.
    group: Option<String>,
    /// Messages per page: 1 to 1000, 100 by default.
    limit: Option<usize>,
    /// The `next` cursor of the previous page.
    before: Option<String>,
}

pub(super) async fn inbox(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PageQuery>,
) -> ApiResult<views::MessagePage> {
    list(s, who, q).await
}

pub(super) async fn group_messages(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    Query(mut q): Query<PageQuery>,
) -> ApiResult<views::MessagePage> {
    q.group = Some(group);
    list(s, who, q).await
}

/// A page of messages, audited as a listing of its group (or of all groups).
pub(super) async fn list(
    s: AppState,
    who: Principal,
    q: PageQuery,
) -> ApiResult<views::MessagePage> {
    let target = q.group.clone().unwrap_or_else(|| "all".into());
    let result = s
        .node
        .as_officer(who.clone())
        .inbox(crate::node::PageRequest {
            group: q.group,
            limit: q.limit,
            before: q.before,
        })
        .await;
    Ok(Json(s.audited(&who, "list", &target, result).await?))
}

pub(super) fn message_id(text: &str) -> Result<MessageId, Error> {
    text.parse().map_err(|e| Error::Invalid(format!("{e}")))
}

/// A message named by its whole id, or by an unambiguous prefix of at least 8 hex digits
/// among the messages `who` may read (as `inbox` prints them).
pub(super) async fn find_message(
    s: &AppState,
    who: &Principal,
    text: &str,
) -> Result<MessageId, Error> {
    if text.len() == 64 {
        return message_id(text);
    }
    let prefix = text.to_owned();
    s.node.as_officer(who.clone()).resolve_id(prefix).await
}

pub(super) async fn read(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<views::MessageView> {
    let target = id.clone();
    let result = async {
        let id = find_message(&s, &who, &id).await?;
        s.node.as_officer(who.clone()).read(id).await
    }
    .await;
    Ok(Json(s.audited(&who, "read", &target, result).await?))
}

pub(super) async fn receipts(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Vec<views::ReceiptView>> {
    let target = id.clone();
    let result = async {
        let id = find_message(&s, &who, &id).await?;
        s.node.as_officer(who.clone()).receipts(id).await
    }
    .await;
    Ok(Json(s.audited(&who, "receipts", &target, result).await?))
}

/// How often an open event stream re-reads its officer's access when no message comes.
const ACCESS_RECHECK: Duration = Duration::from_secs(2);

/// `who` as the accounts say now, or why the stream must end: the account is gone, or the
/// grant of the one group watched is.
pub(super) fn access_now(
    s: &AppState,
    who: &Principal,
    group: Option<&GroupId>,
) -> Result<Principal, String> {
    let now = match who {
        Principal::Admin => Principal::Admin,
        Principal::Officer { name, .. } => s
            .accounts
            .principal(name)
            .ok_or_else(|| format!("the account {name} was removed"))?,
    };
    if let Some(g) = group {
        if now.access(g).is_none() {
            return Err(format!("access to group {g} was revoked"));
        }
    }
    Ok(now)
}

/// Server-sent events: one `message` event (a message view without body) per new message the
/// caller may see, optionally only of one group.
pub(super) async fn events(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<GroupQuery>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let target = q.group.clone().unwrap_or_else(|| "all".into());
    let result = async {
        let group = match &q.group {
            Some(g) => {
                let g = g.clone();
                let view = s.node.as_officer(who.clone()).group(g).await?;
                Some(
                    view.id
                        .parse::<GroupId>()
                        .map_err(|e| Error::Invalid(format!("group {}: {e}", view.id)))?,
                )
            }
            None => None,
        };
        let feed = s.node.as_officer(who.clone()).subscribe()?;
        Ok::<_, Error>((group, feed))
    }
    .await;
    let (group, feed) = s.audited(&who, "watch", &target, result).await?;
    // The feed is taken away once an `end` event is sent: the stream stops after it.
    let state = (s, who, group, Some(feed));
    let stream = futures_util::stream::unfold(state, |(s, who, group, feed)| async move {
        let mut feed = feed?;
        let mut recheck =
            tokio::time::interval_at(tokio::time::Instant::now() + ACCESS_RECHECK, ACCESS_RECHECK);
        loop {
            // Access is read afresh at each message and every ACCESS_RECHECK: a deleted
            // account or a revoked grant ends the stream with an `end` event saying why.
            if let Err(why) = access_now(&s, &who, group.as_ref()) {
                let event = SseEvent::default().event("end").data(why);
                return Some((Ok(event), (s, who, group, None)));
            }
            let fresh = tokio::select! {
                received = feed.recv() => match received {
                    Ok(fresh) => fresh,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let event = SseEvent::default().event("lagged").data(format!(
                            "{n} messages were skipped; list the inbox to catch up"
                        ));
                        return Some((Ok(event), (s, who, group, Some(feed))));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = recheck.tick() => continue,
            };
            let now = match access_now(&s, &who, group.as_ref()) {
                Ok(p) => p,
                Err(why) => {
                    let event = SseEvent::default().event("end").data(why);
                    return Some((Ok(event), (s, who, group, None)));
                }
            };
            // Opened once by the node for every stream (see `crate::node::Fresh`).
            let Some(mut view) = fresh.view_for(&now, true) else {
                continue;
            };
            if group
                .as_ref()
                .is_some_and(|g| g.to_string() != view.group_id)
            {
                continue;
            }
            view.body = None;
            let Ok(data) = serde_json::to_string(&view) else {
                continue;
            };
            let event = SseEvent::default().event("message").data(data);
            return Some((Ok(event), (s, who, group, Some(feed))));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
