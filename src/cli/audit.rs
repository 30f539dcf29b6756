//! `vigil audit verify`: checks the audit log's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::audit::AuditLog;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check that no audit record was altered, removed or reordered.
    #[command(
        after_help = "Exit status: 0 intact, 3 tampering found (each problem names \
        the line where the chain breaks), 1 error."
    )]
    Verify {
        /// The daemon's TOML config file (the log is <storage.dir>/audit.log).
        #[arg(long, short)]
        config: PathBuf,
    },
}

pub fn main(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Verify { config } => {
            let config = super::load_config(&config)?;
            let log = AuditLog::new(&config.storage.layout());
            let (n, problems) = log.verify()?;
            if problems.is_empty() {
                println!("{}: {n} records, chain intact", log.path().display());
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    println!("{}: {p}", log.path().display());
                }
                println!("{n} records, {} problems", problems.len());
                Ok(ExitCode::from(3))
            }
        }
    }
}
