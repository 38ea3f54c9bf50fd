//! The conformance suite on SQLite: a fresh database file in a temporary directory per test.

use std::sync::Arc;

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

fn token() -> ferry_store::NewAdminToken {
    ferry_store::NewAdminToken { name: "ci".to_owned(), role: ferry_core::Role::Admin, hash: "aa".repeat(32) }
}
