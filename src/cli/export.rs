//! `vigil export`: a time range of one or more cameras as playable MP4 files.
//!
//! As `vigil events`: reads the index itself when the daemon is stopped, and downloads the
//! clips from the daemon's `/api/clips` while it runs (it holds the index's lock).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::source::Source;
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::events::Cameras;
use crate::export;

#[derive(clap::Args)]
#[command(
    after_help = "Times are RFC 3339. With one --camera, -o names the MP4 file; with \
    several, -o is a folder that receives <camera>-<start>.mp4 for each. Each clip starts \
    at the keyframe at or before --start, with an edit list so that players begin at \
    --start. Exit status: 0 all written, 1 error."
)]
pub struct Args {
    /// The daemon's TOML config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Camera to export (repeatable: the same window from several cameras).
    #[arg(long = "camera", required = true)]
    cameras: Vec<String>,
    #[arg(long, value_parser = parse_rfc3339)]
    start: i64,
    #[arg(long, value_parser = parse_rfc3339)]
    end: i64,
    /// Output file (one camera) or folder (several).
    #[arg(long, short)]
    output: PathBuf,
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let targets: Vec<(String, PathBuf)> = if a.cameras.len() == 1 {
        vec![(a.cameras[0].clone(), a.output.clone())]
    } else {
        std::fs::create_dir_all(&a.output)
            .with_context(|| format!("cannot create {}", a.output.display()))?;
        let stamp = rfc3339(a.start).replace([':', '-'], "");
        a.cameras
            .iter()
            .map(|c| (c.clone(), a.output.join(format!("{c}-{stamp}.mp4"))))
            .collect()
    };
    let source = super::source::Source::open(&config)?;
    match &source {
        Source::Index { index, storage, .. } => {
            let cams = Cameras::load(index)?;
            for (camera, out) in &targets {
                let plan = export::plan(index, storage, cams.id(camera)?, a.start, a.end)
                    .with_context(|| format!("camera {camera}"))?;
                let mut f = std::io::BufWriter::new(create(out)?);
                plan.write_range(0, plan.len, &mut f)
                    .and_then(|()| f.flush())
                    .with_context(|| format!("writing {}", out.display()))?;
                report(camera, out, plan.presented_frames, plan.duration_us);
                for (g0, g1) in &plan.gaps {
                    eprintln!(
                        "{camera}: no recording from {} to {} ({:.3} s; the last picture before it is held)",
                        rfc3339(*g0),
                        rfc3339(*g1),
                        (g1 - g0) as f64 / 1e6
                    );
                }
                source.audit(
                    "clip.export",
                    serde_json::json!({
                        "camera": camera,
                        "start": rfc3339(a.start),
                        "end": rfc3339(a.end),
                        "file": out.display().to_string(),
                        "bytes": plan.len,
                    }),
                )?;
            }
        }
        Source::Daemon(api) => {
            for (camera, out) in &targets {
                download(api, camera, a.start, a.end, out)?;
                eprintln!("{camera}: {}", out.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create(out: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))
}

fn report(camera: &str, out: &Path, frames: u64, duration_us: i64) {
    eprintln!(
        "{camera}: {} ({frames} frames, {:.3} s)",
        out.display(),
        duration_us as f64 / 1e6
    );
}

/// The same clip from the running daemon.
fn download(
    api: &super::DaemonApi,
    camera: &str,
    start: i64,
    end: i64,
    out: &Path,
) -> anyhow::Result<()> {
    let mut url =
        url::Url::parse(&format!("{}/api/clips/", api.base))?.join(&format!("{camera}.mp4"))?;
    url.query_pairs_mut()
        .append_pair("start", &rfc3339(start))
        .append_pair("end", &rfc3339(end));
    let mut r = api
        .get(url.as_str())
        .with_context(|| format!("camera {camera}"))?;
    let mut f = std::io::BufWriter::new(create(out)?);
    std::io::copy(
        &mut r.body_mut().with_config().limit(u64::MAX).reader(),
        &mut f,
    )
    .and_then(|_| f.flush())
    .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
