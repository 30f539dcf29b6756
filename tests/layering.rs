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
    &[
        "record", "events", "alerts", "export", "audit", "auth", "live", "evidence",
    ],
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

/// `text` without its `#[cfg(test)]` modules (inline ones with their bodies, and
/// `mod tests;` lines); other `#[cfg(test)]` items stay and are checked.
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let is_mod = ["mod ", "pub mod ", "pub(crate) mod "]
            .iter()
            .any(|p| item.starts_with(p));
        let line_end = item.find('\n').unwrap_or(item.len());
        if !is_mod {
            rest = after;
        } else if item[..line_end].trim_end().ends_with(';') {
            rest = &item[line_end..];
        } else {
            // Skip the module's body: up to the brace that closes its first one.
            let open = item.find('{').unwrap_or(item.len());
            let mut depth = 0;
            let mut end = item.len();
            for (k, c) in item[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &item[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The leading identifier of `s` (lower-case, as module names are).
fn ident(s: &str) -> String {
    (s.trim_start().chars())
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect()
}

/// The modules a source names as `crate::<module>` or in `crate::{a::X, b}`, outside
/// whole-line comments and its test modules.
fn named_modules(text: &str) -> Vec<String> {
    let code = without_test_modules(text);
    let code = (code.lines())
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for part in code.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(ident(&item));
        } else {
            out.push(ident(part));
        }
    }
    out.retain(|m| !m.is_empty());
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

/// The check finds what it is for: plain and grouped paths, after a `#[cfg(test)]` item
/// that is not a module, but not in comments or test modules.
#[test]
fn an_upward_import_is_found() {
    let text = "use crate::api::AppState;\n/// see crate::daemon\n\
                #[cfg(test)]\nfn helper() {}\nuse crate::{cli::X, events::{Y, Z},\n  pipeline};\n\
                #[cfg(test)]\nmod tests {\n    use crate::daemon;\n    fn f() { {} }\n}\n\
                use crate::record;\n#[cfg(test)]\nmod more;\nuse crate::export;";
    assert_eq!(
        named_modules(text),
        ["api", "cli", "events", "pipeline", "record", "export"]
    );
    assert!(level("api") > level("storage"));
    assert_eq!(level("nope"), None);
}
