//! `vigil recordings`: what is recorded of one camera in a time range, and the gaps
//! between the segments with why recording stopped before each; from the index, or from
//! the running daemon (`cli::source`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::base::time::parse_rfc3339;

#[derive(clap::Args)]
#[command(
    after_help = "Times are RFC 3339 (2026-11-22T08:00:00Z or with an offset). \
    Exit status: 0 ok (even if nothing is recorded), 1 error."
)]
pub struct Args {
    /// The daemon's TOML config file.
    #[arg(long, short)]
    config: PathBuf,
    /// The camera.
    #[arg(long)]
    camera: String,
    /// Start of the range (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    since: i64,
    /// End of the range (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    until: i64,
    /// The answer as one JSON object (what `GET /api/recordings` returns).
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let source = super::source::Source::open(&config)?;
    let r = source.recordings(&a.camera, a.since, a.until)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Segments and gaps in time order.
    let mut lines: Vec<(i64, String)> = (r.segments.iter())
        .map(|s| {
            let line = format!(
                "segment  {} .. {}  {:>8.1}s  {:>6} frames  {:>11} bytes  {} {}x{}  {}{}",
                s.start,
                s.end,
                s.duration_ms / 1000.0,
                s.frames,
                s.bytes,
                s.codec,
                s.width,
                s.height,
                s.end_reason,
                if s.open { " (recording)" } else { "" }
            );
            (s.start_us, line)
        })
        .collect();
    lines.extend(r.gaps.iter().map(|g| {
        let (start, end) = (
            crate::base::time::rfc3339(g.start_us),
            crate::base::time::rfc3339(g.end_us),
        );
        let secs = (g.end_us - g.start_us) as f64 / 1e6;
        (
            g.start_us,
            format!("gap      {start} .. {end}  {secs:>8.1}s  {}", g.reason),
        )
    }));
    lines.sort_by_key(|l| l.0);
    for (_, l) in &lines {
        writeln!(out, "{l}")?;
    }
    let recorded: f64 = r.segments.iter().map(|s| s.duration_ms / 1000.0).sum();
    eprintln!(
        "{}: {} segments ({recorded:.1} s), {} gaps",
        r.camera,
        r.segments.len(),
        r.gaps.len()
    );
    Ok(ExitCode::SUCCESS)
}
