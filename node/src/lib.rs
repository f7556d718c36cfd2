//! # liaison-node
//!
//! The Liaison daemon and the `liaison` command-line tool: configuration, the sled store, the
//! QUIC transport with raw-public-key TLS, the node actor that drives the protocol's sync
//! engine, the local HTTP API, the officers' web workspace, and the CLI that talks to it. `main.rs` only parses arguments,
//! sets up logging and calls [`cli::run`].
#![forbid(unsafe_code)]
#![warn(unreachable_pub, missing_debug_implementations)]

pub mod accounts;
pub mod api;
pub mod api_identity;
pub mod attachments;
pub mod audit;
pub mod authority;
pub mod backup;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod datadir;
pub mod demo;
pub mod error;
pub mod federation;
pub mod metrics;
pub mod names;
pub mod node;
pub mod openapi;
pub mod records;
pub mod restored;
pub mod store;
pub mod transport;
pub mod views;
pub mod web;

pub use error::{Error, Result};
