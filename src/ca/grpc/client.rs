//! The client side of `IstioCertificateService`, built from the same proto as
//! the server: connect over TLS (optionally with a client certificate, for
//! renewal), make a P-256 key and CSR, ask for a chain, and write it out in
//! the layout Istio's per-ServiceAccount secrets used (`key.pem`,
//! `cert-chain.pem`, `root-cert.pem`). `outrigger ca request` is a thin
//! wrapper over [`request_certificate`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::proto::IstioCertificateRequest;
use super::proto::istio_certificate_service_client::IstioCertificateServiceClient;

/// Why a certificate could not be obtained or written.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--addr` is not `HOST:PORT`.
    #[error(
        "invalid CA address {addr:?}: expected HOST:PORT (for example istiod.istio-system.svc:15012)"
    )]
    Address {
        /// The address given.
        addr: String,
    },
    /// The TLS settings were refused.
    #[error("cannot set up TLS to the CA")]
    Tls(#[source] tonic::transport::Error),
    /// The connection failed.
    #[error("cannot connect to the CA at {addr}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The token cannot be sent as metadata.
    #[error("the token contains characters that cannot be sent in gRPC metadata")]
    Token,
    /// The CA refused or failed.
    #[error("the CA refused the request: {code:?}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The CA's message.
        message: String,
    },
    /// The CA answered with an empty chain.
    #[error("the CA answered with an empty certificate chain")]
    EmptyChain,
    /// The credentials could not be written.
    #[error("cannot write the credentials")]
    Write(#[source] crate::ca::store::StoreError),
    /// Key or CSR generation failed.
    #[error("cannot generate the key and CSR")]
    Generate(#[source] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {action} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// `read` or `write`.
        action: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where and how to reach the CA.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `HOST:PORT`.
    pub addr: String,
    /// PEM roots that the CA's serving certificate must chain to.
    pub ca_bundle_pem: String,
    /// Name to check in the serving certificate; default: `HOST` of `addr`.
    pub server_name: Option<String>,
    /// Client certificate chain and key (PEM), for renewal by mutual TLS.
    pub client_identity: Option<(String, String)>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field(
                "client_identity",
                &self.client_identity.as_ref().map(|_| "[elided]"),
            )
            .finish_non_exhaustive()
    }
}

/// The generated client over one TLS connection.
pub type CaClient = IstioCertificateServiceClient<Channel>;

fn host_of(addr: &str) -> Option<&str> {
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// Opens one TLS (HTTP/2) connection to the CA.
pub async fn connect(options: &ConnectOptions) -> Result<CaClient, ClientError> {
    let bad_addr = || ClientError::Address {
        addr: options.addr.clone(),
    };
    let host = host_of(&options.addr).ok_or_else(bad_addr)?;
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&options.ca_bundle_pem))
        .domain_name(options.server_name.as_deref().unwrap_or(host));
    if let Some((cert, key)) = &options.client_identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://{}", options.addr))
        .map_err(|_| bad_addr())?
        .tls_config(tls)
        .map_err(ClientError::Tls)?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            addr: options.addr.clone(),
            source,
        })?;
    Ok(IstioCertificateServiceClient::new(channel))
}

/// Sends one `CreateCertificate`; `token` goes in `authorization: Bearer`.
/// Returns the chain, leaf first.
pub async fn create_certificate(
    client: &mut CaClient,
    token: Option<&str>,
    csr_pem: &str,
    ttl: Option<Duration>,
) -> Result<Vec<String>, ClientError> {
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr_pem.to_string(),
        subject_id: String::new(),
        validity_duration: ttl
            .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0),
        metadata: None,
    });
    if let Some(token) = token {
        let value =
            MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| ClientError::Token)?;
        request.metadata_mut().insert("authorization", value);
    }
    let response =
        client
            .create_certificate(request)
            .await
            .map_err(|status| ClientError::Refused {
                code: status.code(),
                message: describe(&status),
            })?;
    let chain = response.into_inner().cert_chain;
    if chain.is_empty() {
        return Err(ClientError::EmptyChain);
    }
    Ok(chain)
}

/// The status message, followed by its causes (a transport failure such as
/// a TLS alert is otherwise only "transport error").
fn describe(status: &tonic::Status) -> String {
    let mut message = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// A fresh P-256 key (PKCS#8 PEM) and a CSR for it (PEM). The CSR carries no
/// names: the CA takes the identity from the caller's credentials.
pub fn generate_key_and_csr() -> Result<(KeyPem, String), ClientError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(ClientError::Generate)?;
    let params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(ClientError::Generate)?;
    let csr = params
        .serialize_request(&key)
        .map_err(ClientError::Generate)?
        .pem()
        .map_err(ClientError::Generate)?;
    Ok((KeyPem(key.serialize_pem()), csr))
}

/// A PEM private key; never shown in `Debug`.
pub struct KeyPem(pub String);

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPem([elided])")
    }
}

/// What `outrigger ca request` does.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// How to reach the CA.
    pub connect: ConnectOptions,
    /// The bearer token (the content of `--token-file`, trimmed).
    pub token: Option<TokenText>,
    /// Requested TTL; `None` for the CA's default.
    pub ttl: Option<Duration>,
    /// Directory receiving `key.pem`, `cert-chain.pem` and `root-cert.pem`.
    pub out_dir: PathBuf,
}

/// A bearer token; never shown in `Debug`.
#[derive(Clone)]
pub struct TokenText(pub String);

impl fmt::Debug for TokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenText([elided])")
    }
}

/// Reads a token file (a projected ServiceAccount token or a static token):
/// surrounding whitespace is dropped, an empty file is an error.
pub fn read_token_file(path: &Path) -> Result<TokenText, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ClientError::Io {
            path: path.to_path_buf(),
            action: "read",
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the token file is empty"),
        });
    }
    Ok(TokenText(token.to_string()))
}

/// The files written by [`request_certificate`].
#[derive(Debug, Clone)]
pub struct Written {
    /// `key.pem` (mode 0600).
    pub key: PathBuf,
    /// `cert-chain.pem`: leaf, then intermediates, then root.
    pub cert_chain: PathBuf,
    /// `root-cert.pem`: the last certificate of the chain.
    pub root_cert: PathBuf,
    /// The number of certificates in the chain.
    pub chain_len: usize,
}

/// Generates a key, asks the CA to sign it, and writes the three files.
/// Files are written to temporaries and renamed, so a failure leaves no
/// half-written output.
pub async fn request_certificate(options: &RequestOptions) -> Result<Written, ClientError> {
    let (key, csr) = generate_key_and_csr()?;
    let mut client = connect(&options.connect).await?;
    let chain = create_certificate(
        &mut client,
        options.token.as_ref().map(|t| t.0.as_str()),
        &csr,
        options.ttl,
    )
    .await?;
    let root = chain.last().ok_or(ClientError::EmptyChain)?.clone();
    let joined: String = chain
        .iter()
        .map(|pem| {
            let mut pem = pem.trim_end().to_string();
            pem.push('\n');
            pem
        })
        .collect();
    let dir = &options.out_dir;
    crate::ca::store::write_credentials(dir, &key.0, &joined, &root).map_err(ClientError::Write)?;
    Ok(Written {
        key: dir.join("key.pem"),
        cert_chain: dir.join("cert-chain.pem"),
        root_cert: dir.join("root-cert.pem"),
        chain_len: chain.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(host_of("localhost:15012"), Some("localhost"));
        assert_eq!(host_of("127.0.0.1:15012"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:15012"), Some("::1"));
        assert_eq!(host_of("localhost"), None);
        assert_eq!(host_of(":15012"), None);
        assert_eq!(host_of("host:port"), None);
    }

    #[test]
    fn csr_is_pem_and_key_is_hidden() {
        let (key, csr) = generate_key_and_csr().unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(key.0.contains("PRIVATE KEY"));
        assert_eq!(format!("{key:?}"), "KeyPem([elided])");
    }
}
