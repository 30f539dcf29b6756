//! The ONVIF Export File Format seal on an exported MP4 (ONVIF Export File Format
//! specification, release 26.06: §5.2 `suep`, §5.3 `cstb`, §5.6 signature, Annex A
//! verification, Annex B box structure).
//!
//! [`seal`] appends one file-level `meta` box at the end of the file:
//!
//! ```text
//! meta (FullBox v0)
//!   hdlr   handler 'null', name "ONVIF export"
//!   suep   (FullBox v1) export unit name, URL, MAC, time (s since 1904), operator;
//!          per track: track ID (u16), source name, URL (no credentials), MAC, line
//!   ipro   (FullBox v0) protection_count 1
//!     sinf
//!       schm (FullBox v0) scheme 'oeff' (0x6F656666, §5.6.3.3), version 0x00010000
//!       schi
//!         sibo  the signature: k bytes (the RSA modulus length), zero while signing
//!         cert  the signer's X.509 certificate, DER
//!         cstb  per track: track ID (u32), UTC of the media timeline's origin
//!               (100 ns since 1601)
//!         auib  user information (who exported, for which case)
//! ```
//!
//! The signature is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 20-byte salt (§5.6.2,
//! the default, so no `sigC`) over every byte of the file with the `sibo` payload zeroed
//! (§5.6.1, Annex A). `meta` is the last box: the sample tools (onvif/isosign,
//! onvif/oxfplayer) both require that, and nothing after it would be sealed.
//!
//! Choices where the specification is not one-sided: the scheme type is written as the
//! value §5.6.3.3 gives (0x6F656666, `oeff`; its prose and isosign write `OEFF`, which
//! [`verify`] accepts too); `cstb` goes in `schi`, where both tools put and look for it;
//! `suep` track IDs are 16-bit as the box definition says.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use der::{Decode, Encode};
use rsa::RsaPublicKey;
use rsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// The salt length of the seal's RSASSA-PSS (§5.6.2).
pub const SALT_LEN: usize = 20;

/// One track's source, for `suep` and `cstb`.
#[derive(Clone, Debug)]
pub struct TrackSource {
    pub track_id: u16,
    /// The camera's name and its stream URL without credentials.
    pub name: String,
    pub url: String,
    /// UTC of the track's media time 0, µs since the Unix epoch.
    pub origin_us: i64,
}

/// What the seal says about the export.
#[derive(Clone, Debug)]
pub struct SealInfo {
    /// The exporting unit (this recorder) and its URL.
    pub unit_name: String,
    pub unit_url: String,
    /// When it was exported, µs since the Unix epoch.
    pub time_us: i64,
    /// Who exported it.
    pub operator: String,
    pub tracks: Vec<TrackSource>,
    /// Free text for `auib` (the case, say).
    pub user_info: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not sealed: {0}")]
    NotSealed(String),
    #[error("malformed seal: {0}")]
    Malformed(String),
    #[error(
        "the signature does not verify: the file changed after it was sealed, or another key signed it"
    )]
    BadSignature,
    #[error("signing failed: {0}")]
    Sign(String),
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + body.len());
    b.push(version);
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(kind, &b)
}

/// A NUL-terminated UTF-8 string (a NUL inside is cut there).
fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.split('\0').next().unwrap_or("").as_bytes());
    out.push(0);
}

/// Seconds since 1904-01-01 UTC (ISO 14496-12 times).
fn iso_time(us: i64) -> u64 {
    (us.div_euclid(1_000_000) + 2_082_844_800).max(0) as u64
}

/// 100 ns intervals since 1601-01-01 UTC (Windows FILETIME, §5.3).
fn filetime(us: i64) -> u64 {
    ((us + 11_644_473_600_000_000) * 10).max(0) as u64
}

/// The `meta` box with a zero signature of `sig_len` bytes; returns it and the offset
/// of the signature within it.
fn meta_box(info: &SealInfo, cert_der: &[u8], sig_len: usize) -> (Vec<u8>, usize) {
    let mut hdlr = Vec::new();
    hdlr.extend_from_slice(&0u32.to_be_bytes()); // pre_defined
    hdlr.extend_from_slice(b"null");
    hdlr.extend_from_slice(&[0u8; 12]); // reserved
    cstr(&mut hdlr, "ONVIF export");
    let hdlr = full(b"hdlr", 0, 0, &hdlr);

    let mut suep = Vec::new();
    cstr(&mut suep, &info.unit_name);
    cstr(&mut suep, &info.unit_url);
    cstr(&mut suep, ""); // MAC: not known
    suep.extend_from_slice(&iso_time(info.time_us).to_be_bytes());
    cstr(&mut suep, &info.operator);
    suep.extend_from_slice(&(info.tracks.len() as u32).to_be_bytes());
    for t in &info.tracks {
        suep.extend_from_slice(&t.track_id.to_be_bytes());
        cstr(&mut suep, &t.name);
        cstr(&mut suep, &t.url);
        cstr(&mut suep, ""); // MAC
        cstr(&mut suep, ""); // line
    }
    let suep = full(b"suep", 1, 0, &suep);

    let mut schm = Vec::new();
    schm.extend_from_slice(&0x6F65_6666u32.to_be_bytes());
    schm.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    let schm = full(b"schm", 0, 0, &schm);
    let sibo = bx(b"sibo", &vec![0u8; sig_len]);
    let cert = bx(b"cert", cert_der);
    let mut cstb = (info.tracks.len() as u32).to_be_bytes().to_vec();
    for t in &info.tracks {
        cstb.extend_from_slice(&(t.track_id as u32).to_be_bytes());
        cstb.extend_from_slice(&filetime(t.origin_us).to_be_bytes());
    }
    let cstb = bx(b"cstb", &cstb);
    let mut auib = Vec::new();
    cstr(&mut auib, &info.user_info);
    let auib = bx(b"auib", &auib);
    let schi = bx(b"schi", &[sibo, cert, cstb, auib].concat());
    let sinf = bx(b"sinf", &[schm.clone(), schi].concat());
    let mut ipro = 1u16.to_be_bytes().to_vec();
    ipro.extend_from_slice(&sinf);
    let ipro = full(b"ipro", 0, 0, &ipro);
    let meta = full(b"meta", 0, 0, &[hdlr.clone(), suep.clone(), ipro].concat());
    // meta header 12, hdlr, suep, ipro header 12 + count 2, sinf header 8, schm, schi
    // header 8, sibo header 8.
    let sig_at = 12 + hdlr.len() + suep.len() + 14 + 8 + schm.len() + 8 + 8;
    (meta, sig_at)
}

/// Seals the MP4 at `path` in place: appends the `meta` box and signs the whole file
/// with `key` (the certificate `cert` is embedded). Errors: I/O, signing.
pub fn seal(
    path: &Path,
    info: &SealInfo,
    key: &rsa::RsaPrivateKey,
    cert: &Certificate,
) -> Result<(), SealError> {
    use rsa::traits::PublicKeyParts;
    let cert_der = cert.to_der().map_err(|e| SealError::Sign(e.to_string()))?;
    let sig_len = key.size();
    let (meta, sig_at) = meta_box(info, &cert_der, sig_len);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let file_len = f.seek(SeekFrom::End(0))?;
    f.write_all(&meta)?;
    // The digest of the whole file as it now is (the signature still zero).
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut HashWriter(&mut h))?;
    let digest = h.finalize();
    let signer = rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(key.clone(), SALT_LEN);
    let sig: rsa::pss::Signature = signer
        .sign_prehash_with_rng(&mut rsa::rand_core::OsRng, &digest)
        .map_err(|e| SealError::Sign(e.to_string()))?;
    let sig = Box::<[u8]>::from(sig);
    if sig.len() != sig_len {
        return Err(SealError::Sign(format!(
            "signature of {} bytes, {sig_len} expected",
            sig.len()
        )));
    }
    f.seek(SeekFrom::Start(file_len + sig_at as u64))?;
    f.write_all(&sig)?;
    f.sync_all()?;
    Ok(())
}

struct HashWriter<'a>(&'a mut Sha256);
impl Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A verified seal.
#[derive(Debug)]
pub struct Verified {
    /// The signer's certificate (to be checked against the site CA by the caller).
    pub cert: Certificate,
    /// `suep`'s operator and export time (µs), and `auib`'s text.
    pub operator: String,
    pub time_us: i64,
    pub user_info: String,
    /// Track ID and the UTC (µs) of its media timeline's origin, from `cstb`.
    pub origins: Vec<(u32, i64)>,
}

/// The children of a box body: (type, offset of the body, body length), offsets
/// relative to `base`.
fn children(body: &[u8], base: u64) -> Result<Vec<([u8; 4], u64, usize)>, SealError> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= body.len() {
        let size = u32::from_be_bytes(body[i..i + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = body[i + 4..i + 8].try_into().unwrap();
        if size < 8 || i + size > body.len() {
            return Err(SealError::Malformed(format!(
                "box {} has a bad size",
                String::from_utf8_lossy(&kind)
            )));
        }
        out.push((kind, base + i as u64 + 8, size - 8));
        i += size;
    }
    Ok(out)
}

fn find<'a>(
    list: &'a [([u8; 4], u64, usize)],
    kind: &[u8; 4],
) -> Option<&'a ([u8; 4], u64, usize)> {
    list.iter().find(|(k, ..)| k == kind)
}

fn strings(b: &[u8], n: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut i = 0;
    for _ in 0..n {
        let end = b[i.min(b.len())..]
            .iter()
            .position(|&c| c == 0)
            .map_or(b.len(), |p| i + p);
        out.push(String::from_utf8_lossy(&b[i.min(b.len())..end]).into_owned());
        i = end + 1;
    }
    (out, i)
}

/// Verifies the seal of the MP4 at `path`: the last top-level box is `meta` with one
/// signing instance (the last `sinf` is checked, as a verifier of repeated signing
/// would check the newest), its signature over the file with the `sibo` payload zeroed
/// verifies with the embedded certificate's key (RSASSA-PSS, SHA-256, salt 20, or 32 as
/// some signers use). Errors: no seal, a malformed one, a signature that fails.
pub fn verify(path: &Path) -> Result<Verified, SealError> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // The top-level boxes (32-bit sizes only; `mdat` may use a 64-bit size).
    let mut at = 0u64;
    let mut last = None;
    while at + 8 <= len {
        let mut h = [0u8; 16];
        f.seek(SeekFrom::Start(at))?;
        let n = f.read(&mut h)?;
        let size32 = u32::from_be_bytes(h[..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = h[4..8].try_into().unwrap();
        let size = match size32 {
            1 if n >= 16 => u64::from_be_bytes(h[8..16].try_into().unwrap()),
            0 => len - at,
            s => s,
        };
        if size < 8 || at + size > len {
            return Err(SealError::Malformed(format!(
                "top-level box {} at {at} runs past the end",
                String::from_utf8_lossy(&kind)
            )));
        }
        last = Some((kind, at, size));
        at += size;
    }
    let Some((kind, meta_at, meta_size)) = last else {
        return Err(SealError::NotSealed("the file has no boxes".into()));
    };
    if &kind != b"meta" {
        return Err(SealError::NotSealed(format!(
            "the last box is {}, not the seal's meta",
            String::from_utf8_lossy(&kind)
        )));
    }
    let mut meta = vec![0u8; meta_size as usize];
    f.seek(SeekFrom::Start(meta_at))?;
    f.read_exact(&mut meta)?;
    let body = &meta[12..];
    let rel = |off: u64| (off - meta_at) as usize;
    let top = children(body, meta_at + 12)?;
    let &(_, ipro_at, ipro_len) =
        find(&top, b"ipro").ok_or_else(|| SealError::NotSealed("no ipro box".into()))?;
    let ipro = &meta[rel(ipro_at)..rel(ipro_at) + ipro_len];
    if ipro.len() < 6 {
        return Err(SealError::Malformed("ipro too short".into()));
    }
    let sinfs: Vec<_> = children(&ipro[6..], ipro_at + 6)?
        .into_iter()
        .filter(|(k, ..)| k == b"sinf")
        .collect();
    let &(_, sinf_at, sinf_len) = sinfs
        .last()
        .ok_or_else(|| SealError::NotSealed("no sinf box".into()))?;
    let sinf = children(&meta[rel(sinf_at)..rel(sinf_at) + sinf_len], sinf_at)?;
    let &(_, schm_at, schm_len) =
        find(&sinf, b"schm").ok_or_else(|| SealError::Malformed("no schm box".into()))?;
    let schm = &meta[rel(schm_at)..rel(schm_at) + schm_len];
    if schm.len() < 12 || !(&schm[4..8] == b"oeff" || &schm[4..8] == b"OEFF") {
        return Err(SealError::NotSealed(
            "the protection scheme is not the ONVIF export seal".into(),
        ));
    }
    let &(_, schi_at, schi_len) =
        find(&sinf, b"schi").ok_or_else(|| SealError::Malformed("no schi box".into()))?;
    let schi = children(&meta[rel(schi_at)..rel(schi_at) + schi_len], schi_at)?;
    let &(_, sibo_at, sibo_len) =
        find(&schi, b"sibo").ok_or_else(|| SealError::Malformed("no sibo box".into()))?;
    let &(_, cert_at, cert_len) =
        find(&schi, b"cert").ok_or_else(|| SealError::Malformed("no cert box".into()))?;
    let cert = Certificate::from_der(&meta[rel(cert_at)..rel(cert_at) + cert_len])
        .map_err(|e| SealError::Malformed(format!("the certificate: {e}")))?;
    let sig = meta[rel(sibo_at)..rel(sibo_at) + sibo_len].to_vec();
    if meta_at + meta_size != len {
        return Err(SealError::Malformed("bytes after the seal".into()));
    }
    // The digest: the file with the signature's bytes zeroed.
    let mut h = Sha256::new();
    f.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut (&mut f).take(sibo_at), &mut HashWriter(&mut h))?;
    h.update(vec![0u8; sibo_len]);
    f.seek(SeekFrom::Start(sibo_at + sibo_len as u64))?;
    std::io::copy(&mut f, &mut HashWriter(&mut h))?;
    let digest = h.finalize();
    let public =
        RsaPublicKey::try_from(cert.tbs_certificate.subject_public_key_info.owned_to_ref())
            .map_err(|_| SealError::Malformed("the certificate's key is not RSA".into()))?;
    let signature =
        rsa::pss::Signature::try_from(sig.as_slice()).map_err(|_| SealError::BadSignature)?;
    let ok = [SALT_LEN, 32].iter().any(|&salt| {
        rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(public.clone(), salt)
            .verify_prehash(&digest, &signature)
            .is_ok()
    });
    if !ok {
        return Err(SealError::BadSignature);
    }
    // What it says.
    let mut out = Verified {
        cert,
        operator: String::new(),
        time_us: 0,
        user_info: String::new(),
        origins: Vec::new(),
    };
    if let Some(&(_, suep_at, suep_len)) = find(&top, b"suep") {
        let b = &meta[rel(suep_at) + 4..rel(suep_at) + suep_len];
        let (s, i) = strings(b, 3);
        let _ = s;
        if b.len() >= i + 8 {
            let t = u64::from_be_bytes(b[i..i + 8].try_into().unwrap()) as i64;
            out.time_us = (t - 2_082_844_800) * 1_000_000;
            out.operator = strings(&b[i + 8..], 1).0.pop().unwrap_or_default();
        }
    }
    if let Some(&(_, at, n)) = find(&schi, b"auib") {
        out.user_info = strings(&meta[rel(at)..rel(at) + n], 1)
            .0
            .pop()
            .unwrap_or_default();
    }
    if let Some(&(_, at, n)) = find(&schi, b"cstb") {
        let b = &meta[rel(at)..rel(at) + n];
        let count = b
            .get(..4)
            .map_or(0, |c| u32::from_be_bytes(c.try_into().unwrap())) as usize;
        for k in 0..count {
            let e = &b
                .get(4 + k * 12..16 + k * 12)
                .ok_or_else(|| SealError::Malformed("cstb too short".into()))?;
            let id = u32::from_be_bytes(e[..4].try_into().unwrap());
            let ft = u64::from_be_bytes(e[4..].try_into().unwrap()) as i64;
            out.origins.push((id, ft / 10 - 11_644_473_600_000_000));
        }
    }
    Ok(out)
}

use der::referenced::OwnedToRef;
