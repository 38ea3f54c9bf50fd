//! The conformance suite on SQLite: a fresh database file in a temporary directory per test.

use ferry_store::{CatalogueStore, DeviceStore, TokenStore};
use std::sync::Arc;

mod common;

use common::old_release;
use ferry_store::{Store, StoreError};
use ferry_store_sql::SqliteStore;
use tempfile::TempDir;

async fn make_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).await.expect("open sqlite store");
    (Arc::new(store), dir)
}

ferry_store::conformance_tests!(make_store);

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-name.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_admin_token(&token(), 1).await.unwrap();
    store.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.list_admin_tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn undecodable_rows_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_admin_token(&token(), 1).await.unwrap();
    let id = ferry_core::DeviceId::new("dev-1").unwrap();
    store.preauthorize_device(&id, &[], "secret", 1).await.unwrap();

    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("UPDATE admin_tokens SET role = 'root'").execute(&raw).await.unwrap();
    sqlx::query("UPDATE devices SET installed = '{not json'").execute(&raw).await.unwrap();
    raw.close().await;

    let err = store.list_admin_tokens().await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("role")), "{err:?}");
    let err = store.get_device(&id).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("installed")), "{err:?}");
}

#[tokio::test]
async fn content_recorded_with_another_length_conflicts() {
    let (store, _dir) = make_store().await;
    let sha = ferry_core::Sha256::from_bytes([3; 32]);
    store.record_content(&sha, 10, 1).await.unwrap();
    let err = store.record_content(&sha, 11, 2).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("length 10")), "{err:?}");
    assert_eq!(store.content_length(&sha).await.unwrap(), Some(10));
}

/// Releases stored before the version key existed get it when the store opens, so a version
/// that ranks equal to one of them is refused.
#[tokio::test]
async fn version_keys_are_backfilled_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let release = old_release(&store).await;
    store.close().await;
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("UPDATE releases SET version_key = NULL").execute(&raw).await.unwrap();
    raw.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    let again = ferry_core::Release { version: "5.00 (Rel)".parse().unwrap(), ..release };
    let err = store.create_release(&again, 2).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("ranks equal")), "{err:?}");
    store.close().await;
}

/// Acknowledged commits survive a power cut: every connection of the pool, not only the first,
/// syncs the WAL on commit (`PRAGMA synchronous` 2 is FULL; NORMAL, 1, can lose the last
/// commits), and the database and its WAL companions are readable by the owner only.
#[tokio::test]
async fn every_pooled_connection_syncs_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = store.pool().acquire().await.unwrap();
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(level, 2, "connection {} runs with synchronous = FULL", held.len());
        held.push(conn);
    }
    assert_eq!(store.pool().size(), 8, "eight distinct connections were checked");
    let mut writer = store.writer().acquire().await.unwrap();
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *writer).await.unwrap();
    assert_eq!(level, 2, "the writing connection runs with synchronous = FULL");
}

/// Writes queue for one writing connection instead of racing for SQLite's lock: the readers
/// refuse to write, so a write sent to them by mistake fails in every test instead of waiting
/// for the lock under load, and the writer pool never opens a second connection.
#[tokio::test]
async fn only_the_one_writing_connection_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("ferry.db")).await.unwrap();
    let err = sqlx::query("DELETE FROM admin_tokens").execute(store.pool()).await.unwrap_err();
    assert!(err.to_string().contains("readonly"), "a reading connection refuses writes: {err}");

    let writes: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut t = token();
                t.name = format!("token-{i}");
                t.hash = format!("{:064x}", i);
                store.create_admin_token(&t, 1).await
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(store.writer().size(), 1, "one writing connection");
    assert_eq!(store.list_admin_tokens().await.unwrap().len(), 32);
    store.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn database_files_are_private_also_when_they_existed_before() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.db");
    let mode = |suffix: &str| {
        let file = dir.path().join(format!("ferry.db{suffix}"));
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777
    };
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_admin_token(&token(), 1).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "ferry.db{suffix}");
    }
    store.close().await;
    // A database made by an older version, with the usual 0644.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_admin_token(&ferry_store::NewAdminToken { hash: "bb".repeat(32), ..token() }, 2).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "ferry.db{suffix} after reopening");
    }
}

fn token() -> ferry_store::NewAdminToken {
    ferry_store::NewAdminToken { name: "ci".to_owned(), role: ferry_core::Role::Admin, hash: "aa".repeat(32) }
}
