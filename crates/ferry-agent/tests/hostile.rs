//! The real `ferry-agent` binary against a hostile or broken server: a small HTTP server on
//! loopback that answers every request with raw bytes (a huge body, a trickle, a web page,
//! JSON of another shape, an error body full of escape sequences). The agent must stop
//! reading, end the check, exit with a documented code and a short, clean message, and store
//! nothing that the server sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use ferry_agent::config::DEFAULT_CONFIG;
use ferry_agent::exit::Exit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// More than the test could ever need; a check that hangs fails the test instead of the run.
const OUTER_TIMEOUT: Duration = Duration::from_secs(120);

/// What the server answers to every request.
#[derive(Clone)]
enum Answer {
    /// Status line and headers, then `body` written out repeatedly up to `total` bytes after
    /// `head` (no Content-Length: the body ends when the connection closes).
    Endless { status: &'static str, head: String, body: Vec<u8>, total: u64 },
    /// A 200 with a Content-Length of 1000, then one byte every 20 seconds.
    Trickle,
    /// A complete answer.
    Whole { status: &'static str, content_type: &'static str, body: String },
}

/// The hostile server; it stops when dropped.
struct Server {
    addr: SocketAddr,
    /// Body bytes written so far, over all connections.
    sent: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    fn start(answer: Answer) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_one(stream, answer.clone(), counter.clone()));
            }
        });
        Self { addr, sent, runtime: Some(runtime) }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Reads the request (headers and a Content-Length body), then answers.
async fn answer_one(mut stream: TcpStream, answer: Answer, sent: Arc<AtomicU64>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = stream.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    match answer {
        Answer::Endless { status, head, body, total } => {
            let start = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
            if stream.write_all(start.as_bytes()).await.is_err() || stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut written = 0;
            while written < total {
                if stream.write_all(&body).await.is_err() {
                    return;
                }
                written += body.len() as u64;
                sent.fetch_add(body.len() as u64, Ordering::SeqCst);
            }
        }
        Answer::Trickle => {
            let start = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
            if stream.write_all(start.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..30 {
                if stream.write_all(b" ").await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
        }
        Answer::Whole { status, content_type, body } => {
            let text = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(text.as_bytes()).await;
        }
    }
    let _ = stream.shutdown().await;
}

/// A configuration for a device pointed at `server_url`, with its state directory.
struct Device {
    dir: tempfile::TempDir,
}

impl Device {
    fn new(server_url: &str, enrolled: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["image-root.json", "director-root.json"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let d = dir.path().display();
        let config = DEFAULT_CONFIG
            .replace("https://ferry.example.com", server_url)
            .replace("state_dir = \"/var/lib/ferry-agent\"", &format!("state_dir = \"{d}/state\""))
            .replace("\"/etc/ferry-agent/image-root.json\"", &format!("\"{d}/image-root.json\""))
            .replace("\"/etc/ferry-agent/director-root.json\"", &format!("\"{d}/director-root.json\""))
            .replace("#device_id = \"SN-000123\"", "device_id = \"SN-000123\"")
            .replace("log_level = \"info\"", "log_level = \"error\"")
            .replace("deadline_secs = 300", "deadline_secs = 2");
        assert!(config.contains("deadline_secs = 2"));
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        let device = Self { dir };
        if enrolled {
            std::fs::write(device.credential(), format!("ferry_dev_{}\n", "ab".repeat(32))).unwrap();
        }
        device
    }

    fn credential(&self) -> PathBuf {
        self.dir.path().join("state").join("credential")
    }

    /// `ferry-agent check`: its exit code and standard error.
    fn check(&self) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry-agent"))
            .env_remove("FERRY_AGENT_CONFIG")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .arg("--config")
            .arg(self.dir.path().join("agent.toml"))
            .arg("check")
            .timeout(OUTER_TIMEOUT)
            .output()
            .unwrap();
        let code = out.status.code().expect("the check ended by itself, not killed by the outer timeout");
        (code, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn code(exit: Exit) -> i32 {
    i32::from(exit.code())
}

/// The enrollment answer opens a credential and never closes it: 600 MB of it.
#[test]
fn a_huge_enrollment_answer_is_cut_off_and_nothing_is_stored() {
    let server = Server::start(Answer::Endless {
        status: "200 OK",
        head: r#"{"device_id":"SN-000123","status":"accepted","credential":"ferry_dev_"#.into(),
        body: vec![b'A'; 64 * 1024],
        total: 600 << 20,
    });
    let device = Device::new(&server.url(), false);
    let (code_, err) = device.check();
    assert_eq!(code_, code(Exit::BadAnswer), "{err}");
    assert!(err.contains("enrolling as SN-000123") && err.contains("longer than 4194304 bytes"), "{err}");
    assert!(err.contains("check that server_url is the Ferry server"), "{err}");
    assert!(err.len() < 1000, "{} bytes of message", err.len());
    assert!(!device.credential().exists(), "a credential was stored");
    // The agent hung up early instead of reading all 600 MB (what is in flight in the socket
    // buffers is all the server got rid of).
    assert!(server.sent() < 100 << 20, "the agent read {} bytes", server.sent());
}

/// A credential small enough to read but not of the shape the server issues.
#[test]
fn a_malformed_credential_is_not_stored() {
    let credential = format!("ferry_dev_{}", "A".repeat(1 << 20));
    let server = Server::start(Answer::Whole {
        status: "200 OK",
        content_type: "application/json",
        body: format!(r#"{{"device_id":"SN-000123","status":"accepted","credential":"{credential}"}}"#),
    });
    let device = Device::new(&server.url(), false);
    let (code_, err) = device.check();
    assert_eq!(code_, code(Exit::BadAnswer), "{err}");
    assert!(err.contains("the credential is not ferry_dev_ followed by 64 hex digits"), "{err}");
    assert!(err.len() < 1000, "{} bytes of message", err.len());
    assert!(!device.credential().exists(), "a credential was stored");
}

/// The check-in answer arrives a byte every 20 seconds: the check's deadline (2 s here) ends it.
#[test]
fn a_trickling_server_cannot_hold_a_check() {
    let server = Server::start(Answer::Trickle);
    let device = Device::new(&server.url(), true);
    let (code_, err) = device.check();
    assert_eq!(code_, code(Exit::Unreachable), "{err}");
    assert!(
        err.contains("checking in: the server did not finish answering within checkin.deadline_secs (2 s)"),
        "{err}"
    );
}

/// A login portal's page, JSON of another shape, a web server's 404 page: the server answered,
/// but not as Ferry.
#[test]
fn garbage_answers_get_the_bad_answer_code() {
    let answers = [
        ("200 OK", "text/html", "<html><body>Please log in to the hotel Wi-Fi</body></html>", "expected value"),
        ("200 OK", "application/json", r#"{"hello":"world"}"#, "missing field"),
        ("404 Not Found", "text/html", "<html>not found</html>", "not a ferry error: <html>not found</html>"),
    ];
    for (status, content_type, body, detail) in answers {
        let server = Server::start(Answer::Whole { status, content_type, body: body.into() });
        let device = Device::new(&server.url(), true);
        let (code_, err) = device.check();
        assert_eq!(code_, code(Exit::BadAnswer), "{body}: {err}");
        assert!(err.starts_with("error: checking in: ") && err.contains(detail), "{body}: {err}");
        assert!(err.contains("check that server_url is the Ferry server itself"), "{err}");
    }
}

/// An error answer of 200 MB full of terminal escape sequences: only its start is read, and
/// what is shown is short and has no control characters.
#[test]
fn error_bodies_are_cut_short_and_cleaned() {
    let server = Server::start(Answer::Endless {
        status: "403 Forbidden",
        head: "\u{1b}]0;owned\u{7}\u{1b}[2J\r".into(),
        body: b"\x1b[31mred\x08\x08\x08\n".repeat(4096),
        total: 200 << 20,
    });
    let device = Device::new(&server.url(), true);
    let (code_, err) = device.check();
    assert_eq!(code_, code(Exit::Unauthorized), "{err}");
    assert!(err.contains("with a body that is not a ferry error"), "{err}");
    assert!(err.len() < 1000, "{} bytes of message", err.len());
    let message = err.trim_end_matches('\n');
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(server.sent() < 100 << 20, "the agent read {} bytes", server.sent());
}
