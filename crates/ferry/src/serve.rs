//! `ferry serve` and `ferry config default`: the only commands that use the server library
//! rather than the HTTP API.

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
        let mut config = ferry_server::Config::load(self.config.as_deref())?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls.cert_file = cert;
            config.tls.key_file = key;
        }
        ferry_server::run(config).await.context("the server stopped")
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
