//! `ferry group`: device groups (static or dynamic, in a tree), their check-in schedule and
//! enrollment keys, and the preview of a filter.

use ferry_api::{GroupSpec, GroupUpdate, GroupView};
use ferry_core::GroupName;

use crate::context::Context;
use crate::exit::usage;
use crate::output::say;
use crate::output::{print_fields, print_table, yes_no};
use crate::time::{format_duration, format_unix, parse_duration};

/// Manages device groups.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

/// Check-in schedule flags, shared by `create` and `set`.
#[derive(Debug, clap::Args)]
struct Schedule {
    /// Base check-in interval: seconds or e.g. 30m, 1h, 1h30m (default: the server's).
    #[arg(long, value_parser = parse_duration)]
    interval: Option<u64>,
    /// Relative jitter in [0, 1]: each device waits interval × [1 − jitter, 1 + jitter].
    #[arg(long)]
    jitter: Option<f64>,
}

/// Maintenance-window flags, shared by `create` and `set`.
#[derive(Debug, clap::Args)]
struct WindowArgs {
    /// When staged rollouts may grant the group's devices updates (emergencies aside), e.g.
    /// 'Mon-Fri 22:00-06:00; Sat,Sun 00:00-24:00'; a period whose end is not after its start
    /// runs into the next day.
    #[arg(long, value_name = "PERIODS")]
    window: Option<String>,
    /// The IANA time zone of --window, e.g. Asia/Tokyo.
    #[arg(long, default_value = "UTC", requires = "window")]
    time_zone: String,
}

impl WindowArgs {
    fn window(self) -> Option<ferry_core::MaintenanceWindow> {
        self.window.map(|periods| ferry_core::MaintenanceWindow { time_zone: self.time_zone, periods })
    }
}

#[derive(Debug, clap::Subcommand)]
enum GroupCommand {
    /// Creates a group and prints its enrollment key (shown only this once). With --filter
    /// the group is dynamic: its members are the devices the filter matches, and it has no key.
    Create {
        /// Unique name.
        name: GroupName,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        schedule: Schedule,
        /// Makes the group dynamic, e.g. 'platform = "linux-x86_64" and attr.site = "osaka"'.
        #[arg(long)]
        filter: Option<String>,
        /// The group whose approvals also apply to this group's devices.
        #[arg(long)]
        parent: Option<GroupName>,
        #[command(flatten)]
        window: WindowArgs,
    },
    /// Lists groups.
    List,
    /// Shows one group.
    Show {
        /// Its name.
        name: GroupName,
    },
    /// Changes a group's description, schedule, test flag, filter or parent.
    #[command(alias = "update")]
    Set {
        /// Its name.
        name: GroupName,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        schedule: Schedule,
        /// true: every member is a test device, offered signed releases no one approved yet
        /// (its pilot ring); false: no longer.
        #[arg(long, value_name = "true|false")]
        test: Option<bool>,
        /// A new filter, making the group dynamic (and removing its enrollment key).
        #[arg(long, conflicts_with = "no_filter")]
        filter: Option<String>,
        /// Makes a dynamic group static again.
        #[arg(long)]
        no_filter: bool,
        /// A new parent group.
        #[arg(long, conflicts_with = "no_parent")]
        parent: Option<GroupName>,
        /// Removes the group's parent.
        #[arg(long)]
        no_parent: bool,
        #[command(flatten)]
        window: WindowArgs,
        /// Removes the group's maintenance window.
        #[arg(long, conflicts_with = "window")]
        no_window: bool,
    },
    /// Shows how many devices a filter matches now, and the first 100 of them.
    Preview {
        /// The filter, e.g. 'version(vpn-client) < "5.0"'.
        filter: String,
    },
    /// Replaces the group's enrollment key and prints the new one; the old one stops working.
    RotateKey {
        /// Its name.
        name: GroupName,
    },
}

impl GroupArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let client = ctx.admin()?;
        match self.command {
            GroupCommand::Create { name, description, schedule, filter, parent, window } => {
                let spec = GroupSpec {
                    name,
                    description,
                    checkin_interval_secs: schedule.interval,
                    checkin_jitter: schedule.jitter,
                    filter,
                    parent,
                    window: window.window(),
                };
                let created = client.create_group(&spec).await?;
                let essential = created.enrollment_key.clone().unwrap_or_else(|| created.group.name.to_string());
                ctx.out.created(&created, essential, |c| {
                    say!("created group {}", c.group.name);
                    match &c.enrollment_key {
                        Some(key) => print_key(key),
                        None => say!("it is dynamic: its members are the devices its filter matches"),
                    }
                })
            }
            GroupCommand::Preview { filter } => {
                let preview = client.preview_filter(&filter).await?;
                ctx.out.show(&preview, |p| {
                    say!("{} device(s) match", p.count);
                    for id in &p.devices {
                        say!("{id}");
                    }
                    if p.count > p.devices.len() as u64 {
                        say!("(the first {} shown)", p.devices.len());
                    }
                })
            }
            GroupCommand::List => ctx.out.show(&client.list_groups().await?, |gs| print_groups(gs)),
            GroupCommand::Show { name } => ctx.out.show(&client.get_group(&name).await?, print_group),
            GroupCommand::Set {
                name,
                description,
                schedule,
                test,
                filter,
                no_filter,
                parent,
                no_parent,
                window,
                no_window,
            } => {
                let update = GroupUpdate {
                    description,
                    checkin_interval_secs: schedule.interval,
                    checkin_jitter: schedule.jitter,
                    test,
                    filter: if no_filter { Some(String::new()) } else { filter },
                    parent: if no_parent { Some(String::new()) } else { parent.map(|p| p.to_string()) },
                    window: window.window(),
                    clear_window: no_window,
                };
                if update.description.is_none()
                    && update.checkin_interval_secs.is_none()
                    && update.checkin_jitter.is_none()
                    && update.test.is_none()
                    && update.filter.is_none()
                    && update.parent.is_none()
                    && update.window.is_none()
                    && !update.clear_window
                {
                    return Err(usage(
                        "nothing to change: pass --description, --interval, --jitter, --test, --filter, --no-filter, \
                         --parent, --no-parent, --window or --no-window",
                    ));
                }
                ctx.out.show(&client.update_group(&name, &update).await?, print_group)
            }
            GroupCommand::RotateKey { name } => {
                let key = client.rotate_enrollment_key(&name).await?;
                ctx.out.created(&key, &key.enrollment_key, |k| {
                    say!("replaced the enrollment key of group {}", k.group);
                    print_key(&k.enrollment_key);
                })
            }
        }
    }
}

fn print_key(key: &str) {
    say!("enrollment key (shown only now; devices enrolling with it join the group):\n\n    {key}\n");
}

fn print_groups(groups: &[GroupView]) {
    print_table(
        &["name", "description", "parent", "dynamic", "interval", "jitter", "key", "created"],
        groups.iter().map(|g| {
            vec![
                g.name.to_string(),
                g.description.clone(),
                g.parent.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
                yes_no(g.filter.is_some()),
                format_duration(g.checkin_interval_secs),
                g.checkin_jitter.to_string(),
                yes_no(g.has_enrollment_key),
                format_unix(g.created_at),
            ]
        }),
    );
}

fn print_group(g: &GroupView) {
    print_fields(&[
        ("name", g.name.to_string()),
        ("description", g.description.clone()),
        ("filter", g.filter.clone().unwrap_or_else(|| "- (static)".to_owned())),
        ("parent", g.parent.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string)),
        ("check-in interval", format_duration(g.checkin_interval_secs)),
        ("jitter", g.checkin_jitter.to_string()),
        ("enrollment key", yes_no(g.has_enrollment_key)),
        ("test group", yes_no(g.test)),
        (
            "maintenance window",
            g.window.as_ref().map_or_else(|| "- (any time)".to_owned(), |w| format!("{} ({})", w.periods, w.time_zone)),
        ),
        ("created", format_unix(g.created_at)),
    ]);
}
