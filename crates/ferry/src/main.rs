//! `ferry`: runs the Ferry server (`ferry serve`) and administers one over its HTTP API.
//!
//! Each subcommand lives in its own module as an `Args` struct with a `run` method. Every read
//! prints JSON with `--json` and a table otherwise; failures exit with the stable codes of
//! [`exit`].

mod approval;
mod atomic;
mod completions;
mod content;
mod context;
mod device;
mod exit;
mod group;
mod key;
mod media;
mod metadata;
mod output;
mod passphrase;
mod platform;
mod product;
mod release;
mod rollout;
mod root;
mod serve;
mod targets;
mod time;
mod token;
mod trust;
mod values;
mod whoami;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::context::{Context, GlobalArgs};

/// Ferry: a self-hosted update server for device fleets.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 ok, 1 unexpected, 2 usage, 3 not found, 4 conflict, \
5 unauthorized, 6 forbidden, 7 unreachable, 8 rejected input, 9 server error, 10 local file, \
11 invalid metadata, 12 wrong passphrase.")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server.
    Serve(serve::ServeArgs),
    /// Server configuration.
    Config(serve::ConfigArgs),
    /// Shows the name and role of the admin token in use.
    Whoami(whoami::WhoamiArgs),
    /// Products: the software that releases belong to.
    Product(product::ProductArgs),
    /// Platforms: client types and device models.
    Platform(platform::PlatformArgs),
    /// Artifact content, addressed by SHA-256.
    Content(content::ContentArgs),
    /// Releases: publish, list, show.
    Release(release::ReleaseArgs),
    /// Approves a release for a group's devices.
    Approve(approval::ApproveArgs),
    /// Declines a release for a group: its devices are never offered it.
    Decline(approval::DeclineArgs),
    /// Removes a group's approval or decline of a release.
    Unapprove(approval::UnapproveArgs),
    /// Lists approvals.
    Approval(approval::ApprovalArgs),
    /// Staged rollouts: a release to groups in waves that stop themselves when devices fail.
    Rollout(rollout::RolloutArgs),
    /// Device groups and their enrollment keys.
    Group(group::GroupArgs),
    /// Devices: enrollment, groups, status, "why".
    Device(device::DeviceArgs),
    /// Admin tokens.
    Token(token::TokenArgs),
    /// Offline signing keys, sealed with a passphrase (no server needed).
    Key(key::KeyArgs),
    /// Root metadata: which keys sign what (no server needed).
    Root(root::RootArgs),
    /// Signs and verifies metadata files (no server needed).
    Metadata(metadata::MetadataArgs),
    /// Edits targets metadata: delegations to product roles (no server needed).
    Targets(targets::TargetsArgs),
    /// The server's signed metadata: online keys, status, drafts to sign, pushing signed files.
    Trust(trust::TrustArgs),
    /// Prints a shell completion script.
    Completions(completions::CompletionsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => return clap_failure(&e),
    };
    let json = cli.global.json;
    match run(cli).await {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(err) => report(&err, json),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::new(cli.global)?;
    match cli.command {
        Command::Serve(args) => args.run().await,
        Command::Config(args) => {
            args.run();
            Ok(())
        }
        Command::Whoami(args) => args.run(&ctx).await,
        Command::Product(args) => args.run(&ctx).await,
        Command::Platform(args) => args.run(&ctx).await,
        Command::Content(args) => args.run(&ctx).await,
        Command::Release(args) => args.run(&ctx).await,
        Command::Approve(args) => args.run(&ctx).await,
        Command::Decline(args) => args.run(&ctx).await,
        Command::Unapprove(args) => args.run(&ctx).await,
        Command::Approval(args) => args.run(&ctx).await,
        Command::Rollout(args) => args.run(&ctx).await,
        Command::Group(args) => args.run(&ctx).await,
        Command::Device(args) => args.run(&ctx).await,
        Command::Token(args) => args.run(&ctx).await,
        Command::Key(args) => args.run(&ctx),
        Command::Root(args) => args.run(&ctx),
        Command::Metadata(args) => args.run(&ctx),
        Command::Targets(args) => args.run(&ctx),
        Command::Trust(args) => args.run(&ctx).await,
        Command::Completions(args) => {
            args.run(&mut Cli::command());
            Ok(())
        }
    }
}

/// What clap stopped at: `--help` and `--version` print and exit 0 as clap does; a usage
/// mistake exits with [`exit::USAGE`], reported as JSON when `--json` is among the arguments
/// (clap could not parse them, so the flag is looked for in the raw arguments).
fn clap_failure(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if !json || matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        err.exit();
    }
    let text = err.render().to_string();
    let message = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
    report(&exit::usage(message), true)
}

/// Prints a failure on stderr, as `error: …` or with `--json` as an error object.
fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let failure = exit::classify(err);
    if json {
        let body = serde_json::json!({
            "error": { "code": failure.code, "message": failure.message, "exit_code": failure.exit_code }
        });
        eprintln!("{body}");
    } else {
        eprintln!("error: {}", failure.message);
    }
    ExitCode::from(failure.exit_code)
}

#[cfg(test)]
#[path = "../tests/common/doc_commands.rs"]
mod doc_commands;

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `ferry` command lines are documented.
    const DOCS: [(&str, &str); 3] = [
        ("README.md", include_str!("../../../README.md")),
        ("ARCHITECTURE.md", include_str!("../../../ARCHITECTURE.md")),
        ("crates/ferry-agent/README.md", include_str!("../../ferry-agent/README.md")),
    ];
    /// Values for the placeholders and shell variables the documentation uses.
    const SAMPLES: &[(&str, &str)] = &[
        ("RELEASE", "7"),
        ("NEXT", "8"),
        ("ROLLOUT", "3"),
        ("ID", "pc-001"),
        ("NAME", "reader"),
        ("FILE", "ferry.toml"),
        ("c", "agent.toml"),
        ("n", "2"),
    ];

    /// clap's own consistency checks (unique argument names, valid defaults…, which otherwise
    /// run only when a command is first parsed), no subcommand flag clashing with a global one
    /// (`--server`, `--token`, `--json`, …), and every subcommand's help.
    #[test]
    fn the_command_tree_is_consistent() {
        let paths = doc_commands::check_tree::<Cli>();
        assert!(paths.len() >= 40, "{paths:?}");
    }

    /// Every command line the READMEs show parses.
    #[test]
    fn every_documented_invocation_parses() {
        let checked = doc_commands::check_documented::<Cli>("ferry", &DOCS, SAMPLES);
        assert!(checked >= 50, "only {checked} documented invocations found");
    }
}
