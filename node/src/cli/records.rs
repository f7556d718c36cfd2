//! Records and attachments from the command line: templates, bodies from files, uploads and
//! downloads.

use super::*;

pub(super) fn record_cmd(cmd: RecordCmd) -> Result<()> {
    use liaison_protocol::record::{self, RecordKind};
    let kind = |k: &str| {
        k.parse::<RecordKind>()
            .map_err(|e| Error::Invalid(e.to_string()))
    };
    match cmd {
        RecordCmd::Kinds => {
            for k in RecordKind::ALL {
                say!("{:<16} schema {}  {}", k.as_str(), k.schema(), k.title());
            }
            Ok(())
        }
        RecordCmd::Template { kind: k } => {
            print!("{}", record::template(kind(&k)?));
            Ok(())
        }
        RecordCmd::Schema { kind: k } => print_json(&record::json_schema(kind(&k)?)),
    }
}

/// Uploads each file for the post that follows; reports on standard error what was removed
/// from each. The ids, in order.
pub(super) async fn upload_all(
    client: &Client,
    files: &[PathBuf],
    keep_metadata: bool,
) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", path.display())))?;
        let uploaded: crate::attachments::Uploaded = client
            .post_bytes(
                &format!(
                    "/v1/attachments?name={}&keep_metadata={keep_metadata}",
                    segment(name)
                ),
                bytes,
            )
            .await
            .map_err(|e| match e {
                Error::TooLarge(m) => Error::TooLarge(format!("{}: {m}", path.display())),
                Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
                other => other,
            })?;
        if !uploaded.removed.is_empty() {
            eprintln!(
                "{}: removed {}",
                path.display(),
                uploaded.removed.join(", ")
            );
        }
        ids.push(uploaded.id);
    }
    Ok(ids)
}

/// `liaison attachment get`: asks until the node holds the attachment whole, at most `wait`
/// seconds.
pub(super) async fn attachment_get(
    client: &Client,
    path: &str,
    out: Option<PathBuf>,
    wait: u64,
) -> Result<()> {
    use std::io::Write;
    let started = std::time::Instant::now();
    let (bytes, _) = loop {
        match client.get_bytes(path).await {
            Err(Error::NotYet(m)) if started.elapsed().as_secs() < wait => {
                tracing::debug!(%m, "waiting for the attachment");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => break other?,
        }
    };
    match out {
        Some(path) => std::fs::write(&path, &bytes)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e)),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| Error::io("cannot write standard output", e)),
    }
}

/// Reads a record file (a filled-in template; `-` is standard input) into the API's
/// `POST /v1/groups/{group}/records` body.
pub(super) fn record_body(
    path: &std::path::Path,
    handling: String,
    to: Vec<String>,
    reply_to: Option<String>,
) -> Result<serde_json::Value> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("cannot read standard input", e))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
    };
    let mut value: serde_json::Value =
        serde_json::from_str(&liaison_protocol::record::strip_comments(&text))
            .map_err(|e| Error::Invalid(format!("{} is not JSON: {e}", path.display())))?;
    let Some(object) = value.as_object_mut() else {
        return Err(Error::Invalid(format!(
            "{}: expected {{\"kind\": ..., \"record\": {{...}}}}, as `liaison record template KIND` prints",
            path.display()
        )));
    };
    object.insert("handling".into(), handling.into());
    object.insert("to".into(), to.into());
    if let Some(r) = reply_to {
        object.insert("reply_to".into(), r.into());
    }
    Ok(value)
}
