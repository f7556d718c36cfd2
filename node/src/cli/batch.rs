//! `liaison send GROUP --batch FILE.jsonl`: posts every line of a JSON-lines file through the
//! batch endpoint (`POST /v1/groups/{group}/messages/batch`), in as many requests as its bounds
//! need, and prints one JSON line per item: `{"line": N, "id": "…"}` or `{"line": N, "error":
//! "…", "status": S}` (with `fields` for an invalid record). Blank lines are skipped. Fails,
//! after printing every item, if any item failed.

use std::path::Path;

use serde::Serialize;

use crate::api::{BatchAnswer, ItemAnswer, MAX_BATCH_ITEMS, MAX_BODY};
use crate::client::{segment, Client};
use crate::error::{Error, Result};

/// One printed line.
#[derive(Serialize)]
struct Line<'a> {
    line: usize,
    #[serde(flatten)]
    answer: &'a ItemAnswer,
}

/// Posts the items of `path` to `group`; see the module docs.
pub(super) async fn send(client: &Client, group: &str, path: &Path) -> Result<()> {
    let text =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let lines: Vec<(usize, &[u8])> = text
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, line)| (n + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()))
        .collect();
    if lines.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no items: one message or record (JSON) a line",
            path.display()
        )));
    }
    let endpoint = format!("/v1/groups/{}/messages/batch", segment(group));
    let (mut posted, mut failed) = (0usize, 0usize);
    let mut print = |line: usize, answer: &ItemAnswer| -> Result<()> {
        if answer.id.is_some() {
            posted += 1;
        } else {
            failed += 1;
        }
        let text = serde_json::to_string(&Line { line, answer })
            .map_err(|e| Error::Invalid(format!("cannot print an answer: {e}")))?;
        super::emit_line(&text);
        Ok(())
    };
    let mut rest = lines.as_slice();
    while !rest.is_empty() {
        // As many lines as one request may carry.
        let (mut take, mut bytes) = (0, 0);
        while take < rest.len() && take < MAX_BATCH_ITEMS {
            let len = rest[take].1.len() + 1;
            if take > 0 && bytes + len > MAX_BODY {
                break;
            }
            bytes += len;
            take += 1;
        }
        let (chunk, after) = rest.split_at(take);
        rest = after;
        if bytes > MAX_BODY {
            // One line alone is larger than a request may be.
            print(
                chunk[0].0,
                &ItemAnswer {
                    error: Some(format!("larger than a request may be ({MAX_BODY} bytes)")),
                    status: Some(413),
                    ..ItemAnswer::default()
                },
            )?;
            continue;
        }
        let mut body = Vec::with_capacity(bytes);
        for (_, line) in chunk {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        let answer: BatchAnswer = client.post_bytes(&endpoint, body).await?;
        if answer.items.len() != chunk.len() {
            return Err(Error::Invalid(format!(
                "the node answered {} items for {} lines",
                answer.items.len(),
                chunk.len()
            )));
        }
        for ((line, _), item) in chunk.iter().zip(&answer.items) {
            print(*line, item)?;
        }
    }
    if failed > 0 {
        return Err(Error::Invalid(format!(
            "{failed} of {} items failed ({posted} posted); each is named above with its line",
            posted + failed
        )));
    }
    Ok(())
}
