//! The CLI's HTTP client for a running node's API.

use std::sync::Arc;
use std::time::Duration;

use liaison_protocol::NodeId;
use rand_core::RngCore;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::views::ErrorBody;

/// A client bound to one node's API address and token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    /// The node the data directory names: the process at `base` must prove to be it before
    /// the token is sent ([`crate::api_identity`]). None for a client given an address.
    expect: Option<NodeId>,
    /// Whether that proof was given, once.
    proven: Arc<tokio::sync::OnceCell<()>>,
}

impl Client {
    /// A client for the node in `dir`: the API address from the running node's runtime file
    /// (or the config), the token from `token` or the data dir's admin token.
    pub fn for_data_dir(dir: &DataDir, token: Option<String>) -> Result<Client> {
        let config = dir.config()?;
        let api = dir.runtime().map_or(config.api, |r| r.api);
        let token = match token {
            Some(t) => t,
            None => dir.admin_token()?.to_string(),
        };
        let mut client = Client::new(&format!("http://{api}"), token)?;
        client.expect = Some(dir.node_id()?);
        Ok(client)
    }

    /// A client for the API at `base` (`http://HOST:PORT`).
    pub fn new(base: &str, token: String) -> Result<Client> {
        let http = builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
            expect: None,
            proven: Arc::default(),
        })
    }

    /// The node's API address (`http://HOST:PORT`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST path` with a JSON body, for work that may outlast the usual timeout (a backup
    /// of a large store): waits up to an hour.
    pub async fn post_slow<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let req = self
            .http
            .post(self.url(path))
            .timeout(Duration::from_secs(3600))
            .json(body);
        self.send(req).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// `POST path` with raw bytes (an attachment upload).
    pub async fn post_bytes<T: DeserializeOwned>(&self, path: &str, bytes: Vec<u8>) -> Result<T> {
        let req = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.send(req).await
    }

    /// `GET path` answered with raw bytes: the bytes and their media type.
    pub async fn get_bytes(&self, path: &str) -> Result<(Vec<u8>, String)> {
        let (bytes, media_type) = self.exchange(self.http.get(self.url(path))).await?;
        Ok((bytes, media_type))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let (bytes, _) = self.exchange(req).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("unexpected answer from the node: {e}")))
    }

    /// Makes the process at the API address prove it is the expected node, once, before any
    /// token leaves ([`crate::api_identity`]).
    async fn authenticate_node(&self) -> Result<()> {
        let Some(expected) = self.expect else {
            return Ok(());
        };
        self.proven
            .get_or_try_init(|| async {
                let mut challenge = [0u8; 32];
                rand_core::OsRng.fill_bytes(&mut challenge);
                let url = format!(
                    "{}?challenge={}",
                    self.url("/v1/identity"),
                    hex::encode(challenge)
                );
                let resp = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| self.unreachable(&e))?;
                let proof = if resp.status().is_success() {
                    resp.json::<crate::api_identity::Proof>().await.ok()
                } else {
                    None
                };
                let proof = proof.unwrap_or(crate::api_identity::Proof {
                    node_id: String::new(),
                    signature: String::new(),
                });
                crate::api_identity::check(&expected, &challenge, &proof)
            })
            .await
            .map(|_| ())
    }

    /// The error for a request that reached no node.
    fn unreachable(&self, e: &reqwest::Error) -> Error {
        if e.is_connect() {
            Error::NotRunning(format!(
                "the node is not running (nothing answers at {}): start it with `liaison run`",
                self.base
            ))
        } else {
            Error::Invalid(format!("request to the node failed: {e}"))
        }
    }

    /// Sends `req`; the answer's bytes and media type, or its error.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(Vec<u8>, String)> {
        self.authenticate_node().await?;
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let media_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Invalid(format!("reading the node's answer failed: {e}")))?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        Ok((bytes.to_vec(), media_type))
    }
}

/// The error an answer that is not a success stands for (see [`crate::error::ANSWERS`]): the
/// node's message from its JSON error body, or the body as text.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> Error {
    let (message, fields) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error, b.fields),
        Err(_) => (String::from_utf8_lossy(body).into_owned(), Vec::new()),
    };
    Error::from_status(status.as_u16(), message, fields)
}

/// A stream of server-sent events (only `message` events are passed on).
#[derive(Debug)]
pub struct Events {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Events {
    /// The data of the next `message` event; `None` when the node closes the stream (it
    /// stopped); an error when the node ends it with a reason (an `end` event).
    pub async fn next(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let mut event = "message";
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = match e.trim() {
                            "message" => "message",
                            "end" => "end",
                            _ => "other",
                        };
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                match event {
                    "message" if !data.is_empty() => return Ok(Some(data)),
                    // The node ended the stream, and says why (access revoked, say).
                    "end" => {
                        return Err(Error::Forbidden(format!(
                            "the node ended the stream: {data}"
                        )))
                    }
                    _ => continue,
                }
            }
            match self
                .resp
                .chunk()
                .await
                .map_err(|e| Error::Invalid(format!("the event stream broke: {e}")))?
            {
                Some(chunk) => {
                    if self.buf.len() + chunk.len() > 4 * 1024 * 1024 {
                        return Err(Error::Invalid("event larger than 4 MiB".into()));
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                None => return Ok(None),
            }
        }
    }
}

/// The HTTP client of the CLI: never through a proxy. The CLI speaks to its own node and
/// carries the admin token; `HTTP_PROXY` and friends would hand that token to the proxy.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy()
}

impl Client {
    /// Opens a server-sent event stream at `path`.
    pub async fn events(&self, path: &str) -> Result<Events> {
        Ok(Events {
            resp: self.open(path).await?,
            buf: Vec::new(),
        })
    }

    /// Opens an answer at `path` to read a line at a time (the audit log's).
    pub async fn lines(&self, path: &str) -> Result<Lines> {
        Ok(Lines {
            resp: self.open(path).await?,
            buf: Vec::new(),
        })
    }

    /// `GET path`, its answer not read yet.
    async fn open(&self, path: &str) -> Result<reqwest::Response> {
        self.authenticate_node().await?;
        let resp = builder()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))?
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(refusal(status, &bytes));
        }
        Ok(resp)
    }
}

/// An answer read a line at a time, each line at most [`Lines::MAX_LINE`] bytes.
#[derive(Debug)]
pub struct Lines {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    /// The longest line taken.
    pub const MAX_LINE: usize = 1024 * 1024;

    /// The next line (without its end); `None` at the end of the answer.
    pub async fn next(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..end]).into_owned()));
            }
            match self
                .resp
                .chunk()
                .await
                .map_err(|e| Error::Invalid(format!("the node's answer broke off: {e}")))?
            {
                Some(chunk) => {
                    if self.buf.len() + chunk.len() > Self::MAX_LINE {
                        return Err(Error::Invalid("a line of the answer is over 1 MiB".into()));
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
                }
            }
        }
    }
}

/// Percent-encodes a path segment (group and peer names may hold spaces).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
