//! `ferry-bench seed`: fills a Ferry data directory (SQLite) or PostgreSQL database with a
//! catalogue, a group with an approved release and N accepted devices whose state matches the
//! check-in body it writes, so that a load generator (`bench/checkin.sh` drives `wrk`) measures
//! steady-state check-ins. Credentials are written one per line to `tokens.txt`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ferry_core::{Artifact, Classification, DeviceStatus, RebootBehaviour, Release, ReleaseId, ReleaseKind};
use ferry_server::auth::{hash_secret, new_secret};
use ferry_server::{App, Config};
use ferry_store::{Approval, ApprovalAction, CheckinRecord, Enrollment, Group, Platform, Product};
use futures::StreamExt;

#[derive(Parser)]
#[command(about = "Seed a Ferry data set for benchmarks")]
enum Cmd {
    /// Create the data set.
    Seed(SeedArgs),
}

#[derive(clap::Args)]
struct SeedArgs {
    /// Number of devices to enroll.
    #[arg(long, default_value_t = 100_000)]
    devices: u32,
    /// Server data directory (SQLite unless --database-url is given).
    #[arg(long)]
    data_dir: PathBuf,
    /// PostgreSQL URL; empty for SQLite.
    #[arg(long, default_value = "")]
    database_url: String,
    /// Where to write the credentials (one per line) and the check-in body.
    #[arg(long)]
    out: PathBuf,
    /// A file to publish as the offered release's artifact (default: a few bytes).
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cmd::Seed(args) = Cmd::parse();
    let config =
        Config { data_dir: args.data_dir.clone(), database_url: args.database_url.clone(), ..Config::default() };
    let app = App::open(config).await.context("opening the server's storage")?;
    let store = app.state().store.clone();
    let now = 1_700_000_000;
    let product: ferry_core::ProductName = "bench-agent".parse()?;
    let platform: ferry_core::PlatformName = "linux-x86_64".parse()?;
    let group: ferry_core::GroupName = "bench".parse()?;
    store.create_product(&Product { name: product.clone(), description: String::new(), created_at: now }).await?;
    store.create_platform(&Platform { name: platform.clone(), description: String::new(), created_at: now }).await?;
    store
        .create_group(&Group {
            name: group.clone(),
            description: String::new(),
            checkin_interval_secs: 3600,
            checkin_jitter: 0.1,
            enrollment_key_hash: None,
            created_at: now,
        })
        .await?;
    // One approved release the devices already run, and one they are offered: the check-in
    // answer carries a real offer, whose artifact the download benchmark fetches.
    let content = &app.state().content;
    let small = content
        .put(14, None, Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(b"bench artifact"))])))
        .await?;
    let offered = match &args.artifact {
        Some(path) => {
            let file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
            let len = file.metadata().await?.len();
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
            content.put(len, None, Box::pin(stream)).await?
        }
        None => small.clone(),
    };
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("artifact.sha256"), offered.sha256.as_str())?;
    for (version, put) in [("1.0", &small), ("1.1", &offered)] {
        store.record_content(&put.sha256, put.length, now).await?;
        let release = Release {
            id: ReleaseId(0),
            product: product.clone(),
            version: version.parse()?,
            kind: ReleaseKind::Full,
            platforms: vec![platform.clone()],
            artifacts: vec![Artifact {
                name: "agent.tar.gz".parse()?,
                length: put.length,
                sha256: put.sha256.clone(),
                media_type: "application/gzip".into(),
                custom: Default::default(),
            }],
            required: false,
            reboot: RebootBehaviour::None,
            classification: Classification::Feature,
            notes: String::new(),
            dependencies: vec![],
            supersedes: vec![],
            no_update_versions: vec![],
            applies_to: None,
            counter: 0,
            created_at: 0,
        };
        let r = store.create_release(&release, now).await?;
        store
            .set_approval(&Approval {
                release: r.id,
                group: group.clone(),
                action: ApprovalAction::Install,
                deadline: None,
                approved_by: "bench".into(),
                approved_at: now,
            })
            .await?;
    }
    let installed: BTreeMap<_, _> = [(product.clone(), "1.0".parse()?)].into();
    let body = serde_json::json!({
        "platform": platform, "installed": installed, "agent_version": "bench", "boot_id": "boot-1"
    });
    std::fs::write(args.out.join("checkin.json"), serde_json::to_vec(&body)?)?;

    let store: Arc<dyn ferry_store::Store> = store;
    let tokens: Vec<String> = futures::stream::iter(0..args.devices)
        .map(|i| {
            let store = store.clone();
            let (group, platform, installed) = (group.clone(), platform.clone(), installed.clone());
            async move {
                let secret = new_secret(ferry_api::DEVICE_TOKEN_PREFIX);
                let id: ferry_core::DeviceId = format!("bench-{i:07}").parse()?;
                store
                    .enroll_device(&Enrollment {
                        id: id.clone(),
                        credential_hash: hash_secret(&secret),
                        status: DeviceStatus::Accepted,
                        groups: vec![group],
                        origin: "ferry-bench".into(),
                        now,
                    })
                    .await?;
                store
                    .record_checkin(
                        &id,
                        &CheckinRecord {
                            platform: Some(platform),
                            installed,
                            configs: BTreeMap::new(),
                            attributes: BTreeMap::new(),
                            agent_version: Some("bench".into()),
                            boot_id: Some("boot-1".into()),
                            prev_boot_id: None,
                            last_contact: now,
                            conflict: None,
                        },
                    )
                    .await?;
                anyhow::Ok(secret)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    std::fs::write(args.out.join("tokens.txt"), tokens.join("\n") + "\n")?;
    eprintln!("seeded {} devices; credentials in {}", tokens.len(), args.out.join("tokens.txt").display());
    Ok(())
}
