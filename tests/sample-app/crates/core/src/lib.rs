//! What every part of the stand-in shares: its configuration (config.rs), its logging
//! and its version, which the binary (package algo-trade-cli) sets at start.

pub mod config;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

/// Whether log lines reach stderr (not under the TUIs, which own the terminal).
static LOG_TO_STDERR: OnceLock<bool> = OnceLock::new();
static VERSION: OnceLock<&'static str> = OnceLock::new();

/// Sets the version the API, the TUIs and the logs show (once, at start).
pub fn set_version(version: &'static str) {
    let _ = VERSION.set(version);
}

pub fn version() -> &'static str {
    VERSION.get().copied().unwrap_or("unknown")
}

/// Logs to the file given, else to stderr; filtered by RUST_LOG (default info).
pub fn init_logging(log_file: Option<&PathBuf>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
            let _ = LOG_TO_STDERR.set(false);
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init();
            let _ = LOG_TO_STDERR.set(true);
        }
    }
    Ok(())
}

/// No logging at all (a TUI without --log-file): errors go to stderr once it is restored.
pub fn no_logging() {
    let _ = LOG_TO_STDERR.set(false);
}

/// Reports an error that ends the process: in the log, and on stderr when the log is elsewhere.
pub fn fatal(message: &str) -> ExitCode {
    tracing::error!("{message}");
    if LOG_TO_STDERR.get() != Some(&true) {
        eprintln!("error: {message}");
    }
    ExitCode::FAILURE
}

/// Logs the `-c/--config` argument: like upstream's, it is only logged.
pub fn log_config_argument(config: Option<&PathBuf>) {
    if let Some(path) = config {
        tracing::info!(
            "Config argument {} (config/Config.toml is read from the working directory or a parent)",
            path.display()
        );
    }
}

/// "set" or "not set": secrets are never logged.
pub fn presence(variable: &str) -> &'static str {
    if std::env::var_os(variable).is_some_and(|v| !v.is_empty()) {
        "set"
    } else {
        "not set"
    }
}
