//! The wake-up channel end to end: `check-now` and the devices' long poll (`GET
//! /device/v1/wait`), over real HTTP, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use ferry_api::*;
use ferry_client::DeviceClient;

use common::Fleet;

async fn fleet(srv: &common::TestServer) -> Fleet {
    let product = ProductSpec { name: "agent".parse().unwrap(), description: String::new() };
    Fleet::new(srv, product, None).await
}

/// Waits (a bounded number of short polls) until `n` requests wait on the server.
async fn until_waiting(srv: &common::TestServer, n: usize) {
    for _ in 0..500 {
        if srv.state.wakeups.waiting() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} requests waiting, expected {n}", srv.state.wakeups.waiting());
}

fn spawn_wait(device: &DeviceClient, secs: u64) -> tokio::task::JoinHandle<WakeAnswer> {
    let device = device.clone();
    tokio::spawn(async move { device.wait(secs).await.unwrap() })
}

on_both_backends!(check_now_wakes_a_waiting_device, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let device = f.enroll("kiosk-1").await;
    let id = "kiosk-1".parse().unwrap();

    // Woken while waiting: the wait is far longer than the test runs, so the answer can only
    // come from the wake-up.
    let waiting = spawn_wait(&device, 300);
    until_waiting(&srv, 1).await;
    let asked = f.admin.check_now(&id).await.unwrap();
    assert!(asked.woken, "the device was waiting on this server");
    assert_eq!(waiting.await.unwrap(), WakeAnswer { wake: true, retry_after_secs: None });
    until_waiting(&srv, 0).await;

    // Delivered once: the request above was taken by the wait it woke.
    assert_eq!(device.wait(1).await.unwrap(), WakeAnswer { wake: false, retry_after_secs: None });

    // Asked before the device waits: its next wait answers at once, and only that one.
    let asked = f.admin.check_now(&id).await.unwrap();
    assert!(!asked.woken);
    assert!(device.wait(300).await.unwrap().wake);
    assert!(!device.wait(1).await.unwrap().wake, "a wake-up is delivered once");

    // A request another server recorded (straight into the shared store) reaches the waiter
    // through this server's poll of the store.
    let waiting = spawn_wait(&device, 300);
    until_waiting(&srv, 1).await;
    let now = srv.state.clock.now();
    srv.store.request_wakes(std::slice::from_ref(&id), now, now - 600).await.unwrap();
    assert!(waiting.await.unwrap().wake);
    assert!(!device.wait(1).await.unwrap().wake);

    // A request older than ten minutes is not delivered.
    srv.store.request_wakes(std::slice::from_ref(&id), now - 700, now - 1000).await.unwrap();
    assert!(!device.wait(2).await.unwrap().wake);

    // An unknown device.
    let e = f.admin.check_now(&"ghost".parse().unwrap()).await.unwrap_err();
    assert_eq!(common::code(&e).1, ErrorCode::NotFound);
});

on_both_backends!(a_wait_times_out_and_a_gone_client_leaves, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let device = f.enroll("kiosk-2").await;
    let doc = f.admin.openapi().await.unwrap();
    for path in [
        "/device/v1/wait",
        "/api/v1/devices/{id}/check-now",
        "/api/v1/devices/{id}/test",
        "/api/v1/releases/{id}/test-results",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi document lacks {path}");
    }
    assert_eq!(device.wait(1).await.unwrap(), WakeAnswer { wake: false, retry_after_secs: None });
    // A client that goes away ends its wait on the server.
    let waiting = spawn_wait(&device, 300);
    until_waiting(&srv, 1).await;
    waiting.abort();
    until_waiting(&srv, 0).await;
});

/// Past `wake.max_waiters`, a wait is answered at once with a hint; a shutdown ends waits at
/// once, so that the server stops promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_capped_and_end_at_shutdown() {
    let srv = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.trust.require_signed_releases = false;
        c.wake.max_waiters = 1;
    })
    .await;
    let f = fleet(&srv).await;
    let first = f.enroll("kiosk-1").await;
    let second = f.enroll("kiosk-2").await;
    let waiting = spawn_wait(&first, 300);
    until_waiting(&srv, 1).await;
    let answer = second.wait(300).await.unwrap();
    assert_eq!(answer, WakeAnswer { wake: false, retry_after_secs: Some(55) });
    drop(srv);
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("shutdown ends the wait").unwrap();
    assert!(!answer.wake);
}

#[test]
fn the_wait_bounds_are_configuration() {
    let mut config = ferry_server::Config::default();
    config.wake.wait_secs = 1;
    assert!(config.validate().unwrap_err().to_string().contains("wake.wait_secs"));
    config.wake.wait_secs = 55;
    config.wake.max_waiters = 0;
    assert!(config.validate().unwrap_err().to_string().contains("wake.max_waiters"));
}

/// Two servers sharing one PostgreSQL database: `check-now` taken by one reaches the device
/// waiting on the other, through the other's poll of the store, and is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_now_reaches_a_device_waiting_on_another_replica() {
    let first = common::TestServer::start(common::Backend::Postgres).await;
    let f = fleet(&first).await;

    // The second replica: the same database and online keys, its own data directory.
    let tmp = tempfile::tempdir().unwrap();
    let config = ferry_server::Config {
        data_dir: tmp.path().join("data"),
        database_url: first.state.config.database_url.clone(),
        trust: ferry_server::config::Trust {
            keys_dir: first.state.config.keys_dir(),
            ..first.state.config.trust.clone()
        },
        ..ferry_server::Config::default()
    };
    let second = ferry_server::App::open(config).await.unwrap();
    let replica = second.state().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        ferry_server::serve(listener, &second, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    // Enrolled through the first replica, the device waits on the second.
    let request =
        EnrollRequest { device_id: "kiosk-2".parse().unwrap(), enrollment_key: Some(f.enrollment_key.clone()) };
    let answer = DeviceClient::new(&first.url, None).unwrap().enroll(&request).await.unwrap();
    let mut device = DeviceClient::new(&url, None).unwrap();
    device.set_credential(&answer.credential).unwrap();

    let waiting = spawn_wait(&device, 300);
    for _ in 0..500 {
        if replica.wakeups.waiting() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(replica.wakeups.waiting(), 1);
    let asked = f.admin.check_now(&"kiosk-2".parse().unwrap()).await.unwrap();
    assert!(!asked.woken, "the device waits on the other replica");
    assert!(waiting.await.unwrap().wake);
    assert!(!device.wait(1).await.unwrap().wake, "delivered once");

    let _ = stop.send(());
    serving.await.unwrap();
}
