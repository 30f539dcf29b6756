//! The layering of ARCHITECTURE.md ("Layering and where new things go"), checked: no
//! module of `src/` names (`crate::<module>`) a module on a higher level, outside its
//! unit tests, and every top-level module has a level (a new one must be placed).

use std::path::Path;

/// ARCHITECTURE.md's levels, bottom up.
const LEVELS: &[&[&str]] = &[
    &["base", "motion"],
    &[
        "storage", "index", "config", "media", "schedule", "status", "tls",
    ],
    &["ingest", "decode"],
    &["record", "events", "alerts", "export", "audit", "auth"],
    &["pipeline"],
    &["api", "cli", "daemon", "fake_camera"],
];

fn level(module: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules a source names as `crate::<module>`, outside doc comments and its
/// `#[cfg(test)]` part.
fn named_modules(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap();
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for part in line.split("crate::").skip(1) {
            let name: String = (part.chars())
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_str().unwrap();
        let top = top.trim_end_matches(".rs");
        if matches!(top, "lib" | "main") || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(own) = level(top) else {
            wrong.push(format!("{}: module {top} has no level", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for m in named_modules(&text) {
            if level(&m).is_some_and(|l| l > own) {
                wrong.push(format!(
                    "{}: {top} imports {m}, which is above it",
                    rel.display()
                ));
            }
        }
    }
    assert!(files.len() > 50, "read only {} files", files.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The check finds what it is for.
#[test]
fn an_upward_import_is_found() {
    let text = "use crate::api::AppState;\n/// see crate::daemon\n#[cfg(test)]\nuse crate::cli;";
    assert_eq!(named_modules(text), ["api"]);
    assert!(level("api") > level("storage"));
    assert_eq!(level("nope"), None);
}
