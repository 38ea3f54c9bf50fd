//! The Ferry server as a library.
//!
//! [`App::open`] opens storage as the configuration says and makes sure an admin token exists;
//! [`serve`] runs the HTTP API on an already-bound listener until a shutdown future resolves,
//! so tests bind `127.0.0.1:0` and drive it in-process; [`run`] is what `ferry serve` calls.

pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod limits;
pub mod lookups;
pub mod offers;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod trust;

use std::future::Future;
use std::io::Write;
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
    /// The content store could not be opened.
    #[error("cannot open the content store: {0}")]
    Content(#[from] ferry_content::ContentError),
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
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io_err(format!("cannot create data directory {}", config.data_dir.display())))?;
        let store: Arc<dyn Store> = if config.database_url.is_empty() {
            Arc::new(SqliteStore::open(&config.data_dir.join("ferry.db")).await?)
        } else {
            Arc::new(PostgresStore::connect(&config.database_url).await?)
        };
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
        });
        trust::image::adopt_rotated_keys(&state).await.map_err(|e| ServerError::Io {
            context: "finishing an online-key rotation".into(),
            source: std::io::Error::other(e.message),
        })?;
        trust::director::ensure_root(&state, state::now()).await.map_err(|e| ServerError::Io {
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

async fn bootstrap_admin_token(state: &Arc<AppState>) -> Result<Option<String>, ServerError> {
    if !state.store.list_admin_tokens().await?.is_empty() {
        return Ok(None);
    }
    let created = routes::tokens::issue(state, "initial-admin", Role::Admin).await.map_err(|e| ServerError::Io {
        context: "creating the initial admin token".into(),
        source: std::io::Error::other(e.message),
    })?;
    let path = state.config.data_dir.join("admin-token");
    write_secret_file(&path, &created.secret).map_err(io_err(format!("cannot write {}", path.display())))?;
    Ok(Some(created.secret))
}

/// Writes a secret atomically (temp file, fsync, rename, fsync directory), readable only by
/// the owner.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        writeln!(f, "{secret}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
/// Sockets get `TCP_NODELAY`, so small API answers are not delayed by Nagle's algorithm.
pub async fn serve(
    listener: TcpListener,
    app: &App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let service = app.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
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
            match trust::image::refresh(&state, state::now()).await {
                Ok(true) => tracing::info!("image repository snapshot/timestamp re-signed before expiry"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e.message, "could not re-sign image repository metadata"),
            }
            if let Err(e) = trust::director::ensure_root(&state, state::now()).await {
                tracing::warn!(error = %e.message, "could not re-sign the director root");
            }
        }
    });
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown).await.map_err(io_err("serving HTTP"));
    flusher.abort();
    resigner.abort();
    // Stamps recorded by the last requests are written before returning.
    app.state.contacts.flush(app.state.store.as_ref()).await;
    served
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
    let local = listener.local_addr().map_err(io_err("reading the listening address"))?;
    tracing::info!(address = %local, data_dir = %data_dir.display(), "ferry server listening");
    serve(listener, &app, shutdown_signal()).await
}
