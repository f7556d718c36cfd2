//! The workspace's HTTPS: the organisation's certificate and key from the config, or a
//! self-signed certificate made once and kept in `DATA/web-tls/` (so that its fingerprint,
//! which officers compare when their browser first warns, stays the same across restarts).
//!
//! TLS 1.3 and 1.2 with rustls and ring, as the rest of the node.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

use crate::config::WebConfig;
use crate::error::{Error, Result};

/// The certificate the workspace serves.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:…`.
    pub fingerprint: String,
    /// Whether it was generated here (self-signed) rather than given by the operator.
    pub self_signed: bool,
}

/// Loads the configured certificate, or the self-signed one in `tls_dir` (made on first use
/// for the names `localhost`, the node's name and the listen address).
pub fn load(web: &WebConfig, tls_dir: &Path, node_name: &str) -> Result<Tls> {
    let (cert_path, key_path, self_signed) = match (&web.tls_cert, &web.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let (c, k) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                generate(tls_dir, &c, &k, web, node_name)?;
            }
            (c, k, true)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(&cert_path, &e))?;
    let leaf = certs.first().ok_or_else(|| {
        Error::Invalid(format!(
            "{} holds no certificate (web.tls_cert)",
            cert_path.display()
        ))
    })?;
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_error(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS set-up: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Invalid(format!(
                "the web certificate {} and key {} do not fit together: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
        self_signed,
    })
}

fn pem_error(path: &Path, e: &rustls::pki_types::pem::Error) -> Error {
    Error::Invalid(format!("cannot read {} as PEM: {e}", path.display()))
}

/// SHA-256 of a certificate, as `AB:CD:…`, the form browsers show.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn generate(dir: &Path, cert: &Path, key: &Path, web: &WebConfig, name: &str) -> Result<()> {
    let mut names = vec!["localhost".to_owned(), name.to_owned()];
    if !web.listen.ip().is_unspecified() {
        names.push(web.listen.ip().to_string());
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Invalid(format!("cannot make a self-signed certificate: {e}")))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    write_private(key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, made.cert.pem())
        .map_err(|e| Error::io(format!("cannot write {}", cert.display()), e))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let web = WebConfig {
            listen: "0.0.0.0:0".parse().expect("addr"),
            ..WebConfig::default()
        };
        let first = load(&web, dir.path(), "customs-nl").expect("generate");
        assert!(first.self_signed);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = load(&web, dir.path(), "customs-nl").expect("reload");
        assert_eq!(first.fingerprint, again.fingerprint);
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).expect("a");
        let b = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).expect("b");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, a.cert.pem()).expect("write");
        std::fs::write(&key, b.key_pair.serialize_pem()).expect("write");
        let web = WebConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..WebConfig::default()
        };
        let err = load(&web, dir.path(), "x").expect_err("mismatch");
        assert!(err.to_string().contains("do not fit together"), "{err}");
    }
}
