//! Attachments opened from a message page: the file itself, and a thumbnail of a photo made
//! here. Each is served only to an officer who may read a message that names it (the node
//! checks, as for the API), decrypted on the blocking pool, and audited like any read.
//!
//! Photos of the kinds a browser shows safely (JPEG, PNG, WebP, GIF, BMP) open in the page;
//! every other file is sent as a download (`Content-Disposition: attachment`), never rendered
//! in this origin.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use liaison_protocol::attachment::AttachmentRef;

use super::{node_error, Officer};
use crate::attachments::header_file_name;
use crate::error::{Error, Result};
use crate::web::App;

/// Longest edge of the thumbnails a message page shows, in pixels.
pub const THUMBNAIL_EDGE: u32 = 240;

/// Media types shown in the page rather than downloaded.
const INLINE: [&str; 5] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
];

/// Whether a file of `media_type` is a photo the page shows (with a thumbnail).
pub fn is_photo(media_type: &str) -> bool {
    INLINE.contains(&media_type)
}

/// The plaintext of attachment `id` for the officer, and its reference.
async fn plain(app: &App, officer: &Officer, id: &str) -> Result<(Vec<u8>, AttachmentRef)> {
    let reference = app.facade.attachment(&officer.principal, id).await?;
    crate::attachments::open_plain(app.attachments.clone(), reference).await
}

/// Writes the audit record of a read; the page answers only if it is written.
async fn audited<T>(
    app: &App,
    officer: &Officer,
    action: &str,
    id: &str,
    result: Result<T>,
) -> std::result::Result<T, Response> {
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let written = app.audit(&officer.actor(), action, id, &outcome).await;
    match (result, written) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) | (Ok(_), Err(e)) => Err(node_error(app, officer, &e)),
    }
}

/// `GET /a/{id}`: the attachment, decrypted.
pub async fn open(State(app): State<App>, officer: Officer, Path(id): Path<String>) -> Response {
    let result = plain(&app, &officer, &id).await;
    let (bytes, reference) = match audited(&app, &officer, "attachment", &id, result).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let disposition = if is_photo(&reference.media_type) {
        format!("inline; filename=\"{}\"", header_file_name(&reference.name))
    } else {
        format!(
            "attachment; filename=\"{}\"",
            header_file_name(&reference.name)
        )
    };
    (
        [
            (header::CONTENT_TYPE, reference.media_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /a/{id}/thumbnail`: a small copy of a photo, made on this node.
pub async fn thumbnail(
    State(app): State<App>,
    officer: Officer,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let (bytes, reference) = plain(&app, &officer, &id).await?;
        tokio::task::spawn_blocking(move || {
            crate::attachments::media::thumbnail(&bytes, &reference.media_type, THUMBNAIL_EDGE)
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }
    .await;
    match audited(&app, &officer, "attachment.thumbnail", &id, result).await {
        Ok((bytes, media_type)) => ([(header::CONTENT_TYPE, media_type)], bytes).into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_photos_open_in_the_page_and_file_names_are_header_safe() {
        assert!(is_photo("image/jpeg"));
        assert!(!is_photo("image/svg+xml"), "SVG can carry script");
        assert!(!is_photo("text/html"));
        assert!(!is_photo("application/pdf"));
        assert_eq!(header_file_name("a \"b\"\\c\r\n.jpg"), "a__b__c__.jpg");
    }
}
