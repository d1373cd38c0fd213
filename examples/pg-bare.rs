//! The floor `bench/startup` measures unlatch's start-up against: one bare
//! PostgreSQL connection made by a process of its own, with no client
//! library. It opens a TCP connection, sends the startup message, reads to
//! ReadyForQuery, says Terminate and exits. With `sslmode=require` it first
//! sends SSLRequest and does a rustls handshake (ring, as unlatch's sqlx
//! uses), which checks the server's handshake signature but not its
//! certificate, as libpq's and sqlx's `require` do.
//!
//! Only trust authentication is spoken (the bench's servers use it); a
//! server asking for a password is an error, so a floor is never measured
//! on a half-made connection.
//!
//! rustls comes with its ring provider through sqlx's tls-rustls-ring
//! feature, which unlatch itself is built with.
//!
//! Usage: pg-bare postgres://user@host:port/db[?sslmode=require]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn main() -> anyhow::Result<()> {
    let arg = std::env::args()
        .nth(1)
        .context("usage: pg-bare postgres://user@host:port/db[?sslmode=require]")?;
    let url = url::Url::parse(&arg).context("the URL")?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let user = url.username();
    let user = if user.is_empty() { "postgres" } else { user };
    let database = url.path().trim_start_matches('/');
    let tls = match url.query_pairs().find(|(k, _)| k == "sslmode") {
        None => false,
        Some((_, mode)) if mode == "disable" => false,
        Some((_, mode)) if mode == "require" => true,
        Some((_, mode)) => bail!("sslmode={mode}: only disable and require are spoken here"),
    };
    let tcp = TcpStream::connect((host.as_str(), url.port().unwrap_or(5432)))?;
    tcp.set_nodelay(true)?;
    if tls {
        let mut tcp = tcp;
        // SSLRequest: length 8, code 80877103; the server answers one byte.
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
        let mut answer = [0u8];
        tcp.read_exact(&mut answer)?;
        if answer[0] != b'S' {
            bail!("the server refused TLS");
        }
        let mut stream = rustls::StreamOwned::new(tls_client(&host)?, tcp);
        session(&mut stream, user, database)?;
        stream.conn.send_close_notify();
        stream.flush()?;
    } else {
        let mut tcp = tcp;
        session(&mut tcp, user, database)?;
    }
    Ok(())
}

/// Startup message to ReadyForQuery, then Terminate.
fn session(stream: &mut impl ReadWrite, user: &str, database: &str) -> anyhow::Result<()> {
    let mut body = 196608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        for part in [key, value] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    stream.write_all(&message)?;
    stream.flush()?;
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head)?;
        let size = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; size.saturating_sub(4)];
        stream.read_exact(&mut payload)?;
        match head[0] {
            b'R' if payload[..4] != [0, 0, 0, 0] => {
                bail!("the server asks for a password; pg-bare speaks trust only")
            }
            b'E' => bail!(
                "the server refused: {}",
                String::from_utf8_lossy(&payload).replace('\0', " ")
            ),
            b'Z' => break,
            _ => {}
        }
    }
    stream.write_all(&[b'X', 0, 0, 0, 4])?;
    stream.flush()?;
    Ok(())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tls_client(host: &str) -> anyhow::Result<rustls::ClientConnection> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SignatureOnly(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())?;
    Ok(rustls::ClientConnection::new(Arc::new(config), name)?)
}

/// `sslmode=require`: the certificate is not checked, the handshake's
/// signature is.
#[derive(Debug)]
struct SignatureOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
