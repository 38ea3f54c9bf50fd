//! `ferry approve`, `ferry decline`, `ferry unapprove` and `ferry approval list`: which groups
//! get which releases.

use ferry_api::ApprovalSpec;
use ferry_core::{Approval, ApprovalAction, GroupName, ReleaseId};

use crate::context::Context;
use crate::output::say;
use crate::output::{print_table, wire_name};
use crate::time::{format_opt, format_unix};
use crate::values::{deadline, release_id};

/// The release and group an approval command is about.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Release id (`ferry release list` shows them).
    #[arg(value_parser = release_id)]
    release: ReleaseId,
    /// The group.
    #[arg(long)]
    group: GroupName,
}

/// Approves a release for installation on a group's devices.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    target: Target,
    /// Time after which devices install without consent: RFC 3339
    /// (2025-01-31T12:00:00Z), a date, or unix seconds.
    #[arg(long, value_parser = deadline)]
    deadline: Option<i64>,
}

/// Declines a release for a group: its devices are never offered it.
#[derive(Debug, clap::Args)]
pub struct DeclineArgs {
    #[command(flatten)]
    target: Target,
}

/// Removes a group's approval or decline of a release.
#[derive(Debug, clap::Args)]
pub struct UnapproveArgs {
    #[command(flatten)]
    target: Target,
}

/// Lists approvals.
#[derive(Debug, clap::Args)]
pub struct ApprovalArgs {
    #[command(subcommand)]
    command: ApprovalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ApprovalCommand {
    /// Lists approvals, optionally of one release and/or one group.
    List {
        /// Only approvals of this release.
        #[arg(long, value_parser = release_id)]
        release: Option<ReleaseId>,
        /// Only approvals for this group.
        #[arg(long)]
        group: Option<GroupName>,
    },
}

async fn set(ctx: &Context, target: Target, action: ApprovalAction, deadline: Option<i64>) -> anyhow::Result<()> {
    let approval = ctx.admin()?.set_approval(target.release, &target.group, &ApprovalSpec { action, deadline }).await?;
    ctx.out.show(&approval, |a| {
        let verb = match a.action {
            ApprovalAction::Install => "approved",
            ApprovalAction::Decline => "declined",
        };
        let by = a.deadline.map(|d| format!(", to install by {}", format_unix(d))).unwrap_or_default();
        say!("{verb} release {} for group {}{by}", a.release, a.group);
    })
}

impl ApproveArgs {
    /// Runs the command.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        set(ctx, self.target, ApprovalAction::Install, self.deadline).await
    }
}

impl DeclineArgs {
    /// Runs the command.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        set(ctx, self.target, ApprovalAction::Decline, None).await
    }
}

impl UnapproveArgs {
    /// Runs the command.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let Target { release, group } = self.target;
        ctx.admin()?.delete_approval(release, &group).await?;
        let removed = serde_json::json!({ "release": release, "group": group, "removed": true });
        ctx.out.show(&removed, |_| say!("removed the approval of release {release} for group {group}"))
    }
}

impl ApprovalArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let ApprovalCommand::List { release, group } = self.command;
        let client = ctx.admin()?;
        let approvals = match release {
            // The server filters by release or by group; both at once are filtered here.
            Some(id) => {
                let mut all = client.release_approvals(id).await?;
                all.retain(|a| group.as_ref().is_none_or(|g| &a.group == g));
                all
            }
            None => client.list_approvals(group.as_ref()).await?,
        };
        ctx.out.show(&approvals, |a| print(a))
    }
}

fn print(approvals: &[Approval]) {
    print_table(
        &["release", "group", "action", "deadline", "by", "at"],
        approvals.iter().map(|a| {
            vec![
                a.release.to_string(),
                a.group.to_string(),
                wire_name(&a.action),
                format_opt(a.deadline),
                a.approved_by.clone(),
                format_unix(a.approved_at),
            ]
        }),
    );
}
