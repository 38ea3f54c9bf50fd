//! The SQLite backend.

use std::path::Path;
use std::time::Duration;

use ferry_store::Result;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::common::{Dialect, Violation};

/// SQLite extended result codes of the constraints the store maps.
const SQLITE_CONSTRAINT_FOREIGNKEY: &str = "787";
const SQLITE_CONSTRAINT_PRIMARYKEY: &str = "1555";
const SQLITE_CONSTRAINT_UNIQUE: &str = "2067";

/// A [`Store`](ferry_store::Store) in one SQLite database file.
///
/// The database runs in WAL mode, so readers never wait for the writer; write transactions
/// take the write lock when they begin and wait up to five seconds for it.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to
    /// date.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // One writer at a time in any case; the rest of the pool serves concurrent readers. Each
        // connection is a worker thread in sqlx; measured on 2 cores with 64 concurrent
        // check-ins (BENCHMARKS.md), 8 connections beat 1, 2, 4, 16 and 32.
        let connections = std::thread::available_parallelism().map_or(8, |n| n.get() * 4).clamp(8, 32);
        let pool = SqlitePoolOptions::new()
            .max_connections(connections as u32)
            .connect_with(options)
            .await
            .map_err(|e| ferry_store::StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| ferry_store::StoreError::Backend(format!("cannot migrate {}: {e}", path.display())))?;
        let store = Self { pool };
        store.backfill_version_keys().await?;
        Ok(store)
    }

    /// Closes every connection of the pool, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// SQLite's dialect.
struct Sqlite;

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const BEGIN_READ: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = "";
    const GROUP_LIST: &'static str =
        "(SELECT group_concat(group_name, char(10)) FROM device_groups WHERE device_id = devices.id)";

    fn violation(err: &sqlx::Error) -> Option<Violation> {
        let code = err.as_database_error()?.code()?;
        match code.as_ref() {
            SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY => Some(Violation::Unique),
            SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
            _ => None,
        }
    }
}

crate::store_impl::impl_store!(SqliteStore, sqlx::Sqlite, Sqlite);
