//! TLS for the syslog (RFC 5425) and HTTPS sinks, with rustls: the receiver's certificate is
//! checked against a CA file (default: the system's bundle) and its name or IP address; a
//! client certificate is sent when one is configured.
use std::{
    io::{self, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _},
};

/// The system's CA bundle on Debian (package ca-certificates).
pub const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a sink's TLS needs, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA certificates (default [`SYSTEM_CAS`]).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for receivers that require one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The name the receiver's certificate must carry (default: the host of the address).
    pub server_name: Option<String>,
}

/// A client ready to connect.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

impl Tls {
    /// Reads the files and checks them; `host` is the receiver's host (name or IP).
    pub fn new(files: &TlsFiles, host: &str) -> Result<Self, String> {
        let ca = files
            .ca_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_CAS));
        let mut roots = RootCertStore::empty();
        for c in certs(&ca)? {
            roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match (&files.client_cert, &files.client_key) {
            (Some(cert), Some(key)) => {
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(certs(cert)?, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("client_cert and client_key go together".into()),
        };
        let name = files.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("server name \"{name}\": {e}"))?;
        Ok(Self {
            config: Arc::new(config),
            name,
        })
    }

    /// Wraps a connected socket; the handshake happens with the first write and is completed
    /// here, so a certificate error is reported as the connection's error.
    pub fn wrap(&self, tcp: TcpStream) -> io::Result<Stream> {
        let conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Stream::Tls(Box::new(s)))
    }
}

/// A connection to a receiver, in clear or over TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}
