//! The PostgreSQL backend.

use std::time::Duration;

use ferry_store::{Result, StoreError};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::common::{Dialect, Violation};

/// SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a foreign-key violation.
const FOREIGN_KEY_VIOLATION: &str = "23503";

/// A [`Store`](ferry_store::Store) in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The same pool: PostgreSQL takes row locks, so writers need no queue of their own.
    writer: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect to postgresql: {e}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot migrate the postgresql database: {e}")))?;
        let store = Self { writer: pool.clone(), pool };
        store.backfill_version_keys().await?;
        Ok(store)
    }

    /// Closes every connection of the pool, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// PostgreSQL's dialect.
struct Postgres;

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const BEGIN_READ: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const GROUP_LIST: &'static str =
        "(SELECT string_agg(group_name, E'\\n') FROM device_groups WHERE device_id = devices.id)";

    fn violation(err: &sqlx::Error) -> Option<Violation> {
        let code = err.as_database_error()?.code()?;
        match code.as_ref() {
            UNIQUE_VIOLATION => Some(Violation::Unique),
            FOREIGN_KEY_VIOLATION => Some(Violation::ForeignKey),
            _ => None,
        }
    }
}

// The shared query code (`store/`), compiled against this backend's types; sqlite.rs
// compiles the same files against its own, hence the allowed duplicate module.
type Backend = PostgresStore;
type BackendDb = sqlx::Postgres;
type SqlDialect = Postgres;
#[allow(clippy::duplicate_mod)]
#[path = "store/mod.rs"]
mod store;
