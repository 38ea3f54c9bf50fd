//! `ferry content upload`: puts artifact bytes on the server, addressed by their SHA-256.

use std::path::{Path, PathBuf};

use ferry_api::ContentInfo;
use ferry_client::{hash_file, AdminClient};
use indicatif::{ProgressBar, ProgressStyle};

use crate::context::Context;
use crate::output::say;

/// Manages artifact content.
#[derive(Debug, clap::Args)]
pub struct ContentArgs {
    #[command(subcommand)]
    command: ContentCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ContentCommand {
    /// Uploads a file, unless the server already has identical content. Prints its sha256.
    Upload {
        /// The file.
        file: PathBuf,
    },
}

impl ContentArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            ContentCommand::Upload { file } => {
                let info = upload(&ctx.admin()?, &file).await?;
                ctx.out.created(&info, &info.sha256, |i| {
                    let what = if i.created { "uploaded" } else { "already stored" };
                    say!("{what}: {} ({} bytes)", i.sha256, i.length);
                })
            }
        }
    }
}

/// Hashes `file`, then uploads it unless the server already stores content with that digest
/// and length. Progress bars show on a terminal only.
pub async fn upload(client: &AdminClient, file: &Path) -> anyhow::Result<ContentInfo> {
    let name = file.display().to_string();
    let length = std::fs::metadata(file).map_err(crate::exit::local_file("read", file))?.len();

    let bar = byte_bar(length, format!("hashing {name}"));
    let (sha256, hashed) = {
        let bar = bar.clone();
        hash_file(file, move |n| bar.set_position(n)).await?
    };
    bar.finish_and_clear();

    if client.content_exists(&sha256).await? == Some(hashed) {
        return Ok(ContentInfo { sha256, length: hashed, created: false });
    }

    let bar = byte_bar(hashed, format!("uploading {name}"));
    let progress = bar.clone();
    let info = client.upload_content_file(file, Some(&sha256), move |n| progress.set_position(n)).await;
    bar.finish_and_clear();
    Ok(info?)
}

fn byte_bar(length: u64, message: String) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(length).with_style(style).with_message(message)
}
