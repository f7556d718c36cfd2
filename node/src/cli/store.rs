//! `liaison store check|rebuild|...`: the store of a stopped node, opened directly.

use super::*;

/// `liaison store check|rebuild`, on the store of `dir` directly.
pub(super) fn store(dir: &DataDir, cmd: StoreCmd) -> Result<()> {
    use crate::store::Store;
    let options = dir.config()?.store.options();
    let path = dir.store_path();
    match cmd {
        StoreCmd::Check { json } => {
            let r = Store::check(&path, &options)?;
            if json {
                let mut value =
                    serde_json::to_value(&r).map_err(|e| Error::Invalid(e.to_string()))?;
                if let Some(object) = value.as_object_mut() {
                    object.insert("sound".into(), r.is_sound().into());
                }
                print_json(&value)?;
                return if r.is_sound() {
                    Ok(())
                } else {
                    Err(Error::Corrupt("the store is damaged".into()))
                };
            }
            say!("store     {}", path.display());
            say!("messages  {} in the index", r.messages);
            say!(
                "log       {} frames; {} damaged stretches ({} bytes), {} of them in no \
                 message's place{}",
                r.frames,
                r.damaged_stretches,
                r.damaged_bytes,
                r.unused_stretches,
                if r.unused_stretches > 0 {
                    " (bytes no longer read, or control events and audit records the index \
                     holds; a rebuild cannot bring those back)"
                } else {
                    ""
                }
            );
            say!(
                "damaged   {} messages, marked: the node fetches them again from peers when it runs",
                r.damaged
            );
            say!(
                "missing   {} entries the envelope log holds and the index lacks{}",
                r.unindexed,
                if r.unindexed > 0 {
                    ": run `liaison store rebuild`"
                } else {
                    ""
                }
            );
            for line in opened_lines(&r.opened) {
                say!("opening   {line}");
            }
            if r.is_sound() {
                say!("result    sound");
                Ok(())
            } else {
                Err(Error::Corrupt(
                    "the store is damaged (see above); start the node to fetch damaged messages \
                     again from peers"
                        .into(),
                ))
            }
        }
        StoreCmd::Rebuild { json } => {
            let r = Store::rebuild(&path, &options)?;
            if json {
                return print_json(&r);
            }
            say!(
                "rebuilt the index of {} from the envelope log: {} messages",
                path.display(),
                r.messages
            );
            for line in opened_lines(&r.opened) {
                say!("          {line}");
            }
            if r.salvaged {
                say!("peer pins, accounts and receipts: copied from the old index");
            } else {
                say!(
                    "peer pins, accounts and receipts: lost (the old index does not open); pin \
                     the peers and make the accounts again"
                );
            }
            Ok(())
        }
    }
}

/// What opening the store repaired, in words.
pub(super) fn opened_lines(opened: &crate::store::OpenReport) -> Vec<String> {
    let health_like = crate::views::StoreStatus::of(&crate::store::Health::from_report(opened));
    health_like.repaired_at_start
}
