//! `ferry device`: enrollment decisions, group membership, status history and the "why"
//! report of a device.

use std::collections::BTreeMap;

use ferry_api::{ApplicabilityReport, DeviceDetail, DeviceGroups, PreauthorizeSpec};
use ferry_client::DeviceQuery;
use ferry_core::applicability::Verdict;
use ferry_core::{Device, DeviceId, DeviceStatus, Event, GroupName, Release, ReleaseId, ReleaseState, Version};

use crate::context::Context;
use crate::output::say;
use crate::output::{list, opt, print_fields, print_table};
use crate::time::{format_opt, format_unix};
use crate::values::{release_id, wire_enum};

/// Manages devices.
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DeviceCommand {
    /// Lists devices, ordered by id.
    List {
        /// Only devices in this status: preauthorized, pending, accepted or rejected.
        #[arg(long, value_parser = wire_enum::<DeviceStatus>)]
        status: Option<DeviceStatus>,
        /// Only static members of this group (`ferry group preview` shows a dynamic group's).
        #[arg(long)]
        group: Option<GroupName>,
        /// Only devices whose identity more than one machine claims (cloned images).
        #[arg(long)]
        conflicts: bool,
    },
    /// Shows a device, its latest state per release and its recent events.
    Show {
        /// Device id.
        id: DeviceId,
    },
    /// Lists a device id in advance and prints the enrollment key only that device may use:
    /// enrolling with it, the device is accepted at once. Again before the device enrolls:
    /// issues a new key (the old one stops working) and replaces the groups.
    Preauthorize {
        /// The id the device will claim.
        id: DeviceId,
        /// Group it joins (repeat for several).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<GroupName>,
    },
    /// Accepts a pending (or rejected) device.
    Accept {
        /// Device id.
        id: DeviceId,
    },
    /// Rejects a device; its credential stops working.
    Reject {
        /// Device id.
        id: DeviceId,
    },
    /// Replaces a device's groups.
    Groups {
        /// Device id.
        id: DeviceId,
        /// The groups it is to be in.
        #[arg(required_unless_present = "clear")]
        groups: Vec<GroupName>,
        /// Remove the device from all groups.
        #[arg(long, conflicts_with = "groups")]
        clear: bool,
    },
    /// Shows a device's latest status events, oldest first.
    Events {
        /// Device id.
        id: DeviceId,
        /// Only events of this release.
        #[arg(long, value_parser = release_id)]
        release: Option<ReleaseId>,
        /// The latest this many (server default 100, maximum 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Marks a device as a test device: besides what its groups' approvals give it, it is
    /// offered every signed release no one has approved yet (its groups' declines still win).
    SetTest {
        /// Device id.
        id: DeviceId,
        /// Stop treating it as a test device (a member of a test group still is one).
        #[arg(long)]
        off: bool,
    },
    /// Asks the device's agent to check in now instead of at its next check-in: it is woken
    /// within seconds if it keeps the wake channel open, or when it next opens it.
    CheckNow {
        /// Device id.
        id: DeviceId,
    },
    /// Explains why each release of the device's products (those it runs and those approved
    /// or declined for its groups) is or is not offered to it.
    Why {
        /// Device id.
        id: DeviceId,
    },
}

impl DeviceArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let client = ctx.admin()?;
        match self.command {
            DeviceCommand::List { status, group, conflicts } => {
                let mut query = DeviceQuery { status, group, conflicts, ..DeviceQuery::default() };
                let mut devices = Vec::new();
                // The server answers in pages; follow them to the end.
                loop {
                    let page = client.list_devices(&query).await?;
                    let Some(last) = page.last().map(|d| d.id.clone()) else { break };
                    if query.after.as_ref() == Some(&last) {
                        break; // a server ignoring `after` must not make this loop forever
                    }
                    query.after = Some(last);
                    devices.extend(page);
                }
                ctx.out.show(&devices, |ds| print_devices(ds))
            }
            DeviceCommand::Show { id } => ctx.out.show(&client.get_device(&id).await?, print_detail),
            DeviceCommand::Preauthorize { id, groups } => {
                let created = client.preauthorize_device(&PreauthorizeSpec { id, groups }).await?;
                ctx.out.created(&created, &created.enrollment_key, |c| {
                    say!("pre-authorised device {} (groups: {})", c.device.id, list(&c.device.groups));
                    say!(
                        "enrollment key (shown only now; put it in the device's agent.toml as enrollment_key \
                         or in its enrollment_key_file; it works for this id only):\n\n    {}\n",
                        c.enrollment_key
                    );
                })
            }
            DeviceCommand::Accept { id } => {
                let device = client.accept_device(&id).await?;
                ctx.out.show(&device, |d| say!("device {} is {}", d.id, d.status.as_str()))
            }
            DeviceCommand::Reject { id } => {
                let device = client.reject_device(&id).await?;
                ctx.out.show(&device, |d| say!("device {} is {}", d.id, d.status.as_str()))
            }
            DeviceCommand::Groups { id, groups, clear: _ } => {
                let device = client.set_device_groups(&id, &DeviceGroups { groups }).await?;
                ctx.out.show(&device, |d| say!("device {} is in groups: {}", d.id, list(&d.groups)))
            }
            DeviceCommand::Events { id, release, limit } => {
                let events = client.device_events(&id, release, limit).await?;
                ctx.out.show(&events, |es| print_events(es))
            }
            DeviceCommand::SetTest { id, off } => {
                let device = client.set_device_test(&id, !off).await?;
                ctx.out.show(&device, |d| {
                    say!("device {} is {}a test device", d.id, if d.test { "" } else { "no longer " })
                })
            }
            DeviceCommand::CheckNow { id } => {
                let asked = client.check_now(&id).await?;
                ctx.out.show(&asked, |a| {
                    if a.woken {
                        say!("device {} was waiting and was told to check in now", a.device);
                    } else {
                        say!(
                            "asked device {} to check in now; it is told within seconds if it waits on another \
                             server, else when its agent next opens the wake channel (within 10 minutes)",
                            a.device
                        );
                    }
                })
            }
            DeviceCommand::Why { id } => {
                let report = client.device_applicability(&id).await?;
                if ctx.out.json {
                    return crate::output::print_json(&report);
                }
                // Name each release by product and version, which people recognise.
                let releases: BTreeMap<ReleaseId, Release> =
                    client.list_releases(None).await?.into_iter().map(|r| (r.id, r)).collect();
                print_why(&report, &releases);
                Ok(())
            }
        }
    }
}

fn installed(device: &Device) -> String {
    list(device.installed.iter().map(|(p, v)| format!("{p} {v}")))
}

fn print_devices(devices: &[Device]) {
    print_table(
        &["id", "status", "groups", "platform", "installed", "last contact", "conflicts"],
        devices.iter().map(|d| {
            vec![
                d.id.to_string(),
                d.status.as_str().to_owned(),
                list(&d.groups),
                opt(d.platform.as_ref()),
                installed(d),
                format_opt(d.last_contact),
                d.identity_conflicts.to_string(),
            ]
        }),
    );
}

fn print_detail(detail: &DeviceDetail) {
    let d = &detail.device;
    let conflict = match (&d.last_conflict, d.last_conflict_at) {
        (Some(what), Some(at)) => format!("{} ({what}, {})", d.identity_conflicts, format_unix(at)),
        _ => d.identity_conflicts.to_string(),
    };
    print_fields(&[
        ("id", d.id.to_string()),
        ("status", d.status.as_str().to_owned()),
        ("groups", list(&d.groups)),
        ("test device", crate::output::yes_no(d.test)),
        ("effective groups", list(&detail.effective_groups)),
        ("platform", opt(d.platform.as_ref())),
        ("installed", installed(d)),
        ("configs", list(d.configs.iter().map(|(p, v)| format!("{p} {v}")))),
        ("agent", opt(d.agent_version.as_ref())),
        ("boot id", opt(d.boot_id.as_ref())),
        ("last contact", format_opt(d.last_contact)),
        ("enrolled", format_unix(d.enrolled_at)),
        ("identity conflicts", conflict),
    ]);
    if !d.attributes.is_empty() {
        say!("");
        print_table(&["attribute", "value"], d.attributes.iter().map(|(k, v)| vec![k.clone(), v.clone()]));
    }
    say!("");
    print_states(&detail.releases);
    say!("");
    print_events(&detail.events);
}

fn print_states(states: &[ReleaseState]) {
    print_table(
        &["release", "state", "progress", "error", "message", "updated"],
        states.iter().map(|s| {
            vec![
                s.release.to_string(),
                s.state.as_str().to_owned(),
                opt(s.progress),
                opt(s.error_code.as_ref()),
                opt(s.message.as_ref()),
                format_unix(s.updated_at),
            ]
        }),
    );
}

fn print_events(events: &[Event]) {
    print_table(
        &["seq", "release", "state", "progress", "error", "message", "at", "received"],
        events.iter().map(|e| {
            let ev = &e.event;
            vec![
                ev.seq.to_string(),
                ev.release.to_string(),
                ev.state.as_str().to_owned(),
                opt(ev.progress),
                opt(ev.error_code.as_ref()),
                opt(ev.message.as_ref()),
                format_unix(ev.at),
                format_unix(e.received_at),
            ]
        }),
    );
}

fn print_why(report: &ApplicabilityReport, releases: &BTreeMap<ReleaseId, Release>) {
    let name =
        |id: &ReleaseId| releases.get(id).map_or_else(|| "?".to_owned(), |r| format!("{} {}", r.product, r.version));
    let awaiting = report.awaiting_signature.iter().map(|id| {
        vec![
            id.to_string(),
            name(id),
            "awaiting_signature".to_owned(),
            format!("approved, not in signed targets yet: ferry release sign {id}"),
        ]
    });
    let groups = match report.groups.as_slice() {
        [] => "the device is in no group".to_owned(),
        [one] => format!("not approved for group {one}"),
        many => format!("not approved for groups {}", list(many)),
    };
    print_table(
        &["release", "name", "verdict", "detail"],
        report
            .decisions
            .iter()
            .map(|d| {
                let release = releases.get(&d.release);
                let detail = match &d.verdict {
                    Verdict::Offer { deadline: Some(at) } => format!("install by {}", format_unix(*at)),
                    Verdict::Superseded { by } => format!("replaced by release {by} ({})", name(by)),
                    Verdict::Offer { deadline: None } if report.pilot.contains(&d.release) => {
                        "not approved yet: offered because this is a test device".to_owned()
                    }
                    Verdict::NotApproved => groups.clone(),
                    Verdict::Declined => format!("declined for one of groups {}", list(&report.groups)),
                    Verdict::Archived => format!("archived: ferry release unarchive {}", d.release),
                    Verdict::MarkedBad => release.and_then(|r| r.bad.as_ref()).map_or_else(
                        || "marked bad: publish a fixed release".to_owned(),
                        |bad| format!("marked bad by {}: {}", bad.by, bad.reason),
                    ),
                    Verdict::WrongPlatform => {
                        release.map_or_else(String::new, |r| format!("only for {}", list(&r.platforms)))
                    }
                    Verdict::OutsidePatchRange => {
                        release.and_then(|r| r.applies_to.as_ref()).map_or_else(String::new, |range| {
                            let end =
                                |v: &Option<Version>| v.as_ref().map_or_else(|| "*".to_owned(), Version::to_string);
                            format!("patches {} to {}", end(&range.min), end(&range.max))
                        })
                    }
                    Verdict::NewerInstalled => "the device runs a newer version".to_owned(),
                    Verdict::NoUpdateNeeded => "the installed version needs no update".to_owned(),
                    Verdict::AwaitingRollout(s) => staged(s),
                    _ => String::new(),
                };
                vec![d.release.to_string(), name(&d.release), verdict_name(&d.verdict), detail]
            })
            .chain(awaiting),
    );
}

/// The verdict's tag as the API names it (`wrong_platform`, `superseded`).
fn verdict_name(verdict: &Verdict) -> String {
    let value = serde_json::to_value(verdict).unwrap_or_default();
    value.get("verdict").and_then(|t| t.as_str()).unwrap_or("?").to_owned()
}

/// Why a rollout has not granted the device its release, for `ferry device why`.
fn staged(s: &ferry_core::applicability::Staged) -> String {
    use ferry_core::rollout::Refusal;
    let why = match s.refusal {
        None => "admitted; granted at its next check-in if the limits allow".to_owned(),
        Some(Refusal::LaterWave { wave }) => format!("in wave {}, not open yet", wave + 1),
        Some(Refusal::NotGranting { state }) => format!("the rollout is {}", state.as_str()),
        Some(Refusal::RateLimited) => "the rollout's rate limit is used up for now".to_owned(),
        Some(Refusal::TooManyInProgress) => "too many devices have the update under way".to_owned(),
        Some(Refusal::OutsideWindow { opens_at }) => {
            format!("outside its maintenance window, which opens {}", crate::time::format_unix(opens_at))
        }
    };
    format!("rollout {}: {why}", s.rollout)
}
