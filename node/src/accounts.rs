//! Officer accounts: who may see and post in which group on this node.
//!
//! Group membership decides which *nodes* receive a group; grants decide which *officers* of a
//! node see it. A token is shown once when the account is made; only its BLAKE3 hash is stored,
//! and presented tokens are compared against every account's hash in constant time.
//!
//! For the web workspace an account also holds an argon2id password hash (PHC string, the
//! crate's default parameters: 19 MiB, 2 passes), an optional TOTP secret, a pending one-time
//! enrolment (only the BLAKE3 hash of its code, with an expiry), whether the officer is an
//! operator, and per group the newest message the officer has seen (for unread counts).
//! Password hashing and checking run on the blocking pool; checking a name without an account
//! or without a password still costs one hash, so timing does not tell which names exist.

use std::collections::BTreeMap;
use std::sync::Mutex;

use liaison_protocol::GroupId;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::Store;

/// What an officer may do in a group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// List and read.
    Read,
    /// List, read and post.
    Post,
}

impl std::str::FromStr for Access {
    type Err = Error;
    fn from_str(s: &str) -> Result<Access> {
        match s {
            "read" => Ok(Access::Read),
            "post" => Ok(Access::Post),
            _ => Err(Error::Invalid(format!(
                "access {s:?} is neither read nor post"
            ))),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Post => "post",
        })
    }
}

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The node's operator, with the admin token: every group, every command.
    Admin,
    /// An officer, limited to the groups granted.
    Officer {
        /// The officer's name.
        name: String,
        /// Granted groups.
        grants: BTreeMap<GroupId, Access>,
    },
}

impl Principal {
    /// The name shown as the posting officer and matched against RED recipients.
    pub fn name(&self) -> &str {
        match self {
            Principal::Admin => "admin",
            Principal::Officer { name, .. } => name,
        }
    }

    /// How the audit log names this principal.
    pub fn audit_name(&self) -> String {
        match self {
            Principal::Admin => "admin".to_owned(),
            Principal::Officer { name, .. } => format!("officer:{name}"),
        }
    }

    /// The access this principal has to `group`.
    pub fn access(&self, group: &GroupId) -> Option<Access> {
        match self {
            Principal::Admin => Some(Access::Post),
            Principal::Officer { grants, .. } => grants.get(group).copied(),
        }
    }
}

/// An account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// The officer's name.
    pub name: String,
    /// BLAKE3 hash of the token, hex.
    pub token_hash: String,
    /// Granted groups (group id hex → access).
    pub grants: BTreeMap<String, Access>,
    /// When the account was made, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Argon2id hash of the web password (PHC string), once one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The password was issued by the operator (one-time): the officer must choose a new one
    /// at the next login.
    #[serde(default)]
    pub must_change_password: bool,
    /// The TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s), base32, once set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    /// A pending one-time enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment: Option<Enrolment>,
    /// May use the operator pages of the web workspace (accounts, peers, groups, audit).
    #[serde(default)]
    pub operator: bool,
    /// Per group (id hex), the creation time of the newest message the officer has seen.
    #[serde(default)]
    pub seen: BTreeMap<String, u64>,
}

/// A one-time enrolment: the officer sets a password with the code, once, before it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolment {
    /// BLAKE3 hash of the code, hex.
    pub code_hash: String,
    /// Expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// How long an enrolment code is valid.
pub const ENROLMENT_VALIDITY_MS: u64 = 72 * 3600 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_LEN: usize = 1024;

impl Account {
    fn principal(&self) -> Principal {
        Principal::Officer {
            name: self.name.clone(),
            grants: self
                .grants
                .iter()
                .filter_map(|(g, a)| g.parse::<GroupId>().ok().map(|g| (g, *a)))
                .collect(),
        }
    }
}

/// The accounts of one node, cached in memory and kept in the store.
#[derive(Debug)]
pub struct Accounts {
    store: Store,
    admin_hash: [u8; 32],
    accounts: Mutex<Table>,
    /// Serialises account changes, so that a check and the write that follows it cannot
    /// interleave with another change (two `add`s of one name).
    changes: tokio::sync::Mutex<()>,
}

/// Accounts by name, with their token hashes.
type Table = BTreeMap<String, (Account, [u8; 32])>;

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Accounts {
    /// Loads the accounts from `store`; `admin_token` is the node's admin token.
    pub fn load(store: Store, admin_token: &str) -> Result<Accounts> {
        let mut accounts = BTreeMap::new();
        for (name, bytes) in store.users()? {
            let account: Account = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("account {name}: {e}")))?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&account.token_hash, &mut hash)
                .map_err(|_| Error::Corrupt(format!("account {name}: bad token hash")))?;
            accounts.insert(name, (account, hash));
        }
        Ok(Accounts {
            store,
            admin_hash: token_hash(admin_token),
            accounts: Mutex::new(accounts),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// The store the accounts live in (the node's).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The principal a presented token stands for. Every stored hash is compared, in
    /// constant time, whatever matches.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let hash = token_hash(token);
        let mut found = None;
        if bool::from(hash.ct_eq(&self.admin_hash)) {
            found = Some(Principal::Admin);
        }
        let accounts = self.accounts.lock().ok()?;
        for (account, stored) in accounts.values() {
            if bool::from(hash.ct_eq(stored)) {
                found = Some(account.principal());
            }
        }
        found
    }

    /// Every account.
    pub fn list(&self) -> Vec<Account> {
        self.accounts
            .lock()
            .map(|a| a.values().map(|(acc, _)| acc.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes an account; returns its token, which is shown once and never stored.
    pub async fn add(
        &self,
        name: &str,
        grants: BTreeMap<GroupId, Access>,
    ) -> Result<Zeroizing<String>> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        {
            return Err(Error::Invalid(
                "an officer name is 1 to 64 letters, digits, '.', '-' or '_'".into(),
            ));
        }
        if name == "admin" {
            return Err(Error::Invalid(
                "\"admin\" is reserved for the node's operator".into(),
            ));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, secret.as_mut());
        let token = Zeroizing::new(format!("lsn_off_{}", hex::encode(*secret)));
        let hash = token_hash(&token);
        let account = Account {
            name: name.to_owned(),
            token_hash: hex::encode(hash),
            grants: grants.iter().map(|(g, a)| (g.to_string(), *a)).collect(),
            created_at_ms: crate::clock::now().0,
            password_hash: None,
            must_change_password: false,
            totp_secret: None,
            enrolment: None,
            operator: false,
            seen: BTreeMap::new(),
        };
        let _change = self.changes.lock().await;
        if self.exists(name) {
            return Err(Error::Conflict(format!(
                "an officer named {name:?} already exists"
            )));
        }
        self.save(&account).await?;
        self.lock()?.insert(name.to_owned(), (account, hash));
        Ok(token)
    }

    /// Sets the access of `name` to `group`, or removes it with `None`.
    pub async fn set_grant(
        &self,
        name: &str,
        group: GroupId,
        access: Option<Access>,
    ) -> Result<Account> {
        let _change = self.changes.lock().await;
        let (mut account, hash) = self.lock()?.get(name).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "no officer named {name:?}: `liaison user list` shows them"
            ))
        })?;
        match access {
            Some(a) => {
                account.grants.insert(group.to_string(), a);
            }
            None => {
                if account.grants.remove(&group.to_string()).is_none() {
                    return Err(Error::NotFound(format!(
                        "{name} has no grant for that group"
                    )));
                }
            }
        }
        self.save(&account).await?;
        self.lock()?
            .insert(name.to_owned(), (account.clone(), hash));
        Ok(account)
    }

    /// Removes an account.
    pub async fn remove(&self, name: &str) -> Result<()> {
        let _change = self.changes.lock().await;
        if !self.exists(name) {
            return Err(Error::NotFound(format!("no officer named {name:?}")));
        }
        self.store.remove_user(name).await?;
        self.lock()?.remove(name);
        Ok(())
    }

    /// One account.
    pub fn account(&self, name: &str) -> Option<Account> {
        self.accounts
            .lock()
            .ok()
            .and_then(|a| a.get(name).map(|(acc, _)| acc.clone()))
    }

    /// The principal an officer acts as, read afresh (a revoked grant is gone at once).
    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.accounts
            .lock()
            .ok()
            .and_then(|a| a.get(name).map(|(acc, _)| acc.principal()))
    }

    /// Changes one account with `change` and stores it; `change` may refuse with an error,
    /// which changes nothing.
    pub async fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut Account) -> Result<()>,
    ) -> Result<Account> {
        let _change = self.changes.lock().await;
        let (mut account, hash) = self.lock()?.get(name).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "no officer named {name:?}: `liaison user list` shows them"
            ))
        })?;
        change(&mut account)?;
        self.save(&account).await?;
        self.lock()?
            .insert(name.to_owned(), (account.clone(), hash));
        Ok(account)
    }

    /// Sets the web password of `name` (argon2id). `one_time` makes the officer choose a new
    /// one at the next login. Any pending enrolment is withdrawn.
    pub async fn set_password(&self, name: &str, password: &str, one_time: bool) -> Result<()> {
        let hash = hash_password(password).await?;
        self.update(name, |a| {
            a.password_hash = Some(hash);
            a.must_change_password = one_time;
            a.enrolment = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Issues a random one-time password for `name`, shown once: the officer must replace it
    /// at the first login.
    pub async fn issue_password(&self, name: &str) -> Result<Zeroizing<String>> {
        let password = random_code(12);
        self.set_password(name, &password, true).await?;
        Ok(password)
    }

    /// Issues a one-time enrolment code for `name`, valid for [`ENROLMENT_VALIDITY_MS`]: with it
    /// the officer sets a password, once. Only its hash is stored.
    pub async fn issue_enrolment(&self, name: &str) -> Result<Zeroizing<String>> {
        let code = random_code(16);
        let enrolment = Enrolment {
            code_hash: hex::encode(token_hash(&code)),
            expires_at_ms: crate::clock::now().0 + ENROLMENT_VALIDITY_MS,
        };
        self.update(name, |a| {
            a.enrolment = Some(enrolment);
            Ok(())
        })
        .await?;
        Ok(code)
    }

    /// Redeems an enrolment code: sets the password of the account it was issued for and
    /// returns the officer's name. An unknown, used or expired code changes nothing.
    pub async fn enrol(&self, code: &str, password: &str) -> Result<String> {
        check_password_rules(password)?;
        let presented = token_hash(code.trim());
        let now = crate::clock::now().0;
        let mut found = None;
        for (account, _) in self.lock()?.values() {
            if let Some(e) = &account.enrolment {
                let mut stored = [0u8; 32];
                if hex::decode_to_slice(&e.code_hash, &mut stored).is_ok()
                    && bool::from(presented.ct_eq(&stored))
                    && e.expires_at_ms > now
                {
                    found = Some(account.name.clone());
                }
            }
        }
        let name = found.ok_or_else(|| {
            Error::Forbidden("this enrolment code is unknown, used or expired".into())
        })?;
        self.set_password(&name, password, false).await?;
        Ok(name)
    }

    /// Checks `password` against the stored hash of `name`. A name without an account or
    /// without a password costs one hash too and answers `false`.
    pub async fn check_password(&self, name: &str, password: &str) -> Result<bool> {
        let stored = self.account(name).and_then(|a| a.password_hash);
        let password = Zeroizing::new(password.to_owned());
        tokio::task::spawn_blocking(move || {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            let argon = argon2::Argon2::default();
            match stored.as_deref().map(PasswordHash::new) {
                Some(Ok(hash)) => argon.verify_password(password.as_bytes(), &hash).is_ok(),
                _ => {
                    // The same work as a real check, so that timing reveals nothing.
                    let _ = argon2::password_hash::PasswordHasher::hash_password(
                        &argon,
                        password.as_bytes(),
                        &argon2::password_hash::SaltString::generate(&mut rand_core::OsRng),
                    );
                    false
                }
            }
        })
        .await
        .map_err(|e| Error::Invalid(format!("password check failed: {e}")))
    }

    fn exists(&self, name: &str) -> bool {
        self.accounts
            .lock()
            .map(|a| a.contains_key(name))
            .unwrap_or(false)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Table>> {
        self.accounts
            .lock()
            .map_err(|_| Error::Invalid("account table unavailable".into()))
    }

    async fn save(&self, account: &Account) -> Result<()> {
        let bytes = serde_json::to_vec(account).map_err(|e| Error::Invalid(e.to_string()))?;
        self.store.put_user(&account.name, &bytes).await?;
        Ok(())
    }
}

/// Checks the password rules: [`MIN_PASSWORD_LEN`] characters or more, at most
/// [`MAX_PASSWORD_LEN`] bytes.
pub fn check_password_rules(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "a password has at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "a password has at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id on the blocking pool.
async fn hash_password(password: &str) -> Result<String> {
    check_password_rules(password)?;
    let password = Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut rand_core::OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Invalid(format!("cannot hash the password: {e}")))
    })
    .await
    .map_err(|e| Error::Invalid(format!("password hashing failed: {e}")))?
}

/// A random code of `groups` groups of four characters from an alphabet without look-alikes
/// (about 4.9 bits each), e.g. `k7mq-2xrt-…`.
fn random_code(groups: usize) -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut bytes = Zeroizing::new(vec![0u8; groups * 4]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let mut out = Zeroizing::new(String::with_capacity(groups * 5));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        // 256 is not a multiple of 31; the bias (at most 1/256 per character) is harmless for
        // codes of 64 characters or passwords of 48.
        out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let accounts = Accounts::load(store, "admin-token").expect("load");
        accounts.add("ana", BTreeMap::new()).await.expect("add");
        (dir, accounts)
    }

    #[tokio::test]
    async fn password_is_checked_and_stored_as_argon2id() {
        let (_dir, accounts) = accounts().await;
        assert!(!accounts
            .check_password("ana", "anything at all")
            .await
            .expect("check"));
        accounts
            .set_password("ana", "correct horse battery", false)
            .await
            .expect("set");
        let hash = accounts
            .account("ana")
            .and_then(|a| a.password_hash)
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(accounts
            .check_password("ana", "correct horse battery")
            .await
            .expect("check"));
        assert!(!accounts
            .check_password("ana", "correct horse battery!")
            .await
            .expect("check"));
        assert!(!accounts
            .check_password("nobody", "correct horse battery")
            .await
            .expect("check"));
        assert!(accounts.set_password("ana", "short", false).await.is_err());
    }

    #[tokio::test]
    async fn enrolment_code_works_once() {
        let (_dir, accounts) = accounts().await;
        let code = accounts.issue_enrolment("ana").await.expect("issue");
        assert!(accounts
            .enrol("wrong-code", "a long enough password")
            .await
            .is_err());
        let name = accounts
            .enrol(&code, "a long enough password")
            .await
            .expect("enrol");
        assert_eq!(name, "ana");
        assert!(accounts
            .check_password("ana", "a long enough password")
            .await
            .expect("check"));
        assert!(
            accounts
                .enrol(&code, "another long password")
                .await
                .is_err(),
            "used twice"
        );
    }

    #[tokio::test]
    async fn issued_password_must_be_changed() {
        let (_dir, accounts) = accounts().await;
        let password = accounts.issue_password("ana").await.expect("issue");
        assert!(accounts
            .check_password("ana", &password)
            .await
            .expect("check"));
        assert!(accounts.account("ana").expect("ana").must_change_password);
    }
}
