//! Detached CMS signatures (RFC 5652 SignedData, DER) of a package's manifest, as
//! `openssl cms -verify -binary -inform DER -content FILE -CAfile CA` checks them: the
//! signer is the recorder's certificate (included), identified by issuer and serial
//! number; the digest is SHA-256; signed attributes are the content type (id-data), the
//! message digest and the signing time; the signature is RSA PKCS #1 v1.5 with SHA-256.
//! Built with the `cms` crate's builder; [`verify_detached`] is this module's own check
//! of the same (the package verifier's), with `openssl` as the independent one in tests.

use cms::builder::{SignedDataBuilder, SignerInfoBuilder, create_signing_time_attribute};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier};
use der::{Decode, Encode};
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("cannot make the signature: {0}")]
    Build(String),
    #[error("not a CMS signature: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

fn build(e: impl std::fmt::Display) -> CmsError {
    CmsError::Build(e.to_string())
}

/// The detached signature of `content` by `key`, whose certificate is `cert` (included
/// in the signature, with `extra` certificates such as the CA's): DER.
pub fn sign_detached(
    content: &[u8],
    key: &RsaPrivateKey,
    cert: &Certificate,
    extra: &[Certificate],
) -> Result<Vec<u8>, CmsError> {
    let digest = Sha256::digest(content);
    let eci = EncapsulatedContentInfo {
        econtent_type: ID_DATA,
        econtent: None,
    };
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    });
    let sha256 = AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    };
    let mut info =
        SignerInfoBuilder::new(&signer, sid, sha256.clone(), &eci, Some(digest.as_slice()))
            .map_err(build)?;
    info.add_signed_attribute(create_signing_time_attribute().map_err(build)?)
        .map_err(build)?;
    let mut sd = SignedDataBuilder::new(&eci);
    sd.add_digest_algorithm(sha256).map_err(build)?;
    for c in std::iter::once(cert).chain(extra) {
        sd.add_certificate(CertificateChoices::Certificate(c.clone()))
            .map_err(build)?;
    }
    sd.add_signer_info::<_, rsa::pkcs1v15::Signature>(info)
        .map_err(build)?;
    sd.build().map_err(build)?.to_der().map_err(build)
}

/// Checks a detached signature of `content`: the message digest attribute is
/// `content`'s SHA-256, and the signer's certificate (from the signature) verifies the
/// signed attributes. Returns that certificate (the caller checks it against the CA).
pub fn verify_detached(p7s: &[u8], content: &[u8]) -> Result<Certificate, CmsError> {
    use rsa::signature::Verifier;
    let bad = |e: &dyn std::fmt::Display| CmsError::Malformed(e.to_string());
    let ci = ContentInfo::from_der(p7s).map_err(|e| bad(&e))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CmsError::Malformed("not SignedData".into()));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e| bad(&e))?;
    let si =
        (sd.signer_infos.0.iter().next()).ok_or_else(|| CmsError::Malformed("no signer".into()))?;
    let SignerIdentifier::IssuerAndSerialNumber(ias) = &si.sid else {
        return Err(CmsError::Malformed(
            "the signer is not named by issuer and serial number".into(),
        ));
    };
    let cert = (sd.certificates.iter().flat_map(|s| s.0.iter()))
        .find_map(|c| match c {
            CertificateChoices::Certificate(c)
                if c.tbs_certificate.issuer == ias.issuer
                    && c.tbs_certificate.serial_number == ias.serial_number =>
            {
                Some(c.clone())
            }
            _ => None,
        })
        .ok_or_else(|| {
            CmsError::Invalid("the signer's certificate is not in the signature".into())
        })?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| CmsError::Malformed("no signed attributes".into()))?;
    let md = (attrs.iter().find(|a| a.oid == ID_MESSAGE_DIGEST))
        .and_then(|a| a.values.iter().next())
        .ok_or_else(|| CmsError::Malformed("no message digest attribute".into()))?;
    let md = der::asn1::OctetString::from_der(&md.to_der().map_err(|e| bad(&e))?)
        .map_err(|e| bad(&e))?;
    if md.as_bytes() != Sha256::digest(content).as_slice() {
        return Err(CmsError::Invalid(
            "the signed digest is not the file's: it changed after it was signed".into(),
        ));
    }
    let public = rsa::RsaPublicKey::try_from(der::referenced::OwnedToRef::owned_to_ref(
        &cert.tbs_certificate.subject_public_key_info,
    ))
    .map_err(|_| CmsError::Invalid("the signer's key is not RSA".into()))?;
    let sig = rsa::pkcs1v15::Signature::try_from(si.signature.as_bytes()).map_err(|e| bad(&e))?;
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public)
        .verify(&attrs.to_der().map_err(|e| bad(&e))?, &sig)
        .map_err(|_| {
            CmsError::Invalid("the signature does not verify with the signer's certificate".into())
        })?;
    Ok(cert)
}
