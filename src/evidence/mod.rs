//! Evidence: what makes an export stand up in court. Owns the site's signing keys
//! ([`keys`]: a site CA and this recorder's signing certificate). Cases, the
//! `vigil-evidence/1` package and its offline verification build on them (issue 13).
//!
//! Nothing on the recording or analysis path imports this module: it reads what those
//! wrote (segments, the index, the audit log).

pub mod archive;
pub mod cases;
pub mod cms;
pub mod custody;
pub mod eff;
pub mod keys;
pub mod package;
pub mod report;
pub mod verify;
