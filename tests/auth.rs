//! Authentication and authorisation of the HTTP API, against the running daemon.
//!
//! The authorisation matrix takes every operation from the OpenAPI document (which
//! tests/api.rs keeps equal to the router) with its least role (`x-vigil-role`), and
//! checks it with no credentials, a bad token, a revoked token, an ended session, and a
//! token and a session of each role. Then CSRF, logout, password changes, the login
//! lockout, malformed bodies, and what the audit log recorded.

mod common;

use std::time::Duration;

use common::*;

const ROLES: [&str; 4] = ["viewer", "operator", "investigator", "admin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// Every documented operation: (method, path with placeholders filled, least role).
fn operations(base: &str) -> Vec<(String, String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let role = op["x-vigil-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-vigil-role"))
                .to_owned();
            out.push((method.clone(), format!("{base}{}", fill_path(path)), role));
        }
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

fn cli(cfg: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let (ok, out, err) = vigil_config(cfg, args, stdin);
    assert!(ok, "{args:?}: {err}");
    out
}

/// Whether an answer is a refusal for want of credentials or role.
fn refused(a: &Answer) -> bool {
    matches!(a.code, 401 | 403) || (a.code == 303 && a.location.as_deref() == Some("/login"))
}

#[test]
fn authorisation_matrix_sessions_csrf_and_lockout() {
    let t = TestDir::new();
    let storage = t.join("storage");
    let cfg = idle_camera_config(
        &t,
        "session_idle_minutes = 0.05\nlogin_max_failures = 3\nlockout_minutes = 0.1\n",
    );
    // A user and a token per role (the harness adds `admin` when the daemon starts).
    let mut tokens = Vec::new();
    for role in ROLES {
        let name = format!("{role}-user");
        cli(
            &cfg,
            &["user", "add", &name, "--role", role],
            &format!("password of {name}\n"),
        );
        let token = cli(&cfg, &["token", "create", "--user", &name], "");
        tokens.push((role, name, token.trim().to_owned()));
    }
    let revoked = cli(&cfg, &["token", "create", "--user", "admin-user"], "");
    let revoked = revoked.trim().to_owned();
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    cli(&cfg, &["token", "revoke", &revoked_id], "");
    // A process of its own: its log is checked for secrets below.
    let d = daemon(&cfg, &t.join("daemon.log"));
    let base = d.base.clone();

    let c = Ctx {
        ops: operations(&base),
        base,
        tokens,
        revoked,
        revoked_id,
        cfg: cfg.clone(),
    };
    anonymous_and_bad_tokens(&c);
    let sessions = each_role_where_it_suffices(&c);
    csrf_websocket_session_and_users(&c, &sessions);
    logout_password_change_and_deletion(&c, &sessions);
    idle_sessions_and_lockout(&c, &sessions);
    // The audit log has the logins, failures, refusals and bad tokens, with users, and
    // never a password or a token's secret.
    assert!(d.stop(Duration::from_secs(20)).success());
    audit_has_no_secrets(&c, &t, &storage);
}

/// What the phases of the authorisation test share.
struct Ctx {
    base: String,
    /// Every documented operation: (method, URL, least role).
    ops: Vec<(String, String, String)>,
    /// A (role, user, token) per role.
    tokens: Vec<(&'static str, String, String)>,
    /// A revoked token, and its public id.
    revoked: String,
    revoked_id: String,
    cfg: std::path::PathBuf,
}

/// An `Authorization` header value for token `t`.
fn bearer_of(t: &str) -> String {
    format!("Bearer {t}")
}

/// Anonymous: only the public operations answer (`/` sends browsers to the login
/// page); bad and revoked tokens are refused everywhere but there.
fn anonymous_and_bad_tokens(c: &Ctx) {
    let (base, ops, revoked) = (&c.base, &c.ops, &c.revoked);
    // Anonymous: only the public operations answer; `/` sends browsers to the login page.
    for (method, url, role) in ops.iter() {
        let a = call(method, url, &[], None);
        if role == "public" {
            assert!(
                !refused(&a),
                "{method} {url} is public: {} {}",
                a.code,
                a.body
            );
        } else if url == &format!("{base}/") {
            assert_eq!(
                (a.code, a.location.as_deref()),
                (303, Some("/login")),
                "{method} {url}"
            );
        } else {
            assert_eq!(
                a.code, 401,
                "{method} {url} without credentials: {}",
                a.body
            );
            assert!(a.body.contains("authentication required"), "{}", a.body);
        }
    }
    // Bad and revoked tokens are refused everywhere but the public operations: each
    // operation with one of the three kinds in turn (all three everywhere would pass the
    // 100 bad tokens a minute an address may try before it is locked out).
    let bad = ["vgl_0000_nonsense", "not-even-a-token", revoked.as_str()];
    for (i, (method, url, role)) in ops.iter().filter(|o| o.2 != "public").enumerate() {
        let tok = bad[i % 3];
        let a = call(method, url, &[("authorization", &bearer_of(tok))], None);
        assert_eq!(
            a.code, 401,
            "{method} {url} ({role}) with token {tok}: {}",
            a.body
        );
        assert!(a.body.contains("invalid or revoked"), "{}", a.body);
    }
}

/// Each role's token and session: allowed exactly where its role suffices. Returns each
/// role's live session: (role, cookie, CSRF token).
fn each_role_where_it_suffices(c: &Ctx) -> Vec<(&'static str, String, String)> {
    let (base, ops, tokens) = (&c.base, &c.ops, &c.tokens);
    let mut sessions = Vec::new();
    for (role, name, token) in tokens.iter() {
        let password = format!("password of {name}");
        let (mut cookie, mut csrf) = login(base, name, &password).unwrap();
        for (method, url, need) in ops.iter().filter(|o| o.2 != "public") {
            let allowed = rank(role) >= rank(need);
            let by_token = call(method, url, &[("authorization", &bearer_of(token))], None);
            let by_session = call(
                method,
                url,
                &[("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())],
                None,
            );
            for (how, a) in [("token", &by_token), ("session", &by_session)] {
                if allowed {
                    assert!(
                        !refused(a) && a.code < 500,
                        "{role} by {how} may {method} {url} (needs {need}): {} {}",
                        a.code,
                        a.body
                    );
                } else {
                    assert_eq!(
                        a.code, 403,
                        "{role} by {how} may not {method} {url} (needs {need}): {}",
                        a.body
                    );
                    assert!(
                        a.body.contains(&format!("needs the {need} role")),
                        "{}",
                        a.body
                    );
                }
            }
            if url.ends_with("/api/logout") {
                // That ended the session: start another.
                (cookie, csrf) = login(base, name, &password).unwrap();
            }
        }
        sessions.push((*role, cookie, csrf));
    }
    sessions
}

/// CSRF on sessions (tokens need none), WebSocket origins, `GET /api/session`, and what
/// admins see of users and tokens.
fn csrf_websocket_session_and_users(c: &Ctx, sessions: &[(&'static str, String, String)]) {
    let (base, tokens, revoked_id) = (&c.base, &c.tokens, &c.revoked_id);
    // CSRF: a session's POST without (or with a wrong) X-CSRF-Token is refused; a token
    // needs none (browsers never send it by themselves).
    let (_, op_cookie, op_csrf) = sessions[1].clone();
    let ack = format!("{base}/api/events/1/ack");
    let no_csrf = [("cookie", op_cookie.as_str())];
    let bad_csrf = [("cookie", op_cookie.as_str()), ("x-csrf-token", "0123")];
    for headers in [&no_csrf[..], &bad_csrf[..]] {
        let a = call("post", &ack, headers, None);
        assert_eq!(a.code, 403, "{}", a.body);
        assert!(a.body.contains("X-CSRF-Token"), "{}", a.body);
    }
    let a = call(
        "post",
        &ack,
        &[("cookie", &op_cookie), ("x-csrf-token", &op_csrf)],
        None,
    );
    assert_eq!(a.code, 404, "{}", a.body); // allowed; there is no event 1
    let a = call(
        "post",
        &ack,
        &[("authorization", &bearer_of(&tokens[1].2))],
        None,
    );
    assert_eq!(a.code, 404, "{}", a.body);
    // A WebSocket handshake from another site's page is refused; from the same origin it
    // is accepted.
    let ws_url = format!("{}/api/alerts/ws", base.replacen("http", "ws", 1));
    let handshake = |origin: &str| {
        use tungstenite::client::IntoClientRequest;
        let mut req = ws_url.as_str().into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("authorization", bearer_of(&tokens[1].2).parse().unwrap());
        h.insert("origin", origin.parse().unwrap());
        tungstenite::connect(req)
    };
    match handshake("http://evil.example") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("cross-origin WebSocket: {:?}", other.map(|_| ())),
    }
    assert!(handshake(base).is_ok());

    // GET /api/session tells a page its user, role and CSRF token.
    let a = call(
        "get",
        &format!("{base}/api/session"),
        &[("cookie", &op_cookie)],
        None,
    );
    let s: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(
        (s["user"].as_str(), s["role"].as_str(), s["csrf"].as_str()),
        (Some("operator-user"), Some("operator"), Some(&op_csrf[..]))
    );

    // Admins see users and tokens, never a hash or a secret.
    let a = call(
        "get",
        &format!("{base}/api/users"),
        &[("authorization", &bearer_of(&tokens[3].2))],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"operator-user") && names.contains(&"admin"),
        "{v}"
    );
    assert!(
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == revoked_id.as_str() && t["revoked"] == true),
        "{v}"
    );
    assert!(
        !a.body.contains("argon2") && !a.body.contains("sha256"),
        "{v}"
    );
    assert!(!a.body.contains(tokens[3].2.rsplit('_').next().unwrap()));
}

/// Logout, a password change and deleting a user end sessions (and tokens) at once.
fn logout_password_change_and_deletion(c: &Ctx, sessions: &[(&'static str, String, String)]) {
    let (base, tokens, cfg) = (&c.base, &c.tokens, &c.cfg);
    // Logout ends the session (and needs its CSRF token too).
    let (_, inv_cookie, inv_csrf) = sessions[2].clone();
    let logout = format!("{base}/api/logout");
    assert_eq!(
        call("post", &logout, &[("cookie", &inv_cookie)], None).code,
        403
    );
    let a = call(
        "post",
        &logout,
        &[("cookie", &inv_cookie), ("x-csrf-token", &inv_csrf)],
        None,
    );
    assert_eq!(a.code, 204, "{}", a.body);
    let a = call(
        "get",
        &format!("{base}/api/events?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"),
        &[("cookie", &inv_cookie)],
        None,
    );
    assert_eq!(a.code, 401);
    assert!(a.body.contains("session has ended"), "{}", a.body);

    // A password change ends the user's sessions at once.
    let (_, admin_cookie, _) = sessions[3].clone();
    let cameras = format!("{base}/api/cameras");
    assert_eq!(
        call("get", &cameras, &[("cookie", &admin_cookie)], None).code,
        200
    );
    cli(
        cfg,
        &["user", "passwd", "admin-user"],
        "a brand new password\n",
    );
    assert_eq!(
        call("get", &cameras, &[("cookie", &admin_cookie)], None).code,
        401
    );
    // So does deleting the user, for tokens too.
    let viewer_token = tokens[0].2.clone();
    assert_eq!(
        call(
            "get",
            &cameras,
            &[("authorization", &bearer_of(&viewer_token))],
            None
        )
        .code,
        200
    );
    cli(cfg, &["user", "del", "viewer-user"], "");
    assert_eq!(
        call(
            "get",
            &cameras,
            &[("authorization", &bearer_of(&viewer_token))],
            None
        )
        .code,
        401
    );
}

/// Idle sessions end; malformed login bodies get a 400; wrong passwords lock a user name
/// for a while, and only that one.
fn idle_sessions_and_lockout(c: &Ctx, sessions: &[(&'static str, String, String)]) {
    let (base, ops) = (&c.base, &c.ops);
    // Idle sessions end (session_idle_minutes = 0.05: 3 s): every operation then refuses.
    let (_, op_cookie, op_csrf) = sessions[1].clone();
    std::thread::sleep(Duration::from_millis(3500));
    for (method, url, _) in ops.iter().filter(|o| o.2 != "public") {
        let a = call(
            method,
            url,
            &[("cookie", &op_cookie), ("x-csrf-token", &op_csrf)],
            None,
        );
        assert!(
            refused(&a),
            "{method} {url} with an ended session: {}",
            a.code
        );
        if a.code == 401 {
            assert!(a.body.contains("session has ended"), "{}", a.body);
        }
    }

    // Malformed login bodies get a 400 with a message.
    for body in [
        "",
        "{",
        "{\"user\": 1}",
        "{\"user\": \"a\"}",
        "[]",
        "{\"user\":\"a\",\"password\":\"b\",\"x\":1}",
    ] {
        let a = call("post", &format!("{base}/api/login"), &[], Some(body));
        assert_eq!(a.code, 400, "{body:?}: {}", a.body);
        assert!(a.body.contains("\"error\""), "{}", a.body);
    }
    // Lockout: three wrong passwords lock the user name (login_max_failures = 3), even
    // for the right password, for lockout_minutes (6 s); other users are not affected.
    for _ in 0..3 {
        assert_eq!(
            login(base, "operator-user", "wrong password")
                .unwrap_err()
                .0,
            401
        );
    }
    let a = call(
        "post",
        &format!("{base}/api/login"),
        &[],
        Some(r#"{"user":"operator-user","password":"password of operator-user"}"#),
    );
    assert_eq!(a.code, 429, "{}", a.body);
    assert!(a.body.contains("try again in"), "{}", a.body);
    assert!(login(base, "investigator-user", "password of investigator-user").is_ok());
    std::thread::sleep(Duration::from_millis(6500));
    assert!(login(base, "operator-user", "password of operator-user").is_ok());
}

/// The audit log has the logins, failures, refusals and bad tokens, with users, and
/// never a password or a token's secret; nor has the daemon's log.
fn audit_has_no_secrets(c: &Ctx, t: &TestDir, storage: &std::path::Path) {
    let (tokens, revoked, revoked_id) = (&c.tokens, &c.revoked, &c.revoked_id);
    let log = std::fs::read_to_string(storage.join("audit.log")).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |action: &str, user: &str| {
        records
            .iter()
            .any(|r| r["action"] == action && r["user"] == user)
    };
    assert!(has("login", "operator-user"));
    assert!(has("logout", "investigator-user"));
    assert!(has("access.denied", "viewer-user"));
    // A refusal on an audited route is `access.denied` too (with what was tried), so
    // one filter finds them all; never recorded as the action itself.
    assert!(records.iter().any(|r| r["action"] == "access.denied"
        && r["user"] == "viewer-user"
        && r["params"]["tried"] == "events.search"
        && r["params"]["status"] == 403));
    assert!(
        !records
            .iter()
            .any(|r| r["action"] != "access.denied" && r["params"]["status"] == 403),
        "a 403 recorded under another action"
    );
    assert!(has("daemon.start", "daemon"));
    assert!(records.iter().any(|r| r["action"] == "login.fail"
        && r["params"]["user"] == "operator-user"
        && r["params"]["locked"] == true));
    assert!(records.iter().any(|r| r["action"] == "login.refused"));
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "auth.fail" && r["params"]["token"] == revoked_id.as_str())
    );
    for secret in [
        "password of",
        "wrong password",
        revoked.rsplit('_').next().unwrap(),
        tokens[3].2.rsplit('_').next().unwrap(),
    ] {
        assert!(!log.contains(secret), "the audit log contains {secret:?}");
    }
    let daemon_log = std::fs::read_to_string(t.join("daemon.log")).unwrap();
    assert!(!daemon_log.contains("password of"), "{daemon_log}");
    assert!(!daemon_log.contains(tokens[3].2.rsplit('_').next().unwrap()));
}

/// A daemon restart logs nobody out: the session cookie and its CSRF token work after
/// it; a session that logged out before the restart stays ended; the sessions file holds
/// no cookie value.
#[test]
fn sessions_survive_a_restart() {
    let t = TestDir::new();
    let storage = t.join("storage");
    let cfg = idle_camera_config(&t, "");
    cli(
        &cfg,
        &["user", "add", "olga", "--role", "operator"],
        "password of olga\n",
    );
    let d = TestDaemon::start(&cfg);
    let base = d.base.clone();
    let (cookie, csrf) = login(&base, "olga", "password of olga").unwrap();
    let (ended, ended_csrf) = login(&base, "olga", "password of olga").unwrap();
    let a = call(
        "post",
        &format!("{base}/api/logout"),
        &[("cookie", &ended), ("x-csrf-token", &ended_csrf)],
        None,
    );
    assert_eq!(a.code, 204, "{}", a.body);
    d.stop();
    let file = std::fs::read_to_string(storage.join("sessions.json")).unwrap();
    let value = cookie.split('=').nth(1).unwrap();
    assert!(!file.contains(value), "a cookie value is on disk");

    let d = TestDaemon::start(&cfg);
    let base = d.base.clone();
    let a = call(
        "get",
        &format!("{base}/api/session"),
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(a.code, 200, "{}", a.body);
    assert!(
        a.body.contains("olga") && a.body.contains(&csrf),
        "{}",
        a.body
    );
    // The CSRF token still guards (and allows) state-changing requests.
    let a = call(
        "post",
        &format!("{base}/api/logout"),
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    );
    assert_eq!(a.code, 204, "{}", a.body);
    let a = call(
        "get",
        &format!("{base}/api/session"),
        &[("cookie", &ended)],
        None,
    );
    assert_eq!(a.code, 401, "a logged-out session came back: {}", a.body);
    d.stop();
}
