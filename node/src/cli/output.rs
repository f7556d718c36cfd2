//! What the command line prints: message lines, CSV exports, JSON, and text made safe for
//! a terminal; the live `watch`.

use super::*;

pub(super) async fn watch(client: &Client, group: Option<String>, json: bool) -> Result<()> {
    let path = match &group {
        Some(g) => format!("/v1/events?group={}", segment(g)),
        None => "/v1/events".to_owned(),
    };
    let mut events = client.events(&path).await?;
    while let Some(data) = events.next().await? {
        let Ok(m) = serde_json::from_str::<MessageView>(&data) else {
            continue;
        };
        if json {
            let line = serde_json::to_string(&m).map_err(|e| Error::Invalid(e.to_string()))?;
            emit_line(&line);
        } else {
            say!("{}", message_line(&m));
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Err(Error::NotRunning(format!(
        "the node closed the event stream ({}): it stopped",
        client.base()
    )))
}

/// One line per message, as `inbox` and `watch` print them.
pub(super) fn message_line(m: &MessageView) -> String {
    format!(
        "{}  {}  {:<12} {:<20} {} [{}] {}",
        m.id.get(..16).unwrap_or(&m.id),
        m.created_at,
        m.handling.to_uppercase(),
        m.group_name,
        m.author_name,
        m.officer,
        m.subject
    )
}

/// Writes the records of an export as CSV: one kind to standard output, or every kind present
/// to `DIR/KIND.csv`.
pub(super) fn export_csv(
    v: &views::ExportView,
    kind: Option<String>,
    out: Option<PathBuf>,
) -> Result<()> {
    use liaison_protocol::RecordKind;
    let csv = |kind: &str| {
        crate::records::csv(kind, &v.exported).map_err(|e| Error::Invalid(format!("CSV: {e}")))
    };
    match (kind, out) {
        (Some(k), None) => {
            let k: RecordKind = k.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
            print!("{}", csv(k.as_str())?);
            Ok(())
        }
        (None, Some(dir)) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            for k in RecordKind::ALL {
                if !v.exported.iter().any(|m| m.kind == k.as_str()) {
                    continue;
                }
                let path = dir.join(format!("{}.csv", k.as_str()));
                std::fs::write(&path, csv(k.as_str())?)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        _ => Err(Error::Invalid(
            "--format csv needs either --kind KIND (to standard output) or --out DIR".into(),
        )),
    }
}

/// `text` as it may be shown on a terminal: every control character but line feed and tab
/// (escape sequences a remote author could use to repaint the screen, or a TLP label) and
/// every bidirectional formatting character is shown as its code, `\u{1b}`.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c != '\n' && c != '\t' && liaison_protocol::fields::is_refused_char(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Prints `text` and a newline as it is (JSON, which escapes what it must). A reader that has
/// gone (`liaison inbox | head`) ends the command quietly, as for other Unix tools.
pub(super) fn emit_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// What `send` prints: the new message's id, or with `--json` the id and the group as named.
pub(super) fn posted(created: &Created, group: &str, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::json!({ "id": created.id, "group": group }));
    }
    say!("{}", created.id);
    Ok(())
}

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    emit_line(&text);
    Ok(())
}
