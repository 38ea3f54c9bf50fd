//! A device site without a server: a configuration whose files exist, with its state directory,
//! in a temporary directory, and the `ferry-agent` binary Cargo built for this package's tests.
//! The server address is closed (port 9): a test with a site stops before the network, or
//! meets a refused connection.
#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;
use ferry_agent::config::DEFAULT_CONFIG;
use ferry_agent::exit::Exit;

/// The `ferry-agent` binary of this build (Cargo builds it for the package's own tests, so it
/// is never a stale one).
pub const AGENT: &str = env!("CARGO_BIN_EXE_ferry-agent");

/// `ferry-agent`, without a configuration from the environment.
pub fn agent() -> Command {
    let mut cmd = Command::new(AGENT);
    cmd.env_remove("FERRY_AGENT_CONFIG");
    cmd
}

/// The process exit code of `exit`.
pub fn code(exit: Exit) -> i32 {
    i32::from(exit.code())
}

/// The configuration `config default` prints, pointed at a temporary directory.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// A site logging at the default level.
    pub fn new() -> Self {
        Self::with_log_level("info")
    }

    /// A site logging only errors, for tests that read the agent's standard error.
    pub fn quiet() -> Self {
        Self::with_log_level("error")
    }

    fn with_log_level(level: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["image-root.json", "director-root.json"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let d = dir.path().display();
        let config = DEFAULT_CONFIG
            .replace("https://ferry.example.com", "http://127.0.0.1:9")
            .replace("state_dir = \"/var/lib/ferry-agent\"", &format!("state_dir = \"{d}/state\""))
            .replace("\"/etc/ferry-agent/image-root.json\"", &format!("\"{d}/image-root.json\""))
            .replace("\"/etc/ferry-agent/director-root.json\"", &format!("\"{d}/director-root.json\""))
            .replace("#device_id = \"SN-000123\"", "device_id = \"SN-000123\"")
            .replace("log_level = \"info\"", &format!("log_level = \"{level}\""));
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        Self { dir }
    }

    /// A file of the site.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.path("agent.toml")
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `ferry-agent --config CONFIG`.
    pub fn agent(&self) -> Command {
        let mut cmd = agent();
        cmd.arg("--config").arg(self.config());
        cmd
    }

    /// Runs `ferry-agent ARGS` with this site's configuration: exit code and standard error.
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self.agent().args(args).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `ferry-agent status [--json]`.
    pub fn status(&self, json: bool) -> assert_cmd::assert::Assert {
        let mut cmd = self.agent();
        cmd.arg("status");
        if json {
            cmd.arg("--json");
        }
        cmd.assert()
    }
}
