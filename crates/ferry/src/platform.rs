//! `ferry platform`: the client types and device models releases install on.

use ferry_api::PlatformSpec;
use ferry_core::{Platform, PlatformName};

use crate::context::Context;
use crate::output::print_described;
use crate::output::say;

/// Manages platforms.
#[derive(Debug, clap::Args)]
pub struct PlatformArgs {
    #[command(subcommand)]
    command: PlatformCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PlatformCommand {
    /// Creates a platform.
    Create {
        /// Unique name, e.g. windows-x86_64 or ipphone-8841.
        name: PlatformName,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists platforms.
    List,
    /// Shows one platform.
    Show {
        /// Its name.
        name: PlatformName,
    },
}

fn print(platforms: &[Platform]) {
    print_described(platforms.iter().map(|p| (p.name.as_str(), p.description.as_str(), p.created_at)));
}

impl PlatformArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let client = ctx.admin()?;
        match self.command {
            PlatformCommand::Create { name, description } => {
                let platform = client.create_platform(&PlatformSpec { name, description }).await?;
                ctx.out.show(&platform, |p| say!("created platform {}", p.name))
            }
            PlatformCommand::List => ctx.out.show(&client.list_platforms().await?, |ps| print(ps)),
            PlatformCommand::Show { name } => {
                ctx.out.show(&client.get_platform(&name).await?, |p| print(std::slice::from_ref(p)))
            }
        }
    }
}
