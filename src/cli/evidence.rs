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
    /// VERIFY.txt, report.pdf. Needs the site's keys (`vigil keys init`). With the daemon
    /// running, asks it (token in VIGIL_TOKEN): the package goes to
    /// <storage>/evidence.packages/, and to --out as a download.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// The case id.
        #[arg(long)]
        case: u64,
        /// The new folder, or a new .zip file (stored, ZIP64). With the daemon running, the
        /// package is made on the recorder and a copy downloaded here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Record a step of the chain of custody in a package (a verification, a hand-over, a
    /// receipt): a record appended to its custody.jsonl, chained to the last and signed
    /// with this site's recorder key; also in the audit log.
    Custody {
        #[arg(long, short)]
        config: PathBuf,
        /// The package's folder or ZIP file.
        package: PathBuf,
        /// What happened: verified, transferred, received, stored, note.
        #[arg(long, value_parser = ["verified", "transferred", "received", "stored", "note"])]
        action: String,
        /// Who did it (a person and their organisation).
        #[arg(long)]
        by: String,
        /// To whom it went (for a transfer).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Verify a package offline: exit 0 and a summary when intact; 3 and each file with
    /// its problem otherwise; 2 when PATH is no package at all.
    Verify {
        /// The package's folder.
        package: PathBuf,
    },
}

/// A private temporary folder, removed when dropped.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tempdir() -> anyhow::Result<TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    let p = std::env::temp_dir().join(format!(
        "vigil-verify-{}-{}",
        std::process::id(),
        crate::base::time::now_us()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&p)?;
    Ok(TempDir(p))
}

/// Downloads a package's ZIP (`url` under the daemon's base) to `out`: the ZIP itself
/// when `out` ends in `.zip`, else extracted into the new folder `out`.
fn download(api: &super::DaemonApi, url: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let zip = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let file = if zip {
        out.to_owned()
    } else {
        out.with_extension("zip.part")
    };
    let r = api.get(&format!("{}{url}", api.base))?;
    let mut f =
        std::fs::File::create_new(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let copied = std::io::copy(
        &mut r.into_body().into_with_config().limit(u64::MAX).reader(),
        &mut f,
    )
    .and_then(|_| f.sync_all());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&file);
        anyhow::bail!("downloading {url}: {e}");
    }
    if !zip {
        let r = package::unzip(&file, out);
        let _ = std::fs::remove_file(&file);
        r?;
    }
    Ok(())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "recorder".into())
}

pub fn main(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Custody {
            config,
            package,
            action,
            by,
            to,
            note,
        } => {
            // People's names and notes: one line each, checked as a case's fields are
            // (no control, invisible or direction-changing characters).
            for (what, v) in [
                ("--by", Some(&by)),
                ("--to", to.as_ref()),
                ("--note", note.as_ref()),
            ] {
                if let Some(v) = v {
                    crate::evidence::cases::check_text(v, what, 500, true, false)?;
                }
            }
            let cfg = super::load_config(&config)?;
            let storage = cfg.storage.layout();
            let keys = keys::load(&storage.signing_keys())?;
            let mut rec = serde_json::json!({ "action": action, "by": by });
            if let Some(to) = &to {
                rec["to"] = to.as_str().into();
            }
            if let Some(n) = &note {
                rec["note"] = n.as_str().into();
            }
            // A ZIP: extracted privately, the record appended, zipped again beside it and
            // put in its place (a crash leaves the old ZIP or the new, never half of one).
            let ((seq, line_sha), package_id) = if package.is_file() {
                let tmp = tempdir()?;
                let outer = tmp.0.join("p");
                package::unzip(&package, &outer)?;
                let dir = package::package_root(&outer);
                let r = package::append_custody(&dir, rec, &keys)?;
                let new = package.with_extension("zip.new");
                let _ = std::fs::remove_file(&new);
                package::zip_dir(&outer, &new)?;
                std::fs::rename(&new, &package)?;
                (r, package::package_id_of(&dir))
            } else {
                (
                    package::append_custody(&package, rec, &keys)?,
                    package::package_id_of(&package),
                )
            };
            let file = if package.is_file() {
                package.clone()
            } else {
                package.join("custody.jsonl")
            };
            let user = super::os_user();
            let at = std::path::absolute(&package).unwrap_or_else(|_| package.clone());
            crate::audit::AuditLog::new(&storage).append(
                &user,
                "cli",
                "custody.record",
                serde_json::json!({
                    "package": at.display().to_string(), "package_id": package_id, "seq": seq,
                    "record_sha256": line_sha, "action": action, "by": by, "to": to,
                }),
            )?;
            println!(
                "custody record {seq} ({action}) appended to {}; its SHA-256 {line_sha}",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { package } => {
            // Exit 2: not a package at all (nothing there, not a ZIP, no manifest); 3: a
            // package with problems.
            let not_a_package = |why: String| {
                eprintln!("{}: {why}", package.display());
                Ok(ExitCode::from(2))
            };
            // A ZIP is verified as its extracted folder (in a private temporary one).
            let tmp;
            let dir = if package.is_file() {
                tmp = tempdir()?;
                if let Err(e) = package::unzip(&package, &tmp.0) {
                    return not_a_package(format!("not a ZIP evidence package ({e})"));
                }
                package::package_root(&tmp.0)
            } else if package.is_dir() {
                package.clone()
            } else {
                return not_a_package("no such file or folder".into());
            };
            if !dir.join("case.json").is_file() {
                return not_a_package(
                    "not an evidence package: it has no case.json (a vigil-evidence/1 \
                     package is a folder or ZIP with case.json, SHA256SUMS and media/)"
                        .into(),
                );
            }
            let v = crate::evidence::verify::verify(&dir);
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
                    let keys = keys::load(&storage.signing_keys())?;
                    let c = crate::evidence::cases::get(&index, case)?;
                    let user = super::os_user();
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
                    // A ZIP: the folder beside it first, then the ZIP, then the folder removed.
                    let zip = out
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
                    let (final_out, out) = if zip {
                        (out.clone(), out.with_extension("zip.d"))
                    } else {
                        (out.clone(), out)
                    };
                    if final_out.exists() {
                        anyhow::bail!(
                            "{} exists already: give a new file or folder",
                            final_out.display()
                        );
                    }
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
                            "case": case, "out": final_out.display().to_string(), "status": status,
                            "package_id": r.as_ref().ok().map(|e| e.package_id.clone()),
                            "manifest_sha256": r.as_ref().ok().map(|e| e.manifest_sha256.clone()),
                        }),
                    )?;
                    let e = r?;
                    if zip {
                        package::zip_dir(&out, &final_out)?;
                        std::fs::remove_dir_all(&out)?;
                    }
                    let e = package::Exported {
                        dir: final_out,
                        ..e
                    };
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
                    // --out is checked (and its folder made) before anything is exported.
                    if let Some(out) = &out {
                        if out.exists() {
                            anyhow::bail!(
                                "{} exists already: give a new file or folder",
                                out.display()
                            );
                        }
                        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                            std::fs::create_dir_all(parent)
                                .map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
                        }
                    }
                    let api = super::DaemonApi::new(&cfg, &path, "it is locked")?;
                    let v = api.send(
                        "POST",
                        &format!("/api/cases/{case}/export"),
                        Some(serde_json::json!({})),
                    )?;
                    println!(
                        "exported case {case} to {} on the recorder (package {})",
                        v["dir"].as_str().unwrap_or(""),
                        v["package_id"].as_str().unwrap_or("")
                    );
                    // --out: a copy here, downloaded as the console does (which records
                    // the download in its chain of custody).
                    if let Some(out) = out {
                        download(&api, v["download"].as_str().unwrap_or(""), &out)?;
                        println!("downloaded to {}", out.display());
                    }
                }
                Err(e) => anyhow::bail!("cannot open index {}: {e}", path.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
