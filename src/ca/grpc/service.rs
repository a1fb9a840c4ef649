//! The `CreateCertificate` handler: authenticate the caller, check what it
//! asks for, sign, and turn every refusal into the gRPC status Istio's
//! clients expect (Unauthenticated, PermissionDenied, InvalidArgument,
//! Internal) with a message that says what was wrong.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::auth::{AuthChain, Credentials};
use super::metrics::{CaMetrics, RequestResult};
use super::proto::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use super::proto::{IstioCertificateRequest, IstioCertificateResponse};
use super::signer::{CertificateSigner, SignErrorKind};

/// The `IstioCertificateService` implementation.
#[derive(Clone)]
pub struct CaService {
    signer: Arc<dyn CertificateSigner>,
    auth: AuthChain,
    metrics: CaMetrics,
}

impl fmt::Debug for CaService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaService")
            .field("trust_domain", &self.signer.trust_domain())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Reads the bearer token from the `authorization` metadata.
fn bearer_token<T>(request: &Request<T>) -> Result<Option<String>, Status> {
    let Some(value) = request.metadata().get("authorization") else {
        return Ok(None);
    };
    let malformed = || {
        Status::unauthenticated(
            "malformed authorization metadata: expected `Bearer <service-account token>`",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token.to_string()))
}

impl CaService {
    /// A service signing with `signer` for callers `auth` accepts.
    pub fn new(signer: Arc<dyn CertificateSigner>, auth: AuthChain, metrics: CaMetrics) -> Self {
        metrics.set_expiries(signer.root_expiry_unix(), signer.chain_expiry_unix());
        Self {
            signer,
            auth,
            metrics,
        }
    }

    /// The tonic service to mount on a server.
    pub fn into_server(self) -> IstioCertificateServiceServer<Self> {
        IstioCertificateServiceServer::new(self)
    }

    async fn handle(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<IstioCertificateResponse, (Status, RequestResult)> {
        let unauthenticated = |s: Status| (s, RequestResult::Unauthenticated);
        let credentials = Credentials {
            bearer_token: bearer_token(&request).map_err(|s| {
                self.metrics.auth_failure("malformed");
                unauthenticated(s)
            })?,
            peer_certificates: request.peer_certs(),
        };
        let peer = request.remote_addr();
        let (caller, via) = match self.auth.authenticate(&credentials).await {
            Ok(ok) => ok,
            Err(err) => {
                self.metrics.auth_failure(err.reason());
                warn!(peer = ?peer, reason = err.reason(), error = %err, "caller refused");
                if err.is_backend_failure() {
                    return Err((Status::internal(err.to_string()), RequestResult::Internal));
                }
                return Err(unauthenticated(Status::unauthenticated(err.to_string())));
            }
        };

        let message = request.into_inner();
        let identity = self.signer.spiffe_uri(&caller).map_err(|e| {
            (
                Status::invalid_argument(e.message),
                RequestResult::InvalidArgument,
            )
        })?;
        if !message.subject_id.is_empty() && message.subject_id != identity {
            return Err((
                Status::permission_denied(format!(
                    "subject_id {:?} is not the caller's identity {identity}",
                    message.subject_id
                )),
                RequestResult::PermissionDenied,
            ));
        }
        if message.csr.trim().is_empty() {
            return Err((
                Status::invalid_argument(
                    "csr is empty: expected a PEM PKCS#10 request (BEGIN CERTIFICATE REQUEST)",
                ),
                RequestResult::InvalidArgument,
            ));
        }
        let ttl = u64::try_from(message.validity_duration)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs);

        let started = Instant::now();
        let signed = self.signer.sign(message.csr.as_bytes(), &caller, ttl);
        self.metrics.signing(started.elapsed());
        match signed {
            Ok(cert_chain) => {
                info!(identity = %identity, via, ttl_seconds = ttl.map(|t| t.as_secs()), "certificate issued");
                Ok(IstioCertificateResponse { cert_chain })
            }
            Err(err) => {
                warn!(identity = %identity, via, error = %err, "signing refused");
                Err(match err.kind {
                    SignErrorKind::InvalidArgument => (
                        Status::invalid_argument(err.message),
                        RequestResult::InvalidArgument,
                    ),
                    SignErrorKind::PermissionDenied => (
                        Status::permission_denied(err.message),
                        RequestResult::PermissionDenied,
                    ),
                    SignErrorKind::Internal => {
                        (Status::internal(err.message), RequestResult::Internal)
                    }
                })
            }
        }
    }
}

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        match self.handle(request).await {
            Ok(response) => {
                self.metrics.request(RequestResult::Ok);
                Ok(Response::new(response))
            }
            Err((status, result)) => {
                self.metrics.request(result);
                Err(status)
            }
        }
    }
}

#[cfg(test)]
mod tests;
