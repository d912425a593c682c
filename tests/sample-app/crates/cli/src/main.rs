//! algo-trade stand-in: the daemon (`run`) and the bot TUI (`live-bot-tui`) with
//! upstream's interface, for the collection's tests and demo.

mod bots;
mod daemon;
mod tui;

use std::process::ExitCode;

/// Shown by the API (X-Algo-Trade-Version) and the TUI; tests change this line.
pub const VERSION: &str = "sample-1";

fn usage() -> ExitCode {
    eprintln!("usage: algo-trade run [--config PATH] | live-bot-tui [--log-file PATH]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    match args.first().map(String::as_str) {
        // Like upstream, `--config` is accepted but config/Config.toml is read
        // relative to the working directory.
        Some("run") => daemon::run(),
        Some("live-bot-tui") => tui::run(option("--log-file")),
        _ => usage(),
    }
}
