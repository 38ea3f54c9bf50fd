//! What every command gets: where the server is, which admin token to use, how to print.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::ArgMatches;
use ferry_client::{AdminClient, DeviceClient};

use crate::exit::{local_file, usage};
use crate::output::Output;

/// Flags accepted by every command.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// URL of the Ferry server.
    #[arg(long, global = true, env = "FERRY_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Admin token (`ferry_adm_…`). `ferry serve` prints the first one and saves it in
    /// DATA_DIR/admin-token.
    #[arg(long, global = true, env = "FERRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the admin token from this file. Given on the command line, it beats FERRY_TOKEN;
    /// --token on the command line beats FERRY_TOKEN_FILE.
    #[arg(long, global = true, env = "FERRY_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables (errors too, on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the essential value of what a command creates (a new release's id, a
    /// group's enrollment key, a token's secret, an upload's sha256), for scripts.
    #[arg(long, short, global = true, conflicts_with = "json")]
    pub quiet: bool,
}

#[derive(Debug)]
enum Token {
    Value(String),
    File(PathBuf),
}

/// The environment of a command.
#[derive(Debug)]
pub struct Context {
    server: String,
    token: Option<Token>,
    /// How results are printed.
    pub out: Output,
}

impl Context {
    /// Builds the context from the global flags; `matches` tells where each value came from.
    pub fn new(global: GlobalArgs, matches: &ArgMatches) -> anyhow::Result<Self> {
        let from_command_line = |id| matches.value_source(id) == Some(ValueSource::CommandLine);
        let token = match (global.token, global.token_file) {
            (Some(_), Some(_)) if from_command_line("token") && from_command_line("token_file") => {
                return Err(usage("pass either --token or --token-file, not both"));
            }
            (Some(_), Some(file)) if from_command_line("token_file") => Some(Token::File(file)),
            (Some(token), _) if from_command_line("token") => Some(Token::Value(token)),
            // Both from the environment: the file is the more deliberate setting.
            (_, Some(file)) => Some(Token::File(file)),
            (Some(token), None) => Some(Token::Value(token)),
            (None, None) => None,
        };
        Ok(Self { server: global.server, token, out: Output { json: global.json, quiet: global.quiet } })
    }

    /// A client of the admin API, authenticated with the token.
    pub fn admin(&self) -> anyhow::Result<AdminClient> {
        Ok(AdminClient::new(&self.server, self.token()?)?)
    }

    /// A client that fetches the server's TUF repositories (`/tuf/image/…`), which admin
    /// tokens may read as devices do; it is used for nothing else.
    pub fn tuf_reader(&self) -> anyhow::Result<DeviceClient> {
        Ok(DeviceClient::new(&self.server, Some(self.token()?))?)
    }

    /// The admin token, trimmed and not empty.
    fn token(&self) -> anyhow::Result<String> {
        let token = match &self.token {
            Some(Token::Value(token)) => token.clone(),
            Some(Token::File(path)) => std::fs::read_to_string(path).map_err(local_file("read", path))?,
            None => {
                return Err(usage(
                    "no admin token: pass --token or --token-file, or set FERRY_TOKEN; the server \
                     saved the first one in DATA_DIR/admin-token",
                ))
            }
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(usage("the admin token is empty; check --token, --token-file or FERRY_TOKEN"));
        }
        Ok(token.to_owned())
    }
}
