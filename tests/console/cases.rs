//! The console's case features beyond the selection: events, bookmarks and region-search
//! results added to the picked case, and the exported package downloaded. `tests/console.rs`
//! runs them against the daemon and the case it made.

use super::browser::Browser;
use super::common::{Api, TestDaemon};

/// The case's items, by kind (`range`, `event`, `bookmark`, `search`).
fn kinds(d: &TestDaemon, case: u64) -> Vec<String> {
    let c = d.get_json(&format!("/api/cases/{case}"));
    c["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// In Review with the case picked and exported: an event row's and a bookmark's
/// "+ case" add them (held), and the package's link downloads it as a ZIP (fetched by
/// the page itself with its session), which the case's package list then shows with the
/// download in its chain of custody.
pub fn review_adds_and_downloads(b: &mut Browser, d: &TestDaemon) {
    let case: u64 = b
        .eval("+document.getElementById('case-pick').value")
        .as_u64()
        .unwrap();
    let before = kinds(d, case).len();
    b.eval("document.querySelector('#event-rows .to-case').click(); true");
    b.wait(
        "/^event \\d+ added to case/.test(document.getElementById('case-state').textContent)",
        "an event added to the case",
    );
    b.wait(
        "!!document.querySelector('#bookmark-list button[data-bookmark]')",
        "the bookmarks listed with their buttons",
    );
    b.eval("document.querySelector('#bookmark-list button[data-bookmark]').click(); true");
    b.wait(
        "/^bookmark \\d+ added to case/.test(document.getElementById('case-state').textContent)",
        "a bookmark added to the case",
    );
    let k = kinds(d, case);
    assert_eq!(k.len(), before + 2, "{k:?}");
    assert_eq!(&k[before..], ["event", "bookmark"], "{k:?}");

    // The export's download link, as the browser would follow it (with the session).
    b.eval("vigilReview.caseExport = null; document.getElementById('case-export').click(); true");
    b.wait(
        "!!vigilReview.caseExport && !!vigilReview.caseExport.name && \
         document.getElementById('case-download').href.endsWith(vigilReview.caseExport.name + '.zip')",
        "the new package's download link",
    );
    let got = b.eval(
        "fetch(document.getElementById('case-download').href).then(async r => \
         [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength])",
    );
    assert_eq!(got[0], 200, "{got}");
    assert_eq!(got[1], "application/zip", "{got}");
    assert!(got[2].as_u64().unwrap() > 100_000, "{got}");
    b.wait(
        "document.querySelectorAll('#case-packages a').length >= 2",
        "the case's packages listed",
    );
    let list = d.get_json(&format!("/api/cases/{case}/packages"));
    let name = b.eval("vigilReview.caseExport.name");
    let p = (list["packages"].as_array().unwrap().iter())
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"));
    assert_eq!(p["custody_records"], 2, "exported, then downloaded: {p}");
}

/// In Search with results: the picked case gets one `search` item per camera searched,
/// with the polygon drawn.
pub fn search_adds(b: &mut Browser, d: &TestDaemon) {
    let cases = d.get_json("/api/cases");
    let case = cases["cases"].as_array().unwrap().last().unwrap()["id"]
        .as_u64()
        .unwrap();
    let before = kinds(d, case).len();
    b.eval(&format!(
        "(() => {{ const s = document.getElementById('search-case'); s.value = '{case}'; \
         s.dispatchEvent(new Event('change')); return true; }})()"
    ));
    b.wait(
        "!document.getElementById('search-to-case').disabled",
        "the search's case button",
    );
    b.eval("document.getElementById('search-to-case').click(); true");
    b.wait("!!vigilSearch.caseAdded", "the results added");
    let added = b.eval("vigilSearch.caseAdded");
    assert_eq!(added["items"].as_array().map(Vec::len), Some(1), "{added}");
    let c = d.get_json(&format!("/api/cases/{case}"));
    let it = &c["items"][before];
    assert_eq!(it["kind"], "search", "{c}");
    assert_eq!(it["polygon"].as_array().map(Vec::len), Some(4), "{it}");
    assert!(!it["holds"].as_array().unwrap().is_empty(), "{it}");
}
