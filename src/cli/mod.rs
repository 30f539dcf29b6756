//! The `vigil` command line: one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod audit;
mod case;
mod check;
mod demo;
mod events;
mod evidence;
mod export;
mod fake_camera;
mod keys;
mod recordings;
mod run;
mod source;
mod users;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Vigil records RTSP cameras into playable MP4 segments indexed by sled.",
    long_about = "Vigil records RTSP cameras into playable MP4 segments indexed by sled.\n\n\
        Start with `vigil demo` (simulated cameras, no set-up), then write a config \
        (see config/example.toml), test it with `vigil check-config FILE` and run \
        `vigil run --config FILE`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the recorder daemon with a config file.
    Run(run::Args),
    /// Start simulated cameras and the daemon on a temporary storage dir; print the console's URL.
    Demo(demo::Args),
    /// Validate a config file; exits non-zero and names file:line:column of each problem.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Check the recordings against the index (read-only unless --repair).
    Check(check::Args),
    /// Serve test RTSP streams on 127.0.0.1 (a generated scene or a looped H.264 file).
    FakeCamera(fake_camera::Args),
    /// Find motion events in a video file with a camera's zones, masks and settings.
    Analyze(analyze::Args),
    /// Search the recorded motion events by time, camera, zone, score and duration.
    Events(events::Args),
    /// List a camera's recorded segments and the gaps between them (with why recording stopped).
    Recordings(recordings::Args),
    /// Export a time range of one or more cameras as playable MP4 files.
    Export(export::Args),
    /// The audit log of who searched, viewed and exported what.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Cases: what an investigation collects (ranges, events, bookmarks, region searches), held.
    #[command(subcommand)]
    Case(case::Command),
    /// Evidence packages: export a case (signed, sealed) and verify one offline.
    #[command(subcommand)]
    Evidence(evidence::Command),
    /// The site's signing keys for evidence packages (a site CA and this recorder's certificate).
    #[command(subcommand)]
    Keys(keys::Command),
    /// Users and their roles (the first admin comes from here).
    #[command(subcommand)]
    User(users::UserCommand),
    /// API tokens for integrations.
    #[command(subcommand)]
    Token(users::TokenCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let r = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Demo(a) => demo::main(a),
        Command::CheckConfig { file } => check::check_config(&file),
        Command::Check(a) => check::main(a),
        Command::FakeCamera(a) => fake_camera::main(a),
        Command::Analyze(a) => analyze::main(a),
        Command::Events(a) => events::main(a),
        Command::Recordings(a) => recordings::main(a),
        Command::Export(a) => export::main(a),
        Command::Audit(c) => audit::main(c),
        Command::Case(c) => case::main(c),
        Command::Evidence(c) => evidence::main(c),
        Command::Keys(c) => keys::main(c),
        Command::User(c) => users::user(c),
        Command::Token(c) => users::token(c),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Who runs this command, for the audit log and the evidence it signs: the name of the
/// effective user in the password database (`getpwuid_r`), so that an unset or
/// changed `$USER` does not change it; the numeric uid if it has no entry.
pub(crate) fn os_user() -> String {
    // SAFETY: getpwuid_r writes into `pw` and `buf` (sized here) and sets `found` to
    // `&pw` or null; `pw_name` points into `buf`, read before it goes out of scope.
    unsafe {
        let uid = libc::geteuid();
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc == 0 && !found.is_null() && !pw.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned();
        }
        format!("uid {uid}")
    }
}

/// Loads a config or returns its errors formatted one per line.
fn load_config(file: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    crate::config::Config::load(file).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))
}

/// The running daemon's API, for commands that found the index locked (the daemon holds
/// it) and ask the daemon instead, with the API token in `VIGIL_TOKEN`.
pub(crate) struct DaemonApi {
    pub base: String,
    token: String,
    agent: ureq::Agent,
}

/// Where the token for [`DaemonApi`] comes from (never a command-line argument, which
/// other users could read in `ps`).
pub const TOKEN_ENV: &str = "VIGIL_TOKEN";

impl DaemonApi {
    /// `err` is why the index did not open.
    fn new(
        config: &crate::config::Config,
        index: &std::path::Path,
        err: impl std::fmt::Display,
    ) -> anyhow::Result<DaemonApi> {
        if config.server.listen.port() == 0 {
            anyhow::bail!(
                "cannot open index {} ({err}), and the daemon's HTTP port is chosen at start \
                 (listen port 0), so it cannot be asked either",
                index.display()
            );
        }
        let Ok(token) = std::env::var(TOKEN_ENV) else {
            anyhow::bail!(
                "cannot open index {} ({err}): the daemon is probably running; to ask it \
                 instead, put an API token in {TOKEN_ENV} (`vigil token create`)",
                index.display()
            );
        };
        // A daemon listening on all addresses is asked on loopback.
        let mut addr = config.server.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        // Over HTTPS, trust exactly the daemon's own certificate (often self-signed).
        let tls = config.server.tls.as_ref();
        Ok(DaemonApi {
            base: format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
            token: token.trim().to_owned(),
            agent: crate::tls::agent(tls.map(|t| t.cert.as_path()), None)?,
        })
    }

    /// Sends `method path` (under `base`) with a JSON body; returns the JSON answer. A
    /// refusal becomes an error with the daemon's message.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("PATCH", b) => (self.agent.patch(&url).header("Authorization", &auth))
                .send_json(b.unwrap_or_default()),
            (_, b) => (self.agent.post(&url).header("Authorization", &auth))
                .send_json(b.unwrap_or_default()),
        };
        let mut r = sent.map_err(|e| {
            anyhow::anyhow!(
                "the index is locked (daemon running?) and {} does not answer: {e}",
                self.base
            )
        })?;
        let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
        if !r.status().is_success() {
            let msg = v["error"].as_str().unwrap_or("no message");
            match r.status().as_u16() {
                401 => anyhow::bail!("the daemon refused the token in {TOKEN_ENV}: {msg}"),
                code => anyhow::bail!("the daemon answered {code}: {msg}"),
            }
        }
        Ok(v)
    }

    /// GETs `url` (under `base`); a refusal becomes an error with the daemon's message.
    fn get(&self, url: &str) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let mut r = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| {
                anyhow::anyhow!(
                    "the index is locked (daemon running?) and {} does not answer: {e}",
                    self.base
                )
            })?;
        if !r.status().is_success() {
            let body: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
            let msg = body["error"].as_str().unwrap_or("no message").to_owned();
            match r.status().as_u16() {
                401 => anyhow::bail!("the daemon refused the token in {TOKEN_ENV}: {msg}"),
                code => anyhow::bail!("the daemon answered {code}: {msg}"),
            }
        }
        Ok(r)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigil-rt")
        .build()?)
}
