//! Officer accounts: who may see and post in which group on this node.
//!
//! Group membership decides which *nodes* receive a group; grants decide which *officers* of a
//! node see it. A token is shown once when the account is made; only its BLAKE3 hash is stored,
//! and presented tokens are compared against every account's hash in constant time.

use std::collections::BTreeMap;
use std::sync::Mutex;

use liaison_protocol::GroupId;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::Store;

/// What an officer may do in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
}

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
            created_at_ms: crate::node::now().0,
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
