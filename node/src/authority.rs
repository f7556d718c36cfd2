//! The federation authority's offline tools: make an authority key, sign a roster written as
//! TOML. Nothing here needs a running node or a network, so the key can live on a machine that
//! has neither (`liaison authority init`, `liaison authority sign`).
//!
//! A roster file (`ROSTER.toml`):
//!
//! ```toml
//! federation = "WCO Europe"
//! version = 2                      # strictly higher than the last roster signed
//! valid_for = "90days"             # or valid_until = "2026-04-01T00:00:00Z"
//!
//! [[node]]
//! id = "5f1c…"                     # the node id `liaison id` prints
//! name = "customs-nl"              # unique in the roster: a-z 0-9 . - _
//! organisation = "Dutch Customs"
//! country = "NL"
//! kind = "customs"                 # customs, police, academia or rilo
//! addresses = ["liaison.customs.example:7400"]
//!
//! [[revoked]]
//! id = "9a0b…"
//! at = "2026-02-01T00:00:00Z"      # default: when signed
//! reason = "key compromised"
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use liaison_protocol::roster::{
    AuthorityId, AuthorityKey, Entry, Revocation, Roster, SignedRoster,
};
use liaison_protocol::{NodeId, Rejection, Timestamp};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The default key file of `liaison authority`.
pub const DEFAULT_KEY: &str = "authority.key";

/// A roster as the authority writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    federation: String,
    version: u64,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    valid_for: Option<String>,
    #[serde(default)]
    node: Vec<NodeLine>,
    #[serde(default)]
    revoked: Vec<RevokedLine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeLine {
    id: String,
    name: String,
    organisation: String,
    country: String,
    kind: String,
    #[serde(default)]
    addresses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokedLine {
    id: String,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    reason: String,
}

/// Makes a new authority key in `path` (mode 0600); refuses to overwrite one. Returns its
/// public key, which every node of the federation is configured with.
pub fn init<R: rand_core::CryptoRng + rand_core::RngCore>(
    path: &Path,
    rng: &mut R,
) -> Result<AuthorityId> {
    let key = AuthorityKey::generate(rng);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Error::io(
                format!(
                    "cannot create the authority key {} (an existing key is never overwritten)",
                    path.display()
                ),
                e,
            )
        })?;
    let text = Zeroizing::new(hex::encode(*key.seed()));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(key.id())
}

/// Reads the authority key in `path`.
pub fn load_key(path: &Path) -> Result<AuthorityKey> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| {
        Error::io(
            format!(
                "cannot read the authority key {} (make one with `liaison authority init`)",
                path.display()
            ),
            e,
        )
    })?);
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), seed.as_mut()).map_err(|_| {
        Error::Corrupt(format!(
            "{} does not hold a 32-byte hex key",
            path.display()
        ))
    })?;
    Ok(AuthorityKey::from_seed(&seed))
}

/// Builds the roster `toml` describes (`path` names it in errors), issued at `now` unless it
/// says otherwise, for the authority `authority`.
pub fn roster_from_toml(
    toml_text: &str,
    path: &Path,
    authority: AuthorityId,
    now: Timestamp,
) -> Result<Roster> {
    let at = |what: &str, e: String| Error::Invalid(format!("{}: {what}: {e}", path.display()));
    let file: RosterFile = toml::from_str(toml_text).map_err(|e| {
        Error::Invalid(format!(
            "{}: {}",
            path.display(),
            e.to_string().lines().collect::<Vec<_>>().join(" ")
        ))
    })?;
    let issued_at = match &file.issued_at {
        Some(t) => parse_time(t).map_err(|e| at("issued_at", e))?,
        None => now,
    };
    let valid_until = match (&file.valid_until, &file.valid_for) {
        (Some(t), None) => parse_time(t).map_err(|e| at("valid_until", e))?,
        (None, Some(d)) => {
            let d = humantime::parse_duration(d).map_err(|e| at("valid_for", e.to_string()))?;
            issued_at.plus_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        }
        _ => {
            return Err(at(
                "validity",
                "give exactly one of valid_until (a time) and valid_for (a duration)".into(),
            ))
        }
    };
    let mut entries = Vec::with_capacity(file.node.len());
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (i, n) in file.node.iter().enumerate() {
        let what = format!("node {} ({:?})", i + 1, n.name);
        let node: NodeId = n.id.parse().map_err(|e| at(&what, format!("{e}")))?;
        liaison_protocol::fields::check_node_name(&n.name).map_err(|e| at(&what, e.to_string()))?;
        if !names.insert(n.name.clone()) {
            return Err(at(&what, "another node has this name".into()));
        }
        if !ids.insert(node) {
            return Err(at(&what, "another node has this id".into()));
        }
        let kind = crate::federation::parse_kind(&n.kind).map_err(|e| at(&what, e.to_string()))?;
        entries.push(Entry {
            node,
            name: n.name.clone(),
            organisation: n.organisation.clone(),
            country: n.country.clone(),
            kind,
            addresses: n.addresses.clone(),
        });
    }
    entries.sort_by_key(|e| e.node);
    let mut revocations = Vec::with_capacity(file.revoked.len());
    for (i, r) in file.revoked.iter().enumerate() {
        let what = format!("revoked {}", i + 1);
        let node: NodeId = r.id.parse().map_err(|e| at(&what, format!("{e}")))?;
        if ids.contains(&node) {
            return Err(at(&what, "this node is also listed as a node".into()));
        }
        let when = match &r.at {
            Some(t) => parse_time(t).map_err(|e| at(&what, e))?,
            None => now,
        };
        revocations.push(Revocation {
            node,
            at: when,
            reason: r.reason.clone(),
        });
    }
    revocations.sort_by_key(|r| r.node);
    if revocations.windows(2).any(|w| w[0].node == w[1].node) {
        return Err(at("revoked", "a node is revoked twice".into()));
    }
    let roster = Roster {
        authority,
        federation: file.federation,
        version: file.version,
        issued_at,
        valid_until,
        entries,
        revocations,
    };
    roster.check().map_err(|e| at("roster", e.to_string()))?;
    Ok(roster)
}

/// Signs the roster in `toml_path` with the key in `key_path` and writes it to `out` (default:
/// the TOML file's path with the extension `roster`). Returns the roster and where it went.
pub fn sign(
    key_path: &Path,
    toml_path: &Path,
    out: Option<&Path>,
    now: Timestamp,
) -> Result<(Roster, PathBuf)> {
    let key = load_key(key_path)?;
    let text = fs::read_to_string(toml_path)
        .map_err(|e| Error::io(format!("cannot read {}", toml_path.display()), e))?;
    let roster = roster_from_toml(&text, toml_path, key.id(), now)?;
    let bytes = key.sign(&roster)?;
    let out = out.map_or_else(|| toml_path.with_extension("roster"), Path::to_path_buf);
    let tmp = out.with_extension("roster.tmp");
    fs::write(&tmp, &bytes).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    fs::rename(&tmp, &out).map_err(|e| Error::io(format!("cannot write {}", out.display()), e))?;
    Ok((roster, out))
}

/// Reads and verifies a signed roster file against the authority it names (whether that
/// authority is trusted is for the node to say).
pub fn read_signed(path: &Path) -> Result<(Roster, Vec<u8>)> {
    let bytes =
        fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let claimed = match SignedRoster::verify(&bytes, &[]) {
        Err(Rejection::UnknownAuthority(a)) => a,
        Err(e) => {
            return Err(Error::Invalid(format!(
                "{} is not a valid roster: {e}",
                path.display()
            )))
        }
        Ok(roster) => return Ok((roster, bytes)),
    };
    let roster = SignedRoster::verify(&bytes, &[claimed])
        .map_err(|e| Error::Invalid(format!("{} is not a valid roster: {e}", path.display())))?;
    Ok((roster, bytes))
}

fn parse_time(text: &str) -> std::result::Result<Timestamp, String> {
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text:?}: {e}"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?
        .as_millis();
    Ok(Timestamp(u64::try_from(ms).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn id(seed: u8) -> String {
        liaison_protocol::IdentityKey::from_seed(&[seed; 32])
            .node_id()
            .to_string()
    }

    #[test]
    fn a_roster_file_is_signed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("authority.key");
        let authority = init(&key, &mut rand_core::OsRng).unwrap();
        assert!(
            init(&key, &mut rand_core::OsRng).is_err(),
            "never overwritten"
        );
        let toml_path = dir.path().join("europe.toml");
        fs::write(
            &toml_path,
            format!(
                r#"
federation = "WCO Europe"
version = 3
valid_for = "30days"

[[node]]
id = "{}"
name = "customs-nl"
organisation = "Dutch Customs"
country = "NL"
kind = "customs"
addresses = ["customs.example:7400"]

[[node]]
id = "{}"
name = "rilo-wca"
organisation = "RILO Western Europe"
country = "BE"
kind = "rilo"

[[revoked]]
id = "{}"
reason = "left"
"#,
                id(1),
                id(2),
                id(3)
            ),
        )
        .unwrap();
        let now = Timestamp(1_767_225_600_000);
        let (roster, out) = sign(&key, &toml_path, None, now).unwrap();
        assert_eq!(out, dir.path().join("europe.roster"));
        assert_eq!(roster.version, 3);
        assert_eq!(roster.valid_until, now.plus_millis(30 * 86_400_000));
        assert_eq!(roster.revocations[0].at, now);
        let (back, _) = read_signed(&out).unwrap();
        assert_eq!(back, roster);
        assert_eq!(back.authority, authority);
    }

    #[test]
    fn mistakes_in_a_roster_file_are_named() {
        let authority = liaison_protocol::roster::AuthorityKey::from_seed(&[9; 32]).id();
        let now = Timestamp(1_767_225_600_000);
        let path = Path::new("r.toml");
        let node = |name: &str, seed: u8| {
            format!(
                "[[node]]\nid = \"{}\"\nname = \"{name}\"\norganisation = \"o\"\ncountry = \"NL\"\nkind = \"police\"\n",
                id(seed)
            )
        };
        let head = "federation = \"f\"\nversion = 1\nvalid_for = \"1day\"\n";
        for (text, needle) in [
            (
                format!("{head}{}{}", node("a", 1), node("a", 2)),
                "another node has this name",
            ),
            (
                format!("{head}{}{}", node("a", 1), node("b", 1)),
                "another node has this id",
            ),
            (format!("{head}{}", node("Bad Name", 1)), "node name"),
            (
                format!("{head}{}", node("a", 1).replace("police", "army")),
                "customs, police, academia or rilo",
            ),
            (
                "federation = \"f\"\nversion = 1\n".to_owned(),
                "exactly one of valid_until",
            ),
            (format!("{head}colour = \"red\"\n"), "unknown field"),
            (
                format!("{head}{}", node("a", 1).replace(&id(1), "00")),
                "node id",
            ),
        ] {
            let err = roster_from_toml(&text, path, authority, now).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        }
    }
}
