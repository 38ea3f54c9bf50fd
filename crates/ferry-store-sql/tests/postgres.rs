//! The conformance suite on PostgreSQL: a database of its own per test, created on the server
//! named by `FERRY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and dropped afterwards. Without a reachable server these tests fail; they never skip.

use ferry_store::{CatalogueStore, TokenStore};
use std::sync::Arc;

mod common;

use common::old_release;
use ferry_store::{Store, StoreError};
use ferry_store_sql::testing::TempPostgres;
use ferry_store_sql::PostgresStore;

async fn make_store() -> (Arc<dyn Store>, TempPostgres) {
    let db = TempPostgres::create().await.unwrap_or_else(|e| panic!("{e}"));
    let store = PostgresStore::connect(db.url()).await.expect("connect to the test database");
    (Arc::new(store), db)
}

ferry_store::conformance_tests!(make_store);

#[tokio::test]
async fn reconnecting_keeps_data_and_migrations_are_idempotent() {
    let db = TempPostgres::create().await.unwrap_or_else(|e| panic!("{e}"));
    let store = PostgresStore::connect(db.url()).await.unwrap();
    store.create_admin_token(&token(), 1).await.unwrap();
    store.close().await;
    let store = PostgresStore::connect(db.url()).await.unwrap();
    assert_eq!(store.list_admin_tokens().await.unwrap().len(), 1);
    store.close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn undecodable_rows_are_corrupt() {
    let (store, db) = make_store().await;
    store.create_admin_token(&token(), 1).await.unwrap();
    let id = ferry_core::DeviceId::new("dev-1").unwrap();
    store.preauthorize_device(&id, &[], "secret", 1).await.unwrap();

    let raw = sqlx::PgPool::connect(db.url()).await.unwrap();
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
    let (store, _db) = make_store().await;
    let sha = ferry_core::Sha256::from_bytes([3; 32]);
    store.record_content(&sha, 10, 1).await.unwrap();
    let err = store.record_content(&sha, 11, 2).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("length 10")), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_server_fails_with_a_hint() {
    // Port 1 on loopback: nothing listens there.
    let err = TempPostgres::create_on("postgres://postgres@127.0.0.1:1/postgres").await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("start postgresql") && message.contains("FERRY_TEST_POSTGRES_URL"), "{message}");
}

/// Releases stored before the version key existed get it when the store opens, so a version
/// that ranks equal to one of them is refused.
#[tokio::test]
async fn version_keys_are_backfilled_on_open() {
    let db = TempPostgres::create().await.unwrap_or_else(|e| panic!("{e}"));
    let store = PostgresStore::connect(db.url()).await.unwrap();
    let release = old_release(&store).await;
    store.close().await;
    let raw = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::query("UPDATE releases SET version_key = NULL").execute(&raw).await.unwrap();
    raw.close().await;

    let store = PostgresStore::connect(db.url()).await.unwrap();
    let again = ferry_core::Release { version: "5.00 (Rel)".parse().unwrap(), ..release };
    let err = store.create_release(&again, 2).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("ranks equal")), "{err:?}");
    store.close().await;
}

fn token() -> ferry_store::NewAdminToken {
    ferry_store::NewAdminToken { name: "ci".to_owned(), role: ferry_core::Role::Admin, hash: "aa".repeat(32) }
}
