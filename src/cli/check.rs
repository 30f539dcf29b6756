//! `vigil check-config` and `vigil check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::index::Index;
use crate::record::recovery::{self, Mode};

pub fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    match crate::config::Config::load(file) {
        Ok(c) => {
            println!(
                "{}: ok ({} cameras, storage {})",
                file.display(),
                c.cameras.len(),
                c.storage.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Run it with the daemon stopped (the daemon locks the index). \
    Exit status: 0 clean (or everything repaired), 3 problems found, 1 error."
)]
pub struct Args {
    /// The TOML config file of the daemon whose storage to check.
    #[arg(long, short)]
    config: PathBuf,
    /// Fix what is found: cut interrupted tails, drop entries whose file is gone, finish
    /// deletions, adopt orphan files that play (others go to lost+found/).
    #[arg(long)]
    repair: bool,
    /// Also read every closed segment and compare it with the SHA-256 its record took
    /// when it closed: any file whose bytes or length changed since is reported (exit
    /// status 3; `--repair` does not change that, nothing can repair it).
    #[arg(long)]
    verify_hashes: bool,
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let storage = config.storage.layout();
    let path = storage.index();
    if !path.exists() {
        anyhow::bail!("no index at {} (has the daemon ever run?)", path.display());
    }
    // sled takes an exclusive lock: this fails clearly while the daemon runs (the
    // hashes alone can be checked through it).
    let index = match Index::open(&path) {
        Err(e) if e.is_locked() && a.verify_hashes && !a.repair => {
            return hashes_through_daemon(&config, &path);
        }
        r => r,
    };
    let index = index.map_err(|e| {
        if e.is_locked() {
            anyhow::anyhow!(
                "cannot check {}: its index is locked (the daemon is running; stop it first, \
                 or check only the hashes through it: --verify-hashes with {})",
                storage.dir().display(),
                super::TOKEN_ENV
            )
        } else {
            anyhow::anyhow!("cannot open index {}: {e}", path.display())
        }
    })?;
    let mode = if a.repair { Mode::Repair } else { Mode::Report };
    let rep = recovery::reconcile(&index, &storage, mode)?;
    for p in &rep.problems {
        println!("{}{p}", if a.repair { "repaired: " } else { "problem: " });
    }
    for o in &rep.orphans {
        println!("orphan: {o} (not indexed)");
    }
    println!(
        "checked {} segments: {}",
        rep.segments_checked,
        if rep.is_clean() {
            "clean".to_string()
        } else if a.repair {
            format!("{} problems repaired", rep.problems.len())
        } else {
            format!(
                "{} problems, {} orphan files (run with --repair to fix)",
                rep.problems.len(),
                rep.orphans.len()
            )
        }
    );
    let mut changed = false;
    if a.verify_hashes {
        let h = crate::record::integrity::verify(&index, &storage)?;
        for (file, why) in &h.changed {
            println!("changed: {file}: {why}");
        }
        println!(
            "hashes: {} segments intact, {} changed since recorded, {} without a record-time hash (open, or recorded before hashes were kept)",
            h.intact,
            h.changed.len(),
            h.unhashed
        );
        changed = !h.changed.is_empty();
    }
    Ok(if (rep.is_clean() || a.repair) && !changed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `--verify-hashes` while the daemon runs: its `GET /api/storage/verify` (an admin's
/// token in `VIGIL_TOKEN`), printed as the offline check prints it.
fn hashes_through_daemon(
    config: &crate::config::Config,
    index: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let api = super::DaemonApi::new(config, index, "it is locked")?;
    let r = api.send("GET", "/api/storage/verify", None)?;
    let changed = r["changed"].as_array().cloned().unwrap_or_default();
    for c in &changed {
        println!(
            "changed: {}: {}",
            c["file"].as_str().unwrap_or(""),
            c["why"].as_str().unwrap_or("")
        );
    }
    println!(
        "hashes (checked through the running daemon; stop it for the full check): {} segments intact, {} changed since recorded, {} without a record-time hash (open, or recorded before hashes were kept)",
        r["intact"],
        changed.len(),
        r["unhashed"]
    );
    Ok(if changed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
