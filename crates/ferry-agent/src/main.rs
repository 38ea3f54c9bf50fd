//! `ferry-agent`: the device agent's command line. Exit codes: [`ferry_agent::exit`].
//!

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_agent::config::DEFAULT_CONFIG_PATH;
use ferry_agent::exit::Exit;

mod cmd;

/// The Ferry device agent: installs what the server assigns, verified, and can always go back.
#[derive(Debug, Parser)]
#[command(name = "ferry-agent", version)]
struct Cli {
    /// Configuration file (`ferry-agent config default` prints a documented one).
    #[arg(long, global = true, env = "FERRY_AGENT_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a daemon: check at start, then when the server says; resume after failures.
    Run(cmd::run::Args),
    /// Check once now: enroll if needed, check in, install what applies. The exit code says
    /// what happened.
    Check(cmd::check::Args),
    /// Consent to an optional release and install it now.
    Install(cmd::install::Args),
    /// Show optional updates waiting for consent, with their release notes.
    Notify(cmd::notify::Args),
    /// Go back to the version kept before the installed one.
    Rollback(cmd::rollback::Args),
    /// List the handler logs, or print one release's.
    Logs(cmd::logs::Args),
    /// Show what is installed and where the update in progress stands.
    Status(cmd::status::Args),
    /// Print the documented default configuration, or check a configuration file.
    #[command(subcommand)]
    Config(cmd::config::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(&cli.config, &args),
        Command::Check(args) => cmd::check::run(&cli.config, &args),
        Command::Install(args) => cmd::install::run(&cli.config, &args),
        Command::Notify(args) => cmd::notify::run(&cli.config, &args),
        Command::Rollback(args) => cmd::rollback::run(&cli.config, &args),
        Command::Logs(args) => cmd::logs::run(&cli.config, &args),
        Command::Status(args) => cmd::status::run(&cli.config, &args),
        Command::Config(command) => cmd::config::run(&cli.config, command),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit.into()
        }
    }
}

/// The result of a subcommand: its exit code, or a failure to report.
pub type Outcome = Result<Exit, ferry_agent::exit::Failure>;

/// A single-threaded runtime: the agent does one thing at a time, and one thread keeps its
/// memory small.
pub fn runtime() -> Result<tokio::runtime::Runtime, ferry_agent::exit::Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ferry_agent::exit::Failure::new(Exit::Internal, format!("cannot start the async runtime: {e}")))
}

/// Logs to standard error at the configured level (systemd's journal takes it from there).
pub fn init_logging(config: &ferry_agent::config::Config) {
    use ferry_agent::config::LogLevel;
    let level = match config.log_level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
#[path = "../../ferry/tests/common/doc_commands.rs"]
mod doc_commands;

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `ferry-agent` command lines are documented.
    const DOCS: [(&str, &str); 3] = [
        ("README.md", include_str!("../../../README.md")),
        ("ARCHITECTURE.md", include_str!("../../../ARCHITECTURE.md")),
        ("crates/ferry-agent/README.md", include_str!("../README.md")),
    ];
    /// Values for the placeholders the documentation uses.
    const SAMPLES: &[(&str, &str)] = &[
        ("RELEASE", "7"),
        ("NEXT", "8"),
        ("PRODUCT", "vpn-client"),
        ("FILE", "agent.toml"),
        ("c", "agent.toml"),
        ("n", "2"),
    ];

    /// clap's own checks, no subcommand flag clashing with the global `--config`, and every
    /// subcommand's help.
    #[test]
    fn the_command_tree_is_consistent() {
        let paths = doc_commands::check_tree::<Cli>();
        assert!(paths.len() >= 10, "{paths:?}");
    }

    /// Every command line the READMEs show parses, among them the rollback of a configuration
    /// bundle after the global `--config`, which made clap panic when both were named
    /// `config`.
    #[test]
    fn every_documented_invocation_parses() {
        let checked = doc_commands::check_documented::<Cli>("ferry-agent", &DOCS, SAMPLES);
        assert!(checked >= 20, "only {checked} documented invocations found");
        let cli =
            Cli::try_parse_from(["ferry-agent", "--config", "a.toml", "rollback", "vpn-client", "--config-bundle"])
                .unwrap();
        assert_eq!(cli.config, PathBuf::from("a.toml"));
        assert!(matches!(cli.command, Command::Rollback(_)));
    }
}
