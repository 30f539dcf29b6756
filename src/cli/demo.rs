//! `vigil demo`: simulated cameras + the daemon on a temporary storage dir.

use std::path::PathBuf;

use anyhow::Context;
use std::process::ExitCode;

/// The demo config, also shipped as config/demo.toml. `vigil demo` replaces its storage
/// dir, listen address and the camera server's port with its own.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

#[derive(clap::Args)]
pub struct Args {
    /// HTTP address of the console (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Keep recordings here instead of a temporary dir that is removed on exit.
    #[arg(long)]
    storage: Option<PathBuf>,
    /// Port of the simulated cameras' RTSP server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    rtsp_port: u16,
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let (dir, temporary) = match a.storage {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    // The web page needs a login: an admin `demo` with a fresh random password each run.
    let password = {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut b = [0u8; 12];
        OsRng.fill_bytes(&mut b);
        hex::encode(b)
    };
    let users = crate::auth::AuthStore::new(&crate::storage::Layout::new(&dir));
    if users.load()?.user("demo").is_some() {
        users.set_password("demo", &password)?;
    } else {
        users.add_user("demo", crate::auth::Role::Admin, &password)?;
    }
    let cam = crate::fake_camera::start(crate::fake_camera::Options {
        port: a.rtsp_port,
        paths: vec!["front-door".into(), "yard".into()],
        scenes: true,
        ..Default::default()
    })?;
    let text = DEMO_CONFIG
        .replace("127.0.0.1:8554", &format!("127.0.0.1:{}", cam.port))
        .replace(
            "\"/tmp/vigil-demo\"",
            &format!("{:?}", dir.display().to_string()),
        )
        .replace("\"127.0.0.1:8080\"", &format!("{:?}", a.listen));
    // The demo's own config file, in its storage dir: what the console's zone editor
    // rewrites, and what `vigil check` or `vigil events` are given for a kept storage dir.
    let file = dir.join("vigil.toml");
    std::fs::write(&file, &text)
        .with_context(|| format!("cannot write the demo's config {}", file.display()))?;
    let config = crate::config::Config::parse(&file, &text)
        .map_err(|e| anyhow::anyhow!("demo config:\n{e}"))?;
    println!(
        "simulated cameras on rtsp://127.0.0.1:{}/{{front-door,yard}}",
        cam.port
    );
    println!(
        "recording into {}{}",
        dir.display(),
        if temporary { " (removed on exit)" } else { "" }
    );
    println!(
        "config: {} (the console's zone editor saves here)",
        file.display()
    );
    let rt = super::runtime()?;
    let shutdown = {
        let _in_runtime = rt.enter();
        crate::daemon::shutdown_signal()?
    };
    let r = rt.block_on(crate::daemon::run(config, shutdown, |addr| {
        println!("console: http://{addr}/   (Ctrl-C to stop)");
        println!("log in as: demo {password}");
    }));
    cam.stop();
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r?;
    Ok(ExitCode::SUCCESS)
}
