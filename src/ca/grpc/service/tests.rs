//! The handler without a network: a fake signer and static tokens, calling
//! `create_certificate` directly.

use std::path::Path;
use std::sync::Mutex;

use tonic::Code;

use super::*;
use crate::ca::grpc::auth::Caller;
use crate::ca::grpc::auth::static_tokens::StaticTokens;
use crate::ca::grpc::signer::SignError;

/// Records what it was asked and answers with a fixed result.
struct FakeSigner {
    answer: Result<Vec<String>, (SignErrorKind, &'static str)>,
    seen: Mutex<Vec<(String, Caller, Option<Duration>)>>,
}

impl CertificateSigner for FakeSigner {
    fn trust_domain(&self) -> &str {
        "td.example"
    }
    fn spiffe_uri(&self, caller: &Caller) -> Result<String, SignError> {
        Ok(format!(
            "spiffe://td.example/ns/{}/sa/{}",
            caller.namespace, caller.service_account
        ))
    }
    fn sign(
        &self,
        csr: &[u8],
        caller: &Caller,
        ttl: Option<Duration>,
    ) -> Result<Vec<String>, SignError> {
        self.seen.lock().unwrap().push((
            String::from_utf8_lossy(csr).into_owned(),
            caller.clone(),
            ttl,
        ));
        self.answer
            .clone()
            .map_err(|(kind, message)| SignError::new(kind, message))
    }
    fn root_expiry_unix(&self) -> Option<i64> {
        Some(2)
    }
    fn chain_expiry_unix(&self) -> Option<i64> {
        Some(1)
    }
}

fn service(
    answer: Result<Vec<String>, (SignErrorKind, &'static str)>,
) -> (CaService, Arc<FakeSigner>) {
    let signer = Arc::new(FakeSigner {
        answer,
        seen: Mutex::new(Vec::new()),
    });
    let tokens = StaticTokens::parse("tok ns-a/sa-x\n", Path::new("t")).unwrap();
    let service = CaService::new(
        signer.clone(),
        AuthChain::new(vec![Arc::new(tokens)]),
        CaMetrics::new(),
    );
    (service, signer)
}

fn request(
    auth: Option<&str>,
    csr: &str,
    subject: &str,
    validity: i64,
) -> Request<IstioCertificateRequest> {
    let mut request = Request::new(IstioCertificateRequest {
        csr: csr.to_string(),
        subject_id: subject.to_string(),
        validity_duration: validity,
        metadata: None,
    });
    if let Some(auth) = auth {
        request
            .metadata_mut()
            .insert("authorization", auth.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn signs_for_the_caller_with_the_requested_ttl() {
    let (svc, signer) = service(Ok(vec!["leaf".into(), "root".into()]));
    let answer = svc
        .create_certificate(request(Some("Bearer tok"), "CSR", "", 3600))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().cert_chain, vec!["leaf", "root"]);
    // The subject_id may repeat the caller's own identity; the scheme is case-insensitive.
    svc.create_certificate(request(
        Some("bearer tok"),
        "CSR",
        "spiffe://td.example/ns/ns-a/sa/sa-x",
        -1,
    ))
    .await
    .unwrap();
    let seen = signer.seen.lock().unwrap();
    assert_eq!(
        seen[0],
        (
            "CSR".to_string(),
            Caller::new("ns-a", "sa-x"),
            Some(Duration::from_secs(3600))
        )
    );
    assert_eq!(
        seen[1].2, None,
        "validity_duration <= 0 means the default TTL"
    );
}

#[tokio::test]
async fn refusals_map_to_status_codes() {
    let (svc, signer) = service(Ok(vec!["leaf".into()]));
    let code = |r: Result<Response<IstioCertificateResponse>, Status>| {
        let status = r.unwrap_err();
        (status.code(), status.message().to_string())
    };

    let (c, m) = code(svc.create_certificate(request(None, "CSR", "", 0)).await);
    assert_eq!(c, Code::Unauthenticated);
    assert!(m.starts_with("no credentials"), "{m}");
    for bad in ["tok", "Bearer", "Bearer  ", "Basic tok"] {
        let (c, m) = code(
            svc.create_certificate(request(Some(bad), "CSR", "", 0))
                .await,
        );
        assert_eq!(c, Code::Unauthenticated, "{bad}");
        assert!(
            m.contains("expected `Bearer <service-account token>`"),
            "{m}"
        );
    }
    let (c, _) = code(
        svc.create_certificate(request(Some("Bearer nope"), "CSR", "", 0))
            .await,
    );
    assert_eq!(c, Code::Unauthenticated);

    let (c, m) = code(
        svc.create_certificate(request(
            Some("Bearer tok"),
            "CSR",
            "spiffe://td.example/ns/ns-b/sa/sa-y",
            0,
        ))
        .await,
    );
    assert_eq!(c, Code::PermissionDenied);
    assert!(m.contains("ns-b") && m.contains("ns/ns-a/sa/sa-x"), "{m}");

    let (c, m) = code(
        svc.create_certificate(request(Some("Bearer tok"), "  ", "", 0))
            .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("csr is empty"), "{m}");
    assert!(
        signer.seen.lock().unwrap().is_empty(),
        "nothing refused reached the signer"
    );
}

#[tokio::test]
async fn signer_errors_keep_their_kind_and_message() {
    for (kind, expected) in [
        (SignErrorKind::InvalidArgument, Code::InvalidArgument),
        (SignErrorKind::PermissionDenied, Code::PermissionDenied),
        (SignErrorKind::Internal, Code::Internal),
    ] {
        let (svc, _) = service(Err((kind, "because")));
        let status = svc
            .create_certificate(request(Some("Bearer tok"), "CSR", "", 0))
            .await
            .unwrap_err();
        assert_eq!((status.code(), status.message()), (expected, "because"));
    }
}
