//! `ferry completions`: shell completion scripts.

use clap_complete::Shell;

/// Prints a completion script, e.g. `ferry completions bash > /etc/bash_completion.d/ferry`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish.
    shell: Shell,
}

impl CompletionsArgs {
    /// Writes the script for `command` to stdout.
    pub fn run(self, command: &mut clap::Command) {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, command, "ferry", &mut script);
        crate::output::write_stdout(&String::from_utf8_lossy(&script));
    }
}
