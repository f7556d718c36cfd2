//! The typed door into a running node: a [`Scoped`] handle acts for one principal, so every
//! request names who makes it. There is no way to reach the node's commands without choosing
//! a principal first: an officer's request runs with that officer's grants, and running as
//! the node's operator is spelled out ([`NodeHandle::as_admin`]).
//!
//! The typed methods live beside what they ask for: queries with the read model, commands
//! that change the node with the command contract.

use tokio::sync::oneshot;

use super::command::{Command, NodeHandle};
use crate::accounts::Principal;
use crate::error::Result;

/// A handle to a running node that acts for one principal (see the module docs). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Scoped {
    handle: NodeHandle,
    who: Principal,
}

impl NodeHandle {
    /// A handle that acts for `who`: an officer sees and changes only what its grants allow.
    pub fn as_officer(&self, who: Principal) -> Scoped {
        Scoped {
            handle: self.clone(),
            who,
        }
    }

    /// A handle that acts as the node's operator: every group, every command.
    pub fn as_admin(&self) -> Scoped {
        self.as_officer(Principal::Admin)
    }
}

impl Scoped {
    /// Who this handle acts for.
    pub fn principal(&self) -> &Principal {
        &self.who
    }

    /// The unscoped handle this one was made from.
    pub fn node(&self) -> &NodeHandle {
        &self.handle
    }

    /// Sends a command as this handle's principal and waits for the answer.
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T> {
        let who = self.who.clone();
        self.handle
            .ask(|reply| Command::As(who, Box::new(make(reply))))
            .await
    }
}
