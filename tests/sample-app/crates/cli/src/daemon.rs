//! `algo-trade run`: connects to TimescaleDB, serves the bot API, stops cleanly.

use crate::{bots, VERSION};
use serde_json::{json, Value};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

fn log(message: &str) {
    println!("{message}");
}

struct Config {
    host: String,
    port: u16,
    database_url: String,
}

/// config/Config.toml relative to the working directory, like upstream.
fn load_config() -> Result<Config, String> {
    let text = std::fs::read_to_string("config/Config.toml")
        .map_err(|e| format!("cannot read config/Config.toml: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("config/Config.toml: {e}"))?;
    let get = |section: &str, key: &str| table.get(section).and_then(|s| s.get(key)).cloned();
    Ok(Config {
        host: get("server", "host")
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "0.0.0.0".into()),
        port: get("server", "port")
            .and_then(|v| v.as_integer())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(8080),
        database_url: get("database", "url")
            .and_then(|v| v.as_str().map(String::from))
            .ok_or("config/Config.toml: [database] url is missing")?,
    })
}

/// Keeps a TimescaleDB session and logs whether the database answers. As upstream's, the
/// API answers from memory whatever it says: the deployer's health checks ask the database.
fn watch_database(url: String, healthy: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut client: Option<postgres::Client> = None;
        while !stop.load(Ordering::Relaxed) {
            let alive = client.as_mut().is_some_and(|c| c.simple_query("SELECT 1").is_ok());
            let now = alive || {
                client = postgres::Client::connect(&url, postgres::NoTls).ok();
                client.is_some()
            };
            if now != healthy.swap(now, Ordering::Relaxed) {
                log(if now { "TimescaleDB reachable" } else { "TimescaleDB unreachable" });
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
}

fn respond(request: Request, status: u16, body: &Value) {
    let response = Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(Header::from_bytes("Content-Type", "application/json").unwrap())
        .with_header(Header::from_bytes("X-Algo-Trade-Version", VERSION).unwrap());
    let _ = request.respond(response);
}

fn handle(conn: &rusqlite::Connection, mut request: Request) {
    let path: Vec<String> = request
        .url()
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .map(String::from)
        .collect();
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    if parts.first() != Some(&"api") || parts.get(1) != Some(&"bots") {
        return respond(request, 404, &json!({"error": "not found"}));
    }
    let id = parts.get(2).and_then(|s| s.parse::<i64>().ok());
    let result: Result<(u16, Value), rusqlite::Error> = match (request.method(), parts.len(), id) {
        (Method::Get, 2, _) => bots::list(conn).map(|b| (200, Value::from(b))),
        (Method::Post, 2, _) => {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            match serde_json::from_str::<Value>(&body) {
                Ok(v) if v.get("name").and_then(Value::as_str).is_some() => {
                    let name = v["name"].as_str().unwrap_or_default();
                    let symbol = v.get("symbol").and_then(Value::as_str).unwrap_or("BTC");
                    bots::create(conn, name, symbol).map(|b| (201, b))
                }
                _ => Ok((400, json!({"error": "expected a JSON object with a name"}))),
            }
        }
        (Method::Get, 3, Some(id)) => {
            bots::get(conn, id).map(|b| b.map_or((404, json!({"error": "no such bot"})), |b| (200, b)))
        }
        (Method::Delete, 3, Some(id)) => bots::delete(conn, id)
            .map(|gone| if gone { (200, json!({"deleted": id})) } else { (404, json!({"error": "no such bot"})) }),
        (Method::Put, 4, Some(id)) if matches!(parts[3], "start" | "stop") => {
            let status = if parts[3] == "start" { "running" } else { "stopped" };
            bots::set_status(conn, id, status)
                .map(|b| b.map_or((404, json!({"error": "no such bot"})), |b| (200, b)))
        }
        _ => Ok((405, json!({"error": "method not allowed"}))),
    };
    match result {
        Ok((status, body)) => respond(request, status, &body),
        Err(e) => respond(request, 500, &json!({"error": e.to_string()})),
    }
}

pub fn run() -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let conn = match bots::open() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: bot database: {e}");
            return ExitCode::from(1);
        }
    };
    // The URL holds the password: never print it.
    if let Err(e) = postgres::Client::connect(&config.database_url, postgres::NoTls) {
        eprintln!("error: cannot connect to TimescaleDB: {e}");
        return ExitCode::from(1);
    }
    log("Connected to TimescaleDB");
    for key in ["HYPERLIQUID_PRIVATE_KEY", "HYPERLIQUID_ACCOUNT_ADDRESS", "HYPERLIQUID_API_WALLET_KEY"] {
        let state = if std::env::var_os(key).is_some_and(|v| !v.is_empty()) { "set" } else { "not set" };
        log(&format!("{key} {state}"));
    }

    let signal = Arc::new(AtomicI32::new(0));
    for sig in [SIGTERM, SIGINT] {
        let flag = Arc::clone(&signal);
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            signal_hook::low_level::register(sig, move || flag.store(sig, Ordering::SeqCst))
        }
        .expect("register signal handler");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let db_up = Arc::new(AtomicBool::new(true));
    watch_database(config.database_url.clone(), Arc::clone(&db_up), Arc::clone(&stop));

    let address = format!("{}:{}", config.host, config.port);
    let server = match Server::http(&address) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {address}: {e}");
            return ExitCode::from(1);
        }
    };
    log(&format!("Trading system daemon {VERSION} listening on {address}"));
    while signal.load(Ordering::SeqCst) == 0 {
        if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(200)) {
            handle(&conn, request);
        }
    }
    let name = if signal.load(Ordering::SeqCst) == SIGINT { "SIGINT" } else { "SIGTERM" };
    log(&format!("Received {name}, initiating graceful shutdown"));
    log("Shutting down all bots...");
    stop.store(true, Ordering::Relaxed);
    drop(server);
    log("Trading system daemon stopped");
    ExitCode::SUCCESS
}
