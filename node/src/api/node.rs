//! The operator's handlers: status, peers, rosters, keys, groups and their members.

use super::*;

pub(super) async fn status(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<views::Status> {
    s.admin_only(&who, "status", "node").await?;
    Ok(Json(s.node.as_admin().status().await?))
}

pub(super) async fn peers(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<views::PeerView>> {
    s.admin_only(&who, "peer.list", "peers").await?;
    Ok(Json(s.node.as_admin().peers().await?))
}

pub(super) async fn add_peer(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::AddPeer>, JsonRejection>,
) -> ApiResult<views::PeerView> {
    let Json(body) = body?;
    s.admin_only(&who, "peer.add", &body.node_id).await?;
    let target = format!("{} {}", body.name, body.node_id);
    let result = async {
        let node: NodeId = body
            .node_id
            .parse()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        if body.replace {
            s.node
                .as_admin()
                .replace_peer(body.name, node, body.address)
                .await
        } else {
            s.node
                .as_admin()
                .add_peer(body.name, node, body.address)
                .await
        }
    }
    .await;
    Ok(Json(s.audited(&who, "peer.add", &target, result).await?))
}

pub(super) async fn rosters(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<crate::federation::RosterView>> {
    s.admin_only(&who, "roster.show", "").await?;
    let result = s.node.as_admin().rosters().await;
    Ok(Json(s.audited(&who, "roster.show", "", result).await?))
}

pub(super) async fn load_roster(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::LoadRoster>, JsonRejection>,
) -> ApiResult<views::RosterLoaded> {
    let Json(body) = body?;
    s.admin_only(&who, "roster.load", "").await?;
    let result = async {
        let bytes = hex::decode(body.roster.trim())
            .map_err(|_| Error::Invalid("the roster is not hex".into()))?;
        s.node.as_admin().load_roster(bytes).await
    }
    .await;
    let target = match &result {
        Ok(r) => format!("{} version {}", r.federation, r.version),
        Err(_) => String::new(),
    };
    Ok(Json(s.audited(&who, "roster.load", &target, result).await?))
}

pub(super) async fn rotate_keys(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::RotateKeys>, JsonRejection>,
) -> ApiResult<views::Rotated> {
    let Json(body) = body?;
    s.admin_only(&who, "key.rotate", "").await?;
    let result = s.node.as_admin().rotate_keys(body.exchange_only).await;
    let target = match &result {
        Ok(r) => format!("{} -> {}", r.old_node_id, r.node_id),
        Err(_) => String::new(),
    };
    Ok(Json(s.audited(&who, "key.rotate", &target, result).await?))
}

pub(super) async fn remove_peer(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(peer): Path<String>,
) -> ApiResult<views::Removed> {
    s.admin_only(&who, "peer.remove", &peer).await?;
    let target = peer.clone();
    let result = async { s.node.as_admin().remove_peer(peer).await }.await;
    s.audited(&who, "peer.remove", &target, result).await?;
    Ok(Json(views::Removed { removed: true }))
}

pub(super) async fn groups(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Vec<views::GroupView>> {
    let result = s.node.as_officer(who.clone()).groups().await;
    Ok(Json(s.audited(&who, "group.list", "all", result).await?))
}

pub(super) async fn group(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
) -> ApiResult<views::GroupView> {
    let target = group.clone();
    let result = async { s.node.as_officer(who.clone()).group(group).await }.await;
    Ok(Json(s.audited(&who, "group.show", &target, result).await?))
}

pub(super) async fn create_group(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<views::CreateGroup>, JsonRejection>,
) -> ApiResult<Created> {
    let Json(body) = body?;
    s.admin_only(&who, "group.create", &body.name).await?;
    let name = body.name.clone();
    let result = async { s.node.as_admin().create_group(name).await }.await;
    let id = s.audited(&who, "group.create", &body.name, result).await?;
    Ok(Json(Created { id: id.to_string() }))
}

pub(super) async fn add_member(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(group): Path<String>,
    body: Result<Json<views::AddMember>, JsonRejection>,
) -> ApiResult<views::GroupView> {
    let Json(body) = body?;
    let target = format!("{group} {}", body.peer);
    s.admin_only(&who, "group.add", &target).await?;
    let result = async {
        let role: Role = body
            .role
            .as_deref()
            .unwrap_or("member")
            .parse()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        s.node.as_admin().add_member(group, body.peer, role).await
    }
    .await;
    Ok(Json(s.audited(&who, "group.add", &target, result).await?))
}

pub(super) async fn remove_member(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((group, peer)): Path<(String, String)>,
) -> ApiResult<views::GroupView> {
    let target = format!("{group} {peer}");
    s.admin_only(&who, "group.remove", &target).await?;
    let result = async { s.node.as_admin().remove_member(group, peer).await }.await;
    Ok(Json(
        s.audited(&who, "group.remove", &target, result).await?,
    ))
}
