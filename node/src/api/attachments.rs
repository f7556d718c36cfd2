//! Attachments: uploads, downloads (whole or a range) and thumbnails.

use super::*;

pub(super) fn attachment_ids(texts: &[String]) -> Result<Vec<AttachmentId>, Error> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e| Error::Invalid(format!("attachment {t}: {e}")))
        })
        .collect()
}

/// `POST /v1/attachments` options.
#[derive(Debug, Deserialize)]
pub(super) struct UploadQuery {
    /// The file name (no path).
    name: String,
    /// Keep the image metadata (GPS position, serial numbers): off unless asked.
    #[serde(default)]
    keep_metadata: bool,
}

pub(super) async fn upload(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let result = async {
        let Query(query) = query.map_err(|e| {
            Error::Invalid(format!(
                "{}: give the file name as ?name=photo.jpg",
                e.body_text()
            ))
        })?;
        let bytes = body.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => Error::TooLarge(format!(
                "the attachment is over this node's limit of {} bytes ({} MiB, [attachments] max_mb)",
                s.attachments.options().max_bytes,
                s.attachments.options().max_bytes / (1024 * 1024)
            )),
            other => Error::Invalid(format!("cannot read the upload: {}", other.body_text())),
        })?;
        s.attachments.check_len(bytes.len() as u64)?;
        let attachments = s.attachments.clone();
        let owner = who.name().to_owned();
        tokio::task::spawn_blocking(move || {
            attachments.upload(&owner, &query.name, bytes.to_vec(), query.keep_metadata)
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }
    .await;
    let target = match &result {
        Ok(u) => u.id.clone(),
        Err(_) => String::new(),
    };
    let uploaded = s.audited(&who, "upload", &target, result).await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// The plaintext of attachment `id` for `who`, and its reference.
pub(super) async fn open_attachment(
    s: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(Vec<u8>, AttachmentRef), Error> {
    let id: AttachmentId = id
        .parse()
        .map_err(|e| Error::Invalid(format!("attachment {id}: {e}")))?;
    let reference = s.node.as_officer(who.clone()).attachment(id).await?;
    crate::attachments::open_plain(s.attachments.clone(), reference).await
}

/// `GET /v1/attachments/{id}`: the whole file, or with a `Range: bytes=A-B` header one range
/// of it (206, `Content-Range`; 416 when the range lies beyond the file). A request for several
/// ranges gets the whole file, as HTTP allows.
pub(super) async fn download(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let result = open_attachment(&s, &who, &id).await;
    let (plain, reference) = s.audited(&who, "attachment", &id, result).await?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        crate::attachments::header_file_name(&reference.name)
    );
    let len = plain.len() as u64;
    let common = [
        (header::CONTENT_TYPE, reference.media_type.clone()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
    ];
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        // Another unit than bytes is ignored, as HTTP allows.
        .filter(|v| v.trim_start().starts_with("bytes="))
        .map(|v| http_range_header::parse_range_header(v).and_then(|r| r.validate(len)));
    match asked {
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let (start, end) = (*ranges[0].start(), *ranges[0].end());
            let part = plain
                .get(
                    usize::try_from(start).unwrap_or(usize::MAX)
                        ..=usize::try_from(end).unwrap_or(usize::MAX),
                )
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            Ok((
                StatusCode::PARTIAL_CONTENT,
                common,
                [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
                part,
            )
                .into_response())
        }
        Some(Err(_)) => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            "the range lies beyond the file, or is not bytes=START-END",
        )
            .into_response()),
        _ => Ok((common, plain).into_response()),
    }
}

/// `GET /v1/attachments/{id}/thumbnail` options.
#[derive(Debug, Deserialize)]
pub(super) struct ThumbnailQuery {
    /// Longest edge in pixels (16 to 1024; default 256).
    #[serde(default = "default_thumbnail")]
    max: u32,
}

pub(super) fn default_thumbnail() -> u32 {
    256
}

pub(super) async fn thumbnail(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<ThumbnailQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let Query(query) = query.map_err(|e| Error::Invalid(e.body_text()))?;
        let (plain, reference) = open_attachment(&s, &who, &id).await?;
        tokio::task::spawn_blocking(move || {
            crate::attachments::media::thumbnail(&plain, &reference.media_type, query.max)
        })
        .await
        .map_err(|_| Error::ShuttingDown)?
    }
    .await;
    let (bytes, media_type) = s.audited(&who, "attachment.thumbnail", &id, result).await?;
    Ok((
        [
            (header::CONTENT_TYPE, media_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}
