//! The bot registry in SQLite (BOT_DATABASE_URL, default sqlite://data/bots.db).

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::path::PathBuf;

const MIGRATION: &str = include_str!("../../bot-orchestrator/migrations/0001_create_bots.sql");

/// The SQLite file named by BOT_DATABASE_URL.
pub fn database_path() -> PathBuf {
    let url = std::env::var("BOT_DATABASE_URL").unwrap_or_else(|_| "sqlite://data/bots.db".into());
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(&url);
    PathBuf::from(path.split('?').next().unwrap_or(path))
}

/// Opens the registry, creating its directory and schema; fails when not writable.
pub fn open() -> Result<Connection, String> {
    let path = database_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")
            .map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
        let _ = std::fs::remove_file(probe);
    }
    let conn = Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .and_then(|_| conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())))
        .and_then(|_| conn.execute_batch(MIGRATION))
        .map_err(|e| format!("cannot migrate {}: {e}", path.display()))?;
    Ok(conn)
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "name": r.get::<_, String>(1)?,
        "symbol": r.get::<_, String>(2)?,
        "status": r.get::<_, String>(3)?,
        "created_at": r.get::<_, String>(4)?,
    }))
}

const COLUMNS: &str = "id, name, symbol, status, created_at";

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM bots ORDER BY id"))?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Value>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM bots WHERE id = ?1"))?;
    let mut rows = stmt.query_map(params![id], row)?;
    rows.next().transpose()
}

pub fn create(conn: &Connection, name: &str, symbol: &str) -> rusqlite::Result<Value> {
    conn.execute("INSERT INTO bots (name, symbol) VALUES (?1, ?2)", params![name, symbol])?;
    Ok(get(conn, conn.last_insert_rowid())?.unwrap_or(Value::Null))
}

pub fn delete(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM bots WHERE id = ?1", params![id])? > 0)
}

pub fn set_status(conn: &Connection, id: i64, status: &str) -> rusqlite::Result<Option<Value>> {
    conn.execute("UPDATE bots SET status = ?1 WHERE id = ?2", params![status, id])?;
    get(conn, id)
}
