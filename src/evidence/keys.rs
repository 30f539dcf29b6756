//! The site's signing keys, in `<storage>/signing.keys/` (`storage::Layout::signing_keys`):
//!
//! | file | what |
//! |---|---|
//! | `site-ca.pem` | the site CA's certificate (self-signed, or the organisation's CA) |
//! | `site-ca.key.pem` | its private key (PKCS #8, 0600); absent when the organisation keeps it |
//! | `recorder.pem` | this recorder's signing certificate, issued by the site CA |
//! | `recorder.key.pem` | its private key (PKCS #8, 0600) |
//! | `retired/recorder-<serial>.pem` | recorder certificates replaced by a rotation |
//!
//! Keys are RSA (3072 bits by default): the ONVIF Export File Format seals MP4 files
//! with RSASSA-PSS, and one key type keeps a site's acceptance record simple.
//! Certificates are X.509 v3 (RFC 5280) made with `x509-cert`'s builder: the CA with
//! basicConstraints CA:TRUE and keyCertSign, the recorder's with digitalSignature and
//! nonRepudiation. Private keys are never logged or printed; fingerprints (SHA-256 of the
//! certificate's DER) are, for the acceptance record. A rotation issues a new recorder
//! certificate and keeps the old one in `retired/`: packages carry the certificate that
//! signed them, so old packages stay verifiable against the same CA.
//!
//! The RSA implementation is the `rsa` crate; its advisory RUSTSEC-2023-0071 (a timing
//! side channel, "Marvin") concerns decryption and signing observed by an attacker who
//! can time many operations; here signing happens only when an authenticated user
//! exports a package, and nothing is ever decrypted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use der::referenced::OwnedToRef;
use der::{Decode, Encode, EncodePem, pem::LineEnding};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// Key size of generated keys (bits).
pub const DEFAULT_BITS: usize = 3072;
const CA_YEARS: u64 = 20;
const RECORDER_YEARS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{0} exists already: the site's keys are set up (use `vigil keys rotate` for a new recorder certificate)"
    )]
    Exists(PathBuf),
    #[error("no signing keys in {0}: run `vigil keys init` (or `vigil keys import`) first")]
    Missing(PathBuf),
    #[error("{path}: {what}")]
    Bad { path: PathBuf, what: String },
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("cannot make the certificate: {0}")]
    Build(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |err| KeyError::Io {
        path: path.to_owned(),
        err,
    }
}

/// The certificates and the recorder's private key, loaded.
pub struct Keys {
    pub ca: Certificate,
    pub recorder: Certificate,
    /// The recorder's private key (never logged).
    pub key: RsaPrivateKey,
}

impl Keys {
    /// SHA-256 fingerprints of the CA and recorder certificates (`AA:BB:...`, as
    /// `openssl x509 -fingerprint -sha256` prints them).
    pub fn fingerprints(&self) -> (String, String) {
        (fingerprint(&self.ca), fingerprint(&self.recorder))
    }
}

/// `AA:BB:...`: SHA-256 of a certificate's DER, upper-case hex pairs.
pub fn fingerprint(cert: &Certificate) -> String {
    let der = cert.to_der().expect("a decoded certificate encodes");
    let h = Sha256::digest(der);
    h.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads the keys of `dir`: the CA and recorder certificates and the recorder's key, and
/// checks that they belong together (the key is the certificate's, the certificate is
/// the CA's). Errors: missing or unreadable files, a mismatch.
pub fn load(dir: &Path) -> Result<Keys, KeyError> {
    let (ca_path, cert_path, key_path) = (
        dir.join("site-ca.pem"),
        dir.join("recorder.pem"),
        dir.join("recorder.key.pem"),
    );
    if !cert_path.exists() || !key_path.exists() || !ca_path.exists() {
        return Err(KeyError::Missing(dir.to_owned()));
    }
    let ca = read_cert(&ca_path)?;
    let recorder = read_cert(&cert_path)?;
    let key = read_key(&key_path)?;
    check_pair(&recorder, &key, &cert_path)?;
    check_issued(&recorder, &ca, &cert_path)?;
    Ok(Keys { ca, recorder, key })
}

/// Creates a site CA and a recorder certificate issued by it, with new `bits`-bit RSA
/// keys, in `dir` (created 0700). `site` names the organisation or site, `recorder`
/// this recorder (both in the certificates' subjects). Refuses if keys exist.
pub fn init(dir: &Path, site: &str, recorder: &str, bits: usize) -> Result<Keys, KeyError> {
    for f in ["site-ca.pem", "recorder.pem", "recorder.key.pem"] {
        if dir.join(f).exists() {
            return Err(KeyError::Exists(dir.join(f)));
        }
    }
    make_dir(dir)?;
    let ca_key = new_key(bits)?;
    let ca_name = name(&format!("CN={} Vigil site CA,O={}", rdn(site), rdn(site)))?;
    let ca = issue(
        Profile::Root,
        &ca_name,
        &RsaPublicKey::from(&ca_key),
        &ca_key,
        CA_YEARS,
    )?;
    let key = new_key(bits)?;
    let recorder_cert = issue_recorder(&ca, &ca_key, site, recorder, &key)?;
    write_private(&dir.join("site-ca.key.pem"), &ca_key)?;
    write_private(&dir.join("recorder.key.pem"), &key)?;
    write_cert(&dir.join("site-ca.pem"), &ca)?;
    write_cert(&dir.join("recorder.pem"), &recorder_cert)?;
    load(dir)
}

/// Imports an organisation's keys: its CA certificate, and a recorder certificate it
/// issued with that certificate's private key (the CA's key stays with the
/// organisation). Checked before anything is written: the key is the certificate's,
/// the certificate is the CA's. Refuses if keys exist.
pub fn import(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> Result<Keys, KeyError> {
    for f in ["site-ca.pem", "recorder.pem", "recorder.key.pem"] {
        if dir.join(f).exists() {
            return Err(KeyError::Exists(dir.join(f)));
        }
    }
    let ca_cert = read_cert(ca)?;
    let rec = read_cert(cert)?;
    let k = read_key(key)?;
    check_pair(&rec, &k, cert)?;
    check_issued(&rec, &ca_cert, cert)?;
    make_dir(dir)?;
    write_private(&dir.join("recorder.key.pem"), &k)?;
    write_cert(&dir.join("site-ca.pem"), &ca_cert)?;
    write_cert(&dir.join("recorder.pem"), &rec)?;
    load(dir)
}

/// Issues a new recorder certificate and key with the site CA's key (which must be in
/// `dir`), keeping the old certificate in `retired/recorder-<serial>.pem`. Returns the
/// new keys.
pub fn rotate(dir: &Path, site: &str, recorder: &str, bits: usize) -> Result<Keys, KeyError> {
    let old = load(dir)?;
    let ca_key_path = dir.join("site-ca.key.pem");
    if !ca_key_path.exists() {
        return Err(KeyError::Refused(format!(
            "the site CA's private key is not in {} (an imported organisation CA): have the organisation issue a new recorder certificate and import it",
            dir.display()
        )));
    }
    // The new certificate names the site as the CA does: a different --site would
    // issue a recorder certificate of another organisation under this CA.
    let want = name(&format!("CN={} Vigil site CA,O={}", rdn(site), rdn(site)))?;
    if old.ca.tbs_certificate.subject != want {
        return Err(KeyError::Refused(format!(
            "the site CA is \"{}\": rotate with the --site it was made with",
            old.ca.tbs_certificate.subject
        )));
    }
    let ca_key = read_key(&ca_key_path)?;
    let key = new_key(bits)?;
    let cert = issue_recorder(&old.ca, &ca_key, site, recorder, &key)?;
    let retired = dir.join("retired");
    make_dir(&retired)?;
    let serial = hex::encode(old.recorder.tbs_certificate.serial_number.as_bytes());
    write_cert(
        &retired.join(format!("recorder-{serial}.pem")),
        &old.recorder,
    )?;
    // The new key first, then the certificate: a crash between leaves a key that does
    // not match (refused by `load`, fixed by rotating again), never a lost key.
    write_private(&dir.join("recorder.key.pem"), &key)?;
    write_cert(&dir.join("recorder.pem"), &cert)?;
    load(dir)
}

fn issue_recorder(
    ca: &Certificate,
    ca_key: &RsaPrivateKey,
    site: &str,
    recorder: &str,
    key: &RsaPrivateKey,
) -> Result<Certificate, KeyError> {
    let subject = name(&format!(
        "CN={} Vigil recorder,O={}",
        rdn(recorder),
        rdn(site)
    ))?;
    issue(
        Profile::Leaf {
            issuer: ca.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        &subject,
        &RsaPublicKey::from(key),
        ca_key,
        RECORDER_YEARS,
    )
}

/// One certificate: `subject` holding `public`, signed by `signer` (RSA PKCS #1 v1.5
/// with SHA-256), valid from now for `years`, with a random 128-bit serial.
fn issue(
    profile: Profile,
    subject: &Name,
    public: &RsaPublicKey,
    signer: &RsaPrivateKey,
    years: u64,
) -> Result<Certificate, KeyError> {
    let build = |e: &dyn std::fmt::Display| KeyError::Build(e.to_string());
    let mut serial = [0u8; 16];
    getrandom(&mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and no leading zero byte
    let serial = SerialNumber::new(&serial).map_err(|e| build(&e))?;
    let validity =
        Validity::from_now(Duration::from_secs(years * 365 * 86_400)).map_err(|e| build(&e))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(public.clone()).map_err(|e| build(&e))?;
    let signing = rsa::pkcs1v15::SigningKey::<Sha256>::new(signer.clone());
    let builder =
        CertificateBuilder::new(profile, serial, validity, subject.clone(), spki, &signing)
            .map_err(|e| build(&e))?;
    builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| build(&e))
}

fn getrandom(buf: &mut [u8]) {
    use rsa::rand_core::RngCore;
    rsa::rand_core::OsRng.fill_bytes(buf);
}

fn new_key(bits: usize) -> Result<RsaPrivateKey, KeyError> {
    if !(2048..=8192).contains(&bits) {
        return Err(KeyError::Refused(format!(
            "key size {bits} bits: 2048 to 8192 (RSA below 2048 is not accepted by the ONVIF export format)"
        )));
    }
    RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|e| KeyError::Build(e.to_string()))
}

/// An RFC 4514 attribute value with its special characters escaped.
fn rdn(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn name(s: &str) -> Result<Name, KeyError> {
    Name::from_str(s).map_err(|e| KeyError::Refused(format!("name {s:?}: {e}")))
}

fn make_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Writes a private key as PKCS #8 PEM, created 0600 (exclusively for a new file, so no
/// moment exists when another user could read it), synced.
fn write_private(path: &Path, key: &RsaPrivateKey) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Build(e.to_string()))?;
    let tmp = path.with_extension("pem.new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(pem.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn write_cert(path: &Path, cert: &Certificate) -> Result<(), KeyError> {
    let pem = cert
        .to_pem(LineEnding::LF)
        .map_err(|e| KeyError::Build(e.to_string()))?;
    let tmp = path.with_extension("pem.new");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(pem.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a PEM (or DER) certificate.
pub fn read_cert(path: &Path) -> Result<Certificate, KeyError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bad = |what: String| KeyError::Bad {
        path: path.to_owned(),
        what,
    };
    if bytes.starts_with(b"-----BEGIN") {
        use der::DecodePem;
        Certificate::from_pem(&bytes).map_err(|e| bad(format!("not a PEM certificate: {e}")))
    } else {
        Certificate::from_der(&bytes).map_err(|e| bad(format!("not a certificate: {e}")))
    }
}

/// Reads an RSA private key (PKCS #8 or PKCS #1 PEM).
fn read_key(path: &Path) -> Result<RsaPrivateKey, KeyError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    RsaPrivateKey::from_pkcs8_pem(&text)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&text))
        .map_err(|_| KeyError::Bad {
            path: path.to_owned(),
            what: "not an RSA private key (PKCS #8 or PKCS #1 PEM)".into(),
        })
}

fn check_pair(cert: &Certificate, key: &RsaPrivateKey, path: &Path) -> Result<(), KeyError> {
    let spki = SubjectPublicKeyInfoOwned::from_key(RsaPublicKey::from(key))
        .map_err(|e| KeyError::Build(e.to_string()))?;
    if spki != cert.tbs_certificate.subject_public_key_info {
        return Err(KeyError::Bad {
            path: path.to_owned(),
            what: "the private key is not this certificate's".into(),
        });
    }
    Ok(())
}

/// Checks that `cert` was issued by `ca`: its issuer is the CA's subject and the CA's key
/// verifies its signature (RSA PKCS #1 v1.5 with SHA-256, the algorithm Vigil's CA uses
/// and the common one for organisations' CAs).
pub fn check_issued(cert: &Certificate, ca: &Certificate, path: &Path) -> Result<(), KeyError> {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;
    let bad = |what: &str| KeyError::Bad {
        path: path.to_owned(),
        what: what.to_owned(),
    };
    if cert.tbs_certificate.issuer != ca.tbs_certificate.subject {
        return Err(bad(
            "not issued by the site CA (its issuer is another name)",
        ));
    }
    let ca_key = RsaPublicKey::try_from(ca.tbs_certificate.subject_public_key_info.owned_to_ref())
        .map_err(|_| bad("the CA's key is not RSA"))?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| bad(&e.to_string()))?;
    let sig = Signature::try_from(cert.signature.raw_bytes())
        .map_err(|_| bad("bad signature encoding"))?;
    VerifyingKey::<Sha256>::new(ca_key)
        .verify(&tbs, &sig)
        .map_err(|_| bad("not issued by the site CA (the CA's key does not verify its signature)"))
}
