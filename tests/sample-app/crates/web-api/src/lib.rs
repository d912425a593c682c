//! `algo-trade run`: the trading daemon (bot registry in SQLite, HTTP API, WebSocket,
//! optional PostgreSQL from DATABASE_URL), stopped by SIGTERM or SIGINT; and
//! `algo-trade server`: the API alone over an in-memory registry.

use algo_trade_bot_orchestrator::{Bot, Registry, RegistryError};
use algo_trade_core::{config, fatal, log_config_argument, presence, version};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

const EXCHANGE_KEYS: [&str; 3] = [
    "HYPERLIQUID_PRIVATE_KEY",
    "HYPERLIQUID_ACCOUNT_ADDRESS",
    "HYPERLIQUID_API_WALLET_KEY",
];

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Deserialize)]
struct CreateBot {
    bot_id: String,
    symbol: String,
    strategy: String,
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/bots", get(list_bots).post(create_bot))
        .route("/api/bots/{bot_id}", get(get_bot).delete(delete_bot))
        .route("/api/bots/{bot_id}/start", put(start_bot))
        .route("/api/bots/{bot_id}/stop", put(stop_bot))
        .route("/ws", get(websocket))
        .layer(middleware::map_response(common_headers))
        .with_state(state)
}

/// Every answer names the version; CORS is open to any origin, as upstream's.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-algo-trade-version", HeaderValue::from_static(version()));
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    response
}

fn not_found(bot_id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("Bot {bot_id} not found")})),
    )
        .into_response()
}

fn store_error(e: sqlx::Error) -> Response {
    error!("Bot database error: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "bot database error"})),
    )
        .into_response()
}

async fn list_bots(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"bots": state.registry.list().await}))
}

async fn create_bot(State(state): State<AppState>, Json(request): Json<CreateBot>) -> Response {
    let bot = Bot::paper(&request.bot_id, &request.symbol, &request.strategy);
    match state.registry.create(bot).await {
        Ok(bot) => {
            info!(
                "Created paper-trading bot {} ({} on {})",
                bot.bot_id, bot.strategy, bot.symbol
            );
            (StatusCode::CREATED, Json(bot)).into_response()
        }
        Err(RegistryError::Exists) => (
            StatusCode::CONFLICT,
            Json(json!({"error": format!("Bot {} already exists", request.bot_id)})),
        )
            .into_response(),
        Err(RegistryError::Store(e)) => store_error(e),
    }
}

async fn get_bot(State(state): State<AppState>, Path(bot_id): Path<String>) -> Response {
    match state.registry.get(&bot_id).await {
        Some(bot) => Json(bot).into_response(),
        None => not_found(&bot_id),
    }
}

async fn set_status(state: &AppState, bot_id: &str, status: &str) -> Response {
    match state.registry.set_status(bot_id, status).await {
        Ok(Some(bot)) => {
            info!("Bot {bot_id} {status}");
            Json(bot).into_response()
        }
        Ok(None) => not_found(bot_id),
        Err(e) => store_error(e),
    }
}

async fn start_bot(State(state): State<AppState>, Path(bot_id): Path<String>) -> Response {
    set_status(&state, &bot_id, "running").await
}

async fn stop_bot(State(state): State<AppState>, Path(bot_id): Path<String>) -> Response {
    set_status(&state, &bot_id, "stopped").await
}

async fn delete_bot(State(state): State<AppState>, Path(bot_id): Path<String>) -> Response {
    match state.registry.delete(&bot_id).await {
        Ok(true) => {
            info!("Deleted bot {bot_id}");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => not_found(&bot_id),
        Err(e) => store_error(e),
    }
}

async fn websocket(upgrade: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    upgrade.on_upgrade(move |socket| push_statuses(socket, state))
}

/// Sends every bot's status each second until the client leaves or the daemon stops.
async fn push_statuses(mut socket: WebSocket, state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let message = json!({"type": "bot_statuses", "bots": state.registry.list().await});
                if socket.send(Message::Text(message.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = shutdown.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the future names the first that comes.
fn termination() -> impl std::future::Future<Output = &'static str> {
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            error!("Cannot install the signal handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

/// Serves the API until `shutdown` turns true. A failed bind is logged only and the
/// process goes on without HTTP, as upstream's.
async fn serve(host: &str, port: u16, state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => l,
        Err(e) => {
            error!("Failed to bind the API on {host}:{port}: {e}; running without HTTP");
            return None;
        }
    };
    info!("Trading system daemon {} listening on {host}:{port}", version());
    let mut shutdown = state.shutdown.clone();
    let app = router(state);
    Some(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            error!("API server error: {e}");
        }
    }))
}

pub async fn run(config_argument: Option<PathBuf>) -> ExitCode {
    info!("Starting trading system daemon {}", version());
    log_config_argument(config_argument.as_ref());
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    for key in EXCHANGE_KEYS {
        info!("{key}: {}", presence(key));
    }
    let registry = match Registry::open_sqlite().await {
        Ok(r) => Arc::new(r),
        Err(e) => return fatal(&e),
    };
    info!("Bot registry restored {} bots", registry.list().await.len());

    let mut terminated = Box::pin(termination());
    // DATABASE_URL is optional. sqlx retries a refused connection for about 30 s;
    // then the daemon goes on without PostgreSQL and never retries, as upstream's.
    // The URL holds the password: it is never logged.
    let database: Option<PgPool> = match std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        None => {
            info!("DATABASE_URL not set: running without PostgreSQL");
            None
        }
        Some(url) => tokio::select! {
            connected = PgPool::connect(&url) => match connected {
                Ok(pool) => {
                    info!("Connected to TimescaleDB");
                    Some(pool)
                }
                Err(e) => {
                    warn!("Failed to connect to TimescaleDB: {e}; continuing without PostgreSQL");
                    None
                }
            },
            name = &mut terminated => return stop(name, &registry, None, None).await,
        },
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState {
        registry: Arc::clone(&registry),
        shutdown: shutdown_rx,
    };
    let server = serve(&config.server.host, config.server.port, state).await;
    let name = terminated.await;
    let _ = shutdown_tx.send(true);
    stop(name, &registry, server, database).await
}

async fn stop(
    name: &str,
    registry: &Registry,
    server: Option<tokio::task::JoinHandle<()>>,
    database: Option<PgPool>,
) -> ExitCode {
    info!("Received {name}, initiating graceful shutdown");
    info!("Shutting down all bots...");
    let stopped = registry.stop_all().await;
    info!("Stopped {stopped} running bots");
    if let Some(server) = server {
        if tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .is_err()
        {
            warn!("API connections still open after 5 s; closing them");
        }
    }
    if let Some(pool) = database {
        pool.close().await;
    }
    registry.close().await;
    info!("Trading system daemon stopped");
    ExitCode::SUCCESS
}

pub async fn server(addr: String) -> ExitCode {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return fatal(&format!("--addr {addr}: expected HOST:PORT"));
    };
    let Ok(port) = port.parse::<u16>() else {
        return fatal(&format!("--addr {addr}: bad port"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let terminated = termination();
    let registry = Arc::new(Registry::in_memory());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState {
        registry: Arc::clone(&registry),
        shutdown: shutdown_rx,
    };
    let server = serve(host, port, state).await;
    let name = terminated.await;
    let _ = shutdown_tx.send(true);
    stop(name, &registry, server, None).await
}
