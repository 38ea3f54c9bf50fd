//! `ferry-tuf-conformance`: Ferry's TUF client behind the standard TUF conformance client CLI
//! (tuf-conformance's CLIENT-CLI.md), so that any conformance harness can drive it:
//!
//! ```text
//! ferry-tuf-conformance --metadata-dir DIR init TRUSTED_ROOT_FILE
//! ferry-tuf-conformance --metadata-dir DIR --metadata-url URL refresh
//! ferry-tuf-conformance --metadata-dir DIR --metadata-url URL --target-name P [--target-name P2 …] \
//!     --target-base-url TURL --target-dir TDIR download
//! ```
//!
//! `--authorization VALUE` (or `FERRY_TUF_AUTHORIZATION`) sends `Authorization: VALUE` with every
//! request, e.g. `Bearer ferry_adm_…` to read a Ferry server's `/tuf/image/` repository, which
//! answers only admins and devices; the environment variable keeps the secret out of `ps`.
//!
//! Exit code 0 when the command succeeded fully, 1 otherwise (usage errors included). A target
//! is stored in TDIR under its target path percent-escaped into one file name (python-tuf's
//! convention, `a/b.txt` → `a%2Fb.txt`); one already there with matching digests is not fetched
//! again. Time is the system clock (`SystemTime`), so a preloaded fake clock library shifts it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_updater::{Error, Updater, UpdaterConfig};
use reqwest::Url;

#[derive(Debug, Parser)]
#[command(name = "ferry-tuf-conformance", about = "Ferry's TUF client, as a TUF conformance test client")]
struct Cli {
    /// Directory of the trusted metadata.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long)]
    metadata_url: Option<Url>,
    /// Target path to download (repeatable; downloaded in order).
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long)]
    target_base_url: Option<Url>,
    /// Directory to store downloaded targets in.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Value of an `Authorization` header sent with every request, e.g. "Bearer ferry_adm_…".
    #[arg(long, value_name = "VALUE", env = "FERRY_TUF_AUTHORIZATION", hide_env_values = true)]
    authorization: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install TRUSTED_ROOT as the trusted root (no network).
    Init {
        /// A root.json obtained out of band.
        trusted_root: PathBuf,
    },
    /// Refresh the trusted metadata from the repository.
    Refresh,
    /// Refresh, then download each --target-name into --target-dir.
    Download,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry-tuf-conformance: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-tuf-conformance: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Init { trusted_root } => {
            let bytes =
                tokio::fs::read(&trusted_root).await.map_err(|source| Error::Io { path: trusted_root, source })?;
            ferry_updater::init(&cli.metadata_dir, &bytes).await.map(drop)
        }
        Command::Refresh => {
            let mut updater = updater(cli.metadata_dir, cli.metadata_url, None, cli.authorization)?;
            updater.refresh().await.map(drop)
        }
        Command::Download => {
            let target_dir = cli.target_dir.ok_or_else(|| missing("--target-dir"))?;
            let base = cli.target_base_url.ok_or_else(|| missing("--target-base-url"))?;
            if cli.target_names.is_empty() {
                return Err(missing("--target-name"));
            }
            let mut updater = updater(cli.metadata_dir, cli.metadata_url, Some(base), cli.authorization)?;
            updater.refresh().await?;
            for name in &cli.target_names {
                let (_, target) = updater.get_targetinfo(name).await?.ok_or_else(|| Error::NotFound(name.clone()))?;
                updater.download_target(name, &target, &target_dir).await?;
            }
            Ok(())
        }
    }
}

fn updater(
    metadata_dir: PathBuf,
    metadata_url: Option<Url>,
    target_base_url: Option<Url>,
    authorization: Option<String>,
) -> Result<Updater, Error> {
    let mut config = UpdaterConfig::new(metadata_dir, metadata_url.ok_or_else(|| missing("--metadata-url"))?);
    config.target_base_url = target_base_url;
    if let Some(value) = authorization {
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| Error::Config("--authorization is not a valid header value".to_owned()))?;
        value.set_sensitive(true);
        config.headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Updater::new(config)
}

fn missing(option: &str) -> Error {
    Error::Config(format!("{option} is required for this command"))
}
