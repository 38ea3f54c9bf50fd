//! The connection layer over real sockets: timeouts on silent connections, idle keep-alive
//! connections and stalled bodies, the cap on concurrent connections with its reserve for
//! health checks, and HTTPS from a configured certificate.
//!
//! These bounds do not depend on the database, so the server here runs on SQLite only. Every
//! wait is bounded by [`PATIENCE`], far above the configured timeouts: a test fails (rather
//! than hangs) when a connection that should be closed stays open.

use std::time::Duration;

use ferry_server::{App, Config};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The longest any read here waits for the server.
const PATIENCE: Duration = Duration::from_secs(30);

/// A server on `127.0.0.1:0`; stops when dropped.
struct Server {
    address: String,
    admin_token: String,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
    tweak(&mut config);
    let app = App::open(config).await.unwrap();
    let admin_token = app.initial_admin_token().unwrap().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        ferry_server::serve(listener, &app, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server { address, admin_token, _stop: stop, _dir: dir }
}

/// What a read from the server gave.
#[derive(Debug, PartialEq)]
enum Read {
    /// The server closed the connection (end of stream or reset).
    Closed,
    /// Bytes arrived.
    Data(Vec<u8>),
}

/// Reads until the server closes the connection, or until `want` bytes arrived.
async fn read_some(stream: &mut TcpStream, want: usize) -> Read {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!("the server neither answered nor closed the connection in {PATIENCE:?}; got {got:?}"),
        };
        if n == 0 {
            return if got.is_empty() { Read::Closed } else { Read::Data(got) };
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() >= want {
            return Read::Data(got);
        }
    }
}

/// One HTTP/1.1 answer: status, lower-case head, body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one answer with a `Content-Length` body.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut got = Vec::new();
    let split = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match read_some(stream, got.len() + 1).await {
            Read::Data(more) => got.extend_from_slice(&more),
            Read::Closed => panic!("the connection closed before an answer: {:?}", String::from_utf8_lossy(&got)),
        }
    };
    let head = String::from_utf8_lossy(&got[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = got[split + 4..].to_vec();
    while body.len() < length {
        match read_some(stream, length - body.len()).await {
            Read::Data(more) => body.extend_from_slice(&more),
            Read::Closed => panic!("the body was cut"),
        }
    }
    Answer { status, head, body }
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(&server.address).await.unwrap()
}

async fn get(stream: &mut TcpStream, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: ferry\r\n{auth}\r\n").as_bytes()).await.unwrap();
    read_answer(stream).await
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = start(|c| c.connections.header_timeout_secs = 1).await;

    // A connection that never sends a request.
    let mut silent = connect(&server).await;
    assert_eq!(read_some(&mut silent, 1).await, Read::Closed);

    // A keep-alive connection, idle after its first answer.
    let mut idle = connect(&server).await;
    let answer = get(&mut idle, "/livez", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(read_some(&mut idle, 1).await, Read::Closed);

    // Headers that stop arriving half-way.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /livez HTTP/1.1\r\nhost: fer").await.unwrap();
    assert_eq!(read_some(&mut slow, 1).await, Read::Closed);
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_with_408() {
    let server = start(|c| c.connections.body_timeout_secs = 1).await;
    let mut stream = connect(&server).await;
    // 200 bytes announced, 20 sent, then nothing.
    stream
        .write_all(
            b"POST /device/v1/enroll HTTP/1.1\r\nhost: ferry\r\ncontent-type: application/json\r\n\
              content-length: 200\r\n\r\n{\"device_id\": \"gw-1\"",
        )
        .await
        .unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 408, "{}", String::from_utf8_lossy(&answer.body));
    let body = answer.json();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("body_timeout_secs"), "{body}");
    assert_eq!(read_some(&mut stream, 1).await, Read::Closed, "the connection is closed after the 408");
}

#[tokio::test]
async fn over_the_connection_limit_health_checks_are_answered_and_the_rest_refused() {
    // One connection served; two more may each get one answer.
    let server = start(|c| {
        c.connections.max = 1;
        c.connections.reserve = 2;
        c.connections.header_timeout_secs = 600;
    })
    .await;
    let mut holder = connect(&server).await;
    let whoami = get(&mut holder, "/api/v1/whoami", Some(&server.admin_token)).await;
    assert_eq!(whoami.status, 200, "the first connection is served as usual");

    // While it stays open, a health check on a new connection is answered, then closed.
    let mut probe = connect(&server).await;
    let live = get(&mut probe, "/livez", None).await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "ok");
    assert!(live.head.contains("connection: close"), "{}", live.head);
    assert_eq!(read_some(&mut probe, 1).await, Read::Closed);

    // Anything else is refused with 503 and a reason.
    let mut other = connect(&server).await;
    let busy = get(&mut other, "/api/v1/whoami", Some(&server.admin_token)).await;
    assert_eq!(busy.status, 503);
    let body = busy.json();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("connections.max"), "{body}");

    // The first connection is still served.
    assert_eq!(get(&mut holder, "/api/v1/whoami", Some(&server.admin_token)).await.status, 200);
}

#[tokio::test]
async fn beyond_the_reserve_new_connections_are_closed_at_once() {
    let server = start(|c| {
        c.connections.max = 2;
        c.connections.reserve = 0;
        c.connections.header_timeout_secs = 600;
    })
    .await;
    // Idle sockets hold every slot (the server accepts in order, so these two are served).
    let _idle: Vec<TcpStream> = vec![connect(&server).await, connect(&server).await];
    for _ in 0..3 {
        let mut late = connect(&server).await;
        let _ = late.write_all(b"GET /livez HTTP/1.1\r\nhost: ferry\r\n\r\n").await;
        assert_eq!(read_some(&mut late, 1).await, Read::Closed, "no slot is left: closed without an answer");
    }
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, written as `cert.pem` and
/// `key.pem` in `dir`; its PEM text.
fn self_signed(dir: &std::path::Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    made.cert.pem()
}

#[tokio::test]
async fn the_server_speaks_https_with_the_configured_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let pem = self_signed(certs.path());
    let server = start(|c| {
        c.connections.header_timeout_secs = 1;
        c.tls.cert_file = certs.path().join("cert.pem");
        c.tls.key_file = certs.path().join("key.pem");
    })
    .await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let live = client.get(format!("https://{}/livez", server.address)).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let whoami = client
        .get(format!("https://{}/api/v1/whoami", server.address))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);

    // Plain HTTP on the HTTPS port gets no answer; a silent TLS client is closed in time.
    let plain = reqwest::Client::new().get(format!("http://{}/livez", server.address)).send().await;
    assert!(plain.is_err(), "{plain:?}");
    let mut silent = connect(&server).await;
    assert_eq!(read_some(&mut silent, 1).await, Read::Closed, "a handshake gets the header timeout");
}

#[tokio::test]
async fn unusable_tls_files_stop_the_server_with_the_reason() {
    let certs = tempfile::tempdir().unwrap();
    self_signed(certs.path());
    let other = tempfile::tempdir().unwrap();
    self_signed(other.path());
    let cases = [
        (certs.path().join("missing.pem"), certs.path().join("key.pem"), "tls.cert_file"),
        (certs.path().join("key.pem"), certs.path().join("key.pem"), "no certificate"),
        (certs.path().join("cert.pem"), certs.path().join("cert.pem"), "tls.key_file"),
        (certs.path().join("cert.pem"), other.path().join("key.pem"), "cannot be used together"),
    ];
    for (cert_file, key_file, reason) in cases {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: data.path().join("data"),
            tls: ferry_server::config::Tls { cert_file, key_file },
            ..Config::default()
        };
        let app = App::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = ferry_server::serve(listener, &app, std::future::pending()).await.unwrap_err().to_string();
        assert!(error.contains(reason), "{reason}: {error}");
    }
    // Only one of the two files is a configuration error.
    let half = Config {
        tls: ferry_server::config::Tls { cert_file: "c.pem".into(), key_file: "".into() },
        ..Config::default()
    };
    assert!(half.validate().unwrap_err().to_string().contains("go together"));
}
