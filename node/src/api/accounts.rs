//! Officer accounts and grants, the audit log and its checks, and quarantine.

use super::*;

impl AppState {
    async fn resolve_grant(&self, spec: &str) -> Result<(GroupId, Access), Error> {
        let (group, access) = match spec.rsplit_once(':') {
            Some((g, a)) if a == "read" || a == "post" => (g, a.parse()?),
            _ => (spec, Access::Read),
        };
        let g = group.to_owned();
        let view = match self.node.as_admin().group(g).await {
            Ok(view) => view,
            // `ops:write` names no group; say what is wrong with it rather than "unknown group".
            Err(Error::NotFound(_)) if spec.rsplit_once(':').is_some() && group == spec => {
                let (_, a) = spec.rsplit_once(':').unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "grant {spec:?}: access {a:?} is neither read nor post \
                     (give GROUP:read or GROUP:post)"
                )));
            }
            Err(e) => return Err(e),
        };
        let id = view
            .id
            .parse::<GroupId>()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        Ok((id, access))
    }
}

pub(super) async fn users(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<UserView>> {
    s.admin_only(&who, "user.list", "users").await?;
    let list = s.accounts.list().into_iter().map(UserView::from).collect();
    Ok(Json(s.audited(&who, "user.list", "users", Ok(list)).await?))
}

pub(super) async fn add_user(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<AddUser>, JsonRejection>,
) -> ApiResult<NewUser> {
    let Json(body) = body?;
    s.admin_only(&who, "user.add", &body.name).await?;
    let target = format!(
        "{} {}{}",
        body.name,
        body.grants.join(" "),
        body.login
            .as_deref()
            .map(|l| format!(" login:{l}"))
            .unwrap_or_default()
    );
    let result = async {
        let mut grants = BTreeMap::new();
        for spec in &body.grants {
            let (g, a) = s.resolve_grant(spec).await?;
            grants.insert(g, a);
        }
        let login = body.login.as_deref().unwrap_or("");
        if !matches!(login, "" | "enrol" | "password") {
            return Err(Error::Invalid(format!(
                "login {login:?} is neither enrol nor password"
            )));
        }
        let token = s.accounts.add(&body.name, grants).await?;
        if body.operator {
            s.accounts
                .update(&body.name, |a| {
                    a.operator = true;
                    Ok(())
                })
                .await?;
        }
        let (mut enrolment_code, mut password) = (None, None);
        match login {
            "enrol" => {
                enrolment_code = Some(s.accounts.issue_enrolment(&body.name).await?.to_string())
            }
            "password" => password = Some(s.accounts.issue_password(&body.name).await?.to_string()),
            _ => {}
        }
        let user = s
            .accounts
            .list()
            .into_iter()
            .find(|a| a.name == body.name)
            .map(UserView::from)
            .ok_or_else(|| Error::Invalid("account vanished".into()))?;
        Ok(NewUser {
            user,
            token: token.to_string(),
            enrolment_code,
            password,
        })
    }
    .await;
    Ok(Json(s.audited(&who, "user.add", &target, result).await?))
}

pub(super) async fn remove_user(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<views::Removed> {
    s.admin_only(&who, "user.remove", &name).await?;
    let result = s.accounts.remove(&name).await;
    s.audited(&who, "user.remove", &name, result).await?;
    Ok(Json(views::Removed { removed: true }))
}

pub(super) async fn grant(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<GrantBody>, JsonRejection>,
) -> ApiResult<UserView> {
    let Json(body) = body?;
    let target = format!("{name} {}", body.grant);
    s.admin_only(&who, "user.grant", &target).await?;
    let result = async {
        let (g, a) = s.resolve_grant(&body.grant).await?;
        s.accounts
            .set_grant(&name, g, Some(a))
            .await
            .map(UserView::from)
    }
    .await;
    Ok(Json(s.audited(&who, "user.grant", &target, result).await?))
}

pub(super) async fn revoke(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((name, group)): Path<(String, String)>,
) -> ApiResult<UserView> {
    let target = format!("{name} {group}");
    s.admin_only(&who, "user.revoke", &target).await?;
    let result = async {
        let (g, _) = s.resolve_grant(&group).await?;
        s.accounts
            .set_grant(&name, g, None)
            .await
            .map(UserView::from)
    }
    .await;
    Ok(Json(s.audited(&who, "user.revoke", &target, result).await?))
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    since_ms: Option<u64>,
}

/// `GET /v1/audit`: a JSON array, one record per line, streamed from the store a page at a
/// time (see [`crate::audit::read::json_array`]), so that neither side holds the whole log.
pub(super) async fn audit_log(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    s.admin_only(&who, "audit.read", "audit").await?;
    // The reading itself is recorded first, so that it appears in what is returned.
    s.audited(&who, "audit.read", "audit", Ok(())).await?;
    let records = crate::audit::read::json_array(s.audit.store().clone(), q.since_ms.unwrap_or(0));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(records),
    )
        .into_response())
}

pub(super) async fn quarantined(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<views::QuarantineView>> {
    s.admin_only(&who, "quarantine.list", "quarantine").await?;
    let result = s.node.as_admin().quarantined().await;
    Ok(Json(
        s.audited(&who, "quarantine.list", "quarantine", result)
            .await?,
    ))
}

pub(super) async fn quarantine(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::QuarantineRequest>, JsonRejection>,
) -> ApiResult<views::QuarantineView> {
    let Json(body) = body?;
    s.admin_only(&who, "quarantine.add", &body.id).await?;
    let target = body.id.clone();
    let result = async {
        let id = message_id(&body.id)?;
        let reason = body.reason;
        s.node.as_admin().quarantine(id, reason).await
    }
    .await;
    Ok(Json(
        s.audited(&who, "quarantine.add", &target, result).await?,
    ))
}

pub(super) async fn release(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<views::QuarantineView> {
    s.admin_only(&who, "quarantine.release", &id).await?;
    let target = id.clone();
    let result = async {
        let id = message_id(&id)?;
        s.node.as_admin().release(id).await
    }
    .await;
    Ok(Json(
        s.audited(&who, "quarantine.release", &target, result)
            .await?,
    ))
}

pub(super) async fn audit_verify(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Verification> {
    s.admin_only(&who, "audit.verify", "audit").await?;
    let store = s.audit.store().clone();
    let result = tokio::task::spawn_blocking(move || crate::audit::verify(&store))
        .await
        .map_err(|_| Error::ShuttingDown)
        .and_then(|r| r);
    Ok(Json(
        s.audited(&who, "audit.verify", "audit", result).await?,
    ))
}

/// `POST /v1/audit/checkpoint`: the chain's head, signed now (its own record included).
pub(super) async fn audit_checkpoint(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<crate::audit::checkpoint::Checkpoint> {
    s.admin_only(&who, "audit.checkpoint", "audit").await?;
    // Recorded and durable first, so that the checkpoint covers its own request.
    s.audited(&who, "audit.checkpoint", "audit", Ok(())).await?;
    let dir = s.dir.clone();
    let key = tokio::task::spawn_blocking(move || dir.identity_key())
        .await
        .map_err(|_| Error::ShuttingDown)??;
    let checkpoint = crate::audit::checkpoint::take(&s.audit, &key)
        .await
        .ok_or_else(|| Error::NotYet("the audit log is empty".into()))?;
    Ok(Json(checkpoint))
}

/// `POST /v1/audit/verify` with a checkpoint this node signed: the chain, and that the record
/// the checkpoint names still has the signed hash.
pub(super) async fn audit_verify_checkpoint(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<crate::audit::checkpoint::Checkpoint>, JsonRejection>,
) -> ApiResult<Verification> {
    let Json(checkpoint) = body?;
    s.admin_only(&who, "audit.verify", "audit").await?;
    let target = format!("audit checkpoint {}", checkpoint.seq);
    let dir = s.dir.clone();
    let store = s.audit.store().clone();
    let result = tokio::task::spawn_blocking(move || {
        let anchor = checkpoint.check(&dir.node_id()?)?;
        crate::audit::read::verify(&store, Some(anchor))
    })
    .await
    .map_err(|_| Error::ShuttingDown)
    .and_then(|r| r);
    Ok(Json(
        s.audited(&who, "audit.verify", &target, result).await?,
    ))
}
