//! `ferry product`: the software products releases belong to.

use ferry_api::ProductSpec;
use ferry_core::{Product, ProductName};

use crate::context::Context;
use crate::output::print_described;
use crate::output::say;

/// Manages products.
#[derive(Debug, clap::Args)]
pub struct ProductArgs {
    #[command(subcommand)]
    command: ProductCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ProductCommand {
    /// Creates a product.
    Create {
        /// Unique name, e.g. vpn-client.
        name: ProductName,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists products.
    List,
    /// Shows one product.
    Show {
        /// Its name.
        name: ProductName,
    },
}

fn print(products: &[Product]) {
    print_described(products.iter().map(|p| (p.name.as_str(), p.description.as_str(), p.created_at)));
}

impl ProductArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let client = ctx.admin()?;
        match self.command {
            ProductCommand::Create { name, description } => {
                let product = client.create_product(&ProductSpec { name, description }).await?;
                ctx.out.show(&product, |p| say!("created product {}", p.name))
            }
            ProductCommand::List => ctx.out.show(&client.list_products().await?, |ps| print(ps)),
            ProductCommand::Show { name } => {
                ctx.out.show(&client.get_product(&name).await?, |p| print(std::slice::from_ref(p)))
            }
        }
    }
}
