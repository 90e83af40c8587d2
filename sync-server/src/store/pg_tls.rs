//! How relay nodes reach PostgreSQL: the `--store postgres://...` URL parsed
//! into a connection config plus a TLS policy, and the connector that applies
//! it (docs/RELAY.md, "TLS to the database").
//!
//! The URL speaks libpq's words so operators can reuse theirs:
//! `sslmode=disable|allow|prefer` connect in the clear (as libpq's `prefer`
//! would against a server without TLS; Kith never does unverified TLS, which
//! protects nothing against an active attacker), `sslmode=require`,
//! `verify-ca` and `verify-full` connect over TLS 1.3 and always verify the
//! server's certificate chain and its name (the URL's host, an IP address
//! included) — stricter than libpq's `require`, on purpose: the relay sends
//! account tokens and device keys over this connection. `sslrootcert=PATH`
//! names a PEM file of the CA certificates to trust (a private CA); without
//! it the operating system's trust store is used.
//!
//! Data flow: [`DbConfig::parse`] runs once per shard at start (a missing or
//! unreadable CA file fails the start with the path); [`DbConfig::connect`]
//! is called for every new connection (the writer, the read pool, the event
//! publisher and listener), so all of them follow the same policy.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::{Client, NoTls, Socket};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a shard URL's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbTlsError {
    /// `sslmode` has a value libpq does not define.
    #[error("sslmode={0} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    BadSslMode(String),
    /// The `sslrootcert` file cannot be read or holds no certificate.
    #[error("sslrootcert {path}: {reason}")]
    RootCert {
        /// The file named in the URL.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS is required but the OS trust store gave no certificate.
    #[error(
        "sslmode=require but the system trust store has no certificates: name a CA file with sslrootcert=PATH"
    )]
    NoTrustRoots,
    /// The URL (without the TLS parameters) does not parse.
    #[error("{0}")]
    Url(#[source] postgres::Error),
}

/// One shard's connection settings and TLS policy.
#[derive(Clone)]
pub struct DbConfig {
    pg: postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("hosts", &self.pg.get_hosts())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl DbConfig {
    /// Parses a `postgres://` URL (or libpq `key=value` string) with the TLS
    /// parameters described in the module docs.
    pub fn parse(url: &str) -> Result<Self, DbTlsError> {
        let (rest, mode, root) = split_tls_params(url);
        let tls = match mode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => false,
            Some("require" | "verify-ca" | "verify-full") => true,
            Some(other) => return Err(DbTlsError::BadSslMode(other.to_owned())),
        };
        let mut pg: postgres::Config = rest.parse().map_err(DbTlsError::Url)?;
        let tls = if tls {
            pg.ssl_mode(postgres::config::SslMode::Require);
            Some(Arc::new(client_config(root)?))
        } else {
            pg.ssl_mode(postgres::config::SslMode::Disable);
            None
        };
        Ok(Self { pg, tls })
    }

    /// The connection settings (timeouts and names are set through this).
    pub fn pg_mut(&mut self) -> &mut postgres::Config {
        &mut self.pg
    }

    /// Whether connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens one connection under this policy.
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            None => self.pg.connect(NoTls),
            Some(c) => self.pg.connect(MakeRustls(c.clone())),
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query (or a libpq
/// `key=value` string): the client library would refuse the second and
/// knows only three of the six `sslmode` values. Percent-encoding in the
/// path is decoded.
fn split_tls_params(url: &str) -> (String, Option<String>, Option<PathBuf>) {
    let (mut mode, mut root) = (None, None);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None, None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(percent_decode(v)),
                Some(("sslrootcert", v)) => root = Some(PathBuf::from(percent_decode(v))),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, mode, root);
    }
    // key=value form: values may be quoted; TLS values never need quotes.
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.trim_matches('\'').to_owned()),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v.trim_matches('\''))),
            _ => kept.push(word),
        }
    }
    (kept.join(" "), mode, root)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn client_config(root: Option<PathBuf>) -> Result<rustls::ClientConfig, DbTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            let bad = |reason: String| DbTlsError::RootCert {
                path: path.clone(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(DbTlsError::NoTrustRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| DbTlsError::RootCert {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// `MakeTlsConnect` over tokio-rustls for the `postgres` client.
#[derive(Clone)]
struct MakeRustls(Arc<rustls::ClientConfig>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.0.clone()),
            name,
        })
    }
}

struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let s = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(s)))
        })
    }
}

/// The TLS stream (boxed: the rustls connection state is large).
struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM channel binding (`-PLUS`) is not offered; authentication
        // still runs inside the verified TLS session.
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_the_rest_kept() {
        let (rest, mode, root) = split_tls_params(
            "postgres://kith@db:5432/kith?sslmode=verify-full&sslrootcert=%2Fetc%2Fkith%2Fca.pem&target_session_attrs=read-write",
        );
        assert_eq!(
            rest,
            "postgres://kith@db:5432/kith?target_session_attrs=read-write"
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root, Some(PathBuf::from("/etc/kith/ca.pem")));
        let (rest, mode, root) = split_tls_params("postgres://kith@db/kith?sslmode=require");
        assert_eq!(rest, "postgres://kith@db/kith");
        assert_eq!((mode.as_deref(), root), (Some("require"), None));
        let (rest, mode, _) =
            split_tls_params("host=db user=kith sslmode=require sslrootcert=/ca.pem");
        assert_eq!(rest, "host=db user=kith");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(
            split_tls_params("postgres://db/kith").0,
            "postgres://db/kith"
        );
    }

    #[test]
    fn plain_modes_connect_in_the_clear_and_unknown_modes_are_refused() {
        for m in ["disable", "allow", "prefer"] {
            let c = DbConfig::parse(&format!("postgres://db/kith?sslmode={m}")).unwrap();
            assert!(!c.uses_tls(), "{m}");
        }
        assert!(!DbConfig::parse("postgres://db/kith").unwrap().uses_tls());
        let e = DbConfig::parse("postgres://db/kith?sslmode=sometimes").unwrap_err();
        assert!(e.to_string().contains("sslmode=sometimes"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_fails_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = DbConfig::parse(&format!(
            "postgres://db/kith?sslmode=require&sslrootcert={}",
            missing.display()
        ))
        .unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = DbConfig::parse(&format!(
            "postgres://db/kith?sslmode=require&sslrootcert={}",
            empty.display()
        ))
        .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
