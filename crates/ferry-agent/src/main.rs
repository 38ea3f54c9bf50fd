//! `ferry-agent`: the device agent's command line. Exit codes: [`ferry_agent::exit`].
//!
//! Implemented so far: `config default`, `config check`, `status`. The commands that talk to the
//! server (`run`, `check`, `install`, `rollback`, `notify`, `logs`) come with the network part.

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
    /// Show what is installed and where the update in progress stands.
    Status(cmd::status::Args),
    /// Print the documented default configuration, or check a configuration file.
    #[command(subcommand)]
    Config(cmd::config::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
