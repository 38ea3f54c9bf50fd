//! The agent's configuration: one TOML file (default `/etc/ferry-agent/config.toml`).
//!
//! [`DEFAULT_CONFIG`] is the documented default file that `ferry-agent config default` prints;
//! tests parse it, so the text cannot drift from the code. Loading is two steps: serde reads
//! the file into plain structs that refuse unknown keys (a typo is an error, never a silently
//! ignored setting), then [`Config::parse`] validates every value and reports *all* problems
//! at once, each naming the key, what is wrong and what to do.
//!
//! Secrets (the enrollment key) are never printed by `Debug`. Paths must be absolute: the agent
//! runs as a service, where a relative path would depend on an accident of its start.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::{DeviceId, PlatformName, ProductName, ReleaseKind};
use serde::Deserialize;

use crate::maintenance::{Maintenance, Timezone, Window};

/// Where the configuration is read from unless `--config` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ferry-agent/config.toml";

/// Placeholder in a `dir` handler's `root` replaced by the product name.
pub const PRODUCT_PLACEHOLDER: &str = "{product}";

/// Default time a `command` handler may run.
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 1800;
/// Default time a health check may run.
pub const DEFAULT_HEALTH_CHECK_TIMEOUT_SECS: u64 = 60;
/// Longest timeout accepted for a command: a day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Default time one check may spend exchanging answers and metadata with the server.
pub const DEFAULT_DEADLINE_SECS: u64 = 300;
/// The largest configuration file read.
pub const CONFIG_FILE_MAX: u64 = 1 << 20;
/// The largest device id file read (only its first line is used).
pub const DEVICE_ID_FILE_MAX: u64 = 4096;
/// Slowest bandwidth cap accepted, in bytes per second: below this, requests time out.
pub const MIN_BANDWIDTH_BYTES_PER_SEC: u64 = 1024;

/// The documented default configuration, printed by `ferry-agent config default`.
///
/// Conventions the tests rely on: prose lines start with `# ` (or are a bare `#`); a setting
/// that is commented out starts with `#` directly followed by the key or `[table]`, and each
/// block of such lines is a valid example on its own.
pub const DEFAULT_CONFIG: &str = r##"# ferry-agent configuration.
#
# `ferry-agent config default` prints this file; `ferry-agent config check FILE` validates one.
# Settings that are active below show their default. Lines starting with "#" and no space are
# optional settings without a default: remove the "#" to use them. `server_url` and `platform`
# must be set for your fleet. Unknown keys are errors, so a typo never silently disables a
# setting. Paths must be absolute.

# The Ferry server's base URL. Use https:// (http:// only on a trusted network: updates are
# verified by their signatures either way, but the device credential goes with every request).
server_url = "https://ferry.example.com"

# Certificate authorities (a PEM file, up to 1 MiB) trusted for the server's HTTPS certificate,
# in addition to the built-in public ones: for a server whose certificate comes from a private CA.
#ca_file = "/etc/ferry-agent/ca.pem"

# This device's platform as the server's catalogue names it: an OS and architecture such as
# "linux-x86_64", or a device model such as "gateway-gw200".
platform = "linux-x86_64"

# The identity this device enrols with. By default the first line of /etc/machine-id. To use
# something else, such as a serial number (letters, digits and . - _ : @), set `device_id`, or
# `device_id_file` to read it from another file; set at most one of the two.
#device_id = "SN-000123"

#device_id_file = "/sys/class/dmi/id/product_serial"

# A group's enrollment key, so that the device is accepted into that group at once, or the
# key `ferry device preauthorize` printed for this device's id (it works for that id only).
# Without one it enrols as pending until an administrator accepts it (if the server allows
# that: enrollment.allow_keyless). Read only until the device is enrolled. Give the key itself in `enrollment_key`, or better a file holding it, not both.
#enrollment_key_file = "/etc/ferry-agent/enrollment-key"

# Where the device credential received at enrollment is kept (mode 0600). Default: the file
# "credential" inside state_dir.
#credential_file = "/var/lib/ferry-agent/credential"

# Where the agent keeps its state: the update state machine, the event queue, downloads,
# handler logs and trusted metadata. It must survive reboots.
state_dir = "/var/lib/ferry-agent"

# Log verbosity: error, warn, info, debug or trace.
log_level = "info"

# Download speed cap, such as "500KiB/s", "2MiB/s" or "8Mbit/s"; "unlimited" for none.
bandwidth_limit = "unlimited"

[trust]
# The pinned roots of trust: the image and director repositories' TUF root metadata,
# installed with the agent (at manufacture or enrollment). Every update is verified against
# them; the server cannot change them except through rotations they sign.
image_root = "/etc/ferry-agent/image-root.json"
director_root = "/etc/ferry-agent/director-root.json"

[checkin]
# After the agent starts (and so after every boot) it waits a random delay of up to this many
# seconds before its first check-in, so that a site whose power returns does not reach the
# server all at once. Later check-ins follow the interval the server sets.
initial_jitter_secs = 120

# The longest one check may spend exchanging answers with the server: enrollment, check-in,
# status events and the signed metadata (the exchanges after an install get as long again).
# A server that stalls, or answers a byte at a time, is given up on after this: the check fails
# with exit 7 and the daemon tries again later. Downloads of updates are not counted, since a
# large one may take hours on a slow link: a download is abandoned only when nothing arrives
# for 60 seconds, and resumes where it stopped at the next check. 1 to 86400.
deadline_secs = 300

# Between check-ins, keep one request open to the server (a long poll) through which an
# administrator's `ferry device check-now` reaches the agent within seconds: it then checks at
# once instead of at its next check-in. The request is renewed about once a minute and costs
# the server no database work while it waits. Without it (false), or against a server that
# does not offer it, the agent checks in only on its schedule.
wake_channel = true

# When required updates may be installed and the device rebooted. Downloads happen at any
# time; optional updates wait for `ferry-agent install`. Without this table, any time is fine.
# Each window is "DAYS HH:MM-HH:MM": DAYS is "*", a day ("sat"), a range ("mon-fri") or a
# comma list ("mon,wed,sat-sun"). A window that ends before it starts runs past midnight:
# "fri 22:00-05:00" ends on Saturday at 05:00. "24:00" is the end of a day. `timezone` is
# "local" (the device's time zone), "UTC", or a fixed offset such as "+01:00".
#[maintenance]
#windows = ["mon-fri 22:00-05:00", "sat-sun 00:00-24:00"]
#timezone = "local"

# An HTTP(S) proxy for every request to the server. Without this table the HTTPS_PROXY,
# HTTP_PROXY and NO_PROXY environment variables apply. The password is read from a file.
#[proxy]
#url = "http://proxy.example.com:3128"
#username = "ferry"
#password_file = "/etc/ferry-agent/proxy-password"

# Install handlers: how a release is installed. The first [[handler]] whose `product` and
# `kind` (full, patch or config) match the release is used; leave either out to match any.
# A release that no handler matches fails without changing anything.
#
# type = "dir" is built in: it unpacks a tar archive (media type application/x-tar, gzip- or
# zstd-compressed: application/gzip, application/zstd) or copies a single file into
# ROOT/versions/VERSION, then points the link ROOT/current at it atomically, keeping the
# previous version for rollback. `root` may contain {product}, and must when the handler can
# match more than one product.
#
# type = "command" runs `argv` (an absolute path and its arguments) with the FERRY_*
# environment described in the README and reads its exit code: 0 installed, 10 installed and
# a reboot is required, 20 retry later, anything else failed. After `timeout_secs` it is
# stopped, with every process it started. `env` adds environment variables.
#
# [handler.health_check], for either type, runs after the install (after the reboot, when one
# is needed): unless it exits 0 within `timeout_secs`, the agent goes back to the kept version
# by itself and reports the rollback.
#[[handler]]
#product = "gateway-app"
#type = "dir"
#root = "/opt/gateway-app"
#[handler.health_check]
#argv = ["/opt/gateway-app/current/bin/selftest", "--quick"]
#timeout_secs = 60

#[[handler]]
#kind = "config"
#type = "dir"
#root = "/etc/ferry-profiles/{product}"

#[[handler]]
#product = "vpn-client"
#type = "command"
#argv = ["/usr/local/sbin/install-vpn-client"]
#timeout_secs = 1800
#env = { VPN_PROFILE = "corporate" }
"##;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration {}: {source}; `ferry-agent config default > FILE` writes a documented one", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{}: {message}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Values are missing, malformed or contradict each other.
    #[error("{}: {}", .path.display(), describe(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn describe(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let lines: Vec<String> = many.iter().map(|p| format!("\n  {p}")).collect();
            format!("{} problems:{}", many.len(), lines.concat())
        }
    }
}

/// One invalid value: which key, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, e.g. `proxy.url` or `handler #2: root`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A secret value: compared and used, never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Where the device's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceIdSource {
    /// Given in the configuration.
    Fixed(DeviceId),
    /// The first line of a file (by default `/etc/machine-id`).
    File(PathBuf),
}

/// Where the enrollment key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Given in the configuration.
    Inline(Secret),
    /// Read from a file (its first line).
    File(PathBuf),
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Also warnings.
    Warn,
    /// Also what the agent does (the default).
    Info,
    /// Also details.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    const ALL: [(&'static str, Self); 5] = [
        ("error", Self::Error),
        ("warn", Self::Warn),
        ("info", Self::Info),
        ("debug", Self::Debug),
        ("trace", Self::Trace),
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, l)| *l == self).map(|(n, _)| *n).unwrap_or("info")
    }
}

/// The pinned roots of trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// The image repository's root metadata.
    pub image_root: PathBuf,
    /// The director repository's root metadata.
    pub director_root: PathBuf,
}

/// An HTTP(S) proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port` or `https://host:port`, without credentials.
    pub url: String,
    /// User name for proxy authentication.
    pub username: Option<String>,
    /// File holding the proxy password.
    pub password_file: Option<PathBuf>,
}

/// A program to run: an install command or a health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Absolute program path and its arguments.
    pub argv: Vec<String>,
    /// How long it may run before it is stopped.
    pub timeout: Duration,
    /// Extra environment variables (names never start with `FERRY_`).
    pub env: BTreeMap<String, String>,
}

/// How a handler installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerType {
    /// The built-in versioned-directory handler; `root` may contain [`PRODUCT_PLACEHOLDER`].
    Dir {
        /// The directory holding `versions/` and `current`.
        root: String,
    },
    /// An external command.
    Command(CommandSpec),
}

/// One `[[handler]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// Matches only this product when set.
    pub product: Option<ProductName>,
    /// Matches only this kind of release when set.
    pub kind: Option<ReleaseKind>,
    /// How it installs.
    pub handler_type: HandlerType,
    /// Run after install; failure rolls back.
    pub health_check: Option<CommandSpec>,
}

impl Handler {
    /// Whether this handler installs releases of `product` and `kind`.
    pub fn matches(&self, product: &ProductName, kind: ReleaseKind) -> bool {
        self.product.as_ref().is_none_or(|p| p == product) && self.kind.is_none_or(|k| k == kind)
    }

    /// A `dir` handler's root for `product` (the placeholder replaced); `None` for commands.
    pub fn dir_root(&self, product: &ProductName) -> Option<PathBuf> {
        match &self.handler_type {
            HandlerType::Dir { root } => Some(PathBuf::from(root.replace(PRODUCT_PLACEHOLDER, product.as_str()))),
            HandlerType::Command(_) => None,
        }
    }

    /// Whether every release this handler matches is also matched by `earlier`.
    fn shadowed_by(&self, earlier: &Self) -> bool {
        let covers_product = earlier.product.is_none() || earlier.product == self.product;
        let covers_kind = earlier.kind.is_none() || earlier.kind == self.kind;
        covers_product && covers_kind
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The server's base URL, without a trailing `/`.
    pub server_url: String,
    /// Extra certificate authorities for the server's HTTPS certificate.
    pub ca_file: Option<PathBuf>,
    /// The platform the device reports.
    pub platform: PlatformName,
    /// Where the device id comes from.
    pub device_id: DeviceIdSource,
    /// The enrollment key, if any.
    pub enrollment_key: Option<SecretSource>,
    /// Where the device credential is kept.
    pub credential_file: PathBuf,
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Download cap in bytes per second; `None` is unlimited.
    pub bandwidth_limit: Option<u64>,
    /// Pinned roots.
    pub trust: Trust,
    /// Upper bound of the random delay before the first check-in.
    pub initial_jitter: Duration,
    /// How long one check may spend exchanging answers and metadata with the server
    /// (`checkin.deadline_secs`, see [`crate::net::Deadline`]).
    pub deadline: Duration,
    /// Keep a long poll open between check-ins so that `ferry device check-now` reaches the
    /// agent at once (`checkin.wake_channel`).
    pub wake_channel: bool,
    /// When required updates may install; `None` is any time.
    pub maintenance: Option<Maintenance>,
    /// Proxy; `None` uses the environment's.
    pub proxy: Option<Proxy>,
    /// Install handlers, in match order.
    pub handlers: Vec<Handler>,
}

impl Config {
    /// Reads and validates the file at `path` (at most [`CONFIG_FILE_MAX`] bytes).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_config(path)?).map_err(|e| e.at(path))
    }

    /// Like [`Config::load`], and also checks the files and directories the configuration
    /// names (see [`Config::parse_checked`]), reporting their problems together with those of
    /// the values: what `ferry-agent config check` runs.
    pub fn load_checked(path: &Path) -> Result<Self, ConfigError> {
        Self::parse_checked(&read_config(path)?).map_err(|e| e.at(path))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_with(text, Validator::default())
    }

    /// Like [`Config::parse`], and also checks what the configuration names on this machine:
    /// the trusted roots, the enrollment key and proxy password files and the device id file
    /// can be read (and the device id is valid); the state directory and each `dir` handler's
    /// root, where they exist, cannot be written by other users.
    pub fn parse_checked(text: &str) -> Result<Self, ParseError> {
        Self::parse_with(text, Validator { problems: Vec::new(), files: true })
    }

    fn parse_with(text: &str, mut v: Validator) -> Result<Self, ParseError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string().trim().to_owned()))?;
        let config = v.config(raw);
        match (config, v.problems.is_empty()) {
            (Some(config), true) => Ok(config),
            _ => Err(ParseError::Invalid(v.problems)),
        }
    }

    /// The first handler that installs releases of `product` and `kind`.
    pub fn handler_for(&self, product: &ProductName, kind: ReleaseKind) -> Option<&Handler> {
        self.handlers.iter().find(|h| h.matches(product, kind))
    }

    /// The state file inside the state directory.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join(crate::state::STATE_FILE)
    }

    /// The event queue inside the state directory.
    pub fn events_file(&self) -> PathBuf {
        self.state_dir.join(crate::events::EVENTS_FILE)
    }

    /// Reads the device id from its source.
    pub fn read_device_id(&self) -> Result<DeviceId, String> {
        Self::device_id_of(&self.device_id)
    }

    fn device_id_of(source: &DeviceIdSource) -> Result<DeviceId, String> {
        match source {
            DeviceIdSource::Fixed(id) => Ok(id.clone()),
            DeviceIdSource::File(path) => {
                let bytes = crate::atomic::read_limited(path, DEVICE_ID_FILE_MAX)
                    .map_err(|e| format!("cannot read the device id from {}: {e}; set device_id", path.display()))?;
                let text = String::from_utf8_lossy(&bytes);
                let line = text.lines().next().unwrap_or("").trim();
                DeviceId::new(line).map_err(|e| format!("{}: {e}; set device_id", path.display()))
            }
        }
    }
}

/// Why configuration text was refused (before a file name is attached, see [`ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not TOML, unknown key, wrong type.
    #[error("{0}")]
    Syntax(String),
    /// Invalid values.
    #[error("{}", describe(.0))]
    Invalid(Vec<Problem>),
}

impl ParseError {
    /// Names the file the text came from.
    pub fn at(self, path: &Path) -> ConfigError {
        let path = path.to_owned();
        match self {
            Self::Syntax(message) => ConfigError::Syntax { path, message },
            Self::Invalid(problems) => ConfigError::Invalid { path, problems },
        }
    }
}

// --- what serde reads ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server_url: Option<String>,
    ca_file: Option<PathBuf>,
    platform: Option<String>,
    device_id: Option<String>,
    device_id_file: Option<PathBuf>,
    enrollment_key: Option<String>,
    enrollment_key_file: Option<PathBuf>,
    credential_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    log_level: Option<String>,
    bandwidth_limit: Option<String>,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    checkin: RawCheckin,
    maintenance: Option<RawMaintenance>,
    proxy: Option<RawProxy>,
    #[serde(default, rename = "handler")]
    handlers: Vec<RawHandler>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    image_root: Option<PathBuf>,
    director_root: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckin {
    initial_jitter_secs: Option<u64>,
    deadline_secs: Option<u64>,
    wake_channel: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    windows: Option<Vec<String>>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    url: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    product: Option<String>,
    kind: Option<String>,
    #[serde(rename = "type")]
    handler_type: Option<String>,
    root: Option<String>,
    argv: Option<Vec<String>>,
    timeout_secs: Option<u64>,
    env: Option<BTreeMap<String, String>>,
    health_check: Option<RawCommand>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    argv: Option<Vec<String>>,
    timeout_secs: Option<u64>,
    env: Option<BTreeMap<String, String>>,
}

// --- validation ---------------------------------------------------------------------------

/// Collects every problem rather than stopping at the first, so one `config check` shows all.
#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
    /// Also check the files and directories named ([`Config::parse_checked`]).
    files: bool,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), message: message.into() });
    }

    /// `Some(value)` when valid; records the problem and gives `None` otherwise.
    fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.problem(key, message)).ok()
    }

    fn required<T>(&mut self, key: &str, value: Option<T>, hint: &str) -> Option<T> {
        if value.is_none() {
            self.problem(key, format!("missing; {hint}"));
        }
        value
    }

    fn absolute(&mut self, key: &str, path: PathBuf) -> Option<PathBuf> {
        self.check(key, absolute_path(path))
    }

    /// An absolute path to a file the agent reads; with `files`, it must be readable.
    fn readable_file(&mut self, key: &str, path: PathBuf) -> Option<PathBuf> {
        let path = self.absolute(key, path)?;
        if self.files {
            if let Err(e) = std::fs::File::open(&path) {
                self.problem(key, format!("cannot read {}: {e}", path.display()));
            }
        }
        Some(path)
    }

    /// With `files`: a directory that exists must not be writable by other users.
    fn private_dir_if_present(&mut self, key: &str, dir: &Path) {
        if self.files && dir.exists() {
            if let Err(message) = crate::atomic::check_private_dir(dir) {
                self.problem(key, message);
            }
        }
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let server_url = self
            .required(
                "server_url",
                raw.server_url,
                "set it to the Ferry server's URL, e.g. \"https://ferry.example.com\"",
            )
            .and_then(|u| self.check("server_url", http_url(&u, "the server")));
        let ca_file = raw.ca_file.and_then(|p| self.absolute("ca_file", p));
        let platform = self
            .required("platform", raw.platform, "set it to this device's platform as the server's catalogue names it")
            .and_then(|p| self.check("platform", PlatformName::new(p).map_err(|e| e.to_string())));
        let device_id = match (raw.device_id, raw.device_id_file) {
            (Some(_), Some(_)) => {
                self.problem("device_id", "set device_id or device_id_file, not both");
                None
            }
            (Some(id), None) => {
                self.check("device_id", DeviceId::new(id).map_err(|e| e.to_string())).map(DeviceIdSource::Fixed)
            }
            (None, Some(path)) => self.absolute("device_id_file", path).map(DeviceIdSource::File),
            (None, None) => Some(DeviceIdSource::File(PathBuf::from("/etc/machine-id"))),
        };
        if let (true, Some(source @ DeviceIdSource::File(_))) = (self.files, &device_id) {
            let probe = Config::device_id_of(source);
            if let Err(message) = probe {
                self.problem("device_id_file", message);
            }
        }
        let enrollment_key = match (raw.enrollment_key, raw.enrollment_key_file) {
            (Some(_), Some(_)) => {
                self.problem("enrollment_key", "set enrollment_key or enrollment_key_file, not both");
                None
            }
            (Some(key), None) if key.trim().is_empty() => {
                self.problem("enrollment_key", "empty; remove the key to enrol as pending");
                None
            }
            (Some(key), None) => Some(SecretSource::Inline(Secret(key))),
            (None, Some(path)) => self.readable_file("enrollment_key_file", path).map(SecretSource::File),
            (None, None) => None,
        };
        let state_dir = self
            .absolute("state_dir", raw.state_dir.unwrap_or_else(|| "/var/lib/ferry-agent".into()))
            .and_then(|d| self.check("state_dir", own_directory(&d, "the agent's state")).map(|()| d));
        if let Some(dir) = &state_dir {
            self.private_dir_if_present("state_dir", dir);
        }
        let credential_file = match raw.credential_file {
            Some(path) => self.absolute("credential_file", path),
            None => state_dir.as_ref().map(|d| d.join("credential")),
        };
        let log_level = self.check("log_level", log_level(raw.log_level.as_deref().unwrap_or("info")));
        let bandwidth_limit =
            self.check("bandwidth_limit", bandwidth(raw.bandwidth_limit.as_deref().unwrap_or("unlimited")));
        let trust = self.trust(raw.trust);
        let initial_jitter = raw.checkin.initial_jitter_secs.unwrap_or(120);
        if initial_jitter > 86_400 {
            self.problem(
                "checkin.initial_jitter_secs",
                format!("{initial_jitter} is more than a day; use at most 86400"),
            );
        }
        let deadline = raw.checkin.deadline_secs.unwrap_or(DEFAULT_DEADLINE_SECS);
        if deadline == 0 || deadline > MAX_TIMEOUT_SECS {
            self.problem(
                "checkin.deadline_secs",
                format!("{deadline} is out of range; use 1 to {MAX_TIMEOUT_SECS} seconds"),
            );
        }
        let maintenance = raw.maintenance.map(|m| self.maintenance(m));
        let proxy = raw.proxy.map(|p| self.proxy(p));
        let handlers: Vec<Option<Handler>> =
            raw.handlers.into_iter().enumerate().map(|(i, h)| self.handler(i + 1, h)).collect();
        let handlers: Option<Vec<Handler>> = handlers.into_iter().collect();
        if let Some(handlers) = &handlers {
            self.unreachable_handlers(handlers);
        }
        Some(Config {
            server_url: server_url?,
            ca_file,
            platform: platform?,
            device_id: device_id?,
            enrollment_key,
            credential_file: credential_file?,
            state_dir: state_dir?,
            log_level: log_level?,
            bandwidth_limit: bandwidth_limit?,
            trust: trust?,
            initial_jitter: Duration::from_secs(initial_jitter),
            deadline: Duration::from_secs(deadline),
            wake_channel: raw.checkin.wake_channel.unwrap_or(true),
            maintenance: maintenance.map(|m| m.ok_or(())).transpose().ok()?,
            proxy: proxy.map(|p| p.ok_or(())).transpose().ok()?,
            handlers: handlers?,
        })
    }

    fn trust(&mut self, raw: RawTrust) -> Option<Trust> {
        let image = self.readable_file("trust.image_root", raw.image_root.unwrap_or_else(|| DEFAULT_IMAGE_ROOT.into()));
        let director = self
            .readable_file("trust.director_root", raw.director_root.unwrap_or_else(|| DEFAULT_DIRECTOR_ROOT.into()));
        Some(Trust { image_root: image?, director_root: director? })
    }

    fn maintenance(&mut self, raw: RawMaintenance) -> Option<Maintenance> {
        let timezone =
            self.check("maintenance.timezone", raw.timezone.as_deref().unwrap_or("local").parse::<Timezone>());
        let texts = self.required(
            "maintenance.windows",
            raw.windows,
            "list when required updates may install, e.g. [\"mon-fri 22:00-05:00\"], or remove [maintenance]",
        )?;
        if texts.is_empty() {
            self.problem(
                "maintenance.windows",
                "empty, so required updates would never install; add a window or remove [maintenance]",
            );
        }
        let windows: Vec<Option<Window>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.check(&format!("maintenance.windows[{i}]"), t.parse::<Window>()))
            .collect();
        Some(Maintenance { windows: windows.into_iter().collect::<Option<_>>()?, timezone: timezone? })
    }

    fn proxy(&mut self, raw: RawProxy) -> Option<Proxy> {
        let url = self
            .required("proxy.url", raw.url, "set it, e.g. \"http://proxy.example.com:3128\", or remove [proxy]")
            .and_then(|u| self.check("proxy.url", http_url(&u, "the proxy")));
        if let Some(name) = &raw.username {
            if name.is_empty() || name.contains(':') {
                self.problem("proxy.username", "must be non-empty and contain no ':'");
            }
        }
        let password_file = raw.password_file.and_then(|p| self.readable_file("proxy.password_file", p));
        if password_file.is_some() && raw.username.is_none() {
            self.problem("proxy.password_file", "a password needs proxy.username; set it or remove the password");
        }
        Some(Proxy { url: url?, username: raw.username, password_file })
    }

    fn handler(&mut self, n: usize, raw: RawHandler) -> Option<Handler> {
        let key = |field: &str| format!("handler #{n}: {field}");
        let product =
            raw.product.and_then(|p| self.check(&key("product"), ProductName::new(p).map_err(|e| e.to_string())));
        let kind = raw.kind.and_then(|k| self.check(&key("kind"), release_kind(&k)));
        let health_check =
            raw.health_check.map(|c| self.command(&key("health_check"), c, DEFAULT_HEALTH_CHECK_TIMEOUT_SECS));
        let handler_type = match raw.handler_type.as_deref() {
            Some("dir") => {
                for (field, set) in [
                    ("argv", raw.argv.is_some()),
                    ("timeout_secs", raw.timeout_secs.is_some()),
                    ("env", raw.env.is_some()),
                ] {
                    if set {
                        self.problem(key(field), "applies only to type = \"command\"; remove it");
                    }
                }
                let root =
                    self.required(&key("root"), raw.root, "set the directory that holds versions/ and current")?;
                let pinned = product.is_some();
                let checked = self.check(&key("root"), dir_root(&root, pinned));
                if checked.is_some() && !root.contains(PRODUCT_PLACEHOLDER) {
                    self.private_dir_if_present(&key("root"), Path::new(&root));
                }
                checked.map(|()| HandlerType::Dir { root })
            }
            Some("command") => {
                if raw.root.is_some() {
                    self.problem(key("root"), "applies only to type = \"dir\"; remove it");
                }
                let spec = RawCommand { argv: raw.argv, timeout_secs: raw.timeout_secs, env: raw.env };
                self.command(&format!("handler #{n}"), spec, DEFAULT_COMMAND_TIMEOUT_SECS).map(HandlerType::Command)
            }
            Some(other) => {
                self.problem(key("type"), format!("{other:?} is not a handler type; use \"dir\" or \"command\""));
                None
            }
            None => {
                self.problem(key("type"), "missing; set type = \"dir\" (built in) or type = \"command\"");
                None
            }
        };
        Some(Handler {
            product,
            kind,
            handler_type: handler_type?,
            health_check: health_check.map(|h| h.ok_or(())).transpose().ok()?,
        })
    }

    fn command(&mut self, prefix: &str, raw: RawCommand, default_timeout: u64) -> Option<CommandSpec> {
        let key = |field: &str| format!("{prefix}: {field}");
        let argv = self.required(&key("argv"), raw.argv, "give the program's absolute path and its arguments");
        if let Some(argv) = &argv {
            match argv.first() {
                None => self.problem(key("argv"), "empty; give the program's absolute path and its arguments"),
                Some(program) if !Path::new(program).is_absolute() => self.problem(
                    key("argv"),
                    format!("{program:?} is not an absolute path; give the program's full path (PATH is not searched)"),
                ),
                Some(_) => {}
            }
        }
        let timeout = raw.timeout_secs.unwrap_or(default_timeout);
        if timeout == 0 || timeout > MAX_TIMEOUT_SECS {
            self.problem(
                key("timeout_secs"),
                format!("{timeout} is out of range; use 1 to {MAX_TIMEOUT_SECS} seconds"),
            );
        }
        let env = raw.env.unwrap_or_default();
        for name in env.keys() {
            if let Err(message) = env_name(name) {
                self.problem(key("env"), message);
            }
        }
        Some(CommandSpec { argv: argv?, timeout: Duration::from_secs(timeout), env })
    }

    fn unreachable_handlers(&mut self, handlers: &[Handler]) {
        for (i, later) in handlers.iter().enumerate() {
            if let Some(j) = handlers[..i].iter().position(|earlier| later.shadowed_by(earlier)) {
                self.problem(
                    format!("handler #{}", i + 1),
                    format!(
                        "never used: handler #{} before it matches every release it would; reorder or remove it",
                        j + 1
                    ),
                );
            }
        }
    }
}

const DEFAULT_IMAGE_ROOT: &str = "/etc/ferry-agent/image-root.json";
const DEFAULT_DIRECTOR_ROOT: &str = "/etc/ferry-agent/director-root.json";

fn absolute_path(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!("{:?} is not an absolute path; give the full path", path.display().to_string()))
    }
}

/// An `http://` or `https://` URL with a host, no credentials, no query or fragment; returned
/// without a trailing `/`.
fn http_url(url: &str, what: &str) -> Result<String, String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(|| {
        format!("{url:?} is not an http:// or https:// URL; give {what}'s URL, e.g. \"https://host:port\"")
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{url:?} has no host name"));
    }
    if authority.contains('@') {
        return Err(format!(
            "{url:?} contains credentials; remove them (a proxy's go in proxy.username and proxy.password_file)"
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains(['?', '#']) {
        return Err(format!("{url:?} contains spaces, a query or a fragment; give only scheme, host, port and path"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn log_level(s: &str) -> Result<LogLevel, String> {
    LogLevel::ALL
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, l)| *l)
        .ok_or_else(|| format!("{s:?} is not a level; use error, warn, info, debug or trace"))
}

fn release_kind(s: &str) -> Result<ReleaseKind, String> {
    [ReleaseKind::Full, ReleaseKind::Patch, ReleaseKind::Config]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("{s:?} is not a release kind; use \"full\", \"patch\" or \"config\""))
}

/// Parses a bandwidth cap: `unlimited`, or a number and a unit per second. Byte units: `B`,
/// `KB`, `MB`, `GB` (powers of 1000) and `KiB`, `MiB`, `GiB` (powers of 1024); bit units:
/// `kbit`, `Mbit`, `Gbit`. `None` means unlimited.
pub fn bandwidth(s: &str) -> Result<Option<u64>, String> {
    let usage = "write a rate such as \"500KiB/s\", \"2MiB/s\" or \"8Mbit/s\", or \"unlimited\"";
    if s.trim().eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let bad = || format!("{s:?} is not a rate; {usage}");
    let per_sec = s.trim().strip_suffix("/s").ok_or_else(bad)?;
    let split = per_sec.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
    let (number, unit) = per_sec.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit.trim() {
        "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1e3 / 8.0,
        "Mbit" => 1e6 / 8.0,
        "Gbit" => 1e9 / 8.0,
        _ => return Err(bad()),
    };
    let bytes = (number * factor).round();
    if bytes < MIN_BANDWIDTH_BYTES_PER_SEC as f64 {
        return Err(format!("{s:?} is below 1KiB/s, where downloads would time out; raise it or use \"unlimited\""));
    }
    Ok(Some(bytes.min(u64::MAX as f64) as u64))
}

fn dir_root(root: &str, pinned_to_product: bool) -> Result<(), String> {
    if !Path::new(root).is_absolute() {
        return Err(format!("{root:?} is not an absolute path; give the full path"));
    }
    own_directory(Path::new(root), "the handler's versions")?;
    let without = root.replace(PRODUCT_PLACEHOLDER, "");
    if without.contains(['{', '}']) {
        return Err(format!("{root:?} has a placeholder other than {PRODUCT_PLACEHOLDER}; remove it"));
    }
    if !pinned_to_product && !root.contains(PRODUCT_PLACEHOLDER) {
        return Err(format!(
            "{root:?} would hold the versions of every product this handler matches; add {PRODUCT_PLACEHOLDER} to it or set product"
        ));
    }
    Ok(())
}

/// A directory the agent fills and prunes (`what`) must be one of its own: not the file system's
/// root, where the agent would create, replace and remove entries across the whole system, and
/// without `..`, which would make the path mean something other than it says.
fn own_directory(dir: &Path, what: &str) -> Result<(), String> {
    use std::path::Component;
    let shown = dir.display().to_string();
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{shown:?} contains \"..\"; give the directory's plain path"));
    }
    if dir.components().all(|c| matches!(c, Component::RootDir | Component::CurDir)) {
        return Err(format!(
            "{shown:?} is the root of the file system; give {what} a directory of its own, such as /var/lib/ferry-agent or /opt/APP"
        ));
    }
    Ok(())
}

/// Reads the configuration file, refusing one larger than [`CONFIG_FILE_MAX`].
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read { path: path.to_owned(), source };
    let bytes = crate::atomic::read_limited(path, CONFIG_FILE_MAX).map_err(read)?;
    String::from_utf8(bytes)
        .map_err(|_| read(std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text")))
}

fn env_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{name:?} is not a variable name; use letters, digits and '_'"));
    }
    if name.to_ascii_uppercase().starts_with("FERRY_") {
        return Err(format!("{name:?}: names starting with FERRY_ are set by the agent; choose another"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "server_url = \"https://ferry.example.com\"\nplatform = \"linux-x86_64\"\n";

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Err(ParseError::Invalid(p)) => p.iter().map(ToString::to_string).collect(),
            other => panic!("expected invalid values, got {other:?}"),
        }
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    #[test]
    fn the_default_config_shows_the_defaults_the_code_applies() {
        let documented = Config::parse(DEFAULT_CONFIG).unwrap();
        let minimal = Config::parse(MINIMAL).unwrap();
        assert_eq!(documented, minimal, "DEFAULT_CONFIG's active settings differ from the code's defaults");
        assert_eq!(minimal.state_dir, Path::new("/var/lib/ferry-agent"));
        assert_eq!(minimal.credential_file, Path::new("/var/lib/ferry-agent/credential"));
        assert_eq!(minimal.device_id, DeviceIdSource::File("/etc/machine-id".into()));
        assert_eq!(minimal.initial_jitter, Duration::from_secs(120));
        assert_eq!(minimal.deadline, Duration::from_secs(300));
        assert_eq!((minimal.bandwidth_limit, minimal.log_level), (None, LogLevel::Info));
        assert!(minimal.handlers.is_empty() && minimal.proxy.is_none() && minimal.maintenance.is_none());
        assert!(minimal.wake_channel, "the wake channel is on unless switched off");
        assert!(!Config::parse(&with("[checkin]\nwake_channel = false\n")).unwrap().wake_channel);
    }

    /// Blocks of consecutive commented-out settings in DEFAULT_CONFIG.
    fn example_blocks() -> Vec<(usize, usize)> {
        let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
        let is_setting = |l: &str| l.starts_with('#') && l.len() > 1 && !l.starts_with("# ");
        let mut blocks = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if is_setting(lines[i]) {
                let start = i;
                while i < lines.len() && is_setting(lines[i]) {
                    i += 1;
                }
                blocks.push((start, i));
            } else {
                i += 1;
            }
        }
        blocks
    }

    #[test]
    fn every_commented_example_in_the_default_config_is_valid() {
        let blocks = example_blocks();
        assert!(blocks.len() >= 9, "found only {} example blocks", blocks.len());
        for (start, end) in blocks {
            let text: Vec<String> = DEFAULT_CONFIG
                .lines()
                .enumerate()
                .map(|(i, l)| if (start..end).contains(&i) { l[1..].to_owned() } else { l.to_owned() })
                .collect();
            let text = text.join("\n");
            let block: Vec<&str> = DEFAULT_CONFIG.lines().skip(start).take(end - start).collect();
            if let Err(e) = Config::parse(&text) {
                panic!("example {block:#?} does not validate: {e}");
            }
        }
    }

    #[test]
    fn handler_examples_parse_into_handlers() {
        let text = with(
            r#"
[[handler]]
product = "gateway-app"
type = "dir"
root = "/opt/gateway-app"
[handler.health_check]
argv = ["/opt/gateway-app/current/bin/selftest"]

[[handler]]
kind = "config"
type = "dir"
root = "/etc/profiles/{product}"

[[handler]]
type = "command"
argv = ["/usr/sbin/install-any", "--quiet"]
env = { MODE = "fleet" }
"#,
        );
        let config = Config::parse(&text).unwrap();
        let app = ProductName::new("gateway-app").unwrap();
        let vpn = ProductName::new("vpn").unwrap();
        let first = config.handler_for(&app, ReleaseKind::Full).unwrap();
        assert_eq!(first.dir_root(&app).unwrap(), Path::new("/opt/gateway-app"));
        let hc = first.health_check.as_ref().unwrap();
        assert_eq!(hc.timeout, Duration::from_secs(DEFAULT_HEALTH_CHECK_TIMEOUT_SECS));
        let profiles = config.handler_for(&vpn, ReleaseKind::Config).unwrap();
        assert_eq!(profiles.dir_root(&vpn).unwrap(), Path::new("/etc/profiles/vpn"));
        let HandlerType::Command(spec) = &config.handler_for(&vpn, ReleaseKind::Full).unwrap().handler_type else {
            panic!("expected the command handler");
        };
        assert_eq!(spec.argv, ["/usr/sbin/install-any", "--quiet"]);
        assert_eq!(spec.timeout, Duration::from_secs(DEFAULT_COMMAND_TIMEOUT_SECS));
        assert_eq!(spec.env["MODE"], "fleet");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line_number() {
        let err = Config::parse(&with("sever_url = \"x\"\n")).unwrap_err();
        let ParseError::Syntax(message) = err else { panic!("{err:?}") };
        assert!(message.contains("unknown field `sever_url`") && message.contains("line 3"), "{message}");
        let err = Config::parse(&with("[[handler]]\ntype = \"dir\"\nroot = \"/x/{product}\"\ntimout_secs = 3\n"));
        assert!(matches!(err, Err(ParseError::Syntax(m)) if m.contains("timout_secs")));
    }

    #[test]
    fn required_keys_say_what_to_set() {
        let found = problems("");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("server_url: missing; set it to the Ferry server's URL"), "{found:?}");
        assert!(found[1].starts_with("platform: missing;"), "{found:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems(
            r#"server_url = "ftp://x"
platform = "linux x86"
state_dir = "var/lib/agent"
log_level = "verbose"
bandwidth_limit = "fast"
device_id = "a"
device_id_file = "/b"
"#,
        );
        let keys: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            ["server_url", "platform", "device_id", "state_dir", "log_level", "bandwidth_limit"],
            "{found:#?}"
        );
        assert!(found[0].contains("not an http:// or https:// URL"));
        assert!(found[3].contains("not an absolute path"));
        assert!(found[4].contains("use error, warn, info, debug or trace"));
    }

    #[test]
    fn the_file_system_root_is_refused_for_state_and_handler_roots() {
        let found = problems(&with(
            r#"state_dir = "/"
[[handler]]
product = "a"
type = "dir"
root = "/"
[[handler]]
product = "b"
type = "dir"
root = "/opt/../"
"#,
        ));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("state_dir: \"/\" is the root of the file system"), "{found:#?}");
        assert!(found[1].starts_with("handler #1: root: \"/\" is the root of the file system"), "{found:#?}");
        assert!(found[2].starts_with("handler #2: root: \"/opt/../\" contains \"..\""), "{found:#?}");
        let found = problems(&with("state_dir = \"//.\"\n"));
        assert!(found[0].contains("root of the file system"), "{found:?}");
    }

    #[test]
    fn the_check_deadline_is_configurable_within_range() {
        let config = Config::parse(&with("[checkin]\ndeadline_secs = 5\n")).unwrap();
        assert_eq!(config.deadline, Duration::from_secs(5));
        assert_eq!(Config::parse(MINIMAL).unwrap().deadline, Duration::from_secs(DEFAULT_DEADLINE_SECS));
        for bad in ["0", "86401"] {
            let found = problems(&with(&format!("[checkin]\ndeadline_secs = {bad}\n")));
            assert!(found[0].starts_with("checkin.deadline_secs:"), "{found:?}");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(http_url("https://f.example:8443/", "x").unwrap(), "https://f.example:8443");
        assert!(http_url("https://user:pw@f.example", "x").unwrap_err().contains("credentials"));
        assert!(http_url("https:///path", "x").unwrap_err().contains("no host"));
        assert!(http_url("https://f.example/?a=b", "x").unwrap_err().contains("query"));
        let found = problems(&with("[proxy]\nurl = \"socks5://p:1080\"\npassword_file = \"/p\"\n"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("proxy.url:") && found[1].starts_with("proxy.password_file: a password needs"));
    }

    #[test]
    fn bandwidth_units() {
        assert_eq!(bandwidth("unlimited").unwrap(), None);
        assert_eq!(bandwidth("2MiB/s").unwrap(), Some(2 * 1024 * 1024));
        assert_eq!(bandwidth("500KB/s").unwrap(), Some(500_000));
        assert_eq!(bandwidth("8Mbit/s").unwrap(), Some(1_000_000));
        assert_eq!(bandwidth("1.5 KiB/s").unwrap(), Some(1536));
        assert!(bandwidth("100B/s").unwrap_err().contains("below 1KiB/s"));
        for bad in ["2MiB", "2 parsecs/s", "/s", "MiB/s", "1.2.3MB/s"] {
            assert!(bandwidth(bad).unwrap_err().contains("not a rate"), "{bad}");
        }
    }

    #[test]
    fn maintenance_windows_are_validated() {
        let config =
            Config::parse(&with("[maintenance]\nwindows = [\"mon-fri 22:00-05:00\"]\ntimezone = \"UTC\"\n")).unwrap();
        let m = config.maintenance.unwrap();
        assert_eq!((m.windows.len(), m.timezone), (1, Timezone::Utc));
        let found =
            problems(&with("[maintenance]\nwindows = [\"* 01:00-02:00\", \"someday 1-2\"]\ntimezone = \"Mars\"\n"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("maintenance.timezone: \"Mars\" is not a time zone"), "{found:?}");
        assert!(found[1].starts_with("maintenance.windows[1]:"), "{found:?}");
        let found = problems(&with("[maintenance]\nwindows = []\n"));
        assert!(found[0].contains("would never install"), "{found:?}");
    }

    #[test]
    fn handlers_are_validated() {
        let found = problems(&with(
            r#"
[[handler]]
type = "dir"
root = "/opt/all"
argv = ["/bin/true"]

[[handler]]
product = "a"
type = "command"
argv = ["install.sh"]
timeout_secs = 0
env = { FERRY_FILE = "x", "bad-name" = "y" }

[[handler]]
type = "unzip"

[[handler]]
kind = "firmware"
type = "dir"
root = "/opt/{version}"
"#,
        ));
        let expected = [
            "handler #1: argv: applies only to type = \"command\"",
            "handler #1: root: \"/opt/all\" would hold the versions of every product",
            "handler #2: argv: \"install.sh\" is not an absolute path",
            "handler #2: timeout_secs: 0 is out of range",
            "handler #2: env: \"FERRY_FILE\": names starting with FERRY_ are set by the agent",
            "handler #2: env: \"bad-name\" is not a variable name",
            "handler #3: type: \"unzip\" is not a handler type",
            "handler #4: kind: \"firmware\" is not a release kind",
            "handler #4: root: \"/opt/{version}\" has a placeholder other than {product}",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (got, want) in found.iter().zip(expected) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
    }

    #[test]
    fn a_handler_hidden_behind_an_earlier_one_is_an_error() {
        let found = problems(&with(
            r#"
[[handler]]
product = "a"
type = "dir"
root = "/opt/a"

[[handler]]
product = "a"
kind = "config"
type = "dir"
root = "/etc/a"

[[handler]]
kind = "config"
type = "dir"
root = "/etc/{product}"
"#,
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("handler #2: never used: handler #1 before it"), "{found:?}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let config = Config::parse(&with("enrollment_key = \"ferry_enr_very-secret\"\n")).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        let Some(SecretSource::Inline(key)) = &config.enrollment_key else { panic!() };
        assert_eq!(key.expose(), "ferry_enr_very-secret");
    }

    #[test]
    fn the_device_id_comes_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("machine-id");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").unwrap();
        let config = Config::parse(&with(&format!("device_id_file = {:?}\n", file.display().to_string()))).unwrap();
        assert_eq!(config.read_device_id().unwrap().as_str(), "0123456789abcdef0123456789abcdef");
        std::fs::write(&file, "../etc\n").unwrap();
        assert!(config.read_device_id().unwrap_err().contains("set device_id"));
    }

    #[test]
    fn file_checks_name_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("image-root.json");
        std::fs::write(&root, "{}").unwrap();
        let text = with(&format!(
            "device_id = \"dev-1\"\n[trust]\nimage_root = {:?}\ndirector_root = \"/nonexistent/director-root.json\"\n",
            root.display().to_string()
        ));
        Config::parse(&text).unwrap();
        let Err(ParseError::Invalid(found)) = Config::parse_checked(&text) else { panic!("the missing root passed") };
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "trust.director_root");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "platform = \"p\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: server_url: missing", path.display())), "{err}");
        let err = Config::load(&dir.path().join("none.toml")).unwrap_err().to_string();
        assert!(err.contains("ferry-agent config default > FILE"), "{err}");
    }
}
