//! `vigil evidence`: export a case as a `vigil-evidence/1` package, and verify one
//! offline (no daemon, no config: only the package's own files).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::base::time::now_us;
use crate::evidence::{keys, package};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Export a case to a new folder: media sealed (ONVIF export format), the signed
    /// manifest, SHA256SUMS, the custody chain, the audit extract, certificates and
    /// VERIFY.txt. Needs the site's keys (`vigil keys init`). With the daemon running,
    /// asks it (token in VIGIL_TOKEN) and the package goes to <storage>/evidence.packages/.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// The case id.
        #[arg(long)]
        case: u64,
        /// The new folder (with the daemon stopped).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a package offline: exit 0 and a summary when intact; 3 and each file with
    /// its problem otherwise.
    Verify {
        /// The package's folder.
        package: PathBuf,
    },
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "recorder".into())
}

pub fn main(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Verify { package } => {
            let v = package::verify(&package);
            for p in &v.passed {
                println!("ok: {p}");
            }
            for (file, why) in &v.problems {
                println!("FAILED: {file}: {why}");
            }
            if v.intact() {
                println!("intact: {}", package.display());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("NOT intact: {} problem(s)", v.problems.len());
                Ok(ExitCode::from(3))
            }
        }
        Command::Export { config, case, out } => {
            let cfg = super::load_config(&config)?;
            let storage = cfg.storage.layout();
            let path = storage.index();
            match crate::index::Index::open(&path) {
                Ok(index) => {
                    let out =
                        out.ok_or_else(|| anyhow::anyhow!("give the new folder with --out"))?;
                    let keys = keys::load(&keys::dir(storage.dir()))?;
                    let c = crate::evidence::cases::get(&index, case)?;
                    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
                    let urls: Vec<(String, String)> = cfg
                        .cameras
                        .iter()
                        .map(|c| (c.name.clone(), c.url.to_string()))
                        .collect();
                    let who = package::Exporter {
                        user: &user,
                        role: "cli",
                        recorder: &host(),
                        host: &host(),
                        camera_urls: &urls,
                    };
                    let audit = crate::audit::AuditLog::new(&storage);
                    let r = package::export(
                        &package::Recorder {
                            index: &index,
                            storage: &storage,
                            audit: &audit,
                            keys: &keys,
                        },
                        &c,
                        &who,
                        &out,
                        now_us(),
                    );
                    let status = if r.is_ok() { 201 } else { 500 };
                    audit.append(
                        &user,
                        "cli",
                        "case.export",
                        serde_json::json!({
                            "case": case, "out": out.display().to_string(), "status": status,
                            "package_id": r.as_ref().ok().map(|e| e.package_id.clone()),
                            "manifest_sha256": r.as_ref().ok().map(|e| e.manifest_sha256.clone()),
                        }),
                    )?;
                    let e = r?;
                    println!(
                        "exported case {case} to {} (package {}, {} files, {} bytes of video; case.json SHA-256 {})",
                        e.dir.display(),
                        e.package_id,
                        e.files,
                        e.media_bytes,
                        e.manifest_sha256
                    );
                }
                Err(e) if e.is_locked() => {
                    let api = super::DaemonApi::new(&cfg, &path, "it is locked")?;
                    let v = api.send(
                        "POST",
                        &format!("/api/cases/{case}/export"),
                        Some(serde_json::json!({})),
                    )?;
                    println!(
                        "exported case {case} to {} (package {})",
                        v["dir"].as_str().unwrap_or(""),
                        v["package_id"].as_str().unwrap_or("")
                    );
                }
                Err(e) => anyhow::bail!("cannot open index {}: {e}", path.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
