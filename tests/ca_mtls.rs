//! A real mutual-TLS handshake (rustls, over loopback TCP) between two
//! workloads holding CA-issued certificates. The server requires a client
//! certificate; each side checks the other's chain against the mesh root and
//! the other's SPIFFE ID, the way Istio proxies authenticate each other.
//! A certificate from a different CA, or the wrong identity, fails.

#[path = "support/requires.rs"]
mod requires;

#[path = "testdata/ca/support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use outrigger::ca::{self, CertificateAuthority, IssuedCertificate, RootOptions, SpiffeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(root_pem: &str) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        store.add(cert.unwrap()).unwrap();
    }
    Arc::new(store)
}

/// The certificate chain to present (leaf + intermediates; the root is the
/// peer's own trust anchor) and the private key.
fn identity(issued: &IssuedCertificate) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let certs = issued.chain.certs();
    let presented = certs[..certs.len() - 1]
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(issued.key.expose().as_bytes()).unwrap();
    (presented, key)
}

/// Checks that the certificate's only URI SAN is `expected`.
fn check_spiffe(cert: &CertificateDer<'_>, expected: &SpiffeId) -> Result<(), Error> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| Error::General(format!("peer certificate: {e}")))?;
    let uris: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if uris == [expected.uri()] {
        Ok(())
    } else {
        Err(Error::General(format!(
            "peer identity {uris:?} is not the expected {expected}"
        )))
    }
}

/// Client side: chain to the mesh root + the server's SPIFFE ID (no DNS name:
/// workload certificates carry only the URI).
#[derive(Debug)]
struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        check_spiffe(end_entity, &self.expected)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Server side: webpki client verification (mandatory) + the client's SPIFFE ID.
#[derive(Debug)]
struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    expected: SpiffeId,
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_spiffe(end_entity, &self.expected)?;
        Ok(ClientCertVerified::assertion())
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

struct Peer<'a> {
    cert: &'a IssuedCertificate,
    trusts_root: &'a str,
    expects: SpiffeId,
}

/// Runs one connection: the server answers "hello <client identity>".
/// Returns the client's view (the reply, or its error) and the server's
/// (the verified client identity, or its error).
fn exchange(
    server: Peer<'_>,
    client: Peer<'_>,
) -> (Result<String, String>, Result<String, String>) {
    let provider = provider();
    let inner =
        WebPkiClientVerifier::builder_with_provider(roots(server.trusts_root), provider.clone())
            .build()
            .unwrap();
    let (certs, key) = identity(server.cert);
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier {
            inner,
            expected: server.expects,
        }))
        .with_single_cert(certs, key)
        .unwrap();
    let (certs, key) = identity(client.cert);
    let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier {
            roots: roots(client.trusts_root),
            expected: client.expects,
            provider,
        }))
        .with_client_auth_cert(certs, key)
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_thread = thread::spawn(move || -> Result<String, String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        // A guard against a hung peer, not a timing assertion.
        sock.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let conn =
            rustls::ServerConnection::new(Arc::new(server_config)).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let peer = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no client certificate")?;
        let (_, parsed) = X509Certificate::from_der(peer.as_ref()).map_err(|e| e.to_string())?;
        let uri = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|s| match s.value.general_names.first() {
                Some(GeneralName::URI(u)) => Some(format!("URI:{u}")),
                _ => None,
            })
            .unwrap_or_default();
        tls.write_all(format!("hello {uri}").as_bytes())
            .map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| e.to_string())?;
        Ok(uri)
    });

    let client_result = (|| -> Result<String, String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let name = ServerName::try_from("workload.invalid").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client_config), name)
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"ping!").map_err(|e| e.to_string())?;
        let mut reply = String::new();
        tls.read_to_string(&mut reply).map_err(|e| e.to_string())?;
        Ok(reply)
    })();
    let server_result = server_thread.join().unwrap();
    (client_result, server_result)
}

fn server_id() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "frontend").unwrap()
}

fn client_id() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "cart").unwrap()
}

fn mesh_ca() -> CertificateAuthority {
    CertificateAuthority::generate_root(&RootOptions::default()).unwrap()
}

#[test]
fn two_workloads_authenticate_each_other() {
    let ca = mesh_ca();
    let server_cert = ca.issue_workload(&server_id(), None).unwrap();
    let client_cert = ca.issue_workload(&client_id(), None).unwrap();
    let (client, server) = exchange(
        Peer {
            cert: &server_cert,
            trusts_root: ca.root_pem(),
            expects: client_id(),
        },
        Peer {
            cert: &client_cert,
            trusts_root: ca.root_pem(),
            expects: server_id(),
        },
    );
    assert_eq!(
        server,
        Ok("URI:spiffe://cluster.local/ns/shop/sa/cart".to_owned())
    );
    assert_eq!(
        client,
        Ok("hello URI:spiffe://cluster.local/ns/shop/sa/cart".to_owned())
    );
}

#[test]
fn workloads_under_a_plugged_in_intermediate_authenticate_each_other() {
    if !requires::tool(
        "openssl",
        "workloads_under_a_plugged_in_intermediate_authenticate_each_other",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    support::make_cacerts(
        dir.path(),
        support::OsslKey::Rsa2048Pkcs1,
        support::OsslKey::Rsa2048Pkcs1,
    );
    let ca = ca::store::load_dir(dir.path()).unwrap();
    let server_cert = ca.issue_workload(&server_id(), None).unwrap();
    assert_eq!(server_cert.chain.certs().len(), 3);
    // A client whose key came from a CSR it made itself.
    let client_key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&client_key)
        .unwrap()
        .pem()
        .unwrap();
    let chain = ca.sign_csr(csr.as_bytes(), &client_id(), None).unwrap();
    let client_cert = IssuedCertificate {
        key: ca::PrivateKeyPem::new(client_key.serialize_pem()),
        chain,
        not_after: server_cert.not_after,
        not_before: server_cert.not_before,
    };
    let (client, server) = exchange(
        Peer {
            cert: &server_cert,
            trusts_root: ca.root_pem(),
            expects: client_id(),
        },
        Peer {
            cert: &client_cert,
            trusts_root: ca.root_pem(),
            expects: server_id(),
        },
    );
    assert_eq!(
        server,
        Ok("URI:spiffe://cluster.local/ns/shop/sa/cart".to_owned())
    );
    assert!(client.is_ok(), "{client:?}");
}

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let ca = mesh_ca();
    let other = mesh_ca();
    let server_cert = ca.issue_workload(&server_id(), None).unwrap();
    let intruder = other.issue_workload(&client_id(), None).unwrap();
    let (client, server) = exchange(
        Peer {
            cert: &server_cert,
            trusts_root: ca.root_pem(),
            expects: client_id(),
        },
        Peer {
            cert: &intruder,
            trusts_root: ca.root_pem(),
            expects: server_id(),
        },
    );
    // Same root name, different key: webpki finds the look-alike root by
    // name and the signature check fails.
    let server_err = server.unwrap_err();
    assert!(
        server_err.contains("invalid peer certificate: BadSignature"),
        "{server_err}"
    );
    assert!(client.is_err(), "{client:?}");
}

#[test]
fn server_certificate_from_another_ca_is_refused() {
    let ca = mesh_ca();
    let other = CertificateAuthority::generate_root(&RootOptions {
        trust_domain: "evil.example".to_owned(),
        ..RootOptions::default()
    })
    .unwrap();
    let impostor = other.issue_workload(&server_id(), None).unwrap();
    let client_cert = ca.issue_workload(&client_id(), None).unwrap();
    let (client, server) = exchange(
        Peer {
            cert: &impostor,
            trusts_root: other.root_pem(),
            expects: client_id(),
        },
        Peer {
            cert: &client_cert,
            trusts_root: ca.root_pem(),
            expects: server_id(),
        },
    );
    let client_err = client.unwrap_err();
    assert!(
        client_err.contains("invalid peer certificate: UnknownIssuer"),
        "{client_err}"
    );
    assert!(server.is_err(), "{server:?}");
}

#[test]
fn the_wrong_identity_is_refused_by_either_side() {
    let ca = mesh_ca();
    let server_cert = ca.issue_workload(&server_id(), None).unwrap();
    let client_cert = ca.issue_workload(&client_id(), None).unwrap();
    let admin = SpiffeId::new("cluster.local", "kube-system", "admin").unwrap();
    let (client, _) = exchange(
        Peer {
            cert: &server_cert,
            trusts_root: ca.root_pem(),
            expects: client_id(),
        },
        Peer {
            cert: &client_cert,
            trusts_root: ca.root_pem(),
            expects: admin.clone(),
        },
    );
    let err = client.unwrap_err();
    assert!(
        err.contains("peer identity [\"spiffe://cluster.local/ns/shop/sa/frontend\"] is not the expected spiffe://cluster.local/ns/kube-system/sa/admin"),
        "{err}"
    );
    let (_, server) = exchange(
        Peer {
            cert: &server_cert,
            trusts_root: ca.root_pem(),
            expects: admin,
        },
        Peer {
            cert: &client_cert,
            trusts_root: ca.root_pem(),
            expects: server_id(),
        },
    );
    let err = server.unwrap_err();
    assert!(
        err.contains("is not the expected spiffe://cluster.local/ns/kube-system/sa/admin"),
        "{err}"
    );
}
