//! Throwaway PostgreSQL databases for tests (feature `testing`).
//!
//! ```no_run
//! # async fn demo() {
//! use ferry_store_sql::{testing::TempPostgres, PostgresStore};
//!
//! let db = TempPostgres::create().await.expect("postgresql for tests");
//! let store = PostgresStore::connect(db.url()).await.unwrap();
//! // … use the store; the database is dropped when `db` goes out of scope.
//! # }
//! ```
//!
//! The server is taken from the environment variable [`URL_VAR`], by default
//! [`DEFAULT_URL`]. The URL names an account that may create databases; each
//! [`TempPostgres`] creates `ferry_test_<random hex>` on that server, so tests run in parallel
//! without seeing each other's data. When PostgreSQL cannot be reached, [`TempPostgres::create`]
//! fails with a message saying to start it or set [`URL_VAR`]: tests using it fail rather
//! than pass without having run.

use std::fmt::Write as _;

use ferry_store::{Result, StoreError};
use rand::RngCore;
use sqlx::{Connection, PgConnection};

/// Environment variable holding the URL of the PostgreSQL server for tests.
pub const URL_VAR: &str = "FERRY_TEST_POSTGRES_URL";

/// The URL used when [`URL_VAR`] is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL database created for one test and dropped (best effort) when this value is
/// dropped. If the test panics before, the database may be left behind; its name starts
/// with `ferry_test_`.
#[derive(Debug)]
pub struct TempPostgres {
    admin_url: String,
    name: String,
    url: String,
}

impl TempPostgres {
    /// Creates a fresh, empty database on the server named by [`URL_VAR`] (or
    /// [`DEFAULT_URL`]).
    pub async fn create() -> Result<Self> {
        let admin_url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        Self::create_on(&admin_url).await
    }

    /// Creates a fresh, empty database on the server at `admin_url`, connecting as the
    /// account it names (which must be allowed to create databases).
    pub async fn create_on(admin_url: &str) -> Result<Self> {
        let mut bytes = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut bytes);
        let mut name = "ferry_test_".to_owned();
        for b in bytes {
            let _ = write!(name, "{b:02x}");
        }
        let mut admin = PgConnection::connect(admin_url).await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot reach postgresql at {}: {e}; start postgresql or set {URL_VAR} to the url of a \
                 server where this account may create databases",
                redact(admin_url)
            ))
        })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot create test database {name}: {e}")))?;
        let _ = admin.close().await;
        let url = database_url(admin_url, &name)?;
        Ok(Self { admin_url: admin_url.to_owned(), name, url })
    }

    /// The URL of the new database, for [`PostgresStore::connect`](crate::PostgresStore::connect).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of the new database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, disconnecting whoever still uses it.
    pub async fn drop_database(self) -> Result<()> {
        let result = drop_database(&self.admin_url, &self.name).await;
        std::mem::forget(self);
        result
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime that must not be blocked on itself:
        // drop the database from a thread with a runtime of its own.
        let (admin_url, name) = (self.admin_url.clone(), std::mem::take(&mut self.name));
        let handle = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(drop_database(&admin_url, &name));
            }
        });
        let _ = handle.join();
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut admin = PgConnection::connect(admin_url).await.map_err(|e| StoreError::Backend(e.to_string()))?;
    // WITH (FORCE) (PostgreSQL 13+) ends the pools' connections that may still be open.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .map_err(|e| StoreError::Backend(format!("cannot drop test database {name}: {e}")))?;
    let _ = admin.close().await;
    Ok(())
}

/// `admin_url` with its database replaced by `name` (query parameters kept).
fn database_url(admin_url: &str, name: &str) -> Result<String> {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let authority_start = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| StoreError::Backend(format!("{URL_VAR} is not a postgres:// url: {}", redact(admin_url))))?;
    let host_end = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[start..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &url[..start], &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_the_url() {
        let url = |u| database_url(u, "x").unwrap();
        assert_eq!(url("postgres://postgres@127.0.0.1:5432/postgres"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(url("postgres://u:p@h/db?sslmode=disable"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(url("postgres://h:5432"), "postgres://h:5432/x");
        assert!(database_url("nonsense", "x").is_err());
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
