//! The attachment phase: how fast a file travels between two nodes. A file of noise (it does
//! not compress, like a photo) is uploaded through A's API and named by a post; B, a member
//! whose eager limit covers it, fetches it over its own QUIC streams as soon as the message
//! arrives, checks every chunk and syncs it before it counts it held. `mib_per_s` is the file's
//! size over the time from the post's answer on A until B's API lists the file as held whole.
//! The same is set against the bulk rate one quinn stream reaches on this machine
//! (`limits.quinn_bulk_mib_per_s`, `ratios.attachment_over_quinn`).

use std::path::Path;
use std::time::{Duration, Instant};

use liaison_protocol::GroupId;
use serde::Serialize;

use super::{progress, NodeProcess, MIB, PHASE_TIMEOUT};
use liaison_node::attachments::Uploaded;
use liaison_node::client::Client;
use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::error::{Error, Result};
use liaison_node::views::{Created, MessageView};

/// How often B's API is asked whether it holds the file whole.
const POLL: Duration = Duration::from_millis(5);

/// The attachment phase's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attachments {
    /// MiB of attachment per second from A to B, end to end (post answered on A to held whole
    /// on B, every chunk checked and synced on B).
    pub mib_per_s: f64,
    /// The file's size, MiB.
    pub mib: u64,
    /// Seconds from the post's answer on A to the file held whole on B.
    pub seconds: f64,
}

/// Runs the attachment phase on the end-to-end phase's nodes: A in this process, B in its
/// child, members of `group`.
pub async fn run(
    root: &Path,
    a: &RunningNode,
    b: &NodeProcess,
    group: GroupId,
    mib: u64,
) -> Result<Attachments> {
    let token_of = |name: &str| -> Result<String> {
        Ok(DataDir::new(root.join(name)).admin_token()?.to_string())
    };
    let author = Client::new(&format!("http://{}", a.api_addr), token_of(&a.name)?)?;
    let b_api = DataDir::new(root.join(&b.name))
        .runtime()
        .ok_or_else(|| Error::Invalid("node B's runtime file names no API address".into()))?
        .api;
    let reader = Client::new(&format!("http://{b_api}"), token_of(&b.name)?)?;
    let len = usize::try_from(mib * 1024 * 1024)
        .map_err(|_| Error::Invalid(format!("{mib} MiB does not fit in memory here")))?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let file: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let uploaded: Uploaded = author
        .post_bytes("/v1/attachments?name=bench.bin", file)
        .await?;
    let created: Created = author
        .post(
            &format!("/v1/groups/{group}/messages"),
            &serde_json::json!({
                "subject": "bench attachment",
                "body": "",
                "attachments": [uploaded.id],
            }),
        )
        .await?;
    let start = Instant::now();
    let path = format!("/v1/messages/{}", created.id);
    loop {
        // 404 until the message reaches B, then `held` once the file is whole there.
        if let Ok(m) = reader.get::<MessageView>(&path).await {
            if m.attachments.first().is_some_and(|att| att.held) {
                break;
            }
        }
        if start.elapsed() > PHASE_TIMEOUT {
            return Err(Error::Invalid(format!(
                "node B did not hold the {mib} MiB attachment within {} s",
                PHASE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let size = uploaded.size as f64 / MIB;
    let mib_per_s = size / seconds;
    progress(
        &format!("attachment of {mib} MiB, A to B"),
        mib_per_s,
        "MiB/s",
    );
    Ok(Attachments {
        mib_per_s,
        mib,
        seconds,
    })
}
