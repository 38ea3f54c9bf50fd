//! Server configuration: defaults in code, then a TOML file, then `FERRY_*` environment
//! variables. `ferry config default` prints [`Config::default_toml`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing, malformed or out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory holding the SQLite database, the content store and the initial admin token.
    pub data_dir: PathBuf,
    /// Database: empty for SQLite in `data_dir`, or a `postgres://` URL.
    pub database_url: String,
    /// Limits on input.
    pub limits: Limits,
    /// Check-in scheduling defaults.
    pub checkin: Checkin,
    /// Signed metadata (TUF image and director repositories).
    pub trust: Trust,
    /// Device enrollment: whether a device may enroll without a key, and its rate limits.
    pub enrollment: EnrollmentConfig,
    /// Logging.
    pub log: Log,
    /// Limits and timeouts on client connections.
    pub connections: Connections,
    /// HTTPS: certificate and key; without them the server speaks plain HTTP.
    pub tls: Tls,
    /// The wake-up channel: devices' long polls (`GET /device/v1/wait`).
    pub wake: Wake,
}

/// The wake-up channel: each waiting device holds one request (and so one connection) open
/// until it is woken or the wait times out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wake {
    /// Longest a wait is held before it is answered `wake: false`, in seconds; a device may ask
    /// for less.
    pub wait_secs: u64,
    /// Most devices waiting at once; past it a wait is answered at once with `wake: false` and
    /// `retry_after_secs`.
    pub max_waiters: usize,
}

impl Default for Wake {
    fn default() -> Self {
        Self { wait_secs: 55, max_waiters: 256 }
    }
}

/// Limits on input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest JSON request body, in bytes.
    pub json_body_bytes: usize,
    /// Largest artifact upload, in bytes.
    pub artifact_bytes: u64,
}

/// Check-in scheduling defaults for groups that do not set their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checkin {
    /// Base interval between check-ins, in seconds.
    pub interval_secs: u64,
    /// Relative jitter in `[0, 1]`: the delay is drawn from `interval × [1 - jitter, 1 + jitter]`.
    pub jitter: f64,
}

/// Signed metadata settings (docs/trust.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Trust {
    /// Directory of the server's online signing keys; empty means `data_dir/keys`.
    pub keys_dir: PathBuf,
    /// Offer a release to devices only once publisher-signed targets metadata lists it.
    pub require_signed_releases: bool,
    /// Lifetime of image-repository timestamp metadata, in seconds.
    pub timestamp_expiry_secs: u64,
    /// Lifetime of image-repository snapshot metadata, in seconds.
    pub snapshot_expiry_secs: u64,
    /// Lifetime of a device's director metadata, in seconds.
    pub director_expiry_secs: u64,
}

/// Device enrollment, the one device request that needs no credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollmentConfig {
    /// Let a device without an enrollment key enroll as `pending`, waiting for an administrator.
    pub allow_keyless: bool,
    /// Enrollment requests one source address may make per minute (also its burst).
    pub per_address_per_minute: u32,
    /// Enrollment requests the whole server accepts per minute (also its burst).
    pub total_per_minute: u32,
    /// Most source addresses whose rate is tracked at once; past it, enrollments from new
    /// addresses are answered 429 until older entries have recovered and been dropped.
    pub tracked_addresses: usize,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        Self { allow_keyless: true, per_address_per_minute: 30, total_per_minute: 1200, tracked_addresses: 100_000 }
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `tracing` filter directive, e.g. `info` or `ferry_server=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

/// Limits and timeouts on client connections: a client that is silent, slow or holds many
/// sockets open cannot use up the server's memory or file descriptors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Connections served at once; more are answered from the reserve or closed.
    pub max: usize,
    /// Connections beyond `max` that still get one answer each: `/livez` and `/readyz` as
    /// usual, 503 for anything else, then closed.
    pub reserve: usize,
    /// Seconds a connection may take to send a request's headers, counted from when it opens or
    /// from the previous answer (so this is also how long an idle keep-alive connection stays).
    pub header_timeout_secs: u64,
    /// Seconds a request body may send nothing before the request is cut with 408.
    pub body_timeout_secs: u64,
}

/// HTTPS settings: both files or neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM file with the server certificate, followed by any intermediate certificates.
    pub cert_file: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl Default for Connections {
    fn default() -> Self {
        Self { max: 512, reserve: 32, header_timeout_secs: 30, body_timeout_secs: 60 }
    }
}

impl Tls {
    /// Whether HTTPS is configured.
    pub fn enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty() || !self.key_file.as_os_str().is_empty()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./ferry-data"),
            database_url: String::new(),
            limits: Limits::default(),
            checkin: Checkin::default(),
            trust: Trust::default(),
            enrollment: EnrollmentConfig::default(),
            log: Log::default(),
            connections: Connections::default(),
            tls: Tls::default(),
            wake: Wake::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { json_body_bytes: 1024 * 1024, artifact_bytes: 64 * 1024 * 1024 * 1024 }
    }
}

impl Default for Checkin {
    fn default() -> Self {
        Self { interval_secs: 3600, jitter: 0.1 }
    }
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            keys_dir: PathBuf::new(),
            require_signed_releases: true,
            timestamp_expiry_secs: 86_400,
            snapshot_expiry_secs: 7 * 86_400,
            director_expiry_secs: 86_400,
        }
    }
}

impl Config {
    /// Where the online signing keys live.
    pub fn keys_dir(&self) -> PathBuf {
        if self.trust.keys_dir.as_os_str().is_empty() {
            self.data_dir.join("keys")
        } else {
            self.trust.keys_dir.clone()
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self { level: "info".into(), format: "text".into() }
    }
}

const DEFAULT_TOML: &str = r#"# Ferry server configuration. Every key is optional; shown here with its default.
# Each key can also be set from the environment as FERRY_<KEY>, with "__" between
# table and key: FERRY_LISTEN, FERRY_DATA_DIR, FERRY_LIMITS__JSON_BODY_BYTES, ...

# Address and port to listen on.
listen = "127.0.0.1:8080"

# Directory for the SQLite database (ferry.db), the content store (content/) and the
# initial admin token (admin-token, mode 0600).
data_dir = "./ferry-data"

# Empty: SQLite in data_dir. Or a PostgreSQL URL, e.g. "postgres://ferry@db.example/ferry".
database_url = ""

[limits]
# Largest JSON request body, in bytes (1 MiB).
json_body_bytes = 1048576
# Largest artifact upload, in bytes (64 GiB).
artifact_bytes = 68719476736

[checkin]
# Default interval between device check-ins, in seconds, for groups that set none.
interval_secs = 3600
# Relative jitter: each device waits interval x [1 - jitter, 1 + jitter].
jitter = 0.1

[trust]
# Directory of the server's online signing keys (snapshot, timestamp, director), created on
# first start with mode 0700. Empty: data_dir/keys. Replicas sharing a database need the same.
keys_dir = ""
# Offer a release to devices (and serve its content) only once targets metadata signed by
# its publisher lists it (docs/trust.md#the-image-repository; README "Keys and signing").
# `ferry trust status` shows what is unsigned. Set to false only to offer unsigned
# releases, e.g. while migrating; ferry-agent still installs only signed ones.
require_signed_releases = true
# Lifetime of the image repository's timestamp metadata (re-signed automatically at half-life).
timestamp_expiry_secs = 86400
# Lifetime of the image repository's snapshot metadata (re-signed automatically at half-life).
snapshot_expiry_secs = 604800
# Lifetime of a device's director metadata (re-issued at half-life on the device's check-in).
director_expiry_secs = 86400

[enrollment]
# Let a device without an enrollment key enroll as "pending", to wait until an administrator
# accepts it. false: only a group's enrollment key or a pre-authorised device's own key enrolls.
allow_keyless = true
# Rate limits of POST /device/v1/enroll (the only device request without a credential); past
# them the server answers 429 with Retry-After. Each is a per-minute rate and also the burst
# allowed at once. Behind a reverse proxy every request comes from the proxy's address, so
# per_address_per_minute then limits all devices together: raise it there.
per_address_per_minute = 30
total_per_minute = 1200
# Most source addresses tracked at once (memory bound); past it new addresses get 429.
tracked_addresses = 100000

[log]
# tracing filter directive: error, warn, info, debug, trace, or per-module directives.
level = "info"
# "text" for people, "json" for log collectors.
format = "text"

[connections]
# Connections served at once. Keep max + reserve well below the process's open-file limit
# (`ulimit -n`), which the database and content files share.
max = 512
# Connections beyond max that still get one answer each before they are closed: /livez and
# /readyz as usual, so health checks keep working, and 503 "unavailable" for anything else.
# Connections beyond max + reserve are closed as soon as they are accepted.
reserve = 32
# Seconds a connection may take to send a request's headers, counted from when it opens or
# from the previous answer; so this is also how long an idle keep-alive connection is kept.
# A silent connection is closed after this. A TLS handshake gets the same time before that.
header_timeout_secs = 30
# Seconds a request body (an upload, a JSON body) may send nothing before the request is cut
# with 408 "request_timeout".
body_timeout_secs = 60

[tls]
# HTTPS: a PEM file with the certificate (then any intermediates) and one with its private
# key. Both empty: plain HTTP, e.g. behind a reverse proxy that terminates TLS. The files are
# read at start; restart the server to use a renewed certificate.
cert_file = ""
key_file = ""

[wake]
# `ferry device check-now` reaches an agent within a second through a long poll it keeps open
# between check-ins (GET /device/v1/wait). Seconds a wait is held before it is answered
# "nothing": keep it below the agents' 60-second read timeout and any proxy's idle timeout.
wait_secs = 55
# Most devices waiting at once. Each holds one connection, counted in connections.max: keep
# this well below it (and raise both, and `ulimit -n`, for a large fleet). Past it, a wait is
# answered at once with wake = false and retry_after_secs, and the agent just checks in on
# its schedule.
max_waiters = 256
"#;

/// Whether a `FERRY_*` variable (prefix stripped) configures the server. Others, such as the
/// CLI's `FERRY_URL` and `FERRY_TOKEN` or the tests' `FERRY_TEST_POSTGRES_URL`, are left alone
/// rather than refused as unknown keys.
fn is_server_key(key: &figment::value::UncasedStr) -> bool {
    let key = key.as_str().to_ascii_lowercase();
    let top = key.split("__").next().unwrap_or_default();
    matches!(
        top,
        "listen"
            | "data_dir"
            | "database_url"
            | "limits"
            | "checkin"
            | "trust"
            | "enrollment"
            | "log"
            | "connections"
            | "tls"
            | "wake"
    )
}

impl Config {
    /// The documented default configuration, as TOML.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// Loads defaults, then `file` (if given), then `FERRY_*` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist; `ferry config default > {}` writes one",
                    file.display(),
                    file.display()
                )));
            }
            fig = fig.merge(Toml::file(file));
        }
        let config: Config = fig
            .merge(Env::prefixed("FERRY_").filter(is_server_key).split("__"))
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.checkin.jitter) {
            return Err(ConfigError::Invalid(format!(
                "checkin.jitter is {}; it must be between 0 and 1",
                self.checkin.jitter
            )));
        }
        if self.checkin.interval_secs == 0 {
            return Err(ConfigError::Invalid("checkin.interval_secs must be at least 1".into()));
        }
        if !self.database_url.is_empty() && !self.database_url.starts_with("postgres") {
            return Err(ConfigError::Invalid(format!(
                "database_url {:?} is not a postgres:// URL; leave it empty for SQLite in data_dir",
                self.database_url
            )));
        }
        for (key, secs) in [
            ("trust.timestamp_expiry_secs", self.trust.timestamp_expiry_secs),
            ("trust.snapshot_expiry_secs", self.trust.snapshot_expiry_secs),
            ("trust.director_expiry_secs", self.trust.director_expiry_secs),
        ] {
            if !(120..=366 * 86_400).contains(&secs) {
                return Err(ConfigError::Invalid(format!(
                    "{key} is {secs}; it must be between 120 seconds and 366 days"
                )));
            }
        }
        if self.connections.max == 0 {
            return Err(ConfigError::Invalid("connections.max must be at least 1".into()));
        }
        for (key, secs) in [
            ("connections.header_timeout_secs", self.connections.header_timeout_secs),
            ("connections.body_timeout_secs", self.connections.body_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(ConfigError::Invalid(format!("{key} is {secs}; it must be between 1 and 3600 seconds")));
            }
        }
        if self.tls.enabled() && (self.tls.cert_file.as_os_str().is_empty() || self.tls.key_file.as_os_str().is_empty())
        {
            return Err(ConfigError::Invalid(
                "tls.cert_file and tls.key_file go together: set both for HTTPS, or neither for plain HTTP".into(),
            ));
        }
        for (key, rate) in [
            ("enrollment.per_address_per_minute", self.enrollment.per_address_per_minute),
            ("enrollment.total_per_minute", self.enrollment.total_per_minute),
        ] {
            if rate == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{key} is 0; it must be at least 1 (set enrollment.allow_keyless = false to refuse \
                     devices without a key)"
                )));
            }
        }
        if self.enrollment.tracked_addresses == 0 {
            return Err(ConfigError::Invalid("enrollment.tracked_addresses must be at least 1".into()));
        }
        if !(5..=300).contains(&self.wake.wait_secs) {
            return Err(ConfigError::Invalid(format!(
                "wake.wait_secs is {}; it must be between 5 and 300 seconds (55 suits the agents' 60-second read timeout)",
                self.wake.wait_secs
            )));
        }
        if self.wake.max_waiters == 0 {
            return Err(ConfigError::Invalid(
                "wake.max_waiters must be at least 1; it bounds the devices waiting for a wake-up at once".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!("log.format is {:?}; use \"text\" or \"json\"", self.log.format)));
        }
        Ok(())
    }
}

#[cfg(test)]
// figment::Jail's closures must return figment's large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_defaults_are_the_defaults() {
        let printed: Config = toml::from_str(Config::default_toml()).unwrap();
        assert_eq!(printed, Config::default());
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferry.toml", "listen = \"127.0.0.1:9000\"\n[checkin]\ninterval_secs = 60\n")?;
            jail.set_env("FERRY_CHECKIN__JITTER", "0.5");
            // Variables meant for the CLI or the tests are not server settings.
            jail.set_env("FERRY_TOKEN", "ferry_adm_x");
            jail.set_env("FERRY_TEST_POSTGRES_URL", "postgres://elsewhere");
            let c = Config::load(Some(Path::new("ferry.toml"))).unwrap();
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.checkin.interval_secs, 60);
            assert_eq!(c.checkin.jitter, 0.5);
            assert_eq!(c.data_dir, PathBuf::from("./ferry-data"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_explained() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[checkin]\njitter = 2.0\n")?;
            let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("between 0 and 1"), "{e}");
            jail.create_file("typo.toml", "lisen = \"x\"\n")?;
            let e = Config::load(Some(Path::new("typo.toml"))).unwrap_err();
            assert!(e.to_string().contains("lisen"), "{e}");
            Ok(())
        });
    }
}
