//! Running the `ferry` binary, and a `ferry serve` child process to run it against (started
//! by `serve::spawn`, which the agent's tests share).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub mod serve;
pub mod workspace_binary;

/// `ferry` with an environment holding nothing but what the test sets.
pub fn ferry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.env_clear();
    cmd
}

/// Runs a command to its end: exit code, stdout, stderr.
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A `ferry serve` child, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The file holding the initial admin token.
    pub token_file: PathBuf,
}

impl Server {
    /// Starts `ferry serve --data-dir DATA_DIR`.
    pub fn start(data_dir: &Path) -> Self {
        let mut cmd = ferry();
        cmd.arg("serve").arg("--data-dir").arg(data_dir);
        Self::spawn(cmd, data_dir.join("admin-token"))
    }

    /// Starts `ferry serve` in `dir`, with the default data directory `./ferry-data`, as the
    /// README's quick start does.
    pub fn start_in(dir: &Path) -> Self {
        let mut cmd = ferry();
        cmd.arg("serve").current_dir(dir);
        Self::spawn(cmd, dir.join("ferry-data/admin-token"))
    }

    fn spawn(cmd: Command, token_file: PathBuf) -> Self {
        let (child, url) = serve::spawn(cmd);
        Self { child, url, token_file }
    }

    /// `ferry` pointed at this server with the admin token.
    pub fn cli(&self) -> Command {
        let mut cmd = ferry();
        cmd.env("FERRY_URL", &self.url).env("FERRY_TOKEN_FILE", &self.token_file);
        cmd
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap().code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
