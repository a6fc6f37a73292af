//! Raw HTTP to the engine, for the two calls bollard cannot make with our
//! own BuildKit session: the session itself (`POST /session`, upgraded to
//! h2c, on which the engine calls us back) and the build that uses it
//! (`POST /build?remote=client-session`). Same endpoint, same TLS material
//! as the bollard connection. Knows nothing of builds.

use crate::engine::endpoint::Endpoint;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream to the engine: a Unix socket, TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The engine at `end`, reached as bollard reaches it.
pub async fn open(end: &Endpoint) -> io::Result<Box<dyn Io>> {
    let host = end.host.as_str();
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(Box::new(tokio::net::UnixStream::connect(path).await?));
    }
    let addr = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|p| host.strip_prefix(p))
        .unwrap_or(host)
        .trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match &end.tls {
        None => Ok(Box::new(tcp)),
        Some(dir) => Ok(Box::new(tls(dir, addr, tcp).await?)),
    }
}

async fn tls(
    dir: &std::path::Path,
    addr: &str,
    tcp: tokio::net::TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::other(format!("{what} in `{}`: {e}", dir.display()))
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).map_err(|e| bad("ca.pem", &e))? {
        roots
            .add(cert.map_err(|e| bad("ca.pem", &e))?)
            .map_err(|e| bad("ca.pem", &e))?;
    }
    let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .map_err(|e| bad("cert.pem", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("cert.pem", &e))?;
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).map_err(|e| bad("key.pem", &e))?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("cert.pem/key.pem", &e))?;
    let name = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_string()).map_err(|e| bad("the host name", &e))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// An HTTP/1.1 connection to the engine, driven in the background.
pub async fn connect(
    end: &Endpoint,
) -> io::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = open(end).await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn.with_upgrades());
    Ok(send)
}

/// `req` (an `Upgrade: h2c` request) sent on a new connection to the
/// engine at `end`, and the connection it upgrades; `what` names the call
/// in the error when the engine refuses.
pub async fn upgrade(
    end: &Endpoint,
    req: http::request::Builder,
    what: &str,
) -> io::Result<hyper::upgrade::Upgraded> {
    let mut send = connect(end).await?;
    let req = (req.header(http::header::CONNECTION, "Upgrade"))
        .header(http::header::UPGRADE, "h2c")
        .body(Empty::new())
        .map_err(io::Error::other)?;
    let res = send.send_request(req).await.map_err(io::Error::other)?;
    if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(io::Error::other(format!("{what}: {}", refusal(res).await)));
    }
    hyper::upgrade::on(res).await.map_err(io::Error::other)
}

/// A request to the engine's API at `path` (with its version prefix).
pub fn request(method: &str, path: &str) -> http::request::Builder {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "docker")
}

/// What the engine said when it refused a call: its `message`, else the body.
pub async fn refusal(res: hyper::Response<hyper::body::Incoming>) -> String {
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    format!("the engine answered {status}: {message}")
}

/// `key=value&…`, percent-encoded.
pub fn query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                crate::util::url::encode(k),
                crate::util::url::encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// An upgraded connection, as tonic's server takes one.
pub struct Upgraded(pub TokioIo<hyper::upgrade::Upgraded>);

impl tonic::transport::server::Connected for Upgraded {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_is_percent_encoded() {
        let q = super::query(&[
            ("buildargs", r#"{"A":"b c"}"#.into()),
            ("t", "x/y:1".into()),
        ]);
        assert_eq!(q, "buildargs=%7B%22A%22%3A%22b%20c%22%7D&t=x%2Fy%3A1");
    }
}
