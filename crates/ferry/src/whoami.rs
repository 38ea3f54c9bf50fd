//! `ferry whoami`: which token the CLI is using.

use crate::context::Context;
use crate::output::say;

/// Shows the name and role of the admin token in use.
#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {}

impl WhoamiArgs {
    /// Runs the command.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let me = ctx.admin()?.whoami().await?;
        ctx.out.show(&me, |me| say!("{} ({})", me.name, me.role.as_str()))
    }
}
