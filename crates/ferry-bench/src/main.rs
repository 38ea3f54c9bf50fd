//! `ferry-bench seed`: fills a Ferry data directory (SQLite) or PostgreSQL database with a
//! catalogue, a group with an approved release and N accepted devices whose state matches the
//! check-in body it writes, so that a load generator (`bench/checkin.sh` drives `wrk`) measures
//! steady-state check-ins. Credentials are written one per line to `tokens.txt`. With `--sign`
//! the releases are also signed into the image repository (root and targets signed by keys
//! made here, snapshot and timestamp by the server's online keys), so check-ins carry real
//! director metadata.
//!
//! `ferry-bench warm`: checks every seeded device in once, many at a time, and reports that
//! first-contact rate (the first check-in of a device issues its director chain) with the
//! count of answers per HTTP status, so the wrk runs after it measure steady state.
//!
//! `ferry-bench director-cost`: how long building and signing one device's director chain
//! takes (`ferry_server::trust::director::sign_chain`), next to one ed25519 signature.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ferry_core::{
    Approval, ApprovalAction, Artifact, Classification, DeviceStatus, Group, Platform, Product, RebootBehaviour,
    Release, ReleaseId, ReleaseKind,
};
use ferry_server::auth::{hash_secret, new_secret};
use ferry_server::{App, Config};
use ferry_store::{CheckinRecord, Enrollment};
use futures::StreamExt;

#[derive(Parser)]
#[command(about = "Seed a Ferry data set for benchmarks")]
enum Cmd {
    /// Create the data set.
    Seed(SeedArgs),
    /// Time building and signing one device's director metadata.
    DirectorCost(CostArgs),
    /// Check every seeded device in once and report the first-contact rate.
    Warm(WarmArgs),
}

#[derive(clap::Args)]
struct WarmArgs {
    /// The server's base URL.
    #[arg(long)]
    url: String,
    /// The directory `seed --out` wrote (tokens.txt, checkin.json).
    #[arg(long)]
    dir: PathBuf,
    /// Check-ins in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(clap::Args)]
struct CostArgs {
    /// Chains signed per round.
    #[arg(long, default_value_t = 2000)]
    iterations: u32,
    /// Rounds; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: u32,
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
    /// Sign the releases into the image repository.
    #[arg(long)]
    sign: bool,
    /// Also publish release 1.2, approved for no one, for a staged rollout to start on
    /// (bench/rollout.sh); its id goes to rollout-release.txt.
    #[arg(long)]
    rollout_release: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cmd::parse() {
        Cmd::Seed(args) => seed(args).await,
        Cmd::DirectorCost(args) => director_cost(&args),
        Cmd::Warm(args) => warm(args).await,
    }
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
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
            test: false,
            filter: None,
            parent: None,
            window: None,
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
    let mut releases = Vec::new();
    let versions: &[&str] = if args.rollout_release { &["1.0", "1.1", "1.2"] } else { &["1.0", "1.1"] };
    for (version, put) in versions.iter().map(|v| (*v, if *v == "1.1" { &offered } else { &small })) {
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
            archived: false,
            bad: None,
        };
        let r = store.create_release(&release, now).await?;
        releases.push(r.clone());
        if version == "1.2" {
            std::fs::write(args.out.join("rollout-release.txt"), r.id.0.to_string())?;
            continue;
        }
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
    if args.sign {
        sign_releases(&app, &releases).await?;
    }
    // The offered release, which status events (bench/soak.sh) refer to.
    std::fs::write(args.out.join("offered-release.txt"), releases[1].id.0.to_string())?;
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
                        secret_hash: None,
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

/// Publishes root 1 and targets 1 listing `releases`, with a snapshot and timestamp signed by
/// the server's online keys, as a publisher's push would.
async fn sign_releases(app: &App, releases: &[Release]) -> anyhow::Result<()> {
    use ferry_store::{MetadataFile, Repo};
    use ferry_tuf::metadata::sign;
    use ferry_tuf::{KeyKind, MetaFile, Root, SigningKey, Snapshot, Targets, Timestamp};
    let st = app.state();
    let keys = st.keys();
    let now = ferry_core::time::now();
    let expires = ferry_tuf::time::format_expires(now + 365 * 86_400);
    let root_key = SigningKey::generate(KeyKind::Ed25519)?;
    let targets_key = SigningKey::generate(KeyKind::Ed25519)?;
    let root = Root::new(
        1,
        expires.clone(),
        &[
            ("root", vec![root_key.public().clone()], 1),
            ("targets", vec![targets_key.public().clone()], 1),
            ("snapshot", vec![keys.snapshot.public().clone()], 1),
            ("timestamp", vec![keys.timestamp.public().clone()], 1),
        ],
    );
    let mut targets = Targets::new(1, expires.clone());
    for release in releases {
        for artifact in &release.artifacts {
            targets
                .targets
                .insert(release.target_path(&artifact.name), ferry_server::trust::image::target_for(release, artifact));
        }
    }
    let snapshot = Snapshot::new(1, expires.clone(), [("targets.json".to_owned(), MetaFile::version_only(1))].into());
    let snapshot_bytes = sign(&snapshot, &[&keys.snapshot])?;
    let timestamp = Timestamp::new(1, expires, MetaFile::of_bytes(1, &snapshot_bytes));
    let file = |role: &str, bytes: Vec<u8>| MetadataFile {
        repo: Repo::Image,
        role: role.into(),
        version: 1,
        bytes,
        created_at: now,
    };
    st.store
        .put_metadata(&[
            file("root", sign(&root, &[&root_key])?),
            file("targets", sign(&targets, &[&targets_key])?),
            file("snapshot", snapshot_bytes),
            file("timestamp", sign(&timestamp, &[&keys.timestamp])?),
        ])
        .await?;
    Ok(())
}

async fn warm(args: WarmArgs) -> anyhow::Result<()> {
    use std::time::Instant;
    let tokens = std::fs::read_to_string(args.dir.join("tokens.txt")).context("reading tokens.txt")?;
    let body = bytes::Bytes::from(std::fs::read(args.dir.join("checkin.json")).context("reading checkin.json")?);
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let url = format!("{}/device/v1/checkin", args.url.trim_end_matches('/'));
    let start = Instant::now();
    let answers: Vec<Result<u16, String>> = futures::stream::iter(tokens.lines().filter(|t| !t.is_empty()))
        .map(|token| {
            let request =
                client.post(&url).bearer_auth(token).header("content-type", "application/json").body(body.clone());
            async move {
                match request.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        resp.bytes().await.map(|_| status).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    let mut statuses = BTreeMap::<String, usize>::new();
    for answer in &answers {
        let key = match answer {
            Ok(status) => status.to_string(),
            Err(_) => "error".to_owned(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let counts: Vec<String> = statuses.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "first contact: {} check-ins in {secs:.2} s, {:.0}/s ({} at once); statuses: {}",
        answers.len(),
        answers.len() as f64 / secs,
        args.concurrency,
        counts.join(" ")
    );
    if let Some(Err(e)) = answers.iter().find(|a| a.is_err()) {
        anyhow::bail!("a check-in failed: {e}");
    }
    if statuses.keys().any(|k| !k.starts_with('2')) {
        anyhow::bail!("some first check-ins were not answered 2xx: {}", counts.join(" "));
    }
    Ok(())
}

fn director_cost(args: &CostArgs) -> anyhow::Result<()> {
    use std::time::Instant;
    let dir = tempfile_dir()?;
    let keys = ferry_server::trust::OnlineKeys::load_or_create(&dir)?;
    let device: ferry_core::DeviceId = "bench-0000001".parse()?;
    // A typical instruction: one release with two artifacts.
    let release = Release {
        id: ReleaseId(7),
        product: "gateway-firmware".parse()?,
        version: "4.2.1".parse()?,
        kind: ReleaseKind::Full,
        platforms: vec!["arm64".parse()?],
        artifacts: ["rootfs.img", "bootloader.bin"]
            .iter()
            .map(|name| {
                Ok(Artifact {
                    name: name.parse()?,
                    length: 268_435_456,
                    sha256: ferry_core::Sha256::from_bytes([7; 32]),
                    media_type: "application/octet-stream".into(),
                    custom: Default::default(),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        required: true,
        reboot: RebootBehaviour::Required,
        classification: Classification::Security,
        notes: String::new(),
        dependencies: vec![],
        supersedes: vec![],
        no_update_versions: vec![],
        applies_to: None,
        counter: 42,
        created_at: 0,
        archived: false,
        bad: None,
    };
    let now = ferry_core::time::now();
    let (mut chain, mut single) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..args.rounds {
        let start = Instant::now();
        for i in 0..args.iterations {
            let entries = ferry_server::trust::director::entries(&device, [&release]);
            let files = ferry_server::trust::director::sign_chain(
                &keys,
                &device,
                u64::from(i) + 1,
                now,
                86_400,
                entries,
                Vec::new(),
            )?;
            bytes = files.targets.len() + files.snapshot.len() + files.timestamp.len();
        }
        chain.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(args.iterations));
        let start = Instant::now();
        for _ in 0..args.iterations {
            std::hint::black_box(keys.director.sign(b"one ed25519 signature over a short message")?);
        }
        single.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(args.iterations));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (c, s) = (median(&mut chain), median(&mut single));
    println!("director chain (targets + snapshot + timestamp, 1 release, 2 artifacts, {bytes} bytes): {c:.1} us median of {} rounds x {}", args.rounds, args.iterations);
    println!("one ed25519 signature: {s:.1} us; chain / signature = {:.2}", c / s);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
