//! `vigil user` and `vigil token`: the store behind authentication, used from the CLI as
//! an administrator would (passwords on standard input), with every change audited.

mod common;

use common::*;

#[test]
fn users_and_tokens_from_the_cli() {
    let t = TestDir::new();
    let storage = t.join("storage");
    let cfg = t.write("vigil.toml", &config(&storage, &[], ""));
    let ok = |args: &[&str], stdin: &str| {
        let (ok, out, err) = vigil_config(&cfg, args, stdin);
        assert!(ok, "{args:?}: {err}");
        out
    };
    ok(
        &["user", "add", "alice", "--role", "admin"],
        "correct horse battery\n",
    );
    ok(
        &["user", "add", "bob", "--role", "investigator"],
        "another long secret\n",
    );
    let (good, _, err) = vigil_config(
        &cfg,
        &["user", "add", "carol", "--role", "viewer"],
        "short\n",
    );
    assert!(!good && err.contains("at least 12 characters"), "{err}");
    let (good, _, err) = vigil_config(
        &cfg,
        &["user", "add", "bob", "--role", "viewer"],
        "yet another secret\n",
    );
    assert!(!good && err.contains("already exists"), "{err}");
    let list = ok(&["user", "list"], "");
    assert!(
        list.contains("alice\tAdmin") && list.contains("bob\tInvestigator"),
        "{list}"
    );

    let token = ok(&["token", "create", "--user", "bob", "--label", "vms"], "");
    let token = token.trim();
    assert!(token.starts_with("vgl_"), "{token}");
    let tokens = ok(&["token", "list"], "");
    let id = tokens.split('\t').next().unwrap().to_string();
    assert!(token.starts_with(&format!("vgl_{id}_")));
    assert!(
        !tokens.contains(token.rsplit('_').next().unwrap()),
        "secret listed"
    );
    ok(&["token", "revoke", &id], "");
    assert!(ok(&["token", "list"], "").contains("revoked"));

    ok(&["user", "passwd", "bob"], "a brand new secret\n");
    let (good, _, err) = vigil_config(&cfg, &["user", "del", "alice"], "");
    assert!(!good && err.contains("last admin"), "{err}");
    ok(&["user", "del", "bob"], "");
    assert!(!ok(&["user", "list"], "").contains("bob"));

    // Nothing secret on disk in clear; every change audited, chain intact.
    let store = std::fs::read_to_string(storage.join("auth.json")).unwrap();
    assert!(!store.contains("correct horse") && !store.contains(token.rsplit('_').next().unwrap()));
    let audit = std::fs::read_to_string(storage.join("audit.log")).unwrap();
    for action in [
        "user.add",
        "token.create",
        "token.revoke",
        "user.passwd",
        "user.del",
    ] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\"")),
            "{action}: {audit}"
        );
    }
    assert!(!audit.contains("correct horse") && !audit.contains("brand new"));
    let (good, out, _) = vigil_config(&cfg, &["audit", "verify"], "");
    assert!(good && out.contains("chain intact"), "{out}");
}
