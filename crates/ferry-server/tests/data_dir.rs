//! The server's files are its own: the data directory is 0700, the database files, uploads in
//! progress and stored content 0600, and a data directory open to others is refused.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ferry_server::{App, Config};
use sha2::Digest as _;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_database_and_content_are_private() {
    let srv = common::TestServer::start(common::Backend::Sqlite).await;
    let data = &srv.data_dir;
    for dir in ["", "content", "content/sha256", "content/tmp", "keys"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "directory {dir:?} after start");
    }
    for file in ["ferry.db", "ferry.db-wal", "ferry.db-shm", "admin-token"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} after start");
    }

    // An upload in progress: its temporary file is private while the body is still arriving.
    let body = vec![9u8; 100_000];
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let upload = reqwest::Client::new()
        .post(format!("{}/api/v1/content", srv.url))
        .bearer_auth(&srv.admin_token)
        .header("content-length", body.len())
        .body(reqwest::Body::wrap_stream(tokio_stream_of(rx)))
        .send();
    let upload = tokio::spawn(upload);
    tx.send(Ok(bytes::Bytes::copy_from_slice(&body[..50_000]))).await.unwrap();
    let tmp = loop {
        // The server creates the file when the first bytes arrive; this waits for it.
        if let Some(entry) = std::fs::read_dir(data.join("content/tmp")).unwrap().next() {
            break entry.unwrap().path();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(mode(&tmp), 0o600, "upload in progress {}", tmp.display());
    tx.send(Ok(bytes::Bytes::copy_from_slice(&body[50_000..]))).await.unwrap();
    drop(tx);
    let resp = upload.await.unwrap().unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);

    let digest = hex::encode(sha2::Sha256::digest(&body));
    let stored = data.join("content/sha256").join(&digest[..2]).join(&digest);
    assert_eq!(mode(&stored), 0o600, "stored content");
    assert_eq!(mode(stored.parent().unwrap()), 0o700, "its directory");
    for file in ["ferry.db", "ferry.db-wal", "ferry.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} after an upload");
    }
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_data_directory_open_to_others_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = Config { data_dir: data.clone(), ..Config::default() };
    let err = App::open(config.clone()).await.err().expect("a shared data directory is refused");
    let message = err.to_string();
    assert!(message.contains("mode 0755") && message.contains(&format!("chmod 700 {}", data.display())), "{message}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "nothing was written into it");
    assert_eq!(mode(&data), 0o755, "and its mode is left alone");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(App::open(config).await.is_ok(), "the advised chmod is enough");
}
