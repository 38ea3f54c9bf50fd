//! The exit codes of `ferry-agent`, the one place they are defined. They are
//! stable: scripts may rely on them, and a code keeps its meaning in later versions. Codes 3,
//! 4 and 5 are successes that say more than 0 does.
//!
//! | code | variant | meaning |
//! |---|---|---|
//! | 0 | `Success` | the command did what was asked |
//! | 1 | `Internal` | unexpected error (a bug) |
//! | 2 | `Usage` | invalid arguments |
//! | 3 | `NothingToDo` | no update applies: the device is up to date |
//! | 4 | `Updated` | an update was installed, confirmed and committed |
//! | 5 | `RebootRequired` | an update was installed and waits for a reboot before it is committed |
//! | 6 | `Config` | the configuration is missing or invalid, or names a file that cannot be read |
//! | 7 | `Unreachable` | the server cannot be reached (network, DNS, TLS, proxy), or its repositories are not at `server_url` (HTTP 404) |
//! | 8 | `Unauthorized` | the server does not accept this device: enrollment pending or rejected, credential invalid |
//! | 9 | `VerificationFailed` | signed metadata or a download failed verification; nothing was installed |
//! | 10 | `InstallFailed` | the install handler failed; nothing was switched |
//! | 11 | `RolledBack` | the update was installed, failed its health check and was rolled back; or the server marked the installed release bad and the agent went back to the version it kept |
//! | 12 | `Busy` | another `ferry-agent` is working on this state directory |
//! | 13 | `State` | the state directory cannot be read or written, or was written by a newer agent |
//! | 14 | `Deferred` | the update waits: outside the maintenance window, for consent, or the handler asked to retry later |
//! | 15 | `BadAnswer` | the server answered, but not as a Ferry server does: a web page, JSON of another shape, an answer over its size limit, a malformed credential |
//!
//! The agent's README has the same table; a test keeps the two in step.

use std::fmt;

/// An exit code of `ferry-agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    /// The command did what was asked.
    Success = 0,
    /// Unexpected error.
    Internal = 1,
    /// Invalid arguments (also what clap exits with).
    Usage = 2,
    /// No update applies.
    NothingToDo = 3,
    /// An update was installed and committed.
    Updated = 4,
    /// An update was installed and waits for a reboot.
    RebootRequired = 5,
    /// The configuration is missing or invalid.
    Config = 6,
    /// The server cannot be reached.
    Unreachable = 7,
    /// The server does not accept this device.
    Unauthorized = 8,
    /// Metadata or a download failed verification.
    VerificationFailed = 9,
    /// The install handler failed.
    InstallFailed = 10,
    /// Installed, unhealthy, rolled back; or rolled back because the server marked the
    /// installed release bad.
    RolledBack = 11,
    /// Another agent holds the state directory.
    Busy = 12,
    /// The state directory cannot be used.
    State = 13,
    /// The update waits.
    Deferred = 14,
    /// The server's answer is not a Ferry answer (a captive portal, a wrong URL, a hostile or
    /// broken server): retrying will not help until the URL or the server is fixed.
    BadAnswer = 15,
}

impl Exit {
    /// Every code, in numeric order.
    pub const ALL: [Self; 16] = [
        Self::Success,
        Self::Internal,
        Self::Usage,
        Self::NothingToDo,
        Self::Updated,
        Self::RebootRequired,
        Self::Config,
        Self::Unreachable,
        Self::Unauthorized,
        Self::VerificationFailed,
        Self::InstallFailed,
        Self::RolledBack,
        Self::Busy,
        Self::State,
        Self::Deferred,
        Self::BadAnswer,
    ];

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A stable snake-case word for `--json` output.
    pub fn word(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Internal => "internal",
            Self::Usage => "usage",
            Self::NothingToDo => "nothing_to_do",
            Self::Updated => "updated",
            Self::RebootRequired => "reboot_required",
            Self::Config => "config",
            Self::Unreachable => "unreachable",
            Self::Unauthorized => "unauthorized",
            Self::VerificationFailed => "verification_failed",
            Self::InstallFailed => "install_failed",
            Self::RolledBack => "rolled_back",
            Self::Busy => "busy",
            Self::State => "state",
            Self::Deferred => "deferred",
            Self::BadAnswer => "bad_answer",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// A command that failed: the exit code and the message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure with `exit` and `message`.
    pub fn new(exit: Exit, message: impl fmt::Display) -> Self {
        Self { exit, message: message.to_string() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are distinct, dense and in order, so `ALL` is the whole table.
    #[test]
    fn codes_are_distinct_and_in_order() {
        for (i, exit) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(exit.code()), i, "{exit:?}");
        }
        let mut words: Vec<_> = Exit::ALL.iter().map(|e| e.word()).collect();
        words.dedup();
        assert_eq!(words.len(), Exit::ALL.len());
    }

    /// The README's exit-code table lists exactly these codes, with these words.
    #[test]
    fn matches_the_readme() {
        let readme = include_str!("../README.md");
        let table = readme.split("## Exit codes").nth(1).expect("the README has an exit-code table");
        let rows: Vec<(u8, String)> = table
            .lines()
            .skip_while(|l| !l.starts_with("| code"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                (cells[0].parse().unwrap(), cells[1].trim_matches('`').to_owned())
            })
            .collect();
        let defined: Vec<(u8, String)> = Exit::ALL.iter().map(|e| (e.code(), e.word().to_owned())).collect();
        assert_eq!(rows, defined);
    }
}
