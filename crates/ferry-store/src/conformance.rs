//! The conformance suite every [`Store`] backend must pass (feature `conformance`).
//!
//! Each behaviour is one `pub async fn` taking a fresh, empty store. A backend's test file
//! runs them all, one `#[tokio::test]` each, with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! use std::sync::Arc;
//! use ferry_store::Store;
//!
//! /// A fresh store, and whatever must live as long as it (a temp dir, a temp database, `()`).
//! async fn make_store() -> (Arc<dyn Store>, tempfile::TempDir) {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(&dir.path().join("ferry.db")).await.unwrap();
//!     (Arc::new(store), dir)
//! }
//!
//! ferry_store::conformance_tests!(make_store);
//! ```
//!
//! The calling crate needs `tokio` (with `macros` and `rt`) among its dev-dependencies. A
//! failing behaviour shows up under its own test name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use ferry_core::{
    Artifact, ArtifactName, Classification, Dependency, DeviceId, DeviceState, DeviceStatus, GroupName, PlatformName,
    ProductName, RebootBehaviour, Release, ReleaseId, ReleaseKind, Role, Sha256, Version, VersionRange,
};

use ferry_core::rollout::{
    Cause, GrantState, Limits, Rate, Refusal, Rollout, RolloutId, RolloutState, TimelineEntry, Wave,
};

use crate::{
    Approval, ApprovalAction, CheckinRecord, DeviceFilter, DirectorFiles, DirectorStamp, DirectorState, Enrollment,
    Event, GrantOutcome, Group, MetadataFile, NewAdminToken, NewEvent, Platform, Product, ReleaseChange, Repo, Result,
    Store, StoreError,
};

/// Expands to one `#[tokio::test]` per behaviour of the suite.
///
/// `$make` names an `async fn() -> (S, G)` where `S` dereferences to a [`Store`] (for example
/// `Arc<dyn Store>`) and `G` is a guard kept alive until the behaviour has run (for example the
/// temporary directory or database holding the store). Each test calls it once, so each
/// behaviour gets a fresh store.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            ping,
            products,
            platforms,
            content,
            release_round_trip,
            release_counters,
            release_version_lines,
            release_versions_compare_by_rank,
            concurrent_equal_versions,
            delete_release,
            delete_release_after_approval_or_report,
            update_release,
            mark_release_bad,
            release_missing_references,
            concurrent_release_counters,
            list_releases_order_and_filter,
            groups,
            group_enrollment_keys,
            group_filter_and_parent,
            approvals_upsert_and_delete,
            approval_missing_release_or_group,
            approved_releases,
            preauthorize_device,
            enroll_new_device,
            credential_batch_lookup,
            enroll_preauthorized_device,
            enroll_known_device_conflicts,
            unproven_claims_change_nothing,
            enroll_missing_group,
            concurrent_enrollments,
            device_status_and_groups,
            list_devices_filters_and_pagination,
            list_devices_limit_cap,
            record_checkin,
            touch_devices,
            append_and_list_events,
            append_events_idempotent,
            append_events_out_of_order,
            append_events_changed_retry_conflicts,
            append_events_unsorted_batch,
            append_events_not_found,
            device_release_states,
            test_flags,
            release_test_states,
            wake_requests,
            admin_tokens,
            last_admin_token_stays,
            concurrent_revocations_keep_an_admin,
            metadata_files,
            director_versions,
            rollout_round_trip,
            rollout_grants_and_limits,
            concurrent_grants_respect_limits,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let (store, guard) = $make().await;
                $crate::conformance::$name(&*store).await;
                drop(store);
                drop(guard);
            }
        )*
    };
}

// --- fixtures --------------------------------------------------------------------------------

fn product_name(s: &str) -> ProductName {
    ProductName::new(s).unwrap()
}

fn platform_name(s: &str) -> PlatformName {
    PlatformName::new(s).unwrap()
}

fn group_name(s: &str) -> GroupName {
    GroupName::new(s).unwrap()
}

fn device_id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn version(s: &str) -> Version {
    Version::new(s).unwrap()
}

fn sha(n: u8) -> Sha256 {
    Sha256::from_bytes([n; 32])
}

const VPN: &str = "vpn-client";
const PHONE: &str = "phone-fw";
const WINDOWS: &str = "windows-x86_64";
const LINUX: &str = "linux-x86_64";

/// Products `vpn-client` and `phone-fw`, platforms `windows-x86_64` and `linux-x86_64`, and
/// content `sha(1)` (100 bytes) and `sha(2)` (200 bytes).
async fn catalogue(store: &dyn Store) {
    for name in [VPN, PHONE] {
        store
            .create_product(&Product {
                name: product_name(name),
                description: format!("{name} product"),
                created_at: 1,
            })
            .await
            .unwrap();
    }
    for name in [WINDOWS, LINUX] {
        store
            .create_platform(&Platform { name: platform_name(name), description: String::new(), created_at: 1 })
            .await
            .unwrap();
    }
    store.record_content(&sha(1), 100, 1).await.unwrap();
    store.record_content(&sha(2), 200, 1).await.unwrap();
}

fn artifact(name: &str, n: u8, length: u64) -> Artifact {
    Artifact {
        name: ArtifactName::new(name).unwrap(),
        length,
        sha256: sha(n),
        media_type: "application/octet-stream".to_owned(),
        custom: serde_json::Map::new(),
    }
}

/// A minimal release of `product` (one platform, one artifact of content `sha(1)`).
fn release(product: &str, v: &str, kind: ReleaseKind) -> Release {
    Release {
        id: ReleaseId(0),
        product: product_name(product),
        version: version(v),
        kind,
        platforms: vec![platform_name(WINDOWS)],
        artifacts: vec![artifact("setup.bin", 1, 100)],
        required: false,
        reboot: RebootBehaviour::None,
        classification: Classification::Feature,
        notes: String::new(),
        dependencies: Vec::new(),
        supersedes: Vec::new(),
        no_update_versions: Vec::new(),
        applies_to: (kind == ReleaseKind::Patch).then(VersionRange::default),
        counter: 0,
        created_at: 0,
        archived: false,
        bad: None,
    }
}

async fn create(store: &dyn Store, product: &str, v: &str, kind: ReleaseKind) -> Release {
    store.create_release(&release(product, v, kind), 1000).await.unwrap()
}

fn group(name: &str) -> Group {
    Group {
        name: group_name(name),
        description: format!("group {name}"),
        checkin_interval_secs: 3600,
        checkin_jitter: 0.25,
        enrollment_key_hash: None,
        created_at: 10,
        test: false,
        filter: None,
        parent: None,
        window: None,
    }
}

async fn create_groups(store: &dyn Store, names: &[&str]) {
    for name in names {
        store.create_group(&group(name)).await.unwrap();
    }
}

fn group_names(names: &[&str]) -> Vec<GroupName> {
    names.iter().map(|n| group_name(n)).collect()
}

fn enrollment(id: &str, credential: &str, status: DeviceStatus, groups: &[&str], now: i64) -> Enrollment {
    Enrollment {
        id: device_id(id),
        credential_hash: credential.to_owned(),
        status,
        groups: group_names(groups),
        origin: format!("enrollment of {id} from 192.0.2.1"),
        now,
        secret_hash: None,
    }
}

/// An enrollment presenting a pre-authorisation secret (its hash), as the server makes one.
fn with_secret(id: &str, credential: &str, secret_hash: &str, now: i64) -> Enrollment {
    Enrollment {
        secret_hash: Some(secret_hash.to_owned()),
        ..enrollment(id, credential, DeviceStatus::Accepted, &[], now)
    }
}

#[track_caller]
fn expect_refused<T: Debug>(result: Result<T>, context: &str) {
    match result {
        Err(StoreError::Refused(_)) => {}
        other => panic!("{context}: expected a refusal, got {other:?}"),
    }
}

fn approval(release: ReleaseId, group: &str, action: ApprovalAction, at: i64) -> Approval {
    Approval {
        release,
        group: group_name(group),
        action,
        deadline: (action == ApprovalAction::Install).then_some(at + 86_400),
        approved_by: "alice".to_owned(),
        approved_at: at,
    }
}

fn event(seq: i64, release: ReleaseId, state: DeviceState) -> NewEvent {
    NewEvent { seq, release, state, progress: None, error_code: None, message: None, at: 5000 + seq }
}

fn checkin(last_contact: i64) -> CheckinRecord {
    CheckinRecord {
        platform: None,
        installed: BTreeMap::new(),
        configs: BTreeMap::new(),
        attributes: BTreeMap::new(),
        agent_version: None,
        boot_id: None,
        prev_boot_id: None,
        last_contact,
        conflict: None,
    }
}

/// A device enrolled as accepted, in `groups`.
async fn enrolled(store: &dyn Store, id: &str, groups: &[&str]) -> DeviceId {
    let credential = format!("credential-of-{id}");
    store.enroll_device(&enrollment(id, &credential, DeviceStatus::Accepted, groups, 100)).await.unwrap();
    device_id(id)
}

#[track_caller]
fn expect_out_of_order<T: Debug>(result: Result<T>, context: &str) -> String {
    match result {
        Err(StoreError::OutOfOrder(message)) => message,
        other => panic!("{context}: expected out-of-order events, got {other:?}"),
    }
}

#[track_caller]
fn expect_identity_conflict<T: Debug>(result: Result<T>, context: &str) {
    match result {
        Err(StoreError::IdentityConflict(_)) => {}
        other => panic!("{context}: expected an identity conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(result: Result<T>, context: &str) -> String {
    match result {
        Err(StoreError::Conflict(message)) => message,
        other => panic!("{context}: expected a conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_not_found<T: Debug>(result: Result<T>, what: &str, context: &str) -> String {
    match result {
        Err(StoreError::NotFound { what: w, key }) if w == what => key,
        other => panic!("{context}: expected {what} not found, got {other:?}"),
    }
}

// --- behaviours ------------------------------------------------------------------------------

/// `ping` answers on a working store.
pub async fn ping(store: &dyn Store) {
    store.ping().await.unwrap();
}

/// Products: create, get, list by name; a taken name conflicts.
pub async fn products(store: &dyn Store) {
    let b = Product { name: product_name("b-product"), description: "second".to_owned(), created_at: 20 };
    let a = Product { name: product_name("a-product"), description: "first".to_owned(), created_at: 10 };
    store.create_product(&b).await.unwrap();
    store.create_product(&a).await.unwrap();
    assert_eq!(store.get_product(&a.name).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_product(&product_name("missing")).await.unwrap(), None);
    assert_eq!(store.list_products().await.unwrap(), vec![a.clone(), b]);
    let message = expect_conflict(store.create_product(&a).await, "duplicate product");
    assert!(message.contains("a-product"), "{message}");
}

/// Platforms: create, get, list by name; a taken name conflicts.
pub async fn platforms(store: &dyn Store) {
    let b = Platform { name: platform_name("ipphone-8841"), description: "phone".to_owned(), created_at: 20 };
    let a = Platform { name: platform_name("android-arm64"), description: String::new(), created_at: 10 };
    store.create_platform(&b).await.unwrap();
    store.create_platform(&a).await.unwrap();
    assert_eq!(store.get_platform(&b.name).await.unwrap(), Some(b.clone()));
    assert_eq!(store.get_platform(&platform_name("missing")).await.unwrap(), None);
    assert_eq!(store.list_platforms().await.unwrap(), vec![a, b.clone()]);
    let message = expect_conflict(store.create_platform(&b).await, "duplicate platform");
    assert!(message.contains("ipphone-8841"), "{message}");
}

/// Content records are idempotent and report their length.
pub async fn content(store: &dyn Store) {
    assert_eq!(store.content_length(&sha(7)).await.unwrap(), None);
    store.record_content(&sha(7), 1 << 40, 5).await.unwrap();
    store.record_content(&sha(7), 1 << 40, 6).await.unwrap();
    assert_eq!(store.content_length(&sha(7)).await.unwrap(), Some(1 << 40));
    assert_eq!(store.content_length(&sha(8)).await.unwrap(), None);
}

/// A release reads back exactly as created; the store assigns id, counter and created_at, and
/// keeps the order of platforms and artifacts.
pub async fn release_round_trip(store: &dyn Store) {
    catalogue(store).await;
    let mut custom = serde_json::Map::new();
    custom.insert("installer".to_owned(), serde_json::json!({"args": ["/quiet"], "timeout": 600}));
    let full = Release {
        id: ReleaseId(99),
        product: product_name(VPN),
        version: version("5.0.04 (Rel)"),
        kind: ReleaseKind::Full,
        platforms: vec![platform_name(WINDOWS), platform_name(LINUX)],
        artifacts: vec![
            Artifact { custom, media_type: "application/x-msi".to_owned(), ..artifact("z-setup.msi", 2, 200) },
            artifact("a-readme.txt", 1, 100),
        ],
        required: true,
        reboot: RebootBehaviour::Required,
        classification: Classification::Security,
        notes: "fixes CVE-2024-0001\nand more".to_owned(),
        dependencies: vec![Dependency { product: product_name(PHONE), min_version: version("2.1") }],
        supersedes: vec![version("4.9"), version("4.8")],
        no_update_versions: vec![version("5.0.04")],
        applies_to: None,
        counter: 42,
        created_at: 7,
        archived: false,
        bad: None,
    };
    let created = store.create_release(&full, 1234).await.unwrap();
    assert_eq!(created, Release { id: created.id, counter: 1, created_at: 1234, ..full.clone() });
    assert_eq!(store.get_release(created.id).await.unwrap(), Some(created.clone()));

    let patch = Release {
        applies_to: Some(VersionRange { min: Some(version("5.0")), max: None }),
        reboot: RebootBehaviour::Possible,
        classification: Classification::Maintenance,
        ..release(VPN, "5.0.05", ReleaseKind::Patch)
    };
    let patch = store.create_release(&patch, 1300).await.unwrap();
    assert_ne!(patch.id, created.id);
    assert_eq!(store.get_release(patch.id).await.unwrap(), Some(patch.clone()));
    assert_eq!(patch.applies_to, Some(VersionRange { min: Some(version("5.0")), max: None }));
    assert_eq!(store.get_release(ReleaseId(created.id.0 + 1000)).await.unwrap(), None);
}

/// Counters count per product, across both lines, from 1.
pub async fn release_counters(store: &dyn Store) {
    catalogue(store).await;
    let a = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let b = create(store, VPN, "1.1", ReleaseKind::Full).await;
    let c = create(store, VPN, "1.0", ReleaseKind::Config).await;
    let d = create(store, PHONE, "1.0", ReleaseKind::Full).await;
    assert_eq!([a.counter, b.counter, c.counter, d.counter], [1, 2, 3, 1]);
    assert!(a.id < b.id && b.id < c.id && c.id < d.id, "ids increase: {:?}", [a.id, b.id, c.id, d.id]);
}

/// A version may exist once per product and line: full and patch share the software line,
/// config releases have their own.
pub async fn release_version_lines(store: &dyn Store) {
    catalogue(store).await;
    let first = create(store, VPN, "5.0", ReleaseKind::Full).await;
    for kind in [ReleaseKind::Full, ReleaseKind::Patch] {
        let message =
            expect_conflict(store.create_release(&release(VPN, "5.0", kind), 1).await, "same software version");
        for part in [VPN, "5.0", "software", &first.id.to_string()] {
            assert!(message.contains(part), "{message:?} should mention {part:?}");
        }
    }
    let config = create(store, VPN, "5.0", ReleaseKind::Config).await;
    let message = expect_conflict(
        store.create_release(&release(VPN, "5.0", ReleaseKind::Config), 1).await,
        "same config version",
    );
    assert!(message.contains("config") && message.contains(&config.id.to_string()), "{message}");
    create(store, PHONE, "5.0", ReleaseKind::Full).await;
    create(store, VPN, "5.0.1", ReleaseKind::Full).await;
    assert_eq!(store.list_releases(None).await.unwrap().len(), 4);
}

/// Versions conflict by rank, not by text: `5`, `5.00`, `v5.0` and `5.0 (Rel)` are all the
/// existing `5.0`, and the conflict names it.
pub async fn release_versions_compare_by_rank(store: &dyn Store) {
    catalogue(store).await;
    let first = create(store, VPN, "5.0", ReleaseKind::Full).await;
    for same in ["5", "5.00", "v5.0", "5.0 (Rel)", "5.0.0+build.3"] {
        let message = expect_conflict(store.create_release(&release(VPN, same, ReleaseKind::Full), 1).await, same);
        for part in ["5.0", same, &first.id.to_string(), "ranks equal"] {
            assert!(message.contains(part), "{message:?} should mention {part:?}");
        }
    }
    // Other lines and products keep their own versions.
    create(store, VPN, "5", ReleaseKind::Config).await;
    create(store, PHONE, "5.00", ReleaseKind::Full).await;
    assert_eq!(store.list_releases(None).await.unwrap().len(), 3);
}

/// Concurrent releases of versions that compare equal: exactly one is stored.
pub async fn concurrent_equal_versions(store: &dyn Store) {
    catalogue(store).await;
    let (a, b, c) = (
        release(VPN, "6", ReleaseKind::Full),
        release(VPN, "6.0", ReleaseKind::Full),
        release(VPN, "6.0.0 (Rel)", ReleaseKind::Full),
    );
    let results = tokio::join!(store.create_release(&a, 1), store.create_release(&b, 1), store.create_release(&c, 1));
    let results = [results.0, results.1, results.2];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(store.list_releases(None).await.unwrap().len(), 1);
}

/// A release no device can have been offered is deleted with its approvals (a decline);
/// its version can then be published again. Deleting it twice, or an unknown one, is NotFound.
pub async fn delete_release(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot"]).await;
    let keep = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let gone = create(store, VPN, "2.0", ReleaseKind::Full).await;
    store.set_approval(&approval(gone.id, "pilot", ApprovalAction::Decline, 1)).await.unwrap();
    store.delete_release(gone.id).await.unwrap();
    assert_eq!(store.get_release(gone.id).await.unwrap(), None);
    assert_eq!(store.list_releases(None).await.unwrap(), vec![keep]);
    assert_eq!(store.list_approvals(None, None).await.unwrap(), vec![]);
    expect_not_found(store.delete_release(gone.id).await, "release", "deleted twice");
    // The content stays; the version is free again.
    assert_eq!(store.content_length(&sha(1)).await.unwrap(), Some(100));
    create(store, VPN, "2.0", ReleaseKind::Full).await;
}

/// A release ever approved for install (even if unapproved since), or one a device reported
/// on, may have reached devices: deleting it conflicts, names archiving, and changes nothing.
pub async fn delete_release_after_approval_or_report(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot"]).await;
    let approved = create(store, VPN, "1.0", ReleaseKind::Full).await;
    store.set_approval(&approval(approved.id, "pilot", ApprovalAction::Install, 1)).await.unwrap();
    assert!(store.delete_approval(approved.id, &group_name("pilot")).await.unwrap());
    let message = expect_conflict(store.delete_release(approved.id).await, "once approved");
    assert!(message.contains("archive"), "{message}");
    assert_eq!(store.get_release(approved.id).await.unwrap(), Some(approved));

    let reported = create(store, VPN, "2.0", ReleaseKind::Full).await;
    let device = enrolled(store, "pc-1", &["pilot"]).await;
    store.append_events(&device, &[event(1, reported.id, DeviceState::Installed)], 6000).await.unwrap();
    let message = expect_conflict(store.delete_release(reported.id).await, "reported");
    assert!(message.contains("pc-1") && message.contains("archive"), "{message}");
    assert_eq!(store.list_events(&device, Some(reported.id), 10).await.unwrap().len(), 1);
}

/// Notes and the archive flag change; nothing else does. Archived releases stay listed and
/// still come with their approvals. Unknown releases are NotFound.
pub async fn update_release(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot"]).await;
    let r = create(store, VPN, "1.0", ReleaseKind::Full).await;
    assert!(!r.archived);
    let notes = ReleaseChange { notes: Some("now with notes".to_owned()), archived: None };
    let changed = store.update_release(r.id, &notes).await.unwrap();
    assert_eq!(changed, Release { notes: "now with notes".to_owned(), ..r.clone() });
    let archived = store.update_release(r.id, &ReleaseChange { notes: None, archived: Some(true) }).await.unwrap();
    assert_eq!(archived, Release { archived: true, ..changed.clone() });
    assert_eq!(store.get_release(r.id).await.unwrap(), Some(archived.clone()));
    assert_eq!(store.list_releases(None).await.unwrap(), vec![archived.clone()]);
    store.set_approval(&approval(r.id, "pilot", ApprovalAction::Install, 1)).await.unwrap();
    let approved = store.approved_releases(&[group_name("pilot")]).await.unwrap();
    assert_eq!(approved.len(), 1);
    assert!(approved[0].0.archived);
    let back = store.update_release(r.id, &ReleaseChange { notes: None, archived: Some(false) }).await.unwrap();
    assert_eq!(back, changed);
    expect_not_found(store.update_release(ReleaseId(r.id.0 + 100), &notes).await, "release", "unknown release");
}

/// Marking a release bad records the reason, who and when; marking it again keeps the first
/// mark and returns the same record. The mark shows wherever the release is read (one release,
/// lists, approved releases) and survives other changes; `bad_releases` lists exactly the
/// marked ones. Unknown releases are NotFound.
pub async fn mark_release_bad(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot"]).await;
    let good = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let r = create(store, VPN, "1.1", ReleaseKind::Full).await;
    assert_eq!(store.bad_releases().await.unwrap(), vec![]);
    let marked = store.mark_release_bad(r.id, "drops the tunnel", "ops", 500).await.unwrap();
    let mark = ferry_core::BadMark { at: 500, reason: "drops the tunnel".to_owned(), by: "ops".to_owned() };
    assert_eq!(marked, Release { bad: Some(mark), ..r.clone() });
    let again = store.mark_release_bad(r.id, "another reason", "someone-else", 900).await.unwrap();
    assert_eq!(again, marked, "the first mark stays");
    assert_eq!(store.get_release(r.id).await.unwrap(), Some(marked.clone()));
    assert_eq!(store.list_releases(None).await.unwrap(), vec![marked.clone(), good.clone()]);
    assert_eq!(store.bad_releases().await.unwrap(), vec![marked.clone()]);
    store.set_approval(&approval(r.id, "pilot", ApprovalAction::Install, 1)).await.unwrap();
    let approved = store.approved_releases(&[group_name("pilot")]).await.unwrap();
    assert_eq!(approved[0].0, marked);
    let archived = store.update_release(r.id, &ReleaseChange { notes: None, archived: Some(true) }).await.unwrap();
    assert_eq!(archived.bad, marked.bad, "other changes keep the mark");
    expect_not_found(
        store.mark_release_bad(ReleaseId(r.id.0 + 100), "x", "ops", 1).await,
        "release",
        "unknown release",
    );
}

/// A release naming a missing product, platform or content is NotFound and stores nothing.
pub async fn release_missing_references(store: &dyn Store) {
    catalogue(store).await;
    let key = expect_not_found(
        store.create_release(&release("nope", "1.0", ReleaseKind::Full), 1).await,
        "product",
        "missing product",
    );
    assert!(key.contains("nope"), "{key}");

    let mut r = release(VPN, "1.0", ReleaseKind::Full);
    r.platforms.push(platform_name("amiga-m68k"));
    let key = expect_not_found(store.create_release(&r, 1).await, "platform", "missing platform");
    assert!(key.contains("amiga-m68k"), "{key}");

    let mut r = release(VPN, "1.0", ReleaseKind::Full);
    r.artifacts.push(artifact("other.bin", 9, 100));
    let key = expect_not_found(store.create_release(&r, 1).await, "content", "missing content");
    assert!(key.contains(sha(9).as_str()), "{key}");

    let mut r = release(VPN, "1.0", ReleaseKind::Full);
    r.artifacts[0].length = 101;
    expect_not_found(store.create_release(&r, 1).await, "content", "content of another length");

    assert_eq!(store.list_releases(None).await.unwrap(), vec![]);
    assert_eq!(create(store, VPN, "1.0", ReleaseKind::Full).await.counter, 1);
}

/// Releases created concurrently for one product get distinct counters.
pub async fn concurrent_release_counters(store: &dyn Store) {
    catalogue(store).await;
    let (a, b, c, d) = (
        release(VPN, "1", ReleaseKind::Full),
        release(VPN, "2", ReleaseKind::Full),
        release(VPN, "3", ReleaseKind::Full),
        release(VPN, "4", ReleaseKind::Config),
    );
    let results = tokio::join!(
        store.create_release(&a, 1),
        store.create_release(&b, 1),
        store.create_release(&c, 1),
        store.create_release(&d, 1),
    );
    let counters: BTreeSet<i64> =
        [results.0, results.1, results.2, results.3].into_iter().map(|r| r.unwrap().counter).collect();
    assert_eq!(counters, BTreeSet::from([1, 2, 3, 4]));
}

/// `list_releases` returns newest id first, optionally of one product.
pub async fn list_releases_order_and_filter(store: &dyn Store) {
    catalogue(store).await;
    let a = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let b = create(store, PHONE, "1.0", ReleaseKind::Full).await;
    let c = create(store, VPN, "1.0", ReleaseKind::Config).await;
    assert_eq!(store.list_releases(None).await.unwrap(), vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(store.list_releases(Some(&product_name(VPN))).await.unwrap(), vec![c, a]);
    assert_eq!(store.list_releases(Some(&product_name(PHONE))).await.unwrap(), vec![b]);
    assert_eq!(store.list_releases(Some(&product_name("other"))).await.unwrap(), vec![]);
}

/// Groups: create, get, list by name, update; a taken name conflicts; updating a missing
/// group is NotFound.
pub async fn groups(store: &dyn Store) {
    store.create_group(&group("pilot")).await.unwrap();
    store.create_group(&group("lab")).await.unwrap();
    assert_eq!(store.get_group(&group_name("pilot")).await.unwrap(), Some(group("pilot")));
    assert_eq!(store.get_group(&group_name("nope")).await.unwrap(), None);
    assert_eq!(store.list_groups().await.unwrap(), vec![group("lab"), group("pilot")]);
    let message = expect_conflict(store.create_group(&group("lab")).await, "duplicate group");
    assert!(message.contains("lab"), "{message}");

    let changed = Group {
        description: "the pilot ring".to_owned(),
        checkin_interval_secs: 900,
        checkin_jitter: 0.5,
        enrollment_key_hash: Some("ab".repeat(32)),
        ..group("pilot")
    };
    store.update_group(&changed).await.unwrap();
    assert_eq!(store.get_group(&changed.name).await.unwrap(), Some(changed.clone()));
    let cleared = Group { enrollment_key_hash: None, ..changed };
    store.update_group(&cleared).await.unwrap();
    assert_eq!(store.get_group(&cleared.name).await.unwrap(), Some(cleared));
    expect_not_found(store.update_group(&group("ghost")).await, "group", "update of a missing group");
}

/// Enrollment keys find their group and belong to one group only.
pub async fn group_enrollment_keys(store: &dyn Store) {
    let key = "cd".repeat(32);
    let pilot = Group { enrollment_key_hash: Some(key.clone()), ..group("pilot") };
    store.create_group(&pilot).await.unwrap();
    store.create_group(&group("lab")).await.unwrap();
    assert_eq!(store.group_by_enrollment_key(&key).await.unwrap(), Some(pilot));
    assert_eq!(store.group_by_enrollment_key(&"00".repeat(32)).await.unwrap(), None);
    let same_key = Group { enrollment_key_hash: Some(key.clone()), ..group("other") };
    expect_conflict(store.create_group(&same_key).await, "second group with the same key");
    let lab = Group { enrollment_key_hash: Some(key), ..group("lab") };
    expect_conflict(store.update_group(&lab).await, "update to a key another group has");
    assert_eq!(store.get_group(&group_name("lab")).await.unwrap(), Some(group("lab")));
}

/// A group's filter text and parent are stored as given, changed and cleared by an update.
pub async fn group_filter_and_parent(store: &dyn Store) {
    store.create_group(&group("all")).await.unwrap();
    let osaka = Group {
        filter: Some(r#"attr.site = "osaka" and version(vpn-client) < "5.0""#.to_owned()),
        parent: Some(group_name("all")),
        ..group("osaka")
    };
    store.create_group(&osaka).await.unwrap();
    assert_eq!(store.get_group(&osaka.name).await.unwrap(), Some(osaka.clone()));
    assert_eq!(store.list_groups().await.unwrap(), vec![group("all"), osaka.clone()]);

    store.create_group(&group("asia")).await.unwrap();
    let moved = Group { filter: Some("id ~ \"osaka-*\"".to_owned()), parent: Some(group_name("asia")), ..osaka };
    store.update_group(&moved).await.unwrap();
    assert_eq!(store.get_group(&moved.name).await.unwrap(), Some(moved.clone()));
    let cleared = Group { filter: None, parent: None, ..moved };
    store.update_group(&cleared).await.unwrap();
    assert_eq!(store.get_group(&cleared.name).await.unwrap(), Some(cleared));
}

/// Setting an approval replaces the earlier one; deleting says whether one existed; listing
/// filters by release and group.
pub async fn approvals_upsert_and_delete(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot", "all"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let r2 = create(store, VPN, "2.0", ReleaseKind::Full).await.id;

    let install = approval(r1, "pilot", ApprovalAction::Install, 100);
    store.set_approval(&install).await.unwrap();
    assert_eq!(store.list_approvals(None, None).await.unwrap(), vec![install]);
    let decline = Approval { approved_by: "bob".to_owned(), ..approval(r1, "pilot", ApprovalAction::Decline, 200) };
    store.set_approval(&decline).await.unwrap();
    assert_eq!(store.list_approvals(None, None).await.unwrap(), vec![decline.clone()]);

    let r1_all = approval(r1, "all", ApprovalAction::Install, 300);
    let r2_all = Approval { deadline: None, ..approval(r2, "all", ApprovalAction::Install, 400) };
    store.set_approval(&r1_all).await.unwrap();
    store.set_approval(&r2_all).await.unwrap();
    assert_eq!(store.list_approvals(Some(r1), None).await.unwrap(), vec![r1_all.clone(), decline.clone()]);
    assert_eq!(
        store.list_approvals(None, Some(&group_name("all"))).await.unwrap(),
        vec![r1_all.clone(), r2_all.clone()]
    );
    assert_eq!(store.list_approvals(Some(r2), Some(&group_name("all"))).await.unwrap(), vec![r2_all.clone()]);
    assert_eq!(store.list_approvals(Some(r2), Some(&group_name("pilot"))).await.unwrap(), vec![]);

    assert!(store.delete_approval(r1, &group_name("pilot")).await.unwrap());
    assert!(!store.delete_approval(r1, &group_name("pilot")).await.unwrap());
    assert!(!store.delete_approval(ReleaseId(r2.0 + 100), &group_name("nope")).await.unwrap());
    assert_eq!(store.list_approvals(None, None).await.unwrap(), vec![r1_all, r2_all]);
}

/// Approving a missing release or for a missing group is NotFound.
pub async fn approval_missing_release_or_group(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let missing = ReleaseId(r1.0 + 100);
    expect_not_found(
        store.set_approval(&approval(missing, "pilot", ApprovalAction::Install, 1)).await,
        "release",
        "missing release",
    );
    let key = expect_not_found(
        store.set_approval(&approval(r1, "ghost", ApprovalAction::Install, 1)).await,
        "group",
        "missing group",
    );
    assert!(key.contains("ghost"), "{key}");
    assert_eq!(store.list_approvals(None, None).await.unwrap(), vec![]);
}

/// `approved_releases` returns every release with an approval (install or decline) for one
/// of the groups, complete, with exactly those groups' approvals.
pub async fn approved_releases(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["a", "b", "c"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let r2 = create(store, VPN, "2.0", ReleaseKind::Full).await;
    let r3 = create(store, VPN, "3.0", ReleaseKind::Full).await;
    let _r4 = create(store, VPN, "4.0", ReleaseKind::Full).await;
    let mut r5 = release(PHONE, "1.0", ReleaseKind::Full);
    r5.platforms = vec![platform_name(LINUX), platform_name(WINDOWS)];
    r5.artifacts = vec![artifact("fw.img", 2, 200), artifact("fw.sig", 1, 100)];
    let r5 = store.create_release(&r5, 1000).await.unwrap();

    let a1 = approval(r1.id, "a", ApprovalAction::Install, 1);
    let b2 = approval(r2.id, "b", ApprovalAction::Decline, 2);
    let c3 = approval(r3.id, "c", ApprovalAction::Install, 3);
    let a5 = approval(r5.id, "a", ApprovalAction::Install, 5);
    let b5 = approval(r5.id, "b", ApprovalAction::Decline, 6);
    let c5 = approval(r5.id, "c", ApprovalAction::Install, 7);
    for a in [&a1, &b2, &c3, &a5, &b5, &c5] {
        store.set_approval(a).await.unwrap();
    }

    let by_id = |mut v: Vec<(Release, Vec<Approval>)>| {
        v.sort_by_key(|(r, _)| r.id);
        for (_, approvals) in &mut v {
            approvals.sort_by(|x, y| x.group.cmp(&y.group));
        }
        v
    };
    let got = by_id(store.approved_releases(&group_names(&["a", "b"])).await.unwrap());
    assert_eq!(got, vec![(r1.clone(), vec![a1]), (r2, vec![b2]), (r5.clone(), vec![a5, b5])]);
    let got = by_id(store.approved_releases(&group_names(&["c"])).await.unwrap());
    assert_eq!(got, vec![(r3, vec![c3]), (r5, vec![c5])]);
    assert_eq!(store.approved_releases(&[]).await.unwrap(), vec![]);
    assert_eq!(store.approved_releases(&group_names(&["nobody"])).await.unwrap(), vec![]);
}

/// A pre-authorised device is listed with its groups; pre-authorising it again replaces its
/// secret and groups, until it enrolls (then Conflict); a missing group is NotFound and
/// creates nothing.
pub async fn preauthorize_device(store: &dyn Store) {
    create_groups(store, &["pilot", "lab"]).await;
    let id = device_id("SN:0001@site1");
    let device = store.preauthorize_device(&id, &group_names(&["pilot", "lab"]), "secret-1", 50).await.unwrap();
    assert_eq!(device.id, id);
    assert_eq!(device.status, DeviceStatus::Preauthorized);
    assert_eq!(device.groups, group_names(&["lab", "pilot"]));
    assert_eq!(device.enrolled_at, 50);
    assert_eq!((device.identity_conflicts, device.last_contact, device.platform.clone()), (0, None, None));
    assert!(device.installed.is_empty() && device.configs.is_empty() && device.attributes.is_empty());
    assert_eq!(store.get_device(&id).await.unwrap(), Some(device));
    let again = store.preauthorize_device(&id, &group_names(&["lab"]), "secret-2", 60).await.unwrap();
    assert_eq!(
        (again.status, again.groups, again.enrolled_at),
        (DeviceStatus::Preauthorized, group_names(&["lab"]), 60)
    );
    expect_refused(store.enroll_device(&with_secret("SN:0001@site1", "c", "secret-1", 61)).await, "the old secret");
    store.enroll_device(&with_secret("SN:0001@site1", "c", "secret-2", 62)).await.unwrap();
    expect_conflict(store.preauthorize_device(&id, &[], "secret-3", 63).await, "preauthorising an enrolled id");
    let desk = enrolled(store, "desk-9", &[]).await;
    expect_conflict(store.preauthorize_device(&desk, &[], "secret-4", 64).await, "preauthorising a known id");

    let other = device_id("SN:0002");
    expect_not_found(
        store.preauthorize_device(&other, &group_names(&["ghost"]), "secret-5", 60).await,
        "group",
        "missing group",
    );
    assert_eq!(store.get_device(&other).await.unwrap(), None);
}

/// An unknown id enrolls with the given status and groups and is found by its credential.
pub async fn enroll_new_device(store: &dyn Store) {
    create_groups(store, &["pilot"]).await;
    let device =
        store.enroll_device(&enrollment("laptop-1", "cred-1", DeviceStatus::Pending, &["pilot"], 70)).await.unwrap();
    assert_eq!(device.id, device_id("laptop-1"));
    assert_eq!(device.status, DeviceStatus::Pending);
    assert_eq!(device.groups, group_names(&["pilot"]));
    assert_eq!(device.enrolled_at, 70);
    assert_eq!(device.identity_conflicts, 0);
    assert_eq!(store.get_device(&device.id).await.unwrap(), Some(device.clone()));
    assert_eq!(store.device_by_credential("cred-1").await.unwrap(), Some(device));
    assert_eq!(store.device_by_credential("cred-2").await.unwrap(), None);
    let accepted =
        store.enroll_device(&enrollment("laptop-2", "cred-2", DeviceStatus::Accepted, &[], 71)).await.unwrap();
    assert_eq!((accepted.status, accepted.groups), (DeviceStatus::Accepted, vec![]));
}

/// Many credentials are looked up at once: each known hash comes back once with its device,
/// unknown ones and repeats are left out, and batches of every size up to a few hundred work.
pub async fn credential_batch_lookup(store: &dyn Store) {
    create_groups(store, &["pilot", "lab"]).await;
    for i in 0..70 {
        let groups: &[&str] = if i % 2 == 0 { &["pilot", "lab"] } else { &[] };
        store
            .enroll_device(&enrollment(&format!("pc-{i}"), &format!("cred-{i}"), DeviceStatus::Accepted, groups, i))
            .await
            .unwrap();
    }
    assert_eq!(store.devices_by_credentials(&[]).await.unwrap(), vec![]);
    let asked: Vec<String> = ["cred-3", "cred-unknown", "cred-4", "cred-3"].iter().map(|s| (*s).to_owned()).collect();
    let mut found = store.devices_by_credentials(&asked).await.unwrap();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let summary: Vec<(&str, &str, usize)> =
        found.iter().map(|(h, m)| (h.as_str(), m.device.id.as_str(), m.device.groups.len())).collect();
    assert_eq!(summary, vec![("cred-3", "pc-3", 0), ("cred-4", "pc-4", 2)]);
    assert_eq!(found[1].1.device, store.get_device(&device_id("pc-4")).await.unwrap().unwrap());
    for size in [1, 2, 3, 5, 17, 64, 65, 70] {
        let asked: Vec<String> = (0..size).map(|i| format!("cred-{i}")).collect();
        let found = store.devices_by_credentials(&asked).await.unwrap();
        assert_eq!(found.len(), size, "batch of {size}");
        assert!(found.iter().all(|(h, m)| h.strip_prefix("cred-") == m.device.id.as_str().strip_prefix("pc-")));
    }
    let repeated: Vec<String> = (0..300).map(|i| format!("cred-{}", i % 70)).collect();
    assert_eq!(store.devices_by_credentials(&repeated).await.unwrap().len(), 70, "repeats across a long list");
}

/// A pre-authorised id, claimed with its secret, takes the credential, becomes accepted and
/// adds the groups.
pub async fn enroll_preauthorized_device(store: &dyn Store) {
    create_groups(store, &["a", "b"]).await;
    let id = device_id("phone-77");
    store.preauthorize_device(&id, &group_names(&["a"]), "secret-77", 10).await.unwrap();
    let claim = Enrollment { groups: group_names(&["b", "a"]), ..with_secret("phone-77", "cred-77", "secret-77", 20) };
    let device = store.enroll_device(&claim).await.unwrap();
    assert_eq!(device.status, DeviceStatus::Accepted);
    assert_eq!(device.groups, group_names(&["a", "b"]));
    assert_eq!(device.enrolled_at, 20);
    assert_eq!(device.identity_conflicts, 0);
    assert_eq!(store.device_by_credential("cred-77").await.unwrap(), Some(device.clone()));
    // Now it is enrolled: a second enrollment proven by its secret or a group key is an
    // identity conflict (another machine holds the device's proof).
    expect_identity_conflict(
        store.enroll_device(&with_secret("phone-77", "cred-78", "secret-77", 30)).await,
        "its secret again",
    );
    expect_identity_conflict(
        store.enroll_device(&enrollment("phone-77", "cred-78", DeviceStatus::Accepted, &[], 30)).await,
        "second enrollment",
    );
    assert_eq!(store.get_device(&id).await.unwrap().unwrap().identity_conflicts, 2);
    assert_eq!(store.device_by_credential("cred-77").await.unwrap().map(|d| d.status), Some(DeviceStatus::Accepted));
}

/// Enrolling a known, enrolled id conflicts, keeps the device as it was and counts the
/// attempt as an identity conflict.
pub async fn enroll_known_device_conflicts(store: &dyn Store) {
    let id = enrolled(store, "desk-1", &[]).await;
    let before = store.get_device(&id).await.unwrap().unwrap();
    let mut attempt = enrollment("desk-1", "cred-new", DeviceStatus::Accepted, &[], 500);
    attempt.origin = "203.0.113.9".to_owned();
    let err = store.enroll_device(&attempt).await.unwrap_err();
    assert!(matches!(err, StoreError::IdentityConflict(ref conflicted) if *conflicted == id), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("desk-1"), "{message}");
    let after = store.get_device(&id).await.unwrap().unwrap();
    assert_eq!(after.identity_conflicts, 1);
    assert_eq!(after.last_conflict.as_deref(), Some("203.0.113.9"));
    assert_eq!(after.last_conflict_at, Some(500));
    assert_eq!(
        crate::Device { identity_conflicts: 0, last_conflict: None, last_conflict_at: None, ..after.clone() },
        before
    );
    assert_eq!(store.device_by_credential("cred-new").await.unwrap(), None);
    assert_eq!(store.device_by_credential("credential-of-desk-1").await.unwrap().map(|d| d.id), Some(id.clone()));

    attempt.now = 600;
    expect_identity_conflict(store.enroll_device(&attempt).await, "enrolling a known id again");
    let after = store.get_device(&id).await.unwrap().unwrap();
    assert_eq!((after.identity_conflicts, after.last_conflict_at), (2, Some(600)));
}

/// A claim that proves nothing (no key, a wrong secret, a secret for an id never
/// pre-authorised) is Refused whether the id is pre-authorised, enrolled or unknown, and
/// changes nothing: no device, no credential, no conflict count.
pub async fn unproven_claims_change_nothing(store: &dyn Store) {
    create_groups(store, &["a"]).await;
    let pre = device_id("pre-1");
    store.preauthorize_device(&pre, &group_names(&["a"]), "secret-pre", 10).await.unwrap();
    let desk = enrolled(store, "desk-1", &["a"]).await;
    let before = (store.get_device(&pre).await.unwrap(), store.get_device(&desk).await.unwrap());

    for claim in [
        enrollment("pre-1", "cred-x1", DeviceStatus::Pending, &[], 20),
        enrollment("pre-1", "cred-x2", DeviceStatus::Accepted, &["a"], 20),
        with_secret("pre-1", "cred-x3", "secret-wrong", 20),
        enrollment("desk-1", "cred-x4", DeviceStatus::Pending, &[], 20),
        with_secret("desk-1", "cred-x5", "secret-pre", 20),
        with_secret("new-1", "cred-x6", "secret-pre", 20),
    ] {
        expect_refused(store.enroll_device(&claim).await, &format!("{} with {:?}", claim.id, claim.secret_hash));
        assert_eq!(store.device_by_credential(&claim.credential_hash).await.unwrap(), None);
    }
    assert_eq!((store.get_device(&pre).await.unwrap(), store.get_device(&desk).await.unwrap()), before);
    assert_eq!(store.get_device(&device_id("new-1")).await.unwrap(), None);
}

/// Enrolling into a missing group is NotFound and creates nothing.
pub async fn enroll_missing_group(store: &dyn Store) {
    let result = store.enroll_device(&enrollment("new-1", "cred", DeviceStatus::Accepted, &["ghost"], 1)).await;
    expect_not_found(result, "group", "missing group");
    assert_eq!(store.get_device(&device_id("new-1")).await.unwrap(), None);
    assert_eq!(store.device_by_credential("cred").await.unwrap(), None);
}

/// Two machines enrolling the same new id at once: one wins, the other is an identity
/// conflict.
pub async fn concurrent_enrollments(store: &dyn Store) {
    let (a, b) = (
        enrollment("clone", "cred-a", DeviceStatus::Accepted, &[], 1),
        enrollment("clone", "cred-b", DeviceStatus::Accepted, &[], 1),
    );
    let (ra, rb) = tokio::join!(store.enroll_device(&a), store.enroll_device(&b));
    let (won, lost) = match (ra, rb) {
        (Ok(_), Err(e)) => ("cred-a", e),
        (Err(e), Ok(_)) => ("cred-b", e),
        other => panic!("expected one enrollment to succeed and one to conflict, got {other:?}"),
    };
    assert!(matches!(lost, StoreError::IdentityConflict(_)), "{lost:?}");
    let device = store.device_by_credential(won).await.unwrap().expect("the winner's credential works");
    assert_eq!(device.identity_conflicts, 1);
}

/// Status changes and group replacement; NotFound for a missing device or group.
pub async fn device_status_and_groups(store: &dyn Store) {
    create_groups(store, &["a", "b", "c"]).await;
    let id = enrolled(store, "dev-1", &["a"]).await;
    store.set_device_status(&id, DeviceStatus::Rejected).await.unwrap();
    assert_eq!(store.get_device(&id).await.unwrap().unwrap().status, DeviceStatus::Rejected);
    expect_not_found(store.set_device_status(&device_id("ghost"), DeviceStatus::Accepted).await, "device", "status");

    store.set_device_groups(&id, &group_names(&["c", "b"])).await.unwrap();
    assert_eq!(store.get_device(&id).await.unwrap().unwrap().groups, group_names(&["b", "c"]));
    expect_not_found(store.set_device_groups(&id, &group_names(&["a", "ghost"])).await, "group", "missing group");
    assert_eq!(store.get_device(&id).await.unwrap().unwrap().groups, group_names(&["b", "c"]));
    expect_not_found(store.set_device_groups(&device_id("ghost"), &group_names(&["a"])).await, "device", "groups");
    store.set_device_groups(&id, &[]).await.unwrap();
    assert_eq!(store.get_device(&id).await.unwrap().unwrap().groups, vec![]);
}

/// Filters (status, group, conflicts) combine; results are ordered by id and page with
/// `after` and `limit`.
pub async fn list_devices_filters_and_pagination(store: &dyn Store) {
    create_groups(store, &["even", "odd"]).await;
    for i in 1..=9 {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        let status = if i <= 3 { DeviceStatus::Pending } else { DeviceStatus::Accepted };
        store
            .enroll_device(&enrollment(&format!("dev-{i:02}"), &format!("cred-{i}"), status, &[group], 1))
            .await
            .unwrap();
    }
    for i in [4, 9] {
        let mut again = enrollment(&format!("dev-{i:02}"), "x", DeviceStatus::Accepted, &[], 2);
        again.credential_hash = format!("other-{i}");
        expect_identity_conflict(store.enroll_device(&again).await, "conflict");
    }
    let ids = |devices: Vec<crate::Device>| devices.into_iter().map(|d| d.id.to_string()).collect::<Vec<_>>();
    let all = DeviceFilter { limit: 100, ..DeviceFilter::default() };
    let listed = store.list_devices(&all).await.unwrap();
    assert_eq!(listed.len(), 9);
    assert_eq!(listed[1].groups, group_names(&["even"]));
    assert_eq!(ids(listed)[..3], ["dev-01", "dev-02", "dev-03"]);

    let pending = DeviceFilter { status: Some(DeviceStatus::Pending), ..all.clone() };
    assert_eq!(ids(store.list_devices(&pending).await.unwrap()), ["dev-01", "dev-02", "dev-03"]);
    let even = DeviceFilter { group: Some(group_name("even")), ..all.clone() };
    assert_eq!(ids(store.list_devices(&even).await.unwrap()), ["dev-02", "dev-04", "dev-06", "dev-08"]);
    let even_accepted = DeviceFilter { status: Some(DeviceStatus::Accepted), ..even.clone() };
    assert_eq!(ids(store.list_devices(&even_accepted).await.unwrap()), ["dev-04", "dev-06", "dev-08"]);
    let conflicts = DeviceFilter { conflicts_only: true, ..all.clone() };
    assert_eq!(ids(store.list_devices(&conflicts).await.unwrap()), ["dev-04", "dev-09"]);
    let rejected = DeviceFilter { status: Some(DeviceStatus::Rejected), ..all.clone() };
    assert_eq!(ids(store.list_devices(&rejected).await.unwrap()), Vec::<String>::new());

    let mut page = DeviceFilter { limit: 4, ..DeviceFilter::default() };
    let mut seen = Vec::new();
    loop {
        let batch = ids(store.list_devices(&page).await.unwrap());
        assert!(batch.len() <= 4);
        let Some(last) = batch.last() else { break };
        page.after = Some(device_id(last));
        seen.extend(batch);
    }
    assert_eq!(seen, (1..=9).map(|i| format!("dev-{i:02}")).collect::<Vec<_>>());
    let odd_after = DeviceFilter { group: Some(group_name("odd")), after: Some(device_id("dev-03")), limit: 2, ..all };
    assert_eq!(ids(store.list_devices(&odd_after).await.unwrap()), ["dev-05", "dev-07"]);
}

/// `limit` is capped at 1000, and 0 means 1000.
pub async fn list_devices_limit_cap(store: &dyn Store) {
    for i in 0..1005 {
        store.preauthorize_device(&device_id(&format!("d{i:05}")), &[], "secret", 1).await.unwrap();
    }
    for limit in [0, 1000, 5000] {
        let listed = store.list_devices(&DeviceFilter { limit, ..DeviceFilter::default() }).await.unwrap();
        assert_eq!(listed.len(), 1000, "limit {limit}");
        assert_eq!(listed[999].id, device_id("d00999"));
    }
    let rest = DeviceFilter { after: Some(device_id("d00999")), ..DeviceFilter::default() };
    assert_eq!(store.list_devices(&rest).await.unwrap().len(), 5);
}

/// A check-in's report reads back exactly; one revealing a conflict counts it.
pub async fn record_checkin(store: &dyn Store) {
    let id = enrolled(store, "dev-1", &[]).await;
    let report = CheckinRecord {
        platform: Some(platform_name(WINDOWS)),
        installed: BTreeMap::from([
            (product_name(VPN), version("5.0.04 (Rel)")),
            (product_name(PHONE), version("1.2")),
        ]),
        configs: BTreeMap::from([(product_name(VPN), version("7"))]),
        attributes: BTreeMap::from([
            ("hostname".to_owned(), "desk-\"1\"".to_owned()),
            ("os".to_owned(), "Windows 11 — 23H2".to_owned()),
        ]),
        agent_version: Some("0.3.1".to_owned()),
        boot_id: Some("boot-b".to_owned()),
        prev_boot_id: Some("boot-a".to_owned()),
        last_contact: 1000,
        conflict: None,
    };
    store.record_checkin(&id, &report).await.unwrap();
    let device = store.get_device(&id).await.unwrap().unwrap();
    assert_eq!(device.platform, report.platform);
    assert_eq!(device.installed, report.installed);
    assert_eq!(device.configs, report.configs);
    assert_eq!(device.attributes, report.attributes);
    assert_eq!(device.agent_version, report.agent_version);
    assert_eq!((device.boot_id.as_deref(), device.prev_boot_id.as_deref()), (Some("boot-b"), Some("boot-a")));
    assert_eq!(device.last_contact, Some(1000));
    assert_eq!((device.identity_conflicts, device.last_conflict), (0, None));
    assert_eq!(device.status, DeviceStatus::Accepted);

    let clash = CheckinRecord { conflict: Some("boot id went back".to_owned()), last_contact: 1100, ..report.clone() };
    store.record_checkin(&id, &clash).await.unwrap();
    store.record_checkin(&id, &checkin(1200)).await.unwrap();
    let device = store.get_device(&id).await.unwrap().unwrap();
    assert_eq!(device.identity_conflicts, 1);
    assert_eq!(device.last_conflict.as_deref(), Some("boot id went back"));
    assert_eq!(device.last_conflict_at, Some(1100));
    assert_eq!((device.last_contact, device.platform, device.installed.len()), (Some(1200), None, 0));

    expect_not_found(store.record_checkin(&device_id("ghost"), &report).await, "device", "unknown device");
}

/// `touch_devices` sets last contact for many devices and ignores unknown ids.
pub async fn touch_devices(store: &dyn Store) {
    let a = enrolled(store, "dev-a", &[]).await;
    let b = enrolled(store, "dev-b", &[]).await;
    let c = enrolled(store, "dev-c", &[]).await;
    store.touch_devices(&[]).await.unwrap();
    store.touch_devices(&[(a.clone(), 100), (device_id("ghost"), 100), (b.clone(), 200)]).await.unwrap();
    let contact = |d: Option<crate::Device>| d.unwrap().last_contact;
    assert_eq!(contact(store.get_device(&a).await.unwrap()), Some(100));
    assert_eq!(contact(store.get_device(&b).await.unwrap()), Some(200));
    assert_eq!(contact(store.get_device(&c).await.unwrap()), None);
    store.touch_devices(&[(a.clone(), 300)]).await.unwrap();
    assert_eq!(contact(store.get_device(&a).await.unwrap()), Some(300));
    assert_eq!(store.get_device(&device_id("ghost")).await.unwrap(), None);
}

/// Events are stored and listed oldest first, per release, at most `limit`.
pub async fn append_and_list_events(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let r2 = create(store, VPN, "1.0", ReleaseKind::Config).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    let mut failed = event(3, r2, DeviceState::Failed);
    failed.error_code = Some("E_HASH".to_owned());
    failed.message = Some("digest mismatch".to_owned());
    failed.progress = Some(-1);
    let batch = vec![event(1, r1, DeviceState::Downloading), event(2, r1, DeviceState::Downloaded), failed];
    let outcome = store.append_events(&id, &batch, 900).await.unwrap();
    assert_eq!((outcome.stored, outcome.duplicates), (3, 0));
    let listed = store.list_events(&id, None, 100).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.event.clone()).collect::<Vec<_>>(), batch);
    assert!(listed.iter().all(|e| e.received_at == 900));
    let r1_events = store.list_events(&id, Some(r1), 100).await.unwrap();
    assert_eq!(r1_events.iter().map(|e| e.event.seq).collect::<Vec<_>>(), [1, 2]);
    // A limit keeps the latest events, still oldest first.
    let seqs = |events: Vec<Event>| events.iter().map(|e| e.event.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.list_events(&id, None, 2).await.unwrap()), [2, 3]);
    assert_eq!(seqs(store.list_events(&id, Some(r1), 1).await.unwrap()), [2]);
    assert_eq!(store.list_events(&id, Some(ReleaseId(r2.0 + 100)), 100).await.unwrap(), vec![]);
    let empty = store.append_events(&id, &[], 901).await.unwrap();
    assert_eq!((empty.stored, empty.duplicates), (0, 0));
}

/// Resending stored events skips them (a retry), also mixed with new ones.
pub async fn append_events_idempotent(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    let batch: Vec<_> = (1..=3).map(|s| event(s, r1, DeviceState::Downloading)).collect();
    store.append_events(&id, &batch, 100).await.unwrap();
    let again = store.append_events(&id, &batch, 200).await.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3));
    let overlap: Vec<_> = (2..=5)
        .map(|s| event(s, r1, if s <= 3 { DeviceState::Downloading } else { DeviceState::Installing }))
        .collect();
    let outcome = store.append_events(&id, &overlap, 300).await.unwrap();
    assert_eq!((outcome.stored, outcome.duplicates), (2, 2));
    let listed = store.list_events(&id, None, 100).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| (e.event.seq, e.received_at)).collect::<Vec<_>>(),
        [(1, 100), (2, 100), (3, 100), (4, 300), (5, 300)]
    );
    assert_eq!(listed[1].event.state, DeviceState::Downloading, "a duplicate does not overwrite");
    // Sequence numbers are per device.
    let other = enrolled(store, "dev-2", &[]).await;
    assert_eq!(store.append_events(&other, &batch, 400).await.unwrap().stored, 3);
}

/// A known seq with other content is not a retry: the batch is refused whole, and what was
/// stored under that seq stays.
pub async fn append_events_changed_retry_conflicts(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    store.append_events(&id, &[event(1, r1, DeviceState::Downloading)], 100).await.unwrap();
    let before = store.list_events(&id, None, 100).await.unwrap();
    let changes: [fn(&mut NewEvent); 5] = [
        |e| e.state = DeviceState::Failed,
        |e| e.progress = Some(7),
        |e| e.message = Some("other".into()),
        |e| e.error_code = Some("E1".into()),
        |e| e.at += 1,
    ];
    for change in changes {
        let mut changed = event(1, r1, DeviceState::Downloading);
        change(&mut changed);
        let refused = store.append_events(&id, &[changed.clone(), event(2, r1, DeviceState::Downloaded)], 200).await;
        let message = expect_out_of_order(refused, &format!("{changed:?}"));
        assert!(message.contains("different content"), "{message}");
        assert_eq!(store.list_events(&id, None, 100).await.unwrap(), before, "nothing stored or changed");
    }
}

/// A batch holding an unstored event older than the latest stored one is refused whole.
pub async fn append_events_out_of_order(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    store
        .append_events(&id, &[event(1, r1, DeviceState::Downloading), event(5, r1, DeviceState::Downloaded)], 100)
        .await
        .unwrap();
    let states_before = store.device_release_states(&id).await.unwrap();
    let refused = store
        .append_events(&id, &[event(3, r1, DeviceState::Installing), event(6, r1, DeviceState::Committed)], 200)
        .await;
    let message = expect_out_of_order(refused, "out-of-order event");
    assert!(message.contains('3'), "{message}");
    let seqs = store.list_events(&id, None, 100).await.unwrap().iter().map(|e| e.event.seq).collect::<Vec<_>>();
    assert_eq!(seqs, [1, 5], "nothing of the refused batch is stored");
    assert_eq!(store.device_release_states(&id).await.unwrap(), states_before);
    let outcome = store
        .append_events(&id, &[event(5, r1, DeviceState::Downloaded), event(6, r1, DeviceState::Committed)], 300)
        .await
        .unwrap();
    assert_eq!((outcome.stored, outcome.duplicates), (1, 1));
}

/// A batch not in increasing `seq` order is refused and stores nothing.
pub async fn append_events_unsorted_batch(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    let unsorted = [event(2, r1, DeviceState::Downloaded), event(1, r1, DeviceState::Downloading)];
    expect_out_of_order(store.append_events(&id, &unsorted, 1).await, "unsorted batch");
    let doubled = [event(1, r1, DeviceState::Downloading), event(1, r1, DeviceState::Downloaded)];
    expect_out_of_order(store.append_events(&id, &doubled, 1).await, "seq twice in a batch");
    assert_eq!(store.list_events(&id, None, 100).await.unwrap(), vec![]);
    assert_eq!(store.device_release_states(&id).await.unwrap(), vec![]);
}

/// Events of an unknown device, or for an unknown release, are NotFound and store nothing.
pub async fn append_events_not_found(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    let ghost = device_id("ghost");
    expect_not_found(
        store.append_events(&ghost, &[event(1, r1, DeviceState::Downloading)], 1).await,
        "device",
        "unknown device",
    );
    let missing = ReleaseId(r1.0 + 100);
    let batch = [event(1, r1, DeviceState::Downloading), event(2, missing, DeviceState::Downloading)];
    let key = expect_not_found(store.append_events(&id, &batch, 1).await, "release", "unknown release");
    assert!(key.contains(&missing.to_string()), "{key}");
    assert_eq!(store.list_events(&id, None, 100).await.unwrap(), vec![]);
    assert_eq!(store.device_release_states(&id).await.unwrap(), vec![]);
    assert_eq!(store.list_events(&ghost, None, 100).await.unwrap(), vec![]);
}

/// `device_release_states` holds the latest event per release.
pub async fn device_release_states(store: &dyn Store) {
    catalogue(store).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let r2 = create(store, PHONE, "1.0", ReleaseKind::Full).await.id;
    let id = enrolled(store, "dev-1", &[]).await;
    let mut downloading = event(1, r1, DeviceState::Downloading);
    downloading.progress = Some(4096);
    let mut failed = event(3, r2, DeviceState::Failed);
    failed.error_code = Some("E_DISK".to_owned());
    failed.message = Some("no space left".to_owned());
    let mut deferred = event(2, r1, DeviceState::Deferred);
    deferred.message = Some("outside the window".to_owned());
    store.append_events(&id, &[downloading, deferred.clone(), failed], 100).await.unwrap();

    let states = store.device_release_states(&id).await.unwrap();
    assert_eq!(states.len(), 2);
    let r1_state = states.iter().find(|s| s.release == r1).unwrap();
    assert_eq!(r1_state.state, DeviceState::Deferred);
    assert_eq!(
        (r1_state.progress, r1_state.message.as_deref(), r1_state.updated_at),
        (None, Some("outside the window"), 100)
    );
    let r2_state = states.iter().find(|s| s.release == r2).unwrap();
    assert_eq!(r2_state.state, DeviceState::Failed);
    assert_eq!(r2_state.error_code.as_deref(), Some("E_DISK"));
    assert_eq!(r2_state.message.as_deref(), Some("no space left"));

    let mut committed = event(4, r1, DeviceState::Committed);
    committed.progress = Some(100);
    store.append_events(&id, &[committed], 200).await.unwrap();
    // A retried older event does not move the state back.
    store.append_events(&id, &[deferred], 300).await.unwrap();
    let states = store.device_release_states(&id).await.unwrap();
    let r1_state = states.iter().find(|s| s.release == r1).unwrap();
    assert_eq!(
        (r1_state.state, r1_state.progress, r1_state.message.as_deref()),
        (DeviceState::Committed, Some(100), None)
    );
    assert_eq!(r1_state.updated_at, 200);
    assert_eq!(states.iter().find(|s| s.release == r2).unwrap().updated_at, 100);

    let other = enrolled(store, "dev-2", &[]).await;
    assert_eq!(store.device_release_states(&other).await.unwrap(), vec![]);
    assert_eq!(store.device_release_states(&device_id("ghost")).await.unwrap(), vec![]);
}

/// Devices and groups are marked as test devices and unmarked; the flag is read back wherever
/// the device or group is read; unknown ones are NotFound.
pub async fn test_flags(store: &dyn Store) {
    create_groups(store, &["pilot", "field"]).await;
    let id = enrolled(store, "dev-1", &["field"]).await;
    assert!(!store.get_device(&id).await.unwrap().unwrap().test, "devices are not test devices by default");
    assert!(!store.get_group(&group_name("pilot")).await.unwrap().unwrap().test);

    store.set_device_test(&id, true).await.unwrap();
    assert!(store.get_device(&id).await.unwrap().unwrap().test);
    let found = store.device_by_credential("credential-of-dev-1").await.unwrap().unwrap();
    assert!(found.test, "the check-in's lookup reads the flag");
    let listed = store.list_devices(&DeviceFilter::default()).await.unwrap();
    assert!(listed[0].test);
    store.set_device_test(&id, false).await.unwrap();
    assert!(!store.get_device(&id).await.unwrap().unwrap().test);

    store.set_group_test(&group_name("pilot"), true).await.unwrap();
    assert!(store.get_group(&group_name("pilot")).await.unwrap().unwrap().test);
    let groups = store.list_groups().await.unwrap();
    assert_eq!(
        groups.iter().map(|g| (g.name.as_str(), g.test)).collect::<Vec<_>>(),
        [("field", false), ("pilot", true)]
    );
    // Replacing a group's settings keeps the flag it was given.
    let mut pilot = store.get_group(&group_name("pilot")).await.unwrap().unwrap();
    pilot.description = "changed".to_owned();
    store.update_group(&pilot).await.unwrap();
    assert!(store.get_group(&group_name("pilot")).await.unwrap().unwrap().test);
    store.set_group_test(&group_name("pilot"), false).await.unwrap();
    assert!(!store.get_group(&group_name("pilot")).await.unwrap().unwrap().test);

    expect_not_found(store.set_device_test(&device_id("ghost"), true).await, "device", "unknown device");
    expect_not_found(store.set_group_test(&group_name("ghost"), true).await, "group", "unknown group");
}

/// `release_test_states` lists the latest state of a release on test devices only: those
/// marked themselves and members of a test group, by id.
pub async fn release_test_states(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["pilot", "field"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await.id;
    let r2 = create(store, VPN, "2.0", ReleaseKind::Full).await.id;
    let marked = enrolled(store, "dev-b", &["field"]).await;
    let member = enrolled(store, "dev-a", &["pilot", "field"]).await;
    let plain = enrolled(store, "dev-c", &["field"]).await;
    let silent = enrolled(store, "dev-d", &["pilot"]).await;
    store.set_device_test(&marked, true).await.unwrap();
    store.set_group_test(&group_name("pilot"), true).await.unwrap();
    let mut failed = event(2, r1, DeviceState::Failed);
    failed.error_code = Some("E_HANDLER".to_owned());
    store.append_events(&marked, &[event(1, r1, DeviceState::Downloading), failed], 100).await.unwrap();
    store.append_events(&member, &[event(1, r1, DeviceState::Committed)], 110).await.unwrap();
    store.append_events(&plain, &[event(1, r1, DeviceState::Committed)], 120).await.unwrap();
    store.append_events(&member, &[event(2, r2, DeviceState::Installing)], 130).await.unwrap();

    let states = store.release_test_states(r1).await.unwrap();
    let seen: Vec<_> =
        states.iter().map(|(d, s)| (d.as_str(), s.state, s.error_code.as_deref(), s.updated_at)).collect();
    assert_eq!(
        seen,
        [("dev-a", DeviceState::Committed, None, 110), ("dev-b", DeviceState::Failed, Some("E_HANDLER"), 100)]
    );
    assert!(states.iter().all(|(_, s)| s.release == r1));
    let _ = silent;
    assert_eq!(store.release_test_states(r2).await.unwrap().len(), 1);
    store.set_group_test(&group_name("pilot"), false).await.unwrap();
    assert_eq!(store.release_test_states(r1).await.unwrap().len(), 1, "only the marked device is left");
    assert_eq!(store.release_test_states(ReleaseId(9999)).await.unwrap(), vec![]);
}

/// Wake requests: recorded for known devices only, listed by rising id after a cursor (and
/// again while recent), taken
/// once (and only a recent one counts), and forgotten once old.
pub async fn wake_requests(store: &dyn Store) {
    let a = enrolled(store, "dev-a", &[]).await;
    let b = enrolled(store, "dev-b", &[]).await;
    store.request_wakes(&[a.clone(), device_id("ghost"), b.clone()], 1000, 400).await.unwrap();
    let all = store.wake_requests_since(0, i64::MAX, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|w| (w.device.as_str(), w.requested_at)).collect::<Vec<_>>(),
        [("dev-a", 1000), ("dev-b", 1000)]
    );
    assert!(all[0].id < all[1].id);
    assert_eq!(store.wake_requests_since(all[0].id, i64::MAX, 100).await.unwrap(), all[1..].to_vec());
    assert_eq!(store.wake_requests_since(0, i64::MAX, 1).await.unwrap(), all[..1].to_vec());
    assert_eq!(store.wake_requests_since(all[1].id, i64::MAX, 100).await.unwrap(), vec![]);
    // Requests made lately are listed again, whatever their id.
    assert_eq!(store.wake_requests_since(all[1].id, 1000, 100).await.unwrap(), all);
    assert_eq!(store.wake_requests_since(all[1].id, 1001, 100).await.unwrap(), vec![]);

    assert!(store.take_wakes(&a, 900).await.unwrap(), "a recent request is delivered");
    assert!(!store.take_wakes(&a, 900).await.unwrap(), "and only once");
    // A request older than `since` is consumed without counting.
    assert!(!store.take_wakes(&b, 1001).await.unwrap());
    assert!(!store.take_wakes(&b, 0).await.unwrap());

    store.request_wakes(std::slice::from_ref(&a), 2000, 0).await.unwrap();
    store.request_wakes(std::slice::from_ref(&b), 3000, 2500).await.unwrap();
    let left = store.wake_requests_since(0, i64::MAX, 100).await.unwrap();
    assert_eq!(left.iter().map(|w| w.device.as_str()).collect::<Vec<_>>(), ["dev-b"], "old requests are forgotten");
    assert!(left[0].id > all[1].id, "ids keep rising");

    // Concurrent takers: exactly one sees the request.
    let (x, y) = tokio::join!(store.take_wakes(&b, 0), store.take_wakes(&b, 0));
    assert!(x.unwrap() ^ y.unwrap());
}

/// Admin tokens: ids assigned, found by hash until revoked, always listed; duplicate hashes
/// conflict; revoking an unknown id is NotFound.
pub async fn admin_tokens(store: &dyn Store) {
    let new = |name: &str, role, hash: &str| NewAdminToken { name: name.to_owned(), role, hash: hash.to_owned() };
    let ci = store.create_admin_token(&new("ci", Role::Operator, &"11".repeat(32)), 100).await.unwrap();
    let alice = store.create_admin_token(&new("alice", Role::Admin, &"22".repeat(32)), 200).await.unwrap();
    assert_ne!(ci.id, alice.id);
    assert_eq!((ci.name.as_str(), ci.role, ci.created_at, ci.revoked_at), ("ci", Role::Operator, 100, None));
    assert_eq!(store.admin_token_by_hash(&"11".repeat(32)).await.unwrap(), Some(ci.clone()));
    assert_eq!(store.admin_token_by_hash(&"33".repeat(32)).await.unwrap(), None);
    expect_conflict(
        store.create_admin_token(&new("again", Role::Viewer, &"11".repeat(32)), 300).await,
        "duplicate hash",
    );

    store.revoke_admin_token(ci.id, 400).await.unwrap();
    assert_eq!(store.admin_token_by_hash(&"11".repeat(32)).await.unwrap(), None);
    assert_eq!(store.admin_token_by_hash(&"22".repeat(32)).await.unwrap(), Some(alice.clone()));
    let listed = store.list_admin_tokens().await.unwrap();
    assert_eq!(listed, vec![crate::AdminToken { revoked_at: Some(400), ..ci.clone() }, alice]);
    expect_not_found(store.revoke_admin_token(ci.id + 1000, 500).await, "admin token", "unknown token");
}

/// The last unrevoked admin token cannot be revoked (Conflict, nothing changed); other roles
/// do not count as admins, and once a second admin exists either may go.
pub async fn last_admin_token_stays(store: &dyn Store) {
    let new = |name: &str, role, hash: &str| NewAdminToken { name: name.to_owned(), role, hash: hash.to_owned() };
    let root = store.create_admin_token(&new("root", Role::Admin, &"11".repeat(32)), 100).await.unwrap();
    store.create_admin_token(&new("ops", Role::Operator, &"22".repeat(32)), 100).await.unwrap();
    let message = expect_conflict(store.revoke_admin_token(root.id, 200).await, "the last admin token");
    assert!(message.contains("last admin token"), "{message}");
    assert_eq!(store.admin_token_by_hash(&"11".repeat(32)).await.unwrap(), Some(root.clone()), "still valid");
    let second = store.create_admin_token(&new("second", Role::Admin, &"33".repeat(32)), 300).await.unwrap();
    store.revoke_admin_token(root.id, 400).await.unwrap();
    store.revoke_admin_token(root.id, 500).await.unwrap();
    expect_conflict(store.revoke_admin_token(second.id, 600).await, "the new last admin token");
}

/// Revoking both of the only two admin tokens at once revokes exactly one of them, whichever
/// order the database runs the two transactions in.
pub async fn concurrent_revocations_keep_an_admin(store: &dyn Store) {
    let new = |n: u32| NewAdminToken { name: format!("admin-{n}"), role: Role::Admin, hash: format!("{n:064x}") };
    let mut survivor = store.create_admin_token(&new(0), 100).await.unwrap();
    for round in 1..=10 {
        let other = store.create_admin_token(&new(round), 100).await.unwrap();
        let (a, b) = tokio::join!(store.revoke_admin_token(survivor.id, 200), store.revoke_admin_token(other.id, 200));
        assert!(a.is_ok() != b.is_ok(), "round {round}: exactly one revocation succeeds: {a:?} {b:?}");
        expect_conflict(if a.is_err() { a } else { b }, "the revocation that came second");
        let active: Vec<_> =
            store.list_admin_tokens().await.unwrap().into_iter().filter(|t| t.revoked_at.is_none()).collect();
        assert_eq!(active.len(), 1, "round {round}: {active:?}");
        survivor = active.into_iter().next().unwrap();
    }
}

fn metadata(repo: Repo, role: &str, version: u64, bytes: &[u8]) -> MetadataFile {
    MetadataFile { repo, role: role.to_owned(), version, bytes: bytes.to_vec(), created_at: 500 + version as i64 }
}

/// Metadata files are stored exactly, found by version or as the newest, never overwritten,
/// and a batch with one clash stores nothing.
pub async fn metadata_files(store: &dyn Store) {
    assert_eq!(store.latest_metadata(Repo::Image, "root").await.unwrap(), None);
    let binary: Vec<u8> = (0..=255u8).collect();
    store.put_metadata(&[metadata(Repo::Image, "root", 1, &binary)]).await.unwrap();
    store
        .put_metadata(&[
            metadata(Repo::Image, "targets", 1, b"t1"),
            metadata(Repo::Image, "snapshot", 1, b"s1"),
            metadata(Repo::Image, "timestamp", 1, b"ts1"),
        ])
        .await
        .unwrap();
    store.put_metadata(&[metadata(Repo::Image, "root", 2, b"r2")]).await.unwrap();
    store.put_metadata(&[metadata(Repo::Director, "root", 7, b"d7")]).await.unwrap();
    assert_eq!(store.get_metadata(Repo::Image, "root", 1).await.unwrap(), Some(binary));
    assert_eq!(store.get_metadata(Repo::Image, "root", 3).await.unwrap(), None);
    assert_eq!(store.get_metadata(Repo::Director, "root", 1).await.unwrap(), None);
    assert_eq!(
        store.latest_metadata(Repo::Image, "root").await.unwrap(),
        Some(metadata(Repo::Image, "root", 2, b"r2"))
    );
    assert_eq!(store.latest_metadata(Repo::Director, "root").await.unwrap().map(|m| m.version), Some(7));

    // A clash anywhere in the batch: nothing of it is stored.
    let err = store
        .put_metadata(&[metadata(Repo::Image, "snapshot", 2, b"s2"), metadata(Repo::Image, "targets", 1, b"other")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("targets")), "{err:?}");
    assert_eq!(store.get_metadata(Repo::Image, "snapshot", 2).await.unwrap(), None);
    assert_eq!(store.get_metadata(Repo::Image, "targets", 1).await.unwrap().as_deref(), Some(&b"t1"[..]));
    let roles = store.metadata_roles(Repo::Image).await.unwrap();
    assert_eq!(roles, vec![("root".into(), 2), ("snapshot".into(), 1), ("targets".into(), 1), ("timestamp".into(), 1)]);
}

/// A device's director version is recorded by compare-and-set and never goes down.
pub async fn director_versions(store: &dyn Store) {
    store.enroll_device(&enrollment("gw-1", "cred-gw", DeviceStatus::Accepted, &[], 1)).await.unwrap();
    let id = device_id("gw-1");
    let state = |version: u64, digest: &str| DirectorState {
        version,
        digest: digest.to_owned(),
        issued_at: version as i64,
        files: DirectorFiles {
            targets: format!("targets {version}").into_bytes(),
            snapshot: format!("snapshot {version}").into_bytes(),
            timestamp: vec![0, 0xff, version as u8],
        },
    };
    assert_eq!(store.director_state(&id).await.unwrap(), None);
    assert!(store.advance_director_state(&id, None, &state(10, "a")).await.unwrap());
    assert!(!store.advance_director_state(&id, None, &state(11, "b")).await.unwrap(), "a second first issue loses");
    assert!(!store.advance_director_state(&id, Some(9), &state(12, "b")).await.unwrap(), "stale previous version");
    assert!(!store.advance_director_state(&id, Some(10), &state(10, "b")).await.unwrap(), "not higher");
    assert!(!store.advance_director_state(&id, Some(10), &state(5, "b")).await.unwrap(), "lower");
    assert_eq!(store.director_state(&id).await.unwrap(), Some(state(10, "a")));
    assert!(store.advance_director_state(&id, Some(10), &state(12, "c")).await.unwrap());
    assert_eq!(store.director_state(&id).await.unwrap(), Some(state(12, "c")));
    // A credential lookup carries the current version's stamp (not its files).
    let found = store.devices_by_credentials(&["cred-gw".to_owned()]).await.unwrap();
    let stamp = DirectorStamp { version: 12, digest: "c".into(), issued_at: 12 };
    assert_eq!(found[0].1.director, Some(stamp));
    store.enroll_device(&enrollment("gw-2", "cred-gw2", DeviceStatus::Accepted, &[], 1)).await.unwrap();
    let found = store.devices_by_credentials(&["cred-gw2".to_owned()]).await.unwrap();
    assert_eq!(found[0].1.director, None, "nothing issued yet");
    let missing = store.advance_director_state(&device_id("nobody"), None, &state(1, "a")).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");
}

// --- rollouts ---------------------------------------------------------------------------------

fn rollout_plan(release: ReleaseId, targets: &[&str], limits: Limits) -> Rollout {
    let wave = |share| Wave {
        group: None,
        share,
        soak_secs: 60,
        success: 9000,
        failure: 1000,
        failure_min: 2,
        manual_gate: false,
    };
    Rollout {
        id: RolloutId(0),
        release,
        targets: group_names(targets),
        waves: vec![wave(1000), wave(10_000)],
        limits,
        commit_timeout_secs: 600,
        emergency: false,
        state: RolloutState::Running,
        wave: 0,
        wave_started_at: 0,
        created_by: "alice".to_owned(),
        created_at: 2000,
        revision: 0,
    }
}

fn timeline_entry(at: i64, state: RolloutState, wave: u32, cause: Cause) -> TimelineEntry {
    TimelineEntry { at, state, wave, cause, by: Some("alice".to_owned()) }
}

/// A rollout is stored with its plan and first timeline entry; a state change is
/// compare-and-set on the revision and is recorded; a missing release or group is NotFound;
/// the release can no longer be deleted.
pub async fn rollout_round_trip(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["a", "b"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let limits = Limits { rate: Some(Rate { count: 10, period_secs: 60 }), max_in_progress: Some(5) };
    let created = timeline_entry(2000, RolloutState::Running, 0, Cause::Created);
    let stored = store.create_rollout(&rollout_plan(r1.id, &["a", "b"], limits), &created).await.unwrap();
    assert!(stored.id.0 > 0);
    assert_eq!(
        (stored.state, stored.wave, stored.revision, stored.wave_started_at),
        (RolloutState::Running, 0, 1, 2000)
    );
    assert_eq!(
        stored,
        Rollout { id: stored.id, revision: 1, wave_started_at: 2000, ..rollout_plan(r1.id, &["a", "b"], limits) }
    );
    assert_eq!(store.get_rollout(stored.id).await.unwrap(), Some(stored.clone()));
    assert_eq!(store.get_rollout(RolloutId(stored.id.0 + 100)).await.unwrap(), None);
    let gone = store.create_rollout(&rollout_plan(ReleaseId(r1.id.0 + 100), &["a"], limits), &created).await;
    expect_not_found(gone, "release", "a rollout of a missing release");
    let gone = store.create_rollout(&rollout_plan(r1.id, &["a", "nobody"], limits), &created).await;
    assert_eq!(expect_not_found(gone, "group", "a rollout to a missing group"), "nobody");
    expect_conflict(store.delete_release(r1.id).await, "deleting a release that has a rollout");

    // Compare-and-set: the first change wins, a second with the old revision changes nothing.
    let paused =
        timeline_entry(2100, RolloutState::Paused, 0, Cause::Admin { action: "pause".into(), note: String::new() });
    let after = store.transition_rollout(stored.id, 1, &paused, false).await.unwrap().unwrap();
    assert_eq!((after.state, after.revision, after.wave_started_at), (RolloutState::Paused, 2, 2000));
    let late = timeline_entry(2101, RolloutState::Running, 1, Cause::Succeeded { committed: 1, eligible: 1 });
    assert_eq!(store.transition_rollout(stored.id, 1, &late, true).await.unwrap(), None);
    let opened = store.transition_rollout(stored.id, 2, &late, true).await.unwrap().unwrap();
    assert_eq!(
        (opened.state, opened.wave, opened.wave_started_at, opened.revision),
        (RolloutState::Running, 1, 2101, 3)
    );
    assert_eq!(store.rollout_timeline(stored.id).await.unwrap(), vec![created.clone(), paused, late]);

    let cancelled = timeline_entry(2200, RolloutState::Cancelled, 1, Cause::ReleaseMarkedBad);
    let second = store.create_rollout(&rollout_plan(r1.id, &["b"], Limits::default()), &created).await.unwrap();
    store.transition_rollout(second.id, 1, &cancelled, false).await.unwrap().unwrap();
    let ids = |v: Vec<Rollout>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_rollouts(None, false).await.unwrap()), [second.id, stored.id], "newest first");
    assert_eq!(ids(store.list_rollouts(None, true).await.unwrap()), [stored.id], "active only");
    assert_eq!(ids(store.list_rollouts(Some(r1.id), false).await.unwrap()).len(), 2);
    assert_eq!(store.list_rollouts(Some(ReleaseId(r1.id.0 + 100)), false).await.unwrap(), vec![]);
}

/// Grants follow the rollout's state, waves and limits; an existing grant is returned as it
/// is; a grant's state is what the device reported on the release since it was granted.
pub async fn rollout_grants_and_limits(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["a"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let limits = Limits { rate: Some(Rate { count: 2, period_secs: 100 }), max_in_progress: Some(3) };
    let created = timeline_entry(2000, RolloutState::Running, 0, Cause::Created);
    let rollout = store.create_rollout(&rollout_plan(r1.id, &["a"], limits), &created).await.unwrap();
    let mut devices = Vec::new();
    for i in 0..5 {
        devices.push(enrolled(store, &format!("dev-{i}"), &["a"]).await);
    }
    // A device reported on the release before its grant: that report does not count.
    store.append_events(&devices[0], &[event(1, r1.id, DeviceState::Failed)], 1990).await.unwrap();

    let granted = |o: GrantOutcome| match o {
        GrantOutcome::Granted(g) => g,
        other => panic!("expected a grant, got {other:?}"),
    };
    let g0 = granted(store.grant(rollout.id, &devices[0], 0, 2000).await.unwrap());
    assert_eq!((g0.state, g0.granted_at, g0.wave), (GrantState::Granted, 2000, 0));
    assert_eq!(store.grant(rollout.id, &devices[0], 0, 2001).await.unwrap(), GrantOutcome::Existing(g0.clone()));
    assert_eq!(
        store.grant(rollout.id, &devices[1], 1, 2001).await.unwrap(),
        GrantOutcome::Refused(Refusal::LaterWave { wave: 1 })
    );
    granted(store.grant(rollout.id, &devices[1], 0, 2010).await.unwrap());
    assert_eq!(
        store.grant(rollout.id, &devices[2], 0, 2020).await.unwrap(),
        GrantOutcome::Refused(Refusal::RateLimited)
    );
    // The next period: one more, then the in-progress cap (3) stops the fourth.
    granted(store.grant(rollout.id, &devices[2], 0, 2100).await.unwrap());
    assert_eq!(
        store.grant(rollout.id, &devices[3], 0, 2101).await.unwrap(),
        GrantOutcome::Refused(Refusal::TooManyInProgress)
    );
    // Reports since the grant set its state; a recount frees the slots of finished grants.
    store.append_events(&devices[0], &[event(2, r1.id, DeviceState::Committed)], 2102).await.unwrap();
    store.append_events(&devices[1], &[event(1, r1.id, DeviceState::Deferred)], 2102).await.unwrap();
    let states: Vec<(DeviceId, GrantState)> =
        store.rollout_grants(rollout.id).await.unwrap().into_iter().map(|g| (g.device, g.state)).collect();
    assert_eq!(
        states,
        [
            (devices[0].clone(), GrantState::Committed),
            (devices[1].clone(), GrantState::Waiting),
            (devices[2].clone(), GrantState::Granted)
        ]
    );
    let mine = store.device_grants(&devices[0]).await.unwrap();
    assert_eq!((mine.len(), mine[0].state, mine[0].updated_at), (1, GrantState::Committed, 2102));
    assert_eq!(store.device_grants(&devices[4]).await.unwrap(), vec![]);
    store.recount_open_grants(rollout.id, 2, 3).await.unwrap();
    granted(store.grant(rollout.id, &devices[3], 0, 2103).await.unwrap());
    assert_eq!(
        store.grant(rollout.id, &devices[4], 0, 2104).await.unwrap(),
        GrantOutcome::Refused(Refusal::RateLimited),
        "two grants in the period starting at 2100"
    );
    // Paused: nothing new, whatever the limits.
    let pause =
        timeline_entry(2300, RolloutState::Paused, 0, Cause::Admin { action: "pause".into(), note: String::new() });
    store.transition_rollout(rollout.id, 1, &pause, false).await.unwrap().unwrap();
    assert_eq!(
        store.grant(rollout.id, &devices[4], 0, 2400).await.unwrap(),
        GrantOutcome::Refused(Refusal::NotGranting { state: RolloutState::Paused })
    );
    let missing = store.grant(RolloutId(rollout.id.0 + 100), &devices[4], 0, 2400).await;
    expect_not_found(missing, "rollout", "a grant in a missing rollout");
}

/// Many concurrent grants never exceed the rate limit.
pub async fn concurrent_grants_respect_limits(store: &dyn Store) {
    catalogue(store).await;
    create_groups(store, &["a"]).await;
    let r1 = create(store, VPN, "1.0", ReleaseKind::Full).await;
    let limits = Limits { rate: Some(Rate { count: 7, period_secs: 3600 }), max_in_progress: None };
    let created = timeline_entry(2000, RolloutState::Running, 0, Cause::Created);
    let mut plan = rollout_plan(r1.id, &["a"], limits);
    plan.waves.remove(0);
    let rollout = store.create_rollout(&plan, &created).await.unwrap();
    let mut devices = Vec::new();
    for i in 0..24 {
        devices.push(enrolled(store, &format!("dev-{i:02}"), &["a"]).await);
    }
    let attempts = devices.iter().map(|d| store.grant(rollout.id, d, 0, 2001));
    let outcomes = futures::future::join_all(attempts).await;
    let granted = outcomes.iter().filter(|o| matches!(o, Ok(GrantOutcome::Granted(_)))).count();
    let refused = outcomes.iter().filter(|o| matches!(o, Ok(GrantOutcome::Refused(Refusal::RateLimited)))).count();
    assert_eq!((granted, refused), (7, 17), "{outcomes:?}");
    assert_eq!(store.rollout_grants(rollout.id).await.unwrap().len(), 7);
}
