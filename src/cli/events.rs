//! `vigil events`: search the event timeline from the command line.
//!
//! With the daemon stopped it reads the index directly; while the daemon runs (it holds
//! the index's lock) it asks the daemon's HTTP API, which runs the same library query.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::base::time::parse_rfc3339;
use crate::events::{self, EventPage, EventQuery, EventView, MAX_LIMIT, Order};
use crate::index::Index;

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
    #[arg(long)]
    min_score: Option<f32>,
    /// Only events lasting at least this many seconds.
    #[arg(long)]
    min_duration: Option<f64>,
    /// Newest first.
    #[arg(long)]
    newest_first: bool,
    /// At most this many events (all by default).
    #[arg(long)]
    limit: Option<usize>,
    /// One JSON object per event (the fields of `vigil analyze` plus `id` and UTC times).
    #[arg(long)]
    json: bool,
}

/// One page of a query, from the index or from the daemon.
type Fetch = dyn FnMut(&EventQuery) -> anyhow::Result<EventPage>;

fn time_arg(s: &str) -> Result<i64, String> {
    parse_rfc3339(s)
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let mut q = EventQuery {
        start_us: a.since,
        end_us: a.until,
        cameras: a.cameras.clone(),
        zones: a.zones.clone(),
        min_score: a.min_score,
        min_duration_us: a.min_duration.map(|s| (s * 1e6) as i64),
        order: if a.newest_first {
            Order::Desc
        } else {
            Order::Asc
        },
        limit: MAX_LIMIT,
        cursor: None,
    };
    let path = config.storage.layout().index();
    if !path.exists() {
        anyhow::bail!("no index at {} (has the daemon ever run?)", path.display());
    }
    let mut fetch: Box<Fetch> = match Index::open(&path) {
        Ok(index) => Box::new(move |q| Ok(events::search(&index, q)?)),
        // Locked by the running daemon: ask it.
        Err(e) => {
            let api = super::DaemonApi::new(&config, &path, e)?;
            Box::new(move |q| via_http(&api, q))
        }
    };
    let want = a.limit.unwrap_or(usize::MAX);
    let mut shown = 0usize;
    let mut total;
    let mut out = std::io::stdout().lock();
    loop {
        q.limit = (want - shown).clamp(1, MAX_LIMIT);
        let page = fetch(&q)?;
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

/// The same query through the running daemon's `/api/events`.
fn via_http(api: &super::DaemonApi, q: &EventQuery) -> anyhow::Result<EventPage> {
    use crate::base::time::rfc3339;
    let mut url = url::Url::parse(&format!("{}/api/events", api.base))?;
    {
        let mut p = url.query_pairs_mut();
        p.append_pair("start", &rfc3339(q.start_us));
        p.append_pair("end", &rfc3339(q.end_us));
        for c in &q.cameras {
            p.append_pair("camera", c);
        }
        for z in &q.zones {
            p.append_pair("zone", z);
        }
        if let Some(s) = q.min_score {
            p.append_pair("min_score", &s.to_string());
        }
        if let Some(d) = q.min_duration_us {
            p.append_pair("min_duration", &(d as f64 / 1e6).to_string());
        }
        p.append_pair(
            "order",
            if q.order == Order::Desc {
                "desc"
            } else {
                "asc"
            },
        );
        p.append_pair("limit", &q.limit.to_string());
        if let Some(c) = &q.cursor {
            p.append_pair("cursor", c);
        }
    }
    let body: serde_json::Value = api.get(url.as_str())?.body_mut().read_json()?;
    Ok(serde_json::from_value(body)?)
}
