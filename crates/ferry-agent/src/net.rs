//! The agent's side of the network: one HTTP client (proxy, timeouts, user agent) shared by the
//! device API client and both TUF repositories, the device credential on disk, and how
//! transport and API errors map to exit codes.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
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
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Reads a one-line secret file (a trailing newline is not part of the secret).
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret)
}

/// The stored device credential, if the device enrolled before.
pub fn load_credential(path: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let credential = text.trim().to_owned();
            if credential.is_empty() {
                return Err(Failure::new(
                    Exit::State,
                    format!("{} is empty; remove it to enroll again", path.display()),
                ));
            }
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
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(IoError::on("create", &tmp))?;
    file.write_all(format!("{credential}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(IoError::on("write", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(IoError::on("rename into place", path))?;
    atomic::sync_dir(dir)
}

/// The exit code and message for a failed request to the server.
pub fn failure(what: &str, error: ClientError) -> Failure {
    let exit = match &error {
        ClientError::Unreachable { .. } | ClientError::Transfer { .. } => Exit::Unreachable,
        ClientError::Api { status: 401 | 403, .. } => Exit::Unauthorized,
        ClientError::Api {
            code: ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::DeviceRejected, ..
        } => Exit::Unauthorized,
        // Busy (rate-limited, e.g. many devices enrolling at once) is as transient as down.
        ClientError::Api { status, .. } if *status >= 500 || *status == 429 => Exit::Unreachable,
        _ => Exit::Internal,
    };
    Failure::new(exit, format!("{what}: {error}"))
}

/// The exit code and message for a failure of the verifying TUF client.
pub fn updater_failure(what: &str, error: ferry_updater::Error) -> Failure {
    use ferry_updater::Error as E;
    let exit = match &error {
        E::Transport { .. } | E::Truncated { .. } => Exit::Unreachable,
        E::Http { status: 401 | 403, .. } => Exit::Unauthorized,
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
        save_credential(&path, "ferry_dev_abc").unwrap();
        assert_eq!(load_credential(&path).unwrap().as_deref(), Some("ferry_dev_abc"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        save_credential(&path, "ferry_dev_new").unwrap();
        assert_eq!(load_credential(&path).unwrap().as_deref(), Some("ferry_dev_new"));
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(load_credential(&path).unwrap_err().exit, Exit::State);
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
