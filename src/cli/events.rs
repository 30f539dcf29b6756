//! `vigil events`: search the event timeline from the command line.
//!
//! With the daemon stopped it reads the index directly; while the daemon runs (it holds
//! the index's lock) it asks the daemon's HTTP API, which runs the same library query
//! (`cli::source`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::base::time::parse_rfc3339;
use crate::events::{EventQuery, EventView, MAX_LIMIT, Order};

#[derive(clap::Args)]
#[command(
    after_help = "Times are RFC 3339 (2026-11-22T08:00:00Z or with an offset). \
    Events overlapping [since, until) are listed oldest first; --camera and --zone may be \
    repeated (any of them matches). Exit status: 0 ok (even if nothing matched), 1 error."
)]
pub struct Args {
    /// The daemon's TOML config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Start of the range (RFC 3339).
    #[arg(long, value_parser = time_arg)]
    since: i64,
    /// End of the range (RFC 3339).
    #[arg(long, value_parser = time_arg)]
    until: i64,
    /// Only these cameras (repeatable).
    #[arg(long = "camera")]
    cameras: Vec<String>,
    /// Only events with motion in these zones (repeatable).
    #[arg(long = "zone")]
    zones: Vec<String>,
    /// Only events whose peak score reached this (fraction of the image, 0..1).
    #[arg(long, value_parser = non_negative)]
    min_score: Option<f64>,
    /// Only events lasting at least this many seconds.
    #[arg(long, value_parser = non_negative)]
    min_duration: Option<f64>,
    /// Only events whose alert was acknowledged (`true`) or not yet (`false`).
    #[arg(long)]
    acknowledged: Option<bool>,
    /// Newest first.
    #[arg(long)]
    newest_first: bool,
    /// At most this many events (all by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// One JSON object per event (the fields of `vigil analyze` plus `id` and UTC times).
    #[arg(long)]
    json: bool,
}

fn time_arg(s: &str) -> Result<i64, String> {
    parse_rfc3339(s)
}

/// A number, 0 or more (what the API accepts for `min_score` and `min_duration`).
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("must be a number, 0 or more, not {s:?}")),
    }
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let mut q = EventQuery {
        start_us: a.since,
        end_us: a.until,
        cameras: a.cameras.clone(),
        zones: a.zones.clone(),
        min_score: a.min_score.map(|v| v as f32),
        min_duration_us: a.min_duration.map(|s| (s * 1e6) as i64),
        acknowledged: a.acknowledged,
        order: if a.newest_first {
            Order::Desc
        } else {
            Order::Asc
        },
        limit: MAX_LIMIT,
        cursor: None,
    };
    let source = super::source::Source::open(&config)?;
    let want = a.limit.map_or(usize::MAX, |l| l as usize);
    let mut shown = 0usize;
    let mut total;
    let mut out = std::io::stdout().lock();
    loop {
        q.limit = (want - shown).clamp(1, MAX_LIMIT);
        let page = source.events(&q)?;
        total = page.total;
        for e in &page.events {
            print_event(&mut out, e, a.json)?;
            shown += 1;
        }
        match page.next_cursor {
            Some(c) if shown < want => q.cursor = Some(c),
            _ => break,
        }
    }
    eprintln!("{shown} of {total} events");
    Ok(ExitCode::SUCCESS)
}

fn print_event(out: &mut impl std::io::Write, e: &EventView, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, e)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:>8}  {:<16} {}  {:>7.1}s  score {:.4}  zones {}  video {}",
            e.id,
            e.camera,
            e.start,
            (e.end_ms - e.start_ms) as f64 / 1000.0,
            e.peak_score,
            if e.zones.is_empty() {
                "-".to_string()
            } else {
                e.zones.join(",")
            },
            e.video
        )?;
    }
    Ok(())
}
