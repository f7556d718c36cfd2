//! The audit log: reading it, checking its chain, signing checkpoints.

use super::*;

/// `liaison audit checkpoint --out FILE`.
pub(super) async fn audit_checkpoint(client: &Client, out: &Path, json: bool) -> Result<()> {
    use crate::audit::checkpoint::Checkpoint;
    let c: Checkpoint = client
        .post("/v1/audit/checkpoint", &serde_json::json!({}))
        .await?;
    let text = serde_json::to_string_pretty(&c).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(out, format!("{text}\n"))
        .map_err(|e| Error::io(format!("cannot write {}", out.display()), e))?;
    if json {
        return print_json(&c);
    }
    say!(
        "checkpoint of audit record {} signed at {} written to {}",
        c.seq,
        views::rfc3339(c.at_ms),
        out.display()
    );
    Ok(())
}

/// `liaison audit verify [--checkpoint FILE]`.
pub(super) async fn audit_verify(
    client: &Client,
    checkpoint: Option<&Path>,
    json: bool,
) -> Result<()> {
    use crate::audit::checkpoint::Checkpoint;
    use crate::audit::Verification;
    let v: Verification = match checkpoint {
        None => client.get("/v1/audit/verify").await?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            let c: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "{} is not an audit checkpoint: {e}",
                    path.display()
                ))
            })?;
            client.post("/v1/audit/verify", &c).await?
        }
    };
    if json {
        return print_json(&v);
    }
    match v.first_broken {
        None => {
            match v.checkpoint {
                Some(seq) => say!(
                    "audit log intact: {} records; record {seq} is the one the checkpoint signed",
                    v.records
                ),
                None => say!("audit log intact: {} records", v.records),
            }
            Ok(())
        }
        Some(seq) => Err(Error::Corrupt(format!(
            "audit log broken at record {seq} of {}: {}",
            v.records,
            v.reason.unwrap_or_default()
        ))),
    }
}

pub(super) async fn audit(client: &Client, since: Option<String>, json: bool) -> Result<()> {
    use crate::audit::AuditRecord;
    let since_ms = match since {
        None => 0,
        Some(text) => parse_since(&text)?,
    };
    // The node streams a JSON array, one record per line: taken and printed a line at a time,
    // so that a long log is never held whole.
    let mut lines = client
        .lines(&format!("/v1/audit?since_ms={since_ms}"))
        .await?;
    let mut closed = false;
    while let Some(line) = lines.next().await? {
        let item = line.trim().trim_end_matches(',');
        match item {
            "" => continue,
            "[" | "]" => {
                closed = item == "]";
                if json {
                    emit_line(item);
                }
                continue;
            }
            _ => {}
        }
        let r: AuditRecord = serde_json::from_str(item)
            .map_err(|e| Error::Invalid(format!("unexpected audit record from the node: {e}")))?;
        if json {
            emit_line(line.trim());
            continue;
        }
        say!(
            "{:>6} {} {:<20} {:<14} {:<12} {}",
            r.seq,
            views::rfc3339(r.at_ms),
            r.actor,
            r.action,
            r.outcome,
            r.target
        );
    }
    if !closed {
        return Err(Error::Invalid(
            "the node's audit log answer broke off before its end (see the node's log)".into(),
        ));
    }
    Ok(())
}

pub(super) fn parse_since(text: &str) -> Result<u64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        let d = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Invalid("--since is before 1970".into()))?;
        return Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
        return Ok(crate::clock::now().0.saturating_sub(ago));
    }
    Err(Error::Invalid(format!(
        "--since {text:?} is neither a time (2026-11-22T10:00:00Z) nor a duration (2h)"
    )))
}
