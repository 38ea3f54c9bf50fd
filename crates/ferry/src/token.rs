//! `ferry token`: admin tokens and their roles.

use ferry_api::TokenSpec;
use ferry_core::{AdminToken, Role};

use crate::context::Context;
use crate::output::print_table;
use crate::output::say;
use crate::time::{format_opt, format_unix};
use crate::values::wire_enum;

/// Manages admin tokens.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Creates a token and prints its secret (shown only this once).
    Create {
        /// Human name, e.g. ci or alice.
        name: String,
        /// admin, operator or viewer.
        #[arg(long, value_parser = wire_enum::<Role>)]
        role: Role,
    },
    /// Lists tokens, revoked ones included.
    List,
    /// Revokes a token; it stops working at once. The last admin token cannot be revoked.
    Revoke {
        /// Token id (`ferry token list` shows them).
        id: i64,
    },
    /// Creates a new admin token directly in the server's database, when no admin token is
    /// left to use; run it on the server, as the server's user. Needs no token.
    Recover(crate::serve::RecoverArgs),
}

impl TokenArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        if let TokenCommand::Recover(args) = self.command {
            return args.run(ctx).await;
        }
        let client = ctx.admin()?;
        match self.command {
            TokenCommand::Create { name, role } => {
                let created = client.create_token(&TokenSpec { name, role }).await?;
                ctx.out.created(&created, &created.secret, |c| {
                    say!("created token {} ({}) with id {}", c.token.name, c.token.role.as_str(), c.token.id);
                    say!("secret (shown only now):\n\n    {}\n", c.secret);
                })
            }
            TokenCommand::List => ctx.out.show(&client.list_tokens().await?, |ts| print(ts)),
            TokenCommand::Revoke { id } => {
                client.revoke_token(id).await?;
                let revoked = serde_json::json!({ "id": id, "revoked": true });
                ctx.out.show(&revoked, |_| say!("revoked token {id}"))
            }
            TokenCommand::Recover(_) => unreachable!("handled above, without a client"),
        }
    }
}

fn print(tokens: &[AdminToken]) {
    print_table(
        &["id", "name", "role", "created", "revoked"],
        tokens.iter().map(|t| {
            vec![
                t.id.to_string(),
                t.name.clone(),
                t.role.as_str().to_owned(),
                format_unix(t.created_at),
                format_opt(t.revoked_at),
            ]
        }),
    );
}
