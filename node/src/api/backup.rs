//! `POST /v1/backup`: the running node writes the data part of a backup (see
//! [`crate::backup`]) into a new directory the CLI names; the CLI adds the keys and the
//! manifest. Writes pause only while the store's index is exported.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::{Extension, Json};

use super::{ApiResult, AppState};
use crate::accounts::Principal;
use crate::backup::{BackupRequest, DataPart};
use crate::error::Error;

/// The audit action.
const ACTION: &str = "backup";

pub(super) async fn take(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> ApiResult<DataPart> {
    let Json(body) = body?;
    s.admin_only(&who, ACTION, &body.into).await?;
    let store = s.accounts.store().clone();
    let dir = s.dir.clone();
    let into = std::path::PathBuf::from(&body.into);
    let result =
        tokio::task::spawn_blocking(move || crate::backup::write_data(&store, &dir, &into))
            .await
            .unwrap_or(Err(Error::Internal("the backup task failed")));
    if let Err(e) = &result {
        tracing::error!(into = %body.into, error = %e, "backup failed");
    }
    Ok(Json(s.audited(&who, ACTION, &body.into, result).await?))
}
