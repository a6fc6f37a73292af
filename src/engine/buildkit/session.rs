//! Our side of a BuildKit session: the services the engine calls back on
//! while it builds, served over the upgraded `/session` connection. The
//! build's folders (filesync), the credentials of the registries its `FROM`
//! lines name, its secrets (read when asked, never kept), and the SSH agents
//! it may forward. Knows nothing of the build's progress.

use super::filesync;
use super::wire;
use crate::engine::endpoint::Endpoint;
use crate::engine::{Secret, SecretSource, SshAgent};
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard::moby::filesync::v1::file_sync_server::FileSyncServer;
use bollard::moby::filesync::v1::*;
use bollard::moby::sshforward::v1::ssh_server::{Ssh, SshServer};
use bollard::moby::sshforward::v1::{BytesMessage, CheckAgentRequest, CheckAgentResponse};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

/// What one build's session offers.
pub struct Offer {
    pub folders: filesync::Folders,
    /// Registry host → (user, secret).
    pub credentials: HashMap<String, (String, String)>,
    pub secrets: Vec<Secret>,
    pub ssh: Vec<SshAgent>,
}

/// A running session; dropping it ends it.
pub struct Open(tokio::task::JoinHandle<()>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Open session `id` on the engine at `end` and serve `offer` on it.
/// `key` names what the engine may keep of its folders between builds.
pub async fn open(
    end: &Endpoint,
    api: &str,
    id: &str,
    key: &str,
    offer: Offer,
) -> std::io::Result<Open> {
    let methods = [
        "/grpc.health.v1.Health/Check".to_string(),
        format!("/{}/DiffCopy", FileSyncServer::<filesync::Service>::NAME),
        format!("/{}/TarStream", FileSyncServer::<filesync::Service>::NAME),
        format!("/{}/Credentials", AuthServer::<Credentials>::NAME),
        format!("/{}/GetSecret", SecretsServer::<SecretStore>::NAME),
        format!("/{}/CheckAgent", SshServer::<Agents>::NAME),
        format!("/{}/ForwardAgent", SshServer::<Agents>::NAME),
    ];
    let mut req = wire::request("POST", &format!("{api}/session"))
        .header("X-Docker-Expose-Session-Uuid", id)
        .header("X-Docker-Expose-Session-Name", "strata")
        .header("X-Docker-Expose-Session-Sharedkey", key);
    for m in &methods {
        req = req.header("X-Docker-Expose-Session-Grpc-Method", m);
    }
    let upgraded = wire::upgrade(end, req, "cannot open a BuildKit session").await?;
    let io = wire::Upgraded(hyper_util::rt::TokioIo::new(upgraded));
    let big = 16 << 20;
    let router = tonic::transport::Server::builder()
        .add_service(HealthServer::new(Healthy))
        .add_service(
            FileSyncServer::new(filesync::Service(Arc::new(offer.folders)))
                .max_decoding_message_size(big)
                .max_encoding_message_size(big),
        )
        .add_service(AuthServer::new(Credentials(offer.credentials)))
        .add_service(SecretsServer::new(SecretStore(offer.secrets)))
        .add_service(SshServer::new(Agents(offer.ssh)));
    let incoming = futures_util::stream::iter([Ok::<_, std::io::Error>(io)]);
    Ok(Open(tokio::spawn(async move {
        let _ = router.serve_with_incoming(incoming).await;
    })))
}

struct Healthy;

type Boxed<T> = Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Health for Healthy {
    type WatchStream = Boxed<HealthCheckResponse>;

    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: bollard::health::health_check_response::ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Registry credentials by host; the engine fetches its own tokens with them.
struct Credentials(HashMap<String, (String, String)>);

#[tonic::async_trait]
impl Auth for Credentials {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let (username, secret) = self
            .0
            .get(&request.get_ref().host)
            .cloned()
            .unwrap_or_default();
        Ok(Response::new(CredentialsResponse { username, secret }))
    }

    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("the engine fetches tokens itself"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }
}

/// Secrets by id, read from their file or variable when the step asks.
struct SecretStore(Vec<Secret>);

/// BuildKit's own limit on a secret's size.
const MAX_SECRET: u64 = 500 * 1024;

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        let Some(secret) = self.0.iter().find(|s| &s.id == id) else {
            return Err(Status::not_found(format!(
                "no secret `{id}` was given to this build"
            )));
        };
        let data = match &secret.source {
            SecretSource::File(path) => {
                let len = tokio::fs::metadata(path)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                if len > MAX_SECRET {
                    return Err(Status::failed_precondition(format!(
                        "secret `{id}` is {len} bytes; BuildKit takes at most {MAX_SECRET}"
                    )));
                }
                tokio::fs::read(path)
                    .await
                    .map_err(|e| Status::failed_precondition(format!("secret `{id}`: {e}")))?
            }
            SecretSource::Env(var) => std::env::var_os(var)
                .ok_or_else(|| {
                    Status::failed_precondition(format!("secret `{id}`: `{var}` is not set"))
                })?
                .into_encoded_bytes(),
        };
        Ok(Response::new(GetSecretResponse { data }))
    }
}

/// SSH agents by id, each a socket the step's `--mount=type=ssh` reaches.
struct Agents(Vec<SshAgent>);

/// The metadata key BuildKit names the agent by.
const SSH_ID: &str = "buildkit.ssh.id";

impl Agents {
    fn socket(&self, id: &str) -> Result<std::path::PathBuf, Status> {
        let id = if id.is_empty() { "default" } else { id };
        self.0
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.socket.clone())
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no SSH agent `{id}` was given to this build (--ssh)"
                ))
            })
    }
}

#[tonic::async_trait]
impl Ssh for Agents {
    type ForwardAgentStream = Boxed<BytesMessage>;

    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        self.socket(&request.get_ref().id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = request
            .metadata()
            .get(SSH_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let socket = self.socket(&id)?;
        let conn = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| Status::unavailable(format!("SSH agent `{id}`: {e}")))?;
        let (mut read, mut write) = conn.into_split();
        let mut incoming = request.into_inner();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(Ok(msg)) = incoming.next().await {
                if write.write_all(&msg.data).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        let out = async_stream_of(move |tx| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0; 32 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let msg = BytesMessage {
                            data: buf[..n].to_vec(),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Response::new(out))
    }
}

/// A stream fed by a task.
fn async_stream_of<T, F, Fut>(f: F) -> Boxed<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
