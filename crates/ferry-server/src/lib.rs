//! The Ferry server as a library.
//!
//! [`App::open`] opens storage as the configuration says and makes sure an admin token exists;
//! [`serve`] runs the HTTP API on an already-bound listener until a shutdown future resolves,
//! so tests bind `127.0.0.1:0` and drive it in-process; [`run`] is what `ferry serve` calls.

pub mod auth;
pub mod cache;
pub mod config;
mod conn;
pub mod error;
pub mod extract;
pub mod limits;
pub mod lookups;
pub mod marked_bad;
pub mod membership;
pub mod offers;
pub mod openapi;
mod parse_error;
pub mod rollouts;
pub mod routes;
pub mod signed;
pub mod state;
pub mod trust;
pub mod wakeups;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use ferry_content::FsContentStore;
use ferry_core::Role;
use ferry_store::Store;
use ferry_store_sql::{PostgresStore, SqliteStore};
use lookups::CredentialLookups;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError};
pub use state::AppState;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] ferry_store::StoreError),
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
    /// The content store could not be opened.
    #[error("cannot open the content store: {0}")]
    Content(#[from] ferry_content::ContentError),
    /// The data directory can be read by other users, or the database to recover is missing.
    #[error("{0}")]
    DataDir(String),
    /// Binding, serving or writing the data directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// An opened server: storage ready, router buildable.
pub struct App {
    state: Arc<AppState>,
    initial_admin_token: Option<String>,
}

impl App {
    /// Opens the database and content store named by `config`, runs migrations, and creates
    /// the initial admin token if no token exists yet.
    pub async fn open(config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        ensure_private_dir(&config.data_dir)?;
        let store = open_store(&config).await?;
        let content = Arc::new(FsContentStore::open(config.data_dir.join("content")).await?);
        Self::with_parts(config, store, content).await
    }

    /// Like [`App::open`] but with storage supplied by the caller.
    pub async fn with_parts(
        config: Config,
        store: Arc<dyn Store>,
        content: Arc<dyn ferry_content::ContentStore>,
    ) -> Result<Self, ServerError> {
        let keys_dir = config.keys_dir();
        let keys = trust::OnlineKeys::load_or_create(&keys_dir)
            .map_err(|e| ServerError::Io { context: e.to_string(), source: std::io::Error::other("online keys") })?;
        let credentials = CredentialLookups::start(store.clone());
        let config_max_waiters = config.wake.max_waiters;
        let state = Arc::new(AppState {
            store,
            content,
            catalogue: cache::CatalogueCache::new(config.trust.require_signed_releases),
            enrollments: limits::EnrollmentLimits::new(&config.enrollment),
            config,
            contacts: Default::default(),
            credentials,
            keys: std::sync::RwLock::new(Arc::new(keys)),
            rotation: Default::default(),
            clock: Default::default(),
            grant_hints: Default::default(),
            granted: Default::default(),
            wakeups: wakeups::Wakeups::new(config_max_waiters),
        });
        trust::image::adopt_rotated_keys(&state).await.map_err(|e| ServerError::Io {
            context: "finishing an online-key rotation".into(),
            source: std::io::Error::other(e.message),
        })?;
        trust::director::ensure_root(&state, state.clock.now()).await.map_err(|e| ServerError::Io {
            context: "signing the director root".into(),
            source: std::io::Error::other(e.message),
        })?;
        let initial_admin_token = bootstrap_admin_token(&state).await?;
        Ok(Self { state, initial_admin_token })
    }

    /// The initial admin token, when this start created it (first start on empty storage).
    pub fn initial_admin_token(&self) -> Option<&str> {
        self.initial_admin_token.as_deref()
    }

    /// Shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The HTTP router.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }
}

/// Creates the data directory readable only by the server's user (0700), or checks that an
/// existing one is: it holds the database, the content, the online signing keys and the admin
/// token. A directory open to others is refused, not tightened, because the path may be one
/// that others rely on (`--data-dir /tmp` must not make /tmp private).
fn ensure_private_dir(dir: &Path) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_err(format!("cannot create data directory {}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(dir).map_err(io_err(format!("cannot read data directory {}", dir.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ServerError::DataDir(format!(
                "the data directory {dir} is open to other users (mode {mode:04o}); it holds the database, \
                 the signing keys and the admin token: run `chmod 700 {dir}` or choose another directory",
                dir = dir.display()
            )));
        }
    }
    Ok(())
}

/// Opens the database the configuration names: PostgreSQL at `database_url`, else SQLite in
/// the data directory.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServerError> {
    Ok(if config.database_url.is_empty() {
        Arc::new(SqliteStore::open(&config.data_dir.join("ferry.db")).await?)
    } else {
        Arc::new(PostgresStore::connect(&config.database_url).await?)
    })
}

async fn bootstrap_admin_token(state: &Arc<AppState>) -> Result<Option<String>, ServerError> {
    if !state.store.list_admin_tokens().await?.is_empty() {
        return Ok(None);
    }
    issue_saved_admin_token(state.store.as_ref(), &state.config.data_dir, "initial-admin", state.clock.now())
        .await
        .map(Some)
}

/// Name of the token [`recover_admin_token`] creates.
pub const RECOVERED_TOKEN_NAME: &str = "recovered-admin";

/// Creates a new admin token directly in the server's database, for when no admin token's
/// secret is left; returns its secret, also saved to `DATA_DIR/admin-token` (0600). It needs
/// what the server itself needs (the data directory, and the database URL for PostgreSQL), not
/// a token, so only someone with the server's access can use it. The server may be running.
pub async fn recover_admin_token(config: &Config) -> Result<String, ServerError> {
    config.validate()?;
    let db = config.data_dir.join("ferry.db");
    if config.database_url.is_empty() && !db.exists() {
        return Err(ServerError::DataDir(format!(
            "no database at {}: give the data directory (--data-dir) or configuration (--config) the server runs with",
            db.display()
        )));
    }
    ensure_private_dir(&config.data_dir)?;
    let store = open_store(config).await?;
    issue_saved_admin_token(store.as_ref(), &config.data_dir, RECOVERED_TOKEN_NAME, ferry_core::time::now()).await
}

/// Creates an admin token named `name` and saves its secret to `DATA_DIR/admin-token`.
async fn issue_saved_admin_token(
    store: &dyn Store,
    data_dir: &Path,
    name: &str,
    at: i64,
) -> Result<String, ServerError> {
    let created = routes::tokens::issue(store, name, Role::Admin, at).await.map_err(|e| ServerError::Io {
        context: "creating an admin token".into(),
        source: std::io::Error::other(e.message),
    })?;
    let path = data_dir.join("admin-token");
    write_secret_file(&path, &created.secret).map_err(io_err(format!("cannot write {}", path.display())))?;
    Ok(created.secret)
}

/// Writes a secret atomically and durably, readable only by the owner.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    Ok(ferry_fs::write_file(path, format!("{secret}\n").as_bytes(), ferry_fs::Access::Private)?)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
/// Connections are bounded as `[connections]` says and use TLS when `[tls]` is set (see the
/// `conn` module); the certificate and key are read before the first connection is accepted.
pub async fn serve(
    listener: TcpListener,
    app: &App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = &app.state.config;
    let tls = conn::tls_acceptor(&config.tls).map_err(ServerError::Tls)?;
    let local = listener.local_addr().map_err(io_err("reading the listening address"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, data_dir = %config.data_dir.display(), "ferry server listening");
    let body_timeout = std::time::Duration::from_secs(config.connections.body_timeout_secs);
    let router = app.router().layer(axum::middleware::from_fn_with_state(body_timeout, conn::body_deadline));
    let state = app.state.clone();
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(cache::ContactBuffer::FLUSH_EVERY);
        loop {
            tick.tick().await;
            state.contacts.flush(state.store.as_ref()).await;
        }
    });
    let state = app.state.clone();
    let resigner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(trust::image::REFRESH_EVERY);
        loop {
            tick.tick().await;
            match trust::image::refresh(&state, state.clock.now()).await {
                Ok(true) => tracing::info!("image repository snapshot/timestamp re-signed before expiry"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e.message, "could not re-sign image repository metadata"),
            }
            if let Err(e) = trust::director::ensure_root(&state, state.clock.now()).await {
                tracing::warn!(error = %e.message, "could not re-sign the director root");
            }
        }
    });
    let state = app.state.clone();
    let stepper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(rollouts::TICK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = rollouts::tick(&state).await {
                tracing::warn!(error = %e.message, "could not step the rollouts");
            }
        }
    });
    let state = app.state.clone();
    let wake_poller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(wakeups::Wakeups::POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = state.wakeups.poll(state.store.as_ref(), state.clock.now()).await {
                tracing::warn!(error = %e, "could not read wake requests");
            }
        }
    });
    // Held long polls end as the server stops accepting, so that graceful shutdown does not
    // wait for them to time out.
    let state = app.state.clone();
    let shutdown = async move {
        shutdown.await;
        state.wakeups.close();
    };
    conn::accept_loop(listener, router, tls, &config.connections, shutdown).await;
    flusher.abort();
    resigner.abort();
    wake_poller.abort();
    stepper.abort();
    // Stamps recorded by the last requests are written before returning.
    app.state.contacts.flush(app.state.store.as_ref()).await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Sets up logging from the configuration. Safe to call more than once.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: in a file, a pipe or the journal they are
    // noise (`NO_COLOR` turns them off there too).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if config.log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Runs the server until SIGINT or SIGTERM: what `ferry serve` does.
pub async fn run(config: Config) -> Result<(), ServerError> {
    init_logging(&config);
    let listen = config.listen;
    let data_dir = config.data_dir.clone();
    let app = App::open(config).await?;
    if let Some(token) = app.initial_admin_token() {
        eprintln!(
            "\nCreated the initial admin token (shown once; also saved to {}):\n\n    {token}\n\n\
             export FERRY_TOKEN=$(cat {})\n",
            data_dir.join("admin-token").display(),
            data_dir.join("admin-token").display(),
        );
    }
    let listener = TcpListener::bind(listen).await.map_err(io_err(format!("cannot listen on {listen}")))?;
    serve(listener, &app, shutdown_signal()).await
}
