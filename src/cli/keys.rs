//! `vigil keys`: the site's signing keys for evidence packages (`evidence::keys`). Each
//! change is recorded in the audit log (`keys.init`, `keys.import`, `keys.rotate`, with
//! the certificates' fingerprints; never a private key).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::audit::AuditLog;
use crate::evidence::keys::{self, DEFAULT_BITS, Keys};

/// What new certificates say, and their keys' size.
#[derive(clap::Args)]
pub struct Naming {
    /// The organisation or site, as the certificates name it.
    #[arg(long)]
    site: String,
    /// This recorder's name in its certificate (default: the host name).
    #[arg(long)]
    recorder: Option<String>,
    /// RSA key size, bits.
    #[arg(long, default_value_t = DEFAULT_BITS)]
    bits: usize,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a site CA and this recorder's signing certificate (private keys 0600 in
    /// <storage>/signing.keys/); prints their SHA-256 fingerprints for the acceptance record.
    Init {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        who: Naming,
    },
    /// Use an organisation's CA instead: its CA certificate and a recorder certificate it
    /// issued, with that certificate's private key (PEM files; checked before use).
    Import {
        #[arg(long, short)]
        config: PathBuf,
        /// The organisation's CA certificate (PEM or DER).
        #[arg(long)]
        ca: PathBuf,
        /// The recorder certificate the CA issued.
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PKCS #8 or PKCS #1 PEM).
        #[arg(long)]
        key: PathBuf,
    },
    /// Issue a new recorder certificate and key with the site CA; the old certificate
    /// is kept in signing.keys/retired/ and packages it signed stay verifiable.
    Rotate {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        who: Naming,
    },
    /// Print the certificates' subjects, validity and fingerprints.
    Show {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "recorder".into())
}

fn print(k: &Keys) {
    let (ca, rec) = k.fingerprints();
    let t = |c: &x509_cert::Certificate| {
        let v = &c.tbs_certificate.validity;
        format!("{} until {}", v.not_before, v.not_after)
    };
    println!("site CA:  {}", k.ca.tbs_certificate.subject);
    println!("  valid {}", t(&k.ca));
    println!("  SHA-256 fingerprint {ca}");
    println!("recorder: {}", k.recorder.tbs_certificate.subject);
    println!("  valid {}", t(&k.recorder));
    println!("  SHA-256 fingerprint {rec}");
}

pub fn main(c: Command) -> anyhow::Result<ExitCode> {
    let config = match &c {
        Command::Init { config, .. }
        | Command::Import { config, .. }
        | Command::Rotate { config, .. }
        | Command::Show { config } => super::load_config(config)?,
    };
    let storage = config.storage.layout();
    let dir = storage.signing_keys();
    let operator = super::os_user();
    let record = |action: &str, k: &Keys| -> anyhow::Result<()> {
        let (ca, rec) = k.fingerprints();
        AuditLog::new(&storage).append(
            &operator,
            "cli",
            action,
            serde_json::json!({ "ca_sha256": ca, "recorder_sha256": rec, "dir": dir.display().to_string() }),
        )?;
        Ok(())
    };
    match c {
        Command::Init { who, .. } => {
            std::fs::create_dir_all(storage.dir())?;
            let k = keys::init(
                &dir,
                &who.site,
                &who.recorder.unwrap_or_else(host),
                who.bits,
            )?;
            record("keys.init", &k)?;
            println!("created in {}", dir.display());
            print(&k);
        }
        Command::Import { ca, cert, key, .. } => {
            std::fs::create_dir_all(storage.dir())?;
            let k = keys::import(&dir, &ca, &cert, &key)?;
            record("keys.import", &k)?;
            println!("imported into {}", dir.display());
            print(&k);
        }
        Command::Rotate { who, .. } => {
            let k = keys::rotate(
                &dir,
                &who.site,
                &who.recorder.unwrap_or_else(host),
                who.bits,
            )?;
            record("keys.rotate", &k)?;
            println!("new recorder certificate in {}", dir.display());
            print(&k);
        }
        Command::Show { .. } => print(&keys::load(&dir)?),
    }
    Ok(ExitCode::SUCCESS)
}
