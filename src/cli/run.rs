//! `vigil run`: the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The TOML config file (see config/example.toml).
    #[arg(long, short)]
    config: PathBuf,
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let rt = super::runtime()?;
    let shutdown = {
        let _in_runtime = rt.enter();
        crate::daemon::shutdown_signal()?
    };
    rt.block_on(crate::daemon::run(config, shutdown, |addr| {
        println!("listening on {scheme}://{addr}/")
    }))?;
    Ok(ExitCode::SUCCESS)
}
