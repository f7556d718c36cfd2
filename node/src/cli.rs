//! The `liaison` command line: `init`, `id`, `run` and `demo` work directly; every other
//! command drives a running node through its local API.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::client::{segment, Client};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::views::{self, Created, GroupView, MessageView, PeerView, ReceiptView, Status};

mod backup;
mod batch;

/// Prints one line for a person on standard output, through [`say_line`].
macro_rules! say {
    () => {
        say_line("")
    };
    ($($arg:tt)*) => {
        say_line(&format!($($arg)*))
    };
}

mod args;
mod audit;
mod commands;
mod daemon;
mod federation;
mod groups;
mod output;
mod records;
mod store;
#[cfg(test)]
mod tests;
mod users;

pub use args::{Cli, Cmd, LogFormat};
use audit::*;
pub use commands::*;
use daemon::*;
use federation::*;
use groups::*;
pub use output::terminal_safe;
use output::*;
use records::*;
use store::*;
use users::*;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let dir = DataDir::new(&cli.data);
    let token = cli.token.clone();
    let client = || Client::for_data_dir(&dir, token.clone());
    match cli.command {
        Cmd::Init {
            name,
            listen,
            api,
            advertise,
            json,
        } => {
            let mut config = Config::new(&name, listen, api);
            config.advertise = advertise;
            // Check the values as a loaded file would be checked.
            Config::parse(&config.to_toml(), &dir.config_path())?;
            let identity = dir.init(&config, &mut rand_core::OsRng)?;
            drop(crate::store::Store::open(&dir.store_path())?);
            if json {
                return print_json(&serde_json::json!({
                    "name": name,
                    "node_id": identity.node_id().to_string(),
                    "data": dir.root(),
                    "config": dir.config_path(),
                    "token_file": dir.token_path(),
                }));
            }
            say!(
                "initialised node {name} ({}) in {}",
                identity.node_id(),
                dir.root().display()
            );
            say!("admin token: {}", dir.token_path().display());
            Ok(())
        }
        Cmd::Id => {
            let config = dir.config()?;
            let (identity, _) = dir.keys()?;
            let bound = dir
                .runtime()
                .map(|r| r.quic)
                .filter(|_| config.listen.port() == 0)
                .unwrap_or(config.listen);
            say!(
                "{} {} {}",
                config.name,
                identity.node_id(),
                crate::node::advertised_address(&config, bound)
            );
            Ok(())
        }
        Cmd::Run => run_daemon(&dir).await,
        Cmd::Demo { exit } => crate::demo::run(exit).await,
        Cmd::Bench { args } => bench(&args).await,
        Cmd::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "liaison", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man { dir } => write_man_pages(&dir),
        Cmd::Backup {
            dest,
            with_keys,
            passphrase_file,
        } => {
            let passphrase = crate::backup::Passphrase {
                file: passphrase_file,
            };
            backup::take(&dir, client, &dest, with_keys, &passphrase).await
        }
        Cmd::Restore {
            src,
            passphrase_file,
            without_keys,
            skip_catch_up,
        } => {
            let passphrase = crate::backup::Passphrase {
                file: passphrase_file,
            };
            backup::restore(
                &dir,
                src.as_deref(),
                &passphrase,
                without_keys,
                skip_catch_up,
            )
            .await
        }
        Cmd::Peer(cmd) => peer(&client()?, cmd).await,
        Cmd::Authority(cmd) => authority(cmd),
        Cmd::Roster(cmd) => roster(&client()?, cmd).await,
        Cmd::Key(KeyCmd::Rotate {
            exchange_only,
            json,
        }) => {
            let r: views::Rotated = client()?
                .post("/v1/key/rotate", &views::RotateKeys { exchange_only })
                .await?;
            if json {
                return print_json(&r);
            }
            if r.old_node_id == r.node_id {
                say!("new exchange key for node {}", r.node_id);
            } else {
                say!("node {} is now {}", r.old_node_id, r.node_id);
            }
            say!(
                "{} owned group(s) moved; peers follow the signed rotation statement",
                r.groups_moved
            );
            Ok(())
        }
        Cmd::Store(cmd) => store(&dir, cmd),
        Cmd::Group(cmd) => group(&client()?, cmd).await,
        Cmd::Send {
            group,
            batch: Some(path),
            ..
        } => batch::send(&client()?, &group, &path).await,
        Cmd::Send {
            group,
            record: Some(path),
            reply_to,
            handling,
            to,
            attach,
            keep_metadata,
            json,
            ..
        } => {
            let mut body = record_body(&path, handling, to, reply_to)?;
            let client = client()?;
            let ids = upload_all(&client, &attach, keep_metadata).await?;
            if let Some(object) = body.as_object_mut() {
                object.insert("attachments".into(), ids.into());
            }
            let created: Created = client
                .post(&format!("/v1/groups/{}/records", segment(&group)), &body)
                .await?;
            posted(&created, &group, json)
        }
        Cmd::Send {
            group,
            record: None,
            reply_to,
            subject,
            handling,
            to,
            file,
            attach,
            keep_metadata,
            body,
            batch: None,
            json,
        } => {
            let body = match (file, body.as_deref()) {
                (Some(path), _) => std::fs::read_to_string(&path)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?,
                (None, Some("-")) => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| Error::io("cannot read standard input", e))?;
                    s
                }
                (None, Some(b)) => b.to_owned(),
                (None, None) => {
                    return Err(Error::Invalid(
                        "no message body: give BODY, --file PATH, or - for standard input".into(),
                    ))
                }
            };
            let client = client()?;
            let attachments = upload_all(&client, &attach, keep_metadata).await?;
            let created: Created = client
                .post(
                    &format!("/v1/groups/{}/messages", segment(&group)),
                    &views::PostMessage {
                        subject,
                        body,
                        handling: Some(handling),
                        to,
                        reply_to,
                        attachments,
                    },
                )
                .await?;
            posted(&created, &group, json)
        }
        Cmd::Record(cmd) => record_cmd(cmd),
        Cmd::Attachment(AttachmentCmd::Get {
            id,
            out,
            wait,
            thumbnail,
        }) => {
            let path = match thumbnail {
                Some(max) => format!("/v1/attachments/{}/thumbnail?max={max}", segment(&id)),
                None => format!("/v1/attachments/{}", segment(&id)),
            };
            attachment_get(&client()?, &path, out, wait).await
        }
        Cmd::Thread { id, json } => {
            let t: views::ThreadView = client()?
                .get(&format!("/v1/messages/{}/thread", segment(&id)))
                .await?;
            if json {
                return print_json(&t);
            }
            for e in &t.entries {
                let state = match (&e.state, &e.closed_by, &e.outcome) {
                    (Some(s), Some(by), _) => format!("  [{s}: {by}]"),
                    (Some(s), None, _) => format!("  [{s}]"),
                    (None, _, Some(o)) => format!("  [{o}]"),
                    _ => String::new(),
                };
                say!(
                    "{}{}  {}  {:<15} {}  {}{}",
                    "  ".repeat(e.depth),
                    e.id.get(..16).unwrap_or(&e.id),
                    e.created_at,
                    e.kind,
                    e.author,
                    e.summary,
                    state
                );
            }
            if let Some(parent) = &t.root_replies_to {
                say!("(the first message replies to {parent}, which is not shown here)");
            }
            Ok(())
        }
        Cmd::Stats { group, json } => {
            let s: views::StatsView = client()?
                .get(&format!("/v1/groups/{}/stats", segment(&group)))
                .await?;
            if json {
                return print_json(&s);
            }
            say!("messages  {}", s.messages);
            for (title, map) in [
                ("by kind", &s.by_kind),
                ("by commodity", &s.by_commodity),
                ("by outcome", &s.by_outcome),
                ("by state", &s.by_state),
                ("by month", &s.by_month),
            ] {
                if map.is_empty() {
                    continue;
                }
                say!("{title}:");
                for (k, n) in map {
                    say!("  {k:<24} {n}");
                }
            }
            Ok(())
        }
        Cmd::Inbox {
            group,
            limit,
            before,
            json,
        } => {
            let mut query = Vec::new();
            if let Some(g) = &group {
                query.push(format!("group={}", segment(g)));
            }
            if let Some(n) = limit {
                query.push(format!("limit={n}"));
            }
            if let Some(c) = &before {
                query.push(format!("before={}", segment(c)));
            }
            let path = if query.is_empty() {
                "/v1/messages".to_owned()
            } else {
                format!("/v1/messages?{}", query.join("&"))
            };
            let page: crate::views::MessagePage = client()?.get(&path).await?;
            let more = page.next.as_ref().map(|next| {
                let mut again = String::from("liaison inbox");
                if let Some(g) = &group {
                    again.push_str(&format!(" {g:?}"));
                }
                if let Some(n) = limit {
                    again.push_str(&format!(" --limit {n}"));
                }
                format!("more: {again} --before {next}")
            });
            if json {
                // The messages alone on stdout; where the next page starts, on stderr.
                if let Some(more) = &more {
                    eprintln!("{more}");
                }
                return print_json(&page.messages);
            }
            if page.messages.is_empty() {
                say!("no messages");
            }
            for m in &page.messages {
                say!("{}", message_line(m));
            }
            if let Some(more) = &more {
                say!("{more}");
            }
            Ok(())
        }
        Cmd::Read { id, json } => {
            let m: MessageView = client()?
                .get(&format!("/v1/messages/{}", segment(&id)))
                .await?;
            if json {
                return print_json(&m);
            }
            say!("Message:  {}", m.id);
            say!("Group:    {} ({})", m.group_name, m.group_id);
            say!(
                "From:     {} [{}] ({})",
                m.author_name,
                m.officer,
                m.author_id
            );
            say!("Date:     {}", m.created_at);
            say!("Handling: TLP:{}", m.handling.to_uppercase());
            say!("Kind:     {}", m.kind);
            say!("Subject:  {}", m.subject);
            if let Some(parent) = &m.reply_to {
                say!("Reply to: {parent}");
            }
            for a in &m.attachments {
                say!(
                    "Attached: {} {} ({}, {} bytes{})",
                    a.id,
                    a.name,
                    a.media_type,
                    a.size,
                    if a.held { "" } else { ", fetched when opened" }
                );
            }
            if let Some(why) = &m.unreadable {
                say!();
                say!("(kept, not readable here: {why})");
            }
            say!();
            say!("{}", m.body.unwrap_or_default());
            Ok(())
        }
        Cmd::Receipts { id, json } => {
            let r: Vec<ReceiptView> = client()?
                .get(&format!("/v1/messages/{}/receipts", segment(&id)))
                .await?;
            if json {
                return print_json(&r);
            }
            if r.is_empty() {
                say!("no receipts yet");
            }
            for x in &r {
                say!("{:<20} {}  {}", x.receiver_name, x.stored_at, x.receiver_id);
            }
            Ok(())
        }
        Cmd::User(cmd) => {
            let web = dir.runtime().and_then(|r| r.web);
            user(&client()?, cmd, web.as_deref()).await
        }
        Cmd::Export {
            group,
            format,
            kind,
            out,
            include_nominal,
        } => {
            let v: views::ExportView = client()?
                .get(&format!(
                    "/v1/groups/{}/export{}",
                    segment(&group),
                    if include_nominal {
                        "?include_nominal=true"
                    } else {
                        ""
                    }
                ))
                .await?;
            if format == "csv" {
                export_csv(&v, kind, out)?;
            } else {
                for m in &v.exported {
                    let line =
                        serde_json::to_string(m).map_err(|e| Error::Invalid(e.to_string()))?;
                    emit_line(&line);
                }
            }
            let withheld = v.exported.iter().filter(|m| m.nominal_withheld).count();
            if withheld > 0 {
                eprintln!(
                    "nominal data left out of {withheld} record(s); --include-nominal keeps it"
                );
            }
            for r in &v.refused {
                eprintln!(
                    "not exported: {} (TLP:{}): {}",
                    r.id,
                    r.handling.to_uppercase(),
                    r.reason
                );
            }
            if !v.refused.is_empty() {
                eprintln!(
                    "{} message(s) exported, {} kept in by their handling code",
                    v.exported.len(),
                    v.refused.len()
                );
            }
            Ok(())
        }
        Cmd::Audit {
            since,
            json,
            action,
            out,
            checkpoint,
        } => match action.as_deref() {
            Some("checkpoint") => {
                let out = out.ok_or_else(|| {
                    Error::Invalid("audit checkpoint needs --out FILE to write it to".into())
                })?;
                audit_checkpoint(&client()?, &out, json).await
            }
            Some(_) => audit_verify(&client()?, checkpoint.as_deref(), json).await,
            None => audit(&client()?, since, json).await,
        },
        Cmd::Quarantine(cmd) => quarantine(&client()?, cmd).await,
        Cmd::Watch { group, json } => watch(&client()?, group, json).await,
        Cmd::Status { json } => {
            let s: Status = client()?.get("/v1/status").await?;
            if json {
                return print_json(&s);
            }
            say!("node      {} ({})", s.name, s.node_id);
            say!("quic      {}", s.quic_addr);
            say!("api       {}", s.api_addr);
            say!("peers     {} pinned, {} connected", s.peers, s.connected);
            say!("groups    {}", s.groups);
            say!("messages  {}", s.messages);
            for r in &s.rosters {
                say!(
                    "roster    {} version {} ({}), {} entries, {} revoked, valid until {}",
                    r.federation,
                    r.version,
                    r.state,
                    r.entries,
                    r.revoked,
                    r.valid_until
                );
            }
            if let Some(w) = &s.roster_warning {
                say!("warning   {w}");
            }
            if let Some(r) = &s.restore {
                say!("{}", backup::status_line(r));
            }
            let free = s
                .store
                .free_bytes
                .map_or("unknown".into(), |b| format!("{} MiB", b / (1024 * 1024)));
            say!(
                "store     {} ({free} free, keeps {} MiB)",
                if s.store.healthy {
                    "healthy"
                } else {
                    "NEEDS ATTENTION"
                },
                s.store.min_free_bytes / (1024 * 1024)
            );
            if let Some(at) = &s.store.last_flush {
                say!(
                    "          last flush {at} ({} since start)",
                    s.store.flushes
                );
            }
            for problem in s.store.problems.iter().chain(&s.store.repaired_at_start) {
                say!("          {problem}");
            }
            if s.faults > 0 {
                say!(
                    "faults    {} inputs failed inside the node (each alone; see its log)",
                    s.faults
                );
            }
            Ok(())
        }
    }
}

/// Prints `text` and a newline for a person, made [`terminal_safe`].
pub(crate) fn say_line(text: &str) {
    emit_line(&terminal_safe(text));
}
