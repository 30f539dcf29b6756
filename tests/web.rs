//! The status page as a person sees it: `vigil demo` started as a new user would, its page
//! loaded in headless Chromium (Debian's), and the rendered DOM checked for the cameras and
//! their state. Ctrl-C (SIGINT) then stops the demo cleanly and removes its temporary dir.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Renders `url` in headless Chromium after its scripts ran; returns the DOM, and leaves a
/// screenshot beside it for people debugging a failure.
fn chromium_dom(url: &str, t: &TestDir) -> String {
    let profile = t.join("chromium-profile");
    let common_flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ];
    let run = |extra: &[String]| {
        let out = Command::new("chromium")
            .args(common_flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium (apt install chromium; scripts/test installs it)");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let _ = run(&[
        format!("--screenshot={}", t.join("status.png").display()),
        "--window-size=1400,500".into(),
    ]);
    run(&["--dump-dom".into()])
}

#[test]
fn demo_status_page_shows_cameras_in_chromium() {
    let t = TestDir::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let demo = spawn(&["demo", "--listen", &listen], &t.join("demo.log"));
    let rec = demo.wait_line("recording into", Duration::from_secs(30));
    let dir = rec
        .trim_start_matches("recording into ")
        .trim_end_matches(" (removed on exit)")
        .to_string();
    let page = demo.wait_line("status page:", Duration::from_secs(30));
    let url = page.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(url, format!("http://{listen}/"));
    let base = url.trim_end_matches('/');
    wait_for(
        Duration::from_secs(30),
        "both demo cameras recording",
        || {
            let ok = ["front-door", "yard"].iter().all(|c| {
                let s = camera_status(base, c);
                s["state"] == "streaming" && s["segments_written"].as_u64().unwrap() >= 1
            });
            ok.then_some(())
        },
    );

    let dom = chromium_dom(&url, &t);
    // Only what the page's script rendered, not the script's own text.
    let rendered = |id: &str| -> String {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}:\n{dom}"));
        let rest = &dom[start..];
        rest[..rest.find("</t").unwrap_or(rest.len())].to_string()
    };
    let cams = &dom[dom.find("id=\"cams\"").unwrap()..dom.find("</tbody>").unwrap()];
    for want in [
        "<td>front-door</td>",
        "<td>yard</td>",
        "class=\"streaming\"",
        "640×360",
        "avc1.",
    ] {
        assert!(cams.contains(want), "camera table lacks {want:?}:\n{cams}");
    }
    assert!(!cams.contains("cannot reach the daemon"), "{cams}");
    let storage = rendered("storage");
    assert!(
        storage.contains("Storage <code>") && storage.contains("segments"),
        "{storage}"
    );
    assert!(t.join("status.png").exists());

    let mut demo = demo;
    demo.signal(libc::SIGINT);
    let status = wait_for(Duration::from_secs(30), "demo to exit", || {
        demo.child.try_wait().unwrap()
    });
    assert!(status.success(), "demo exit status {status}");
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the demo's temporary dir {dir} was not removed"
    );
}
