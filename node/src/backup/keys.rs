//! The key files a backup carries with `--with-keys`: bundled, and sealed with a key derived
//! from a passphrase (Argon2id, ChaCha20-Poly1305), bound to the node's id.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::*;
use crate::error::{Error, Result};

/// The key files carried, by name, hex-encoded.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct KeyBundle {
    pub(super) files: Vec<(String, String)>,
}

impl Drop for KeyBundle {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, v) in &mut self.files {
            v.zeroize();
        }
    }
}

const KEYS_MAGIC: &[u8; 16] = b"LIAISON-KEYS-1\n\0";
/// Argon2id costs for a new keys file: 64 MiB, 3 passes, 1 lane (the crate's recommendation).
const ARGON_M: u32 = 64 * 1024;
const ARGON_T: u32 = 3;
const ARGON_P: u32 = 1;
/// The most a keys file may ask for (it is input): 1 GiB, 16 passes, 8 lanes.
const MAX_ARGON_M: u32 = 1024 * 1024;
const MAX_ARGON_T: u32 = 16;
const MAX_ARGON_P: u32 = 8;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = KEYS_MAGIC.len() + 12 + SALT_LEN + NONCE_LEN;

pub(super) fn derive(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| Error::Corrupt(format!("the keys file's Argon2 costs are invalid: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| Error::Invalid(format!("cannot derive the key: {e}")))?;
    Ok(key)
}

/// `KEYS_MAGIC ‖ m ‖ t ‖ p (4 bytes each, big-endian) ‖ salt (16) ‖ nonce (12) ‖ sealed`;
/// the header and `node_id` are the associated data.
pub(super) fn seal_keys<R: RngCore>(
    bundle: &KeyBundle,
    passphrase: &str,
    node_id: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(Error::Invalid(format!(
            "the passphrase is shorter than {MIN_PASSPHRASE} characters"
        )));
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(KEYS_MAGIC);
    for v in [ARGON_M, ARGON_T, ARGON_P] {
        header.extend_from_slice(&v.to_be_bytes());
    }
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    let key = derive(passphrase, &salt, ARGON_M, ARGON_T, ARGON_P)?;
    let plain = Zeroizing::new(
        serde_json::to_vec(bundle)
            .map_err(|e| Error::Invalid(format!("cannot encode keys: {e}")))?,
    );
    let mut aad = header.clone();
    aad.extend_from_slice(node_id);
    let sealed = ChaCha20Poly1305::new(key.as_ref().into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Internal("cannot encrypt the keys"))?;
    header.extend_from_slice(&sealed);
    Ok(header)
}

pub(super) fn open_keys(sealed: &[u8], passphrase: &str, node_id: &[u8]) -> Result<KeyBundle> {
    let damaged = |why: &str| Error::Corrupt(format!("the keys file is damaged: {why}"));
    if sealed.len() < HEADER_LEN || &sealed[..KEYS_MAGIC.len()] != KEYS_MAGIC {
        return Err(damaged("it does not start as a keys file"));
    }
    let word = |i: usize| {
        let at = KEYS_MAGIC.len() + 4 * i;
        u32::from_be_bytes([sealed[at], sealed[at + 1], sealed[at + 2], sealed[at + 3]])
    };
    let (m, t, p) = (word(0), word(1), word(2));
    if m > MAX_ARGON_M || t > MAX_ARGON_T || p > MAX_ARGON_P {
        return Err(damaged("its Argon2 costs are beyond the limits"));
    }
    let salt = &sealed[KEYS_MAGIC.len() + 12..KEYS_MAGIC.len() + 12 + SALT_LEN];
    let nonce = &sealed[HEADER_LEN - NONCE_LEN..HEADER_LEN];
    let key = derive(passphrase, salt, m, t, p)?;
    let mut aad = sealed[..HEADER_LEN].to_vec();
    aad.extend_from_slice(node_id);
    let plain = Zeroizing::new(
        ChaCha20Poly1305::new(key.as_ref().into())
            .decrypt(
                nonce.into(),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| {
                Error::Forbidden(
                    "the keys do not decrypt: wrong passphrase, or the keys file is damaged \
                     (nothing was changed)"
                        .into(),
                )
            })?,
    );
    serde_json::from_slice(&plain).map_err(|_| damaged("its contents are not key files"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_a_wrong_passphrase_or_node() {
        let mut rng = rand_core::OsRng;
        let bundle = KeyBundle {
            files: vec![("identity.key".into(), "00ff".into())],
        };
        let sealed =
            seal_keys(&bundle, "correct horse battery", b"node-a", &mut rng).expect("seals");
        let opened = open_keys(&sealed, "correct horse battery", b"node-a").expect("opens");
        assert_eq!(opened.files, bundle.files);
        assert!(matches!(
            open_keys(&sealed, "wrong horse battery!", b"node-a"),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            open_keys(&sealed, "correct horse battery", b"node-b"),
            Err(Error::Forbidden(_))
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        assert!(open_keys(&flipped, "correct horse battery", b"node-a").is_err());
        assert!(matches!(
            open_keys(&sealed[..10], "correct horse battery", b"node-a"),
            Err(Error::Corrupt(_))
        ));
        assert!(seal_keys(&bundle, "short", b"node-a", &mut rng).is_err());
    }

    #[test]
    fn manifest_paths_stay_inside_the_backup() {
        assert!(safe_relative("store/index.export").is_ok());
        for bad in ["", "/etc/passwd", "../x", "store/../../x", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }
}
