//! `vigil user ...` and `vigil token ...`: manage who may use the API (the first admin
//! comes from here). Every change is recorded in the audit log.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::audit::AuditLog;
use crate::auth::{AuthStore, Role};

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input (prompted without echo on a
    /// terminal), at least 12 characters.
    Add {
        #[arg(long, short)]
        config: PathBuf,
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Change a user's password (read as for `add`).
    Passwd {
        #[arg(long, short)]
        config: PathBuf,
        name: String,
    },
    /// Delete a user and revoke their tokens (never the last admin).
    Del {
        #[arg(long, short)]
        config: PathBuf,
        name: String,
    },
    /// List users and roles.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; it is printed once and stored only hashed.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        user: String,
        /// What the token is for (shown in lists).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
    /// List tokens (ids, users, labels; never secrets).
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn open(config: &std::path::Path) -> anyhow::Result<(AuthStore, AuditLog)> {
    let c = super::load_config(config)?;
    std::fs::create_dir_all(&c.storage.dir)?;
    Ok((
        AuthStore::new(&c.storage.layout()),
        AuditLog::new(&c.storage.layout()),
    ))
}

fn operator() -> String {
    super::os_user()
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password("password: ")?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(p == again, "the passwords differ");
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn user(c: UserCommand) -> anyhow::Result<ExitCode> {
    match c {
        UserCommand::Add { config, name, role } => {
            let (store, audit) = open(&config)?;
            store.add_user(&name, role, &read_password()?)?;
            audit.append(
                &operator(),
                "cli",
                "user.add",
                serde_json::json!({ "name": name, "role": role }),
            )?;
            println!("added {name} ({role:?})");
        }
        UserCommand::Passwd { config, name } => {
            let (store, audit) = open(&config)?;
            store.set_password(&name, &read_password()?)?;
            audit.append(
                &operator(),
                "cli",
                "user.passwd",
                serde_json::json!({ "name": name }),
            )?;
            println!("password of {name} changed");
        }
        UserCommand::Del { config, name } => {
            let (store, audit) = open(&config)?;
            store.delete_user(&name)?;
            audit.append(
                &operator(),
                "cli",
                "user.del",
                serde_json::json!({ "name": name }),
            )?;
            println!("deleted {name}");
        }
        UserCommand::List { config } => {
            let (store, _) = open(&config)?;
            for u in store.load()?.users {
                println!("{}\t{:?}\tcreated {}", u.name, u.role, u.created);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token(c: TokenCommand) -> anyhow::Result<ExitCode> {
    match c {
        TokenCommand::Create {
            config,
            user,
            label,
        } => {
            let (store, audit) = open(&config)?;
            let (token, rec) = store.create_token(&user, &label)?;
            audit.append(
                &operator(),
                "cli",
                "token.create",
                serde_json::json!({ "id": rec.id, "user": user, "label": label }),
            )?;
            eprintln!("token {} for {user}; shown once, store it now:", rec.id);
            println!("{token}");
        }
        TokenCommand::Revoke { config, id } => {
            let (store, audit) = open(&config)?;
            store.revoke_token(&id)?;
            audit.append(
                &operator(),
                "cli",
                "token.revoke",
                serde_json::json!({ "id": id }),
            )?;
            println!("revoked {id}");
        }
        TokenCommand::List { config } => {
            let (store, _) = open(&config)?;
            for t in store.load()?.tokens {
                println!(
                    "{}\t{}\t{}\tcreated {}{}",
                    t.id,
                    t.user,
                    t.label,
                    t.created,
                    if t.revoked { "\trevoked" } else { "" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
