//! `vigil case`: cases and their items from the command line, with the library the API
//! uses (`evidence::cases`). With the daemon stopped it works on the index and records
//! each step in the audit log itself (the OS user, source `cli`, the actions the API
//! records); while the daemon runs (it holds the index's lock) it asks the daemon's API
//! with the token in `VIGIL_TOKEN`, and the daemon records them.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::base::time::{now_us, parse_rfc3339, rfc3339};
use crate::evidence::cases::{self, CaseFields, ItemRequest};
use crate::index::Case;

fn time_arg(s: &str) -> Result<i64, String> {
    parse_rfc3339(s)
}

/// A polygon as `x,y x,y x,y ...` (normalised 0..1).
/// A search region's corners (a newtype, so that clap takes the whole list as one value).
#[derive(Clone, Debug)]
pub struct Polygon(Vec<[f64; 2]>);

fn polygon_arg(s: &str) -> Result<Polygon, String> {
    s.split_whitespace()
        .map(|p| {
            let (x, y) = p
                .split_once(',')
                .ok_or_else(|| format!("{p:?}: a corner is x,y"))?;
            let n = |v: &str| {
                v.parse::<f64>()
                    .map_err(|_| format!("{v:?} is not a number"))
            };
            Ok([n(x)?, n(y)?])
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Polygon)
}

#[derive(clap::Args)]
pub struct Fields {
    /// The case's title.
    #[arg(long)]
    title: Option<String>,
    /// The requester's reference (a police or insurance case number).
    #[arg(long)]
    reference: Option<String>,
    /// Who asked for the material.
    #[arg(long)]
    requester: Option<String>,
    /// Why it may be handed over (the law, order or policy).
    #[arg(long)]
    legal_basis: Option<String>,
    #[arg(long)]
    notes: Option<String>,
}

impl Fields {
    fn lib(&self) -> CaseFields {
        CaseFields {
            title: self.title.clone(),
            reference: self.reference.clone(),
            requester: self.requester.clone(),
            legal_basis: self.legal_basis.clone(),
            notes: self.notes.clone(),
        }
    }
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::Map::new();
        for (k, f) in [
            ("title", &self.title),
            ("reference", &self.reference),
            ("requester", &self.requester),
            ("legal_basis", &self.legal_basis),
            ("notes", &self.notes),
        ] {
            if let Some(f) = f {
                v.insert(k.into(), f.clone().into());
            }
        }
        v.into()
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Open a case (--title required); prints its id.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        fields: Fields,
    },
    /// Change a case's fields.
    Update {
        #[arg(long, short)]
        config: PathBuf,
        id: u64,
        #[command(flatten)]
        fields: Fields,
    },
    /// List the cases.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show a case and its items (--json: what the API answers).
    Show {
        #[arg(long, short)]
        config: PathBuf,
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Add an item: a range of cameras (--camera, --start, --end), an event (--event), a
    /// bookmark (--bookmark) or a region search (--polygon, --start, --end, --camera).
    /// Places a hold on its range on each of its cameras.
    Add {
        #[arg(long, short)]
        config: PathBuf,
        id: u64,
        /// A camera (repeatable).
        #[arg(long = "camera")]
        cameras: Vec<String>,
        #[arg(long, value_parser = time_arg)]
        start: Option<i64>,
        #[arg(long, value_parser = time_arg)]
        end: Option<i64>,
        #[arg(long, conflicts_with_all = ["bookmark", "polygon"])]
        event: Option<u64>,
        #[arg(long, conflicts_with = "polygon")]
        bookmark: Option<u64>,
        /// A search region: corners as "x,y x,y x,y ..." (normalised 0..1).
        #[arg(long, value_parser = polygon_arg)]
        polygon: Option<Polygon>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Remove item N from a case (its holds stay).
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        id: u64,
        n: u32,
    },
}

/// Where the commands act: the index (and the audit log) or the daemon.
enum Target {
    Index {
        index: crate::index::Index,
        audit: crate::audit::AuditLog,
        user: String,
    },
    Daemon(super::DaemonApi),
}

impl Target {
    /// Runs a change on the index (recording `action` with `params` in the audit log,
    /// as the API would) or sends `method path body` to the daemon; returns the answer
    /// as the API gives it.
    fn run(
        &self,
        action: &str,
        (method, path, body): (&str, &str, Option<serde_json::Value>),
        direct: impl FnOnce(
            &crate::index::Index,
            &str,
        ) -> Result<serde_json::Value, crate::events::QueryError>,
    ) -> anyhow::Result<serde_json::Value> {
        match self {
            Target::Index { index, audit, user } => {
                let r = direct(index, user);
                let status = match &r {
                    Ok(_) => 200,
                    Err(crate::events::QueryError::NotFound(_)) => 404,
                    Err(crate::events::QueryError::Bad(_)) => 400,
                    Err(_) => 500,
                };
                let params = serde_json::json!({ "path": path, "body": body, "status": status });
                audit.append(user, "cli", action, params)?;
                Ok(r?)
            }
            Target::Daemon(api) => api.send(method, path, body),
        }
    }
}

fn open(config: &std::path::Path) -> anyhow::Result<Target> {
    let config = super::load_config(config)?;
    let storage = config.storage.layout();
    let path = storage.index();
    if !path.exists() {
        anyhow::bail!("no index at {} (has the daemon ever run?)", path.display());
    }
    Ok(match crate::index::Index::open(&path) {
        Ok(index) => Target::Index {
            index,
            audit: crate::audit::AuditLog::new(&storage),
            user: super::os_user(),
        },
        Err(e) if e.is_locked() => {
            Target::Daemon(super::DaemonApi::new(&config, &path, "it is locked")?)
        }
        Err(e) => anyhow::bail!("cannot open index {}: {e}", path.display()),
    })
}

fn view(c: &Case) -> serde_json::Value {
    crate::api::cases_view(c)
}

fn print_case(v: &serde_json::Value) {
    println!("case {}: {}", v["id"], v["title"].as_str().unwrap_or(""));
    for (k, label) in [
        ("reference", "reference"),
        ("requester", "requester"),
        ("legal_basis", "legal basis"),
        ("notes", "notes"),
    ] {
        if let Some(s) = v[k].as_str().filter(|s| !s.is_empty()) {
            println!("  {label}: {s}");
        }
    }
    println!(
        "  opened by {} at {}, changed {}",
        v["created_by"].as_str().unwrap_or(""),
        v["created"].as_str().unwrap_or(""),
        v["updated"].as_str().unwrap_or("")
    );
    if let Some(items) = v["items"].as_array() {
        for it in items {
            let what = match it["kind"].as_str() {
                Some("event") => format!("event {}", it["event_id"]),
                Some("bookmark") => format!("bookmark {}", it["bookmark_id"]),
                Some("search") => format!(
                    "region search ({} intervals)",
                    it["intervals"].as_array().map_or(0, Vec::len)
                ),
                _ => "range".into(),
            };
            let cams: Vec<&str> = (it["cameras"].as_array().into_iter().flatten())
                .filter_map(|c| c.as_str())
                .collect();
            println!(
                "  item {}: {what} on {} from {} to {}; holds {}{}",
                it["n"],
                cams.join(","),
                it["start"].as_str().unwrap_or(""),
                it["end"].as_str().unwrap_or(""),
                it["holds"],
                it["note"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default()
            );
        }
    }
}

pub fn main(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Create { config, fields } => {
            let t = open(&config)?;
            let f = fields.lib();
            let v = t.run(
                "case.create",
                ("POST", "/api/cases", Some(fields.json())),
                |ix, user| Ok(view(&cases::create(ix, &f, user, now_us())?)),
            )?;
            println!("{}", v["id"]);
        }
        Command::Update { config, id, fields } => {
            let t = open(&config)?;
            let f = fields.lib();
            let v = t.run(
                "case.update",
                ("PATCH", &format!("/api/cases/{id}"), Some(fields.json())),
                |ix, _| Ok(view(&cases::change(ix, id, &f, now_us())?)),
            )?;
            print_case(&v);
        }
        Command::List { config } => {
            let t = open(&config)?;
            let v = t.run("cases.list", ("GET", "/api/cases", None), |ix, _| {
                let all: Vec<_> = ix
                    .cases()?
                    .iter()
                    .map(|c| {
                        let mut v = view(c);
                        v["items"] = c.items.len().into();
                        v
                    })
                    .collect();
                Ok(serde_json::json!({ "cases": all }))
            })?;
            for c in v["cases"].as_array().into_iter().flatten() {
                println!(
                    "{:>5}  {}  {} items  {}{}",
                    c["id"],
                    c["created"].as_str().unwrap_or(""),
                    c["items"],
                    c["title"].as_str().unwrap_or(""),
                    c["reference"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Show { config, id, json } => {
            let t = open(&config)?;
            let v = t.run(
                "case.view",
                ("GET", &format!("/api/cases/{id}"), None),
                |ix, _| Ok(view(&cases::get(ix, id)?)),
            )?;
            if json {
                println!("{v}");
            } else {
                print_case(&v);
            }
        }
        Command::Add {
            config,
            id,
            cameras,
            start,
            end,
            event,
            bookmark,
            polygon,
            note,
        } => {
            let req = match (event, bookmark, polygon, start, end) {
                (Some(e), None, None, None, None) if cameras.is_empty() => {
                    ItemRequest::Event { event_id: e, note }
                }
                (None, Some(b), None, None, None) if cameras.is_empty() => ItemRequest::Bookmark {
                    bookmark_id: b,
                    note,
                },
                (None, None, Some(p), Some(s), Some(e)) => ItemRequest::Search {
                    cameras,
                    polygon: p.0,
                    start_us: s,
                    end_us: e,
                    note,
                },
                (None, None, None, Some(s), Some(e)) => ItemRequest::Range {
                    cameras,
                    start_us: s,
                    end_us: e,
                    note,
                },
                _ => anyhow::bail!(
                    "give one of: --camera C... --start T --end T (a range); --event N; --bookmark N; --polygon \"x,y ...\" --start T --end T [--camera C...] (a region search)"
                ),
            };
            let body = request_json(&req);
            let t = open(&config)?;
            let v = t.run("case.item.add", ("POST", &format!("/api/cases/{id}/items"), Some(body)), |ix, user| {
                let (c, it) = cases::add_item(ix, id, &req, user, now_us())?;
                Ok(serde_json::json!({ "item": crate::api::case_item_view(&it), "case": view(&c) }))
            })?;
            println!(
                "item {} added to case {id}; holds {}",
                v["item"]["n"], v["item"]["holds"]
            );
        }
        Command::Remove { config, id, n } => {
            let t = open(&config)?;
            let v = t.run("case.item.remove", ("DELETE", &format!("/api/cases/{id}/items/{n}"), None), |ix, _| {
                let (c, it) = cases::remove_item(ix, id, n, now_us())?;
                Ok(serde_json::json!({ "item": crate::api::case_item_view(&it), "case": view(&c) }))
            })?;
            println!(
                "item {} removed from case {id} (its holds stay)",
                v["item"]["n"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An item request as the API takes it (RFC 3339 times).
fn request_json(r: &ItemRequest) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("plain data");
    for (us, t) in [("start_us", "start"), ("end_us", "end")] {
        if let Some(x) = v.get(us).and_then(|x| x.as_i64()) {
            v[t] = rfc3339(x).into();
            v.as_object_mut().unwrap().remove(us);
        }
    }
    v
}
