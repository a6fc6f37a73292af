//! BuildKit's worker list, as `docker buildx inspect` reads it through the
//! docker driver: `moby.buildkit.v1.Control/ListWorkers` over the engine's
//! `POST /grpc` upgraded to h2c. Each worker names the platforms it builds,
//! emulated ones included (BuildKit finds them by running a test binary
//! of each platform). Knows nothing of builds.

use super::wire;
use crate::engine::endpoint::Endpoint;
use bollard::moby::buildkit::v1::control_client::ControlClient;
use bollard::moby::buildkit::v1::ListWorkersRequest;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// HTTP/2 over the upgraded connection, as tonic's client calls a service.
struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// The platforms (`os/arch[/variant]`) the engine's BuildKit workers
/// build, or why they could not be asked (no `/grpc`: an engine without
/// BuildKit, or Podman).
pub async fn platforms(end: &Endpoint, api: &str) -> std::io::Result<Vec<String>> {
    let req = wire::request("POST", &format!("{api}/grpc"));
    let upgraded = wire::upgrade(end, req, "cannot ask BuildKit's workers").await?;
    let (h2, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), upgraded)
            .await
            .map_err(std::io::Error::other)?;
    let driver = tokio::spawn(conn);
    let origin = "http://docker".parse().map_err(std::io::Error::other)?;
    let mut client = ControlClient::with_origin(H2(h2), origin);
    let answer = client.list_workers(ListWorkersRequest::default()).await;
    driver.abort();
    let workers = answer.map_err(std::io::Error::other)?.into_inner().record;
    let mut out: Vec<String> = Vec::new();
    for p in workers.iter().flat_map(|w| &w.platforms) {
        let mut name = format!("{}/{}", p.os, p.architecture);
        if !p.variant.is_empty() {
            name = format!("{name}/{}", p.variant);
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}
