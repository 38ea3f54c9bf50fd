//! `ferry rollout create|list|show|pause|resume|advance|cancel`: staged rollouts.

use ferry_api::{RolloutDetail, RolloutSpec};
use ferry_core::rollout::{format_percent, parse_percent, Action, Limits, Rate, Rollout, RolloutId, Wave, Waves};
use ferry_core::{GroupName, ReleaseId};

use crate::context::Context;
use crate::exit::UsageError;
use crate::output::{list, print_fields, print_table, say, yes_no};
use crate::time::{format_duration, format_unix, parse_duration};
use crate::values::release_id;

/// Staged rollouts: a release to groups in waves that stop themselves when devices fail.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RolloutCommand {
    /// Starts a staged rollout of a release to groups; its first wave opens at once.
    Create(CreateArgs),
    /// Lists rollouts, newest first.
    List {
        /// Only rollouts of this release.
        #[arg(long, value_parser = release_id)]
        release: Option<ReleaseId>,
        /// Only running, gated or paused rollouts.
        #[arg(long)]
        active: bool,
    },
    /// Shows a rollout: its waves with their counts, and its timeline.
    Show {
        /// Rollout id.
        #[arg(value_parser = rollout_id)]
        id: RolloutId,
    },
    /// Stops new grants at once, in the running wave too; devices already granted go on.
    Pause(ActionArgs),
    /// Grants again after a pause.
    Resume(ActionArgs),
    /// Opens the next wave now (or completes from the last one), whatever the thresholds say.
    Advance(ActionArgs),
    /// Stops the rollout for good: devices that have not started skip the release.
    Cancel(ActionArgs),
}

/// Arguments of `ferry rollout create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Release id (`ferry release list` shows them).
    #[arg(value_parser = release_id)]
    release: ReleaseId,
    /// A group whose devices the rollout targets; repeat for several.
    #[arg(long = "target", required = true)]
    targets: Vec<GroupName>,
    /// The waves: first any groups whose members go first (pilot rings), then cumulative
    /// shares of the target in percent, the last 100; e.g. pilot,10,50,100.
    #[arg(long, default_value = "1,10,50,100")]
    waves: String,
    /// How long each wave runs before the next may open: one duration for every wave, or
    /// one per wave separated by commas (e.g. 1h,4h,1d,0).
    #[arg(long, default_value = "1h")]
    soak: String,
    /// Percent of a wave's devices that must have committed before the next wave opens.
    #[arg(long, default_value = "95", value_parser = percent)]
    success: u32,
    /// Percent of the admitted devices whose failure pauses the rollout ...
    #[arg(long, default_value = "5", value_parser = percent)]
    failure: u32,
    /// ... once at least this many have failed.
    #[arg(long, default_value_t = 3)]
    failure_min: u32,
    /// A wave (numbered from 1, at least 2) that opens only by `ferry rollout advance`;
    /// repeat for several.
    #[arg(long = "gate")]
    gates: Vec<u32>,
    /// At most N devices granted per period, e.g. 500/1h.
    #[arg(long, value_parser = rate)]
    rate: Option<Rate>,
    /// At most this many devices with the update under way at once.
    #[arg(long)]
    max_in_progress: Option<u32>,
    /// An update not committed this long after its grant or last progress report counts as
    /// failed (waiting for a maintenance window or a reboot does not count).
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    commit_timeout: u64,
    /// Ignore the rate limits.
    #[arg(long)]
    emergency: bool,
}

/// A rollout and a note for its timeline.
#[derive(Debug, clap::Args)]
struct ActionArgs {
    /// Rollout id (`ferry rollout list` shows them).
    #[arg(value_parser = rollout_id)]
    id: RolloutId,
    /// Why, recorded in the rollout's timeline.
    #[arg(long, default_value = "")]
    note: String,
}

fn rollout_id(s: &str) -> Result<RolloutId, String> {
    RolloutId::parse(s).ok_or_else(|| format!("{s:?} is not a rollout id: rollout ids are positive whole numbers"))
}

fn percent(s: &str) -> Result<u32, String> {
    parse_percent(s).ok_or_else(|| format!("{s:?} is not a percentage from 0 to 100 with at most two decimals"))
}

fn rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("{s:?} is not a rate; give grants per period, e.g. 500/1h or 20/10m");
    let (count, period) = s.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period_secs = parse_duration(period)?;
    Ok(Rate { count, period_secs })
}

impl CreateArgs {
    fn spec(self) -> Result<RolloutSpec, UsageError> {
        // Leading entries that are not numbers are groups: the pilot waves.
        let entries: Vec<&str> = self.waves.split(',').map(str::trim).collect();
        let pilots = entries.iter().take_while(|e| e.parse::<f64>().is_err()).count();
        let groups: Vec<GroupName> = entries[..pilots]
            .iter()
            .map(|g| {
                g.parse::<GroupName>()
                    .map_err(|e| UsageError(format!("--waves: {g:?} is neither a percentage nor a group name: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let shares = Waves::parse(&entries[pilots..].join(","))
            .map_err(|e| UsageError(format!("--waves: {e} (after any pilot groups)")))?;
        let soaks: Vec<u64> = self
            .soak
            .split(',')
            .map(parse_duration)
            .collect::<Result<_, _>>()
            .map_err(|e| UsageError(format!("--soak: {e}")))?;
        let n = groups.len() + shares.shares().len();
        if soaks.len() != 1 && soaks.len() != n {
            return Err(UsageError(format!(
                "--soak gives {} durations for {n} waves; give one for all or one per wave",
                soaks.len()
            )));
        }
        for &gate in &self.gates {
            if gate < 2 || gate as usize > n {
                return Err(UsageError(format!(
                    "--gate {gate}: gate a wave from 2 to {n}; wave 1 opens when the rollout is created"
                )));
            }
        }
        let plan: Vec<(Option<GroupName>, u32)> =
            groups.into_iter().map(|g| (Some(g), 0)).chain(shares.shares().iter().map(|&s| (None, s))).collect();
        let waves = plan
            .into_iter()
            .enumerate()
            .map(|(i, (group, share))| Wave {
                group,
                share,
                soak_secs: if soaks.len() == 1 { soaks[0] } else { soaks[i] },
                success: self.success,
                failure: self.failure,
                failure_min: self.failure_min,
                manual_gate: self.gates.contains(&(i as u32 + 1)),
            })
            .collect();
        Ok(RolloutSpec {
            release: self.release,
            targets: self.targets,
            waves,
            limits: Limits { rate: self.rate, max_in_progress: self.max_in_progress },
            commit_timeout_secs: self.commit_timeout,
            emergency: self.emergency,
        })
    }
}

impl RolloutArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let act = |args: ActionArgs, action: Action| async move {
            let detail = ctx.admin()?.rollout_action(args.id, action, &args.note).await?;
            ctx.out.show(&detail, |d| {
                say!("rollout {}: {}", d.rollout.id, state_line(&d.rollout));
            })
        };
        match self.command {
            RolloutCommand::Create(args) => {
                let detail = ctx.admin()?.create_rollout(&args.spec()?).await?;
                ctx.out.created(&detail, detail.rollout.id, |d| {
                    say!(
                        "created rollout {} of release {} ({} {})",
                        d.rollout.id,
                        d.rollout.release,
                        d.product,
                        d.version
                    );
                    print_detail(d);
                })
            }
            RolloutCommand::List { release, active } => {
                let rollouts = ctx.admin()?.list_rollouts(release, active).await?;
                ctx.out.show(&rollouts, |rs| print_list(rs))
            }
            RolloutCommand::Show { id } => {
                let detail = ctx.admin()?.get_rollout(id).await?;
                ctx.out.show(&detail, print_detail)
            }
            RolloutCommand::Pause(args) => act(args, Action::Pause).await,
            RolloutCommand::Resume(args) => act(args, Action::Resume).await,
            RolloutCommand::Advance(args) => act(args, Action::Advance).await,
            RolloutCommand::Cancel(args) => act(args, Action::Cancel).await,
        }
    }
}

fn state_line(r: &Rollout) -> String {
    format!("{}, wave {} of {}", r.state.as_str(), r.wave + 1, r.waves.len())
}

fn print_list(rollouts: &[Rollout]) {
    print_table(
        &["id", "release", "targets", "state", "wave", "created"],
        rollouts.iter().map(|r| {
            vec![
                r.id.to_string(),
                r.release.to_string(),
                list(&r.targets),
                r.state.as_str().to_owned(),
                format!("{} of {}", r.wave + 1, r.waves.len()),
                format_unix(r.created_at),
            ]
        }),
    );
}

fn print_detail(d: &RolloutDetail) {
    let r = &d.rollout;
    let limits = match (r.limits.rate, r.limits.max_in_progress) {
        (None, None) => "none".to_owned(),
        (rate, cap) => [
            rate.map(|x| format!("{} per {}", x.count, format_duration(x.period_secs))),
            cap.map(|c| format!("{c} in progress")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
    };
    print_fields(&[
        ("rollout", r.id.to_string()),
        ("release", format!("{} ({} {})", r.release, d.product, d.version)),
        ("targets", list(&r.targets)),
        ("state", state_line(r)),
        ("wave opened", format_unix(r.wave_started_at)),
        ("limits", limits),
        ("commit timeout", format_duration(r.commit_timeout_secs)),
        ("emergency", yes_no(r.emergency)),
        ("created", format!("{} by {}", format_unix(r.created_at), r.created_by)),
    ]);
    say!("");
    print_table(
        &[
            "wave",
            "share",
            "soak",
            "success",
            "failure",
            "gate",
            "devices",
            "granted",
            "in progress",
            "committed",
            "failed",
        ],
        r.waves.iter().zip(&d.waves).enumerate().map(|(i, (w, t))| {
            let failed = if t.timed_out > 0 {
                format!("{} ({} timed out)", t.failed, t.timed_out)
            } else {
                t.failed.to_string()
            };
            vec![
                format!("{}{}", i + 1, if i as u32 == r.wave { " *" } else { "" }),
                w.group.as_ref().map_or_else(|| format!("{}%", format_percent(w.share)), |g| format!("group {g}")),
                format_duration(w.soak_secs),
                format!("{}%", format_percent(w.success)),
                format!("{}% and {}", format_percent(w.failure), w.failure_min),
                yes_no(w.manual_gate),
                t.eligible.to_string(),
                t.granted.to_string(),
                t.in_progress.to_string(),
                t.committed.to_string(),
                failed,
            ]
        }),
    );
    say!("");
    print_table(
        &["at", "state", "wave", "why", "by"],
        d.timeline.iter().map(|e| {
            vec![
                format_unix(e.at),
                e.state.as_str().to_owned(),
                (e.wave + 1).to_string(),
                e.cause.to_string(),
                e.by.clone().unwrap_or_default(),
            ]
        }),
    );
}
