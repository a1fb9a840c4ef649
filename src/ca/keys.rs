//! Key material: generating keys, reading private keys in the PEM forms found
//! in the wild (PKCS#8, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, the
//! last two common in Istio `cacerts` directories), and the key-type policy
//! (ECDSA P-256/P-384, RSA 2048-8192 bits).
//!
//! Private keys never show in `Debug` output: [`PrivateKeyPem`] and
//! [`SigningKey`] print `[elided]`.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::x509::SubjectPublicKeyInfo;

/// The smallest RSA modulus the CA accepts, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus the CA accepts, in bits (ring verifies up to 8192).
pub const MAX_RSA_BITS: usize = 8192;

/// Why a key was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key type is outside the policy.
    #[error(
        "unsupported key: {found}; expected ECDSA P-256, ECDSA P-384 or RSA with {MIN_RSA_BITS}-{MAX_RSA_BITS} bits"
    )]
    Unsupported {
        /// What the key is (e.g. "RSA 1024 bits", "Ed25519").
        found: String,
    },
    /// The private key PEM could not be read.
    #[error(
        "cannot read private key: {reason}; expected a PEM block PRIVATE KEY (PKCS#8), RSA PRIVATE KEY (PKCS#1) or EC PRIVATE KEY (SEC1)"
    )]
    Parse {
        /// What was wrong.
        reason: String,
    },
    /// Key generation failed in the crypto library.
    #[error("cannot generate a {algorithm} key: {reason}")]
    Generate {
        /// The algorithm asked for.
        algorithm: KeyAlgorithm,
        /// What the crypto library said.
        reason: String,
    },
}

/// The key algorithms the CA can generate (for its own root and for issued keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256: the default, as in Istio.
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// RSA 2048 bits, PKCS#1 v1.5 signatures with SHA-256.
    Rsa2048,
    /// RSA 3072 bits.
    Rsa3072,
    /// RSA 4096 bits.
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order the CLI lists them.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    /// Generates a fresh key pair of this algorithm.
    pub fn generate(self) -> Result<SigningKey, KeyError> {
        let gen_err = |reason: String| KeyError::Generate {
            algorithm: self,
            reason,
        };
        let (pair, kind) = match self {
            KeyAlgorithm::EcdsaP256 => (
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| gen_err(e.to_string()))?,
                KeyKind::EcdsaP256,
            ),
            KeyAlgorithm::EcdsaP384 => (
                KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)
                    .map_err(|e| gen_err(e.to_string()))?,
                KeyKind::EcdsaP384,
            ),
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits = match self {
                    KeyAlgorithm::Rsa2048 => 2048,
                    KeyAlgorithm::Rsa3072 => 3072,
                    _ => 4096,
                };
                // ring cannot generate RSA keys; the pure-Rust `rsa` crate does,
                // and ring signs with the result.
                use rsa::pkcs8::EncodePrivateKey;
                let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                    .map_err(|e| gen_err(e.to_string()))?;
                let der = private.to_pkcs8_der().map_err(|e| gen_err(e.to_string()))?;
                let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
                let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &PKCS_RSA_SHA256)
                    .map_err(|e| gen_err(e.to_string()))?;
                (pair, KeyKind::Rsa { bits })
            }
        };
        Ok(SigningKey { pair, kind })
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KeyAlgorithm::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown key algorithm {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What a public key is, once it passed the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
}

impl KeyKind {
    /// RSA keys also get keyEncipherment in their key usage (RSA key exchange).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyKind::Rsa { .. })
    }

    /// The signature algorithm a key of this kind signs with.
    pub fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyKind::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            KeyKind::EcdsaP384 => &PKCS_ECDSA_P384_SHA384,
            KeyKind::Rsa { .. } => &PKCS_RSA_SHA256,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyKind::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyKind::Rsa { bits } => write!(f, "RSA {bits} bits"),
        }
    }
}

/// Classifies a SubjectPublicKeyInfo against the key policy.
pub fn classify_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, KeyError> {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok(KeyKind::EcdsaP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(KeyKind::EcdsaP384),
            Some(c) => Err(KeyError::Unsupported {
                found: format!("ECDSA on curve {c}"),
            }),
            None => Err(KeyError::Unsupported {
                found: "ECDSA without a named curve".to_owned(),
            }),
        };
    }
    if *oid == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => {
                return Err(KeyError::Unsupported {
                    found: "an RSA key whose modulus cannot be read".to_owned(),
                });
            }
        };
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::Unsupported {
                found: format!("RSA {bits} bits"),
            });
        }
        return Ok(KeyKind::Rsa { bits });
    }
    let name = x509_parser::oid_registry::OidRegistry::default()
        .with_crypto()
        .get(oid)
        .map(|e| e.sn().to_owned())
        .unwrap_or_else(|| oid.to_id_string());
    Err(KeyError::Unsupported {
        found: format!("key algorithm {name}"),
    })
}

/// The size in bits of a big-endian unsigned integer (leading zeros ignored).
fn modulus_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// A PEM-encoded private key as text. Debug prints `[elided]`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// Wraps PEM text (not checked here: [`parse_private_key`] checks).
    pub fn new(pem: impl Into<String>) -> Self {
        Self(pem.into())
    }

    /// The PEM text, for writing to a 0600 file or a Kubernetes Secret.
    /// Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for PrivateKeyPem {
    /// Overwrites the key text in memory when it is no longer needed.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([elided])")
    }
}

/// A private key ready to sign, with its policy-checked kind.
pub struct SigningKey {
    pair: KeyPair,
    kind: KeyKind,
}

impl SigningKey {
    /// The rcgen key pair (signs certificates).
    pub fn pair(&self) -> &KeyPair {
        &self.pair
    }

    /// What kind of key this is.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Gives up the wrapper for the rcgen key pair (an rcgen `Issuer` owns its key).
    pub fn into_pair(self) -> KeyPair {
        self.pair
    }

    /// The key as PKCS#8 PEM (`PRIVATE KEY`).
    pub fn to_pem(&self) -> PrivateKeyPem {
        PrivateKeyPem(self.pair.serialize_pem())
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.pair)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [elided])", self.kind)
    }
}

const OID_RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const OID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const OID_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const OID_P384: &[u64] = &[1, 3, 132, 0, 34];

/// Reads a private key from PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
///
/// ring reads only PKCS#8, so PKCS#1 and SEC1 keys are wrapped in a PKCS#8
/// envelope first. The key's kind is checked against the policy.
pub fn parse_private_key(pem_text: &PrivateKeyPem) -> Result<SigningKey, KeyError> {
    let parse_err = |reason: &str| KeyError::Parse {
        reason: reason.to_owned(),
    };
    let blocks = pem::parse_many(pem_text.expose()).map_err(|_| parse_err("not valid PEM"))?;
    let mut keys = blocks.iter().filter(|b| b.tag().ends_with("PRIVATE KEY"));
    let block = keys
        .next()
        .ok_or_else(|| parse_err("no PRIVATE KEY block"))?;
    if keys.next().is_some() {
        return Err(parse_err("more than one private key in the PEM"));
    }
    let pkcs8 = match block.tag() {
        "PRIVATE KEY" => block.contents().to_vec(),
        "RSA PRIVATE KEY" => wrap_pkcs8(OID_RSA_ENCRYPTION, None, block.contents()),
        "EC PRIVATE KEY" => {
            let curve = sec1_curve(block.contents()).ok_or_else(|| {
                parse_err("EC PRIVATE KEY is not a P-256 or P-384 key in SEC1 form")
            })?;
            wrap_pkcs8(OID_EC_PUBLIC_KEY, Some(curve), block.contents())
        }
        "ENCRYPTED PRIVATE KEY" => {
            return Err(parse_err("the key is encrypted; decrypt it first"));
        }
        other => return Err(parse_err(&format!("unknown PEM block {other:?}"))),
    };
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice());
    for alg in [
        &PKCS_ECDSA_P256_SHA256,
        &PKCS_ECDSA_P384_SHA384,
        &PKCS_RSA_SHA256,
    ] {
        if let Ok(pair) = KeyPair::from_pkcs8_der_and_sign_algo(&der, alg) {
            let kind = kind_of_pair(&pair)?;
            return Ok(SigningKey { pair, kind });
        }
    }
    Err(KeyError::Unsupported {
        found: "a private key that is not ECDSA P-256/P-384 or RSA 2048-8192 bits".to_owned(),
    })
}

/// Classifies a key pair by its own public key.
fn kind_of_pair(pair: &KeyPair) -> Result<KeyKind, KeyError> {
    let spki_der = rcgen::PublicKeyData::subject_public_key_info(pair);
    let (_, spki) = <SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&spki_der)
        .map_err(|e| KeyError::Parse {
            reason: format!("public key: {e}"),
        })?;
    classify_spki(&spki)
}

/// `PrivateKeyInfo ::= SEQUENCE { version 0, algorithm, privateKey OCTET STRING }`.
fn wrap_pkcs8(alg: &[u64], curve: Option<&[u64]>, inner: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(alg));
                match curve {
                    Some(c) => w
                        .next()
                        .write_oid(&yasna::models::ObjectIdentifier::from_slice(c)),
                    None => w.next().write_null(),
                }
            });
            w.next().write_bytes(inner);
        })
    })
}

/// The curve of a SEC1 `ECPrivateKey`, from its named-curve parameter or,
/// failing that, from the private scalar's length.
fn sec1_curve(der: &[u8]) -> Option<&'static [u64]> {
    let parsed = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let _version = r.next().read_u8()?;
            let scalar = r.next().read_bytes()?;
            let params =
                r.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_oid()))?;
            let _public = r.read_optional(|r| {
                r.read_tagged(yasna::Tag::context(1), |r| r.read_bitvec_bytes())
            })?;
            Ok((scalar.len(), params))
        })
    })
    .ok()?;
    match parsed {
        (_, Some(oid)) if oid.components().as_slice() == OID_P256 => Some(OID_P256),
        (_, Some(oid)) if oid.components().as_slice() == OID_P384 => Some(OID_P384),
        (_, Some(_)) => None,
        (32, None) => Some(OID_P256),
        (48, None) => Some(OID_P384),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_material() {
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let pem = key.to_pem();
        assert_eq!(format!("{pem:?}"), "PrivateKeyPem([elided])");
        assert_eq!(format!("{key:?}"), "SigningKey(ECDSA P-256, [elided])");
        assert!(pem.expose().contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn pkcs8_round_trip_keeps_kind() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
            let key = alg.generate().unwrap();
            let back = parse_private_key(&key.to_pem()).unwrap();
            assert_eq!(back.kind(), key.kind());
            assert_eq!(back.public_key_der(), key.public_key_der());
        }
    }

    #[test]
    fn algorithm_names_parse() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.name().parse::<KeyAlgorithm>().unwrap(), alg);
        }
        let err = "dsa".parse::<KeyAlgorithm>().unwrap_err();
        assert!(err.contains("expected one of ecdsa-p256"), "{err}");
    }

    #[test]
    fn garbage_is_refused_with_the_expected_form() {
        let err = parse_private_key(&PrivateKeyPem::new("hello")).unwrap_err();
        assert!(err.to_string().contains("expected a PEM block PRIVATE KEY"));
    }

    #[test]
    fn modulus_bits_ignores_leading_zero() {
        let mut m = vec![0u8];
        m.extend([0x80; 256]);
        assert_eq!(modulus_bits(&m), 2048);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
    }
}
