//! SQL backends of Ferry's [`Store`](ferry_store::Store): [`SqliteStore`] for single-node
//! installations and [`PostgresStore`] for larger ones.
//!
//! Each backend owns its migrations (`migrations/sqlite/`, `migrations/postgres/`), embedded in
//! the binary and run when the store is opened. Both pass `ferry_store`'s conformance suite.
//!
//! The query code is written once, one file per area under `src/store/`, and compiled for each
//! database by a `#[path]` module in its backend module; the backend modules hold what differs: connect options, migrations and the mapping of the
//! database's error codes.
//!
//! Storage conventions: times are unix seconds in `BIGINT` columns, hashes lower-case hex
//! `TEXT`, maps and lists JSON `TEXT`, byte lengths `BIGINT`.

#![warn(missing_docs)]

mod common;

pub mod postgres;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
