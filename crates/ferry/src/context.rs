//! What every command gets: where the server is, which admin token to use, how to print.

use std::path::PathBuf;

use ferry_client::{AdminClient, DeviceClient};

use crate::exit::{local_file, usage};
use crate::output::Output;

/// The server when neither `--server` nor `FERRY_URL` names one.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Flags accepted by every command.
///
/// The environment variables are read here, not by clap: clap counts a value from the
/// environment as given, and its usage line after a mistake would then show `--token <TOKEN>`
/// as if the user had to type it.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// URL of the Ferry server [env: FERRY_URL] [default: http://127.0.0.1:8080].
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// Admin token (`ferry_adm_…`) [env: FERRY_TOKEN]. `ferry serve` prints the first one and
    /// saves it in DATA_DIR/admin-token.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Read the admin token from this file [env: FERRY_TOKEN_FILE]. Given on the command line,
    /// it beats FERRY_TOKEN; --token on the command line beats FERRY_TOKEN_FILE.
    #[arg(long, global = true, value_name = "FILE")]
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
    /// Builds the context from the global flags, falling back on `FERRY_URL`, `FERRY_TOKEN`
    /// and `FERRY_TOKEN_FILE` (an empty variable counts as unset).
    pub fn new(global: GlobalArgs) -> anyhow::Result<Self> {
        let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let token = match (global.token, global.token_file) {
            (Some(_), Some(_)) => return Err(usage("pass either --token or --token-file, not both")),
            (None, Some(file)) => Some(Token::File(file)),
            (Some(token), None) => Some(Token::Value(token)),
            // Both from the environment: the file is the more deliberate setting.
            (None, None) => match (env("FERRY_TOKEN_FILE"), env("FERRY_TOKEN")) {
                (Some(file), _) => Some(Token::File(file.into())),
                (None, Some(token)) => Some(Token::Value(token.to_string_lossy().into_owned())),
                (None, None) => None,
            },
        };
        let server = global
            .server
            .or_else(|| env("FERRY_URL").map(|url| url.to_string_lossy().into_owned()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        Ok(Self { server, token, out: Output { json: global.json, quiet: global.quiet } })
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
