//! Hostile input, property-based with a fixed number of cases (CI runs them all):
//! segment files for scanning, recovery and `check --repair` (truncated, bit-flipped,
//! absurd box sizes and counts), config files (random text, wrong types, huge values,
//! damaged copies of a valid one), and every API parameter and body of a running daemon
//! (random values, and the malformed ids, files, parameters and bodies of each documented
//! operation).
//! No panic, no 5xx, no unbounded allocation, no endless loop; every refusal says why.
//! (Hostile RTSP servers: `tests/conformance.rs`,
//! `hostile_servers_never_harm_the_daemon_or_a_good_camera`.)

mod common;

use std::io::Cursor;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use vigil::record::fmp4::{self, Sample};

/// A valid segment: init (a stub `avc1` entry), then `frags` fragments of 1–4 samples.
fn segment(frags: &[Vec<(u32, bool)>]) -> Vec<u8> {
    let mut entry = vec![0, 0, 0, 86, b'a', b'v', b'c', b'1'];
    entry.resize(86, 0);
    let init = fmp4::init_segment(&entry, 320, 180, None);
    let mut out = init.bytes;
    let mut t = 0u64;
    for (i, f) in frags.iter().enumerate() {
        let samples: Vec<Sample> = (f.iter())
            .map(|&(size, key)| Sample {
                duration: 6000,
                size,
                is_key: key,
                cts_offset: 0,
            })
            .collect();
        out.extend(fmp4::fragment_header(
            i as u32 + 1,
            t,
            1_800_000_000_000_000 + (t as i64) * 100 / 9,
            &samples,
            None,
        ));
        for s in &samples {
            out.extend(std::iter::repeat_n(0x65, s.size as usize));
            t += s.duration as u64;
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    FlipBits(Vec<(usize, u8)>),
    /// Overwrite the big-endian u32 at an offset: box sizes, counts, versions.
    Word(usize, u32),
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    let word = prop_oneof![
        Just(0u32),
        Just(1),
        Just(7),
        Just(8),
        Just(9),
        Just(0x7fff_ffff),
        Just(0xffff_ffff),
        any::<u32>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        prop::collection::vec((any::<usize>(), 0u8..8), 1..8).prop_map(Damage::FlipBits),
        (any::<usize>(), word).prop_map(|(o, w)| Damage::Word(o, w)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(o, b)| Damage::Insert(o, b)),
    ]
}

fn apply(mut b: Vec<u8>, d: &[Damage]) -> Vec<u8> {
    for d in d {
        let n = b.len().max(1);
        match d {
            Damage::Truncate(at) => b.truncate(at % n),
            Damage::FlipBits(bits) => {
                for (at, bit) in bits {
                    if !b.is_empty() {
                        let i = at % b.len();
                        b[i] ^= 1 << bit;
                    }
                }
            }
            Damage::Word(at, w) => {
                if b.len() >= 4 {
                    let i = (at % (b.len() - 3)) & !3;
                    b[i..i + 4].copy_from_slice(&w.to_be_bytes());
                }
            }
            Damage::Insert(at, bytes) => {
                let i = at % n;
                b.splice(i.min(b.len())..i.min(b.len()), bytes.iter().copied());
            }
        }
    }
    b
}

fn frags() -> impl Strategy<Value = Vec<Vec<(u32, bool)>>> {
    prop::collection::vec(
        prop::collection::vec((1u32..400, any::<bool>()), 1..4),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A damaged segment is scanned to a consistent playable prefix, or refused; never a
    /// panic, never more samples or bytes than the file holds.
    #[test]
    fn damaged_segments_scan_to_a_consistent_prefix(
        f in frags(),
        d in prop::collection::vec(damage(), 1..4),
    ) {
        let bytes = apply(segment(&f), &d);
        if let Ok(r) = fmp4::scan(&mut Cursor::new(&bytes)) {
            let len = bytes.len() as u64;
            prop_assert!(r.valid_len <= len && r.init_len <= r.valid_len.max(r.init_len));
            let mut data = 0u64;
            for fr in &r.fragments {
                prop_assert!(fr.end <= r.valid_len && fr.data_offset <= fr.end);
                data += fr.samples.iter().map(|s| s.size as u64).sum::<u64>();
            }
            prop_assert!(data <= len);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// The same files as orphans and as indexed segments cut short, through start-up
    /// recovery (= `check --repair`): no panic; afterwards a report is clean and every
    /// segment recovery indexed scans to exactly its indexed length.
    #[test]
    fn damaged_segments_through_recovery(
        f in frags(),
        d in prop::collection::vec(damage(), 1..4),
        indexed in any::<bool>(),
    ) {
        use vigil::index::{Index, Op};
        use vigil::record::recovery::{self, Mode};
        let dir = tempfile::tempdir().unwrap();
        let good = segment(&f);
        let bytes = apply(good.clone(), &d);
        let rel = "cam/2027-01-15/20270115T080000.000000Z.mp4";
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let ix = Index::temporary().unwrap();
        let cam = ix.camera_id("cam").unwrap();
        if indexed {
            // Indexed as the writer would have before the damage (if it played).
            if let Ok(Some(mut r)) = recovery::rebuild_from(&mut Cursor::new(&good), None) {
                r.camera_id = cam;
                r.file = rel.into();
                ix.commit(&[Op::PutSegment(r)]).unwrap();
            }
        }
        recovery::reconcile(&ix, &vigil::storage::Layout::new(dir.path()), Mode::Startup).unwrap();
        let rep = recovery::reconcile(&ix, &vigil::storage::Layout::new(dir.path()), Mode::Report).unwrap();
        prop_assert!(rep.is_clean(), "{:?}", rep.problems);
        // A closed segment damaged without changing its length (bit rot) is not looked
        // into: its length matches the index (detecting that is what record-time hashes
        // are for, `check --verify-hashes`). Everything recovery touched plays exactly.
        let rot = indexed && bytes.len() == good.len();
        for r in ix.all_segments() {
            let r = r.unwrap();
            let b = std::fs::read(dir.path().join(&r.file)).unwrap();
            prop_assert_eq!(b.len() as u64, r.bytes);
            if !rot {
                let s = fmp4::scan(&mut Cursor::new(&b)).unwrap();
                prop_assert_eq!(s.valid_len, r.bytes);
                prop_assert_eq!(s.frames(), r.frames as u64);
            }
        }
    }
}

/// A valid config to damage.
const VALID: &str = r#"
[storage]
dir = "storage"
segment_seconds = 60
max_bytes = "2 GiB"
retain_days = 7

[server]
listen = "127.0.0.1:8080"

[[cameras]]
name = "door"
url = "rtsp://192.0.2.10/stream"
timeout_seconds = 10

[cameras.motion]
enabled = true

[[cameras.zones]]
name = "entry"
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.9]]
"#;

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e308".to_string()),
        Just("nan".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"\"".to_string()),
        Just("\"x\"".to_string()),
        Just(format!("\"{}\"", "y".repeat(10_000))),
        Just("[]".to_string()),
        Just("[[1, 2], [3]]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        Just("\"99999999 TiB\"".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[ -~]{0,40}".prop_map(|s| format!("{s:?}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random text, and the valid config with one value replaced by something of another
    /// type or absurd size (or a line cut, or a line duplicated): parsed or refused with
    /// the file's name and, for what has a place, its line; never a panic.
    #[test]
    fn damaged_configs_are_refused_with_a_place(
        random in prop::option::of("[ -~\n\\[\\]=\"]{0,300}"),
        line in any::<prop::sample::Index>(),
        v in value(),
        how in 0u8..3,
    ) {
        let path = Path::new("/etc/vigil/site.toml");
        let text = match random {
            Some(t) => t,
            None => {
                let lines: Vec<&str> = VALID.lines().collect();
                let i = line.index(lines.len());
                let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                match how {
                    0 => {
                        if let Some((k, _)) = lines[i].split_once(" = ") {
                            out[i] = format!("{k} = {v}");
                        }
                    }
                    1 => out[i] = out[i][..out[i].len() / 2].to_string(),
                    _ => out.insert(i, lines[i].to_string()),
                }
                out.join("\n")
            }
        };
        if let Err(e) = vigil::config::Config::parse(path, &text) {
            let msg = e.to_string();
            prop_assert!(msg.contains("/etc/vigil/site.toml"), "{}", msg);
            prop_assert!(!msg.trim().is_empty());
        }
    }
}

/// One daemon answers random values for every documented parameter and random JSON
/// bodies for every documented body: never a 5xx, and every 4xx says why in JSON.
#[test]
fn random_api_parameters_and_bodies_never_get_5xx() {
    let t = TestDir::new();
    let cfg = idle_camera_config(&t, "");
    let d = TestDaemon::start(&cfg);
    let (base, token) = (d.base.clone(), format!("Bearer {}", d.token));
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let mut ops = Vec::new();
    for (path, o) in doc["paths"].as_object().unwrap() {
        for (method, op) in o.as_object().unwrap() {
            if path == "/api/logout" || path == "/api/login" {
                continue; // would end the test's own credentials, or lock it out
            }
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    let text = prop_oneof![
        "[ -~]{0,30}",
        "\\PC{0,10}",
        Just("2026-01-01T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:59.999999999Z".to_string()),
        Just("-99999999999999999999".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
    ];
    let json = prop::collection::vec((text.clone(), text.clone()), 0..4).prop_map(|kv| {
        serde_json::Value::Object(
            kv.into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(400));
    let n_ops = ops.len();
    runner
        .run(
            &(
                0..n_ops,
                prop::collection::vec(text.clone(), 4),
                json,
                any::<bool>(),
            ),
            |(i, vals, body, known_keys)| {
                let (path, method, op) = &ops[i];
                let mut vals = vals.into_iter();
                let mut url = base.clone() + path;
                for ph in ["{id}", "{file}", "{name}"] {
                    if url.contains(ph) {
                        let v = vals.next().unwrap_or_default();
                        let enc: String =
                            url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                        url = url.replace(ph, &enc);
                    }
                }
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "query" {
                        q.append_pair(
                            p["name"].as_str().unwrap(),
                            &vals.next().unwrap_or_default(),
                        );
                    }
                }
                let url = format!("{url}?{}", q.finish());
                // Bodies with the documented keys (random values), or random keys.
                let mut body = body;
                if known_keys
                    && let Some(props) = op["requestBody"]["content"]["application/json"]["schema"]
                        ["properties"]
                        .as_object()
                {
                    let m = body.as_object_mut().unwrap();
                    let vals: Vec<serde_json::Value> = m.values().cloned().collect();
                    m.clear();
                    for (k, v) in props.keys().zip(
                        vals.into_iter()
                            .chain(std::iter::repeat(serde_json::Value::String("x".into()))),
                    ) {
                        m.insert(k.clone(), v);
                    }
                }
                let auth = [("authorization", token.as_str())];
                let Answer {
                    code, body: text, ..
                } = call(method, &url, &auth, Some(&body.to_string()));
                prop_assert!(
                    code < 500,
                    "{} {} body {}: {} {}",
                    method,
                    url,
                    body,
                    code,
                    text
                );
                if (400..500).contains(&code) && text.starts_with('{') {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    prop_assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{}", v);
                }
                Ok(())
            },
        )
        .unwrap();
    d.stop();
}

/// Malformed parameters and bodies on every documented operation get a 4xx with a
/// message, never a 5xx: typed parameters (times, numbers) with garbage, path ids that
/// are not numbers or too large, unknown parameters where a route takes some, and
/// broken JSON bodies.
#[test]
fn malformed_parameters_and_bodies_get_4xx_everywhere() {
    let t = TestDir::new();
    let cfg = idle_camera_config(&t, "");
    let d = TestDaemon::start(&cfg);
    let base = d.base.clone();
    let token = format!("Bearer {}", d.token.clone());
    let auth = [("authorization", token.as_str())];
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            checked += malformed_requests(&base, &auth, method, path, op);
        }
    }
    assert!(checked > 100, "only {checked} checks");
    d.stop();
}

/// Sends `method path` (an operation of the OpenAPI document) malformed ids, files, query
/// parameters and bodies; each must get a 4xx that says why. Returns how many were sent.
fn malformed_requests(
    base: &str,
    auth: &[(&str, &str)],
    method: &str,
    path: &str,
    op: &serde_json::Value,
) -> usize {
    let mut checked = 0;
    let params = op["parameters"].as_array().unwrap();
    // Valid values for what is required, so that one malformed value is the fault.
    let valid = |name: &str| match name {
        "start" => "2026-01-01T00:00:00Z",
        "end" => "2026-01-01T01:00:00Z",
        "camera" => "cam",
        _ => "1",
    };
    let required: Vec<(String, String)> = params
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| {
            let n = p["name"].as_str().unwrap();
            (n.to_owned(), valid(n).to_owned())
        })
        .collect();
    let url = |p: &str, query: &[(String, String)]| {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{base}{p}?{}", q.join("&"))
    };
    let filled = fill_path(path);
    // Path ids that are not ids.
    if path.contains("{id}") {
        for bad in ["abc", "-1", "99999999999999999999999", "1.5"] {
            let u = url(&path.replace("{id}", bad), &required);
            let a = call(method, &u, auth, None);
            refused_with_message(&format!("{method} {u}"), &a);
            checked += 1;
        }
    }
    if path.contains("{file}") {
        for bad in ["nope.mp4", "cam.avi", "..%2F..%2Fetc%2Fpasswd", "cam"] {
            let u = url(&path.replace("{file}", bad), &required);
            let a = call(method, &u, auth, None);
            refused_with_message(&format!("{method} {u}"), &a);
            checked += 1;
        }
    }
    // Typed query parameters with garbage, one at a time.
    for p in params.iter().filter(|p| p["in"] == "query") {
        let name = p["name"].as_str().unwrap();
        let schema = &p["schema"];
        let typed = schema["format"] == "date-time"
            || matches!(schema["type"].as_str(), Some("integer" | "number"));
        for bad in ["garbage", "%FF%FE", "", "1e999"] {
            let mut q: Vec<_> = required
                .iter()
                .filter(|(k, _)| k != name)
                .cloned()
                .collect();
            q.push((name.to_owned(), bad.to_owned()));
            let u = url(&filled, &q);
            let a = call(method, &u, auth, None);
            assert!(a.code < 500, "{method} {u}: {} {}", a.code, a.body);
            // Garbage in a typed parameter must be refused; anything refused
            // must say why.
            if (typed && bad != "1e999") || a.code >= 400 {
                refused_with_message(&format!("{method} {u}"), &a);
            }
            checked += 1;
        }
    }
    // An unknown parameter on a route that takes query parameters is refused
    // (a misspelt filter must not silently widen a search).
    if params.iter().any(|p| p["in"] == "query") {
        let mut q = required.clone();
        q.push(("bogus".into(), "1".into()));
        let u = url(&filled, &q);
        let a = call(method, &u, auth, None);
        refused_with_message(&format!("{method} {u}"), &a);
        checked += 1;
    }
    // Broken bodies where a body is taken.
    if !op["requestBody"].is_null() && path != "/api/login" {
        let optional = op["requestBody"]["required"] == false;
        for bad in ["{", "[]", "null", "\"x\"", "{\"unknown\": 1}", "{\"a\":"] {
            let u = url(&filled, &required);
            let a = call(method, &u, auth, Some(bad));
            refused_with_message(&format!("{method} {u} body {bad:?}"), &a);
            checked += 1;
        }
        if !optional {
            let a = call(method, &url(&filled, &required), auth, Some(""));
            refused_with_message(&format!("{method} {path} empty body"), &a);
        }
    }
    // Bodies over the limit: 413 with a message, whatever the route (the login
    // page's own limit is lower), never a JSON parse error.
    if method == "post" {
        let big = format!("{{\"reason\": \"{}\"}}", "x".repeat(100 * 1024));
        let a = call(method, &url(&filled, &required), auth, Some(&big));
        assert_eq!(a.code, 413, "{method} {path} with 100 KiB: {}", a.body);
        refused_with_message(&format!("{method} {path} 100 KiB body"), &a);
        assert!(a.body.contains("KiB"), "{method} {path}: {}", a.body);
        checked += 1;
    }
    checked
}

/// A refusal: a 4xx with a message (in JSON, its `error`).
fn refused_with_message(what: &str, a: &Answer) {
    assert!(
        (400..500).contains(&a.code),
        "{what}: expected a 4xx, got {} {}",
        a.code,
        a.body
    );
    assert!(
        !a.body.trim().is_empty(),
        "{what}: a {} without a message",
        a.code
    );
    if a.body.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert!(
            v["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
    }
}
