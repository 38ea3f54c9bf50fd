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
///
/// Every connection runs with `synchronous = FULL`: a commit returns only once the WAL is
/// synced, so what the server has acknowledged (events, enrollments, admin changes) survives
/// a power cut, not only a crash of the process. `NORMAL` would sync only at checkpoints and
/// can lose the last commits on a power cut; BENCHMARKS.md measures what FULL costs.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
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

    /// The connection pool, for tests that check how its connections are set up.
    #[cfg(feature = "testing")]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection of the pool, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
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

crate::store_impl::impl_store!(SqliteStore, sqlx::Sqlite, Sqlite);
