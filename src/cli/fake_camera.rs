//! `vigil fake-camera`: test RTSP streams.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    after_help = "Prints one rtsp:// URL per path once listening. Signals: SIGUSR1 drops \
    every client connection; SIGUSR2 corrupts the next 30 frames (looped files only); \
    SIGINT/SIGTERM stop."
)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// A stream path to serve; repeat for several cameras.
    #[arg(long = "path", default_values_t = vec!["cam".to_string()])]
    paths: Vec<String>,
    /// Serve N paths cam1..camN instead of --path.
    #[arg(long)]
    count: Option<usize>,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 360)]
    height: u32,
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Encoder bitrate of the generated scene.
    #[arg(long, default_value_t = 1000)]
    bitrate_kbps: u32,
    /// Seconds between keyframes of the generated scene.
    #[arg(long, default_value_t = 2.0)]
    gop_seconds: f64,
    /// Loop this pre-encoded H.264 file (.mp4 or Annex B .h264) without re-encoding.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Codec of the generated scene.
    #[arg(long, value_enum, default_value = "h264")]
    codec: crate::fake_camera::Codec,
    /// Plausible scenes (a door, a yard, a facade, by path in turn, with people crossing
    /// now and then) instead of test patterns.
    #[arg(long)]
    scenes: bool,
    /// Require this RTSP user (with --password).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// The password for --user (a test tool: visible in the process list).
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// How clients must authenticate.
    #[arg(long, value_enum, default_value = "digest")]
    auth_method: crate::fake_camera::AuthMethod,
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let paths = match a.count {
        Some(n) => (1..=n).map(|i| format!("cam{i}")).collect(),
        None => a.paths,
    };
    crate::fake_camera::run_cli(crate::fake_camera::Options {
        port: a.port,
        paths,
        width: a.width,
        height: a.height,
        fps: a.fps,
        bitrate_kbps: a.bitrate_kbps,
        gop_seconds: a.gop_seconds,
        file: a.file,
        codec: a.codec,
        scenes: a.scenes,
        auth: a
            .user
            .zip(a.password)
            .map(|(user, password)| crate::fake_camera::Auth {
                user,
                password,
                method: a.auth_method,
            }),
    })?;
    Ok(ExitCode::SUCCESS)
}
