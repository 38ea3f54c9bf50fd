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
/// The database runs in WAL mode, so readers never wait for the writer. SQLite allows one
/// writer at a time; rather than letting every pooled connection race for the write lock
/// (its busy handler polls and is not fair, so under a steady write load an unlucky
/// transaction could wait past any timeout), every statement that writes goes through a
/// pool of exactly one connection, `writer`. Writers queue for that connection in order, and
/// a write waits only for the writes ahead of it. The reading connections are opened
/// `query_only`, so a write sent to them by mistake fails instead of racing.
///
/// Every connection runs with `synchronous = FULL`: a commit returns only once the WAL is
/// synced, so what the server has acknowledged (events, enrollments, admin changes) survives
/// a power cut, not only a crash of the process. `NORMAL` would sync only at checkpoints and
/// can lose the last commits on a power cut; BENCHMARKS.md measures what FULL costs.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to
    /// date.
    ///
    /// The database file and its `-wal` and `-shm` companions are readable and writable only by
    /// the owner (0600): the file is created with that mode before SQLite opens it, and SQLite
    /// gives the companions the database file's mode. Existing files are tightened.
    pub async fn open(path: &Path) -> Result<Self> {
        make_private(path)
            .map_err(|e| ferry_store::StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let cannot_open =
            |e: sqlx::Error| ferry_store::StoreError::Backend(format!("cannot open {}: {e}", path.display()));
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Only a checkpoint or another process can hold the lock now; wait for it.
            .busy_timeout(Duration::from_secs(30));
        // The one writing connection. A write waits in the pool's queue; the acquire timeout
        // bounds that wait (a request past it gets 503 and may retry).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await
            .map_err(cannot_open)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| ferry_store::StoreError::Backend(format!("cannot migrate {}: {e}", path.display())))?;
        // The readers. Each connection is a worker thread in sqlx; measured on 2 cores with 64
        // concurrent check-ins (BENCHMARKS.md), 8 connections beat 1, 2, 4, 16 and 32.
        let connections = std::thread::available_parallelism().map_or(8, |n| n.get() * 4).clamp(8, 32);
        let pool = SqlitePoolOptions::new()
            .max_connections(connections as u32)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(cannot_open)?;
        let store = Self { pool, writer };
        store.backfill_version_keys().await?;
        Ok(store)
    }

    /// The connection pool, for tests that check how its connections are set up.
    #[cfg(feature = "testing")]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The writing connection's pool, for tests that check how it is set up.
    #[cfg(feature = "testing")]
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Closes every connection of both pools, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Creates the database file if missing and restricts it and its companions to the owner.
fn make_private(path: &Path) -> std::io::Result<()> {
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    create.open(path)?;
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
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

// The shared query code (`store/`), compiled against this backend's types; postgres.rs
// compiles the same files against its own, hence the allowed duplicate module.
type Backend = SqliteStore;
type BackendDb = sqlx::Sqlite;
type SqlDialect = Sqlite;
#[allow(clippy::duplicate_mod)]
#[path = "store/mod.rs"]
mod store;
