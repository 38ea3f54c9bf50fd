//! The agent's side of the network: one HTTP client (proxy, timeouts, user agent) shared by the
//! device API client and both TUF repositories, the device credential on disk, and how
//! transport and API errors map to exit codes.

use std::path::Path;
use std::time::Duration;

use ferry_api::ErrorCode;
use ferry_client::ClientError;

use crate::atomic::{self, IoError};
use crate::config::Config;
use crate::exit::{Exit, Failure};

/// How long to wait for a TCP (and TLS) connection to the server or proxy.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an answer may send nothing before the request is abandoned (a download resumes).
/// This is the only limit on a download's time: a large update on a slow link legitimately
/// takes hours. The exchanges of answers and metadata around it are bounded as a whole by the
/// check's [`Deadline`].
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest secret file read (enrollment key, proxy password).
pub const SECRET_FILE_MAX: u64 = 4096;
/// The largest credential file read.
pub const CREDENTIAL_FILE_MAX: u64 = 4096;

/// Largest `ca_file` read: a bundle of certificate authorities is a few hundred KiB at most.
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The user agent sent with every request.
pub const USER_AGENT: &str = concat!("ferry-agent/", env!("CARGO_PKG_VERSION"));

/// Builds the HTTP client: rustls, the timeouts, and the configured proxy (with its
/// credentials) for every request. Without a `[proxy]` table, `HTTPS_PROXY`, `HTTP_PROXY` and
/// `NO_PROXY` apply.
pub fn http_client(config: &Config) -> Result<reqwest::Client, Failure> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    if let Some(path) = &config.ca_file {
        for certificate in read_ca_file(path).map_err(|e| Failure::new(Exit::Config, format!("ca_file: {e}")))? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(proxy) = &config.proxy {
        let mut p = reqwest::Proxy::all(&proxy.url)
            .map_err(|e| Failure::new(Exit::Config, format!("proxy.url {}: {e}", proxy.url)))?;
        if let Some(user) = &proxy.username {
            let password = match &proxy.password_file {
                Some(path) => {
                    read_secret(path).map_err(|e| Failure::new(Exit::Config, format!("proxy.password_file: {e}")))?
                }
                None => String::new(),
            };
            p = p.basic_auth(user, &password);
        }
        builder = builder.proxy(p);
    }
    builder.build().map_err(|e| Failure::new(Exit::Config, format!("cannot set up the HTTP client: {e}")))
}

/// Reads the certificate authorities of `ca_file`: PEM, at most [`MAX_CA_FILE_BYTES`], at least
/// one certificate.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_CA_FILE_BYTES} bytes; give only the CA certificates",
            path.display()
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM file of certificates: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no certificate (\"-----BEGIN CERTIFICATE-----\")", path.display()));
    }
    Ok(certificates)
}

/// Reads a one-line secret file (a trailing newline is not part of the secret) of at most
/// [`SECRET_FILE_MAX`] bytes.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let bytes =
        atomic::read_limited(path, SECRET_FILE_MAX).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret)
}

/// The stored device credential, if the device enrolled before. The file is not reached
/// through a symlink, is at most [`CREDENTIAL_FILE_MAX`] bytes, and must hold a credential of
/// the shape the server issues.
pub fn load_credential(path: &Path) -> Result<Option<String>, Failure> {
    let bad = |why: String| {
        Failure::new(Exit::State, format!("the credential {} {why}; remove it to enroll again", path.display()))
    };
    let read = atomic::read_private(path).and_then(|bytes| {
        if bytes.len() as u64 > CREDENTIAL_FILE_MAX {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("is larger than {CREDENTIAL_FILE_MAX} bytes"),
            ))
        } else {
            Ok(bytes)
        }
    });
    match read {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| bad("is not text".into()))?;
            let credential = text.trim().to_owned();
            if credential.is_empty() {
                return Err(bad("is empty".into()));
            }
            ferry_client::check_device_credential(&credential).map_err(bad)?;
            Ok(Some(credential))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(Exit::State, format!("cannot read the credential {}: {e}", path.display()))),
    }
}

/// Stores the device credential atomically with mode 0600: a temporary file created with that
/// mode, fsync'd, renamed over `path`, and the directory fsync'd.
pub fn save_credential(path: &Path, credential: &str) -> Result<(), IoError> {
    let dir = atomic::parent_of(path);
    std::fs::create_dir_all(dir).map_err(IoError::on("create", dir))?;
    ferry_fs::write_file(path, format!("{credential}\n").as_bytes(), ferry_fs::Access::Private)
}

/// The exit code and message for a failed request to the server.
pub fn failure(what: &str, error: ClientError) -> Failure {
    if let Some((url, cause)) = error.unreachable() {
        // The client's own advice names the admin CLI's `--server`; the agent has a setting.
        return Failure::new(
            Exit::Unreachable,
            format!(
                "{what}: cannot reach the ferry server at {url}: {cause}; is the server running, and are `server_url` \
                 (and `[proxy]`, if the device needs one) right in the agent's configuration?"
            ),
        );
    }
    let exit = match &error {
        ClientError::Unreachable { .. } | ClientError::Transfer { .. } => Exit::Unreachable,
        ClientError::Api { status: 401 | 403, .. } => Exit::Unauthorized,
        ClientError::Api {
            code: ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::DeviceRejected, ..
        } => Exit::Unauthorized,
        // Busy (rate-limited, e.g. many devices enrolling at once) is as transient as down.
        ClientError::Api { status, .. } if *status >= 500 || *status == 429 => Exit::Unreachable,
        // Not a Ferry error body: a web server, proxy or portal that is not Ferry answered.
        ClientError::Api { code: ErrorCode::Internal, .. } | ClientError::Decode { .. } => Exit::BadAnswer,
        _ => Exit::Internal,
    };
    if exit == Exit::BadAnswer {
        return Failure::new(
            exit,
            format!(
                "{what}: {error}; check that server_url is the Ferry server itself, not a web page, proxy or login portal"
            ),
        );
    }
    Failure::new(exit, format!("{what}: {error}"))
}

/// The time one check may spend exchanging answers and metadata with the server
/// (`checkin.deadline_secs`), counted from its start. Downloads are not inside it (they are
/// bounded by [`READ_TIMEOUT`] between reads), so that a server that stalls or trickles an
/// answer a byte at a time cannot hold a check forever, while a long download is never cut.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: tokio::time::Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn start(limit: Duration) -> Self {
        Self { at: tokio::time::Instant::now() + limit, limit }
    }

    /// Runs `exchange`, failing with [`Exit::Unreachable`] when the deadline passes first.
    pub async fn run<T>(
        &self,
        what: &str,
        exchange: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        self.within(exchange).await.unwrap_or_else(|| Err(self.expired(what)))
    }

    /// Runs `exchange`; `None` when the deadline passes first.
    pub async fn within<T>(&self, exchange: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.at, exchange).await.ok()
    }

    fn expired(&self, what: &str) -> Failure {
        Failure::new(
            Exit::Unreachable,
            format!(
                "{what}: the server did not finish answering within checkin.deadline_secs ({} s); it is stalled or far too slow; the check stops here and is tried again later",
                self.limit.as_secs()
            ),
        )
    }
}

/// The exit code and message for a failure of the verifying TUF client.
pub fn updater_failure(what: &str, error: ferry_updater::Error) -> Failure {
    use ferry_updater::Error as E;
    let exit = match &error {
        E::Transport { .. } | E::Truncated { .. } => Exit::Unreachable,
        E::Http { status: 401 | 403, .. } => Exit::Unauthorized,
        // Not a verification failure: the repository is not where the URL points, as when
        // server_url's path or a reverse proxy's prefix is wrong.
        E::Http { status: 404, .. } => Exit::Unreachable,
        E::Http { status, .. } if *status >= 500 => Exit::Unreachable,
        E::Io { .. } | E::NoTrustedRoot { .. } => Exit::State,
        E::Config(_) => Exit::Config,
        _ => Exit::VerificationFailed,
    };
    Failure::new(exit, format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_credential_is_private_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("credential");
        assert_eq!(load_credential(&path).unwrap(), None);
        let (abc, new) = (format!("ferry_dev_{}", "abc0".repeat(16)), format!("ferry_dev_{}", "1234".repeat(16)));
        save_credential(&path, &abc).unwrap();
        assert_eq!(load_credential(&path).unwrap().as_deref(), Some(abc.as_str()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        save_credential(&path, &new).unwrap();
        assert_eq!(load_credential(&path).unwrap().as_deref(), Some(new.as_str()));
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(load_credential(&path).unwrap_err().exit, Exit::State);
    }

    #[test]
    fn a_malformed_or_linked_credential_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential");
        std::fs::write(&path, "<html>login</html>\n").unwrap();
        let err = load_credential(&path).unwrap_err();
        assert!(err.message.contains("does not start with ferry_dev_") && err.message.contains("remove it"), "{err}");
        std::fs::write(&path, vec![b'a'; 10_000]).unwrap();
        assert!(load_credential(&path).unwrap_err().message.contains("larger than 4096 bytes"));
        std::fs::remove_file(&path).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, format!("ferry_dev_{}\n", "0".repeat(64))).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(load_credential(&path).unwrap_err().message.contains("symlink"));
    }

    #[test]
    fn a_repository_that_is_not_there_is_unreachable_not_unverified() {
        let http =
            |status| ferry_updater::Error::Http { url: "http://h/ferry/tuf/director/timestamp.json".into(), status };
        assert_eq!(updater_failure("refreshing", http(404)).exit, Exit::Unreachable);
        assert_eq!(updater_failure("refreshing", http(502)).exit, Exit::Unreachable);
        assert_eq!(updater_failure("refreshing", http(403)).exit, Exit::Unauthorized);
        assert_eq!(updater_failure("refreshing", http(400)).exit, Exit::VerificationFailed);
    }

    #[test]
    fn a_ca_file_must_hold_certificates_and_stay_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        std::fs::write(&path, format!("{}{}", ca.cert.pem(), ca.cert.pem())).unwrap();
        assert_eq!(read_ca_file(&path).unwrap().len(), 2);
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(read_ca_file(&path).unwrap_err().contains("no certificate"));
        std::fs::write(&path, vec![b'#'; MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_ca_file(&path).unwrap_err().contains("larger than"));
        assert!(read_ca_file(&dir.path().join("missing.pem")).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn secrets_lose_their_trailing_newline_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "p4ss word\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), "p4ss word");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret(&path).unwrap_err().contains("empty"));
    }
}
