//! `ferry serve`, `ferry config default` and `ferry token recover`: the only commands that use
//! the server library rather than the HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

/// Runs the Ferry server until SIGINT or SIGTERM.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (`ferry config default` prints one). Settings are layered:
    /// defaults, then this file, then FERRY_* environment variables, then the flags below.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the database, the content store and the initial admin token.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate (then any intermediates); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// Loads the configuration and serves.
    pub async fn run(self) -> anyhow::Result<()> {
        let mut config = load(self.config.as_deref(), self.data_dir)?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls.cert_file = cert;
            config.tls.key_file = key;
        }
        ferry_server::run(config).await.context("the server stopped")
    }
}

/// The server's configuration as `ferry serve` would load it with these flags.
fn load(file: Option<&std::path::Path>, data_dir: Option<PathBuf>) -> anyhow::Result<ferry_server::Config> {
    let mut config = ferry_server::Config::load(file)?;
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    Ok(config)
}

/// Which server's database `ferry token recover` writes to: the flags and `FERRY_*` variables
/// `ferry serve` is run with.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The server's TOML configuration file, if it has one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The server's data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl RecoverArgs {
    /// Creates the admin token and prints its secret.
    pub async fn run(self, ctx: &crate::context::Context) -> anyhow::Result<()> {
        let config = load(self.config.as_deref(), self.data_dir)?;
        let secret = ferry_server::recover_admin_token(&config).await.context("cannot recover admin access")?;
        let file = config.data_dir.join("admin-token");
        let created = serde_json::json!({
            "name": ferry_server::RECOVERED_TOKEN_NAME,
            "role": "admin",
            "secret": secret,
            "file": file,
        });
        ctx.out.created(&created, &secret, |_| {
            crate::output::say!(
                "created admin token {} (also saved to {}); secret (shown only now):\n\n    {secret}\n",
                ferry_server::RECOVERED_TOKEN_NAME,
                file.display()
            );
        })
    }
}

/// Server configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Prints the default configuration, documented, as TOML.
    Default,
}

impl ConfigArgs {
    /// Runs the subcommand.
    pub fn run(self) {
        match self.command {
            ConfigCommand::Default => crate::output::write_stdout(ferry_server::Config::default_toml()),
        }
    }
}
