//! Dynamic and nested groups over real HTTP, on SQLite and on PostgreSQL: a device's effective
//! groups (static, dynamic and inherited) decide what it is offered, and the group routes
//! refuse what would make membership ambiguous.

mod common;

use ferry_api::*;
use ferry_client::DeviceClient;
use ferry_core::applicability::Verdict;
use ferry_core::{ApprovalAction, GroupName, Release, ReleaseId};

use common::{code, message, report, sha, Fleet};

async fn fleet(srv: &common::TestServer) -> Fleet {
    let product = ProductSpec { name: "agent".parse().unwrap(), description: String::new() };
    Fleet::new(srv, product, None).await
}

async fn publish(f: &Fleet, version: &str) -> Release {
    let data = format!("agent {version}").into_bytes();
    let info = f.admin.upload_content(data.clone(), Some(&sha(&data))).await.unwrap();
    let artifact = common::artifact(&format!("agent-{version}.tar.gz"), &info, "application/gzip");
    f.admin.create_release(&common::release_spec("agent", version, "linux-x86_64", artifact)).await.unwrap()
}

fn name(s: &str) -> GroupName {
    s.parse().unwrap()
}

fn spec(group: &str, filter: Option<&str>, parent: Option<&str>) -> GroupSpec {
    GroupSpec {
        name: name(group),
        description: String::new(),
        checkin_interval_secs: None,
        checkin_jitter: None,
        filter: filter.map(str::to_owned),
        parent: parent.map(name),
        window: None,
    }
}

async fn approve(f: &Fleet, release: &Release, group: &str, action: ApprovalAction) {
    f.admin.set_approval(release.id, &name(group), &ApprovalSpec { action, deadline: None }).await.unwrap();
}

/// `PATCH /groups/{group}` with only a new parent ("" removes it).
async fn set_parent(f: &Fleet, group: &str, parent: &str) -> Result<GroupView, ferry_client::ClientError> {
    f.admin.update_group(&name(group), &GroupUpdate { parent: Some(parent.into()), ..Default::default() }).await
}

/// `PATCH /groups/{group}` with only a new filter ("" makes the group static).
async fn set_filter(f: &Fleet, group: &str, filter: &str) -> Result<GroupView, ferry_client::ClientError> {
    f.admin.update_group(&name(group), &GroupUpdate { filter: Some(filter.into()), ..Default::default() }).await
}

/// Checks in from `site`, with agent 1.0 installed; returns the offered releases.
async fn offers_at(device: &DeviceClient, site: &str) -> Vec<ReleaseId> {
    let mut req = report(&[("agent", "1.0")]);
    req.attributes.insert("site".into(), site.into());
    device.checkin(&req).await.unwrap().offers.iter().map(|o| o.release).collect()
}

on_both_backends!(effective_approvals_combine_static_dynamic_and_inherited, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let r11 = publish(&f, "1.1").await;
    let r12 = publish(&f, "1.2").await;
    let device = f.enroll("pc-osaka-1").await;
    let id = "pc-osaka-1".parse().unwrap();

    // A device in a child group gets the parent's approval.
    f.admin.create_group(&spec("company", None, None)).await.unwrap();
    assert_eq!(set_parent(&f, "office", "company").await.unwrap().parent, Some(name("company")));
    approve(&f, &r11, "company", ApprovalAction::Install).await;
    assert_eq!(offers_at(&device, "nagoya").await, vec![r11.id]);
    let detail = f.admin.get_device(&id).await.unwrap();
    assert_eq!(detail.device.groups, vec![name("office")]);
    assert_eq!(detail.effective_groups, vec![name("company"), name("office")]);

    // A decline on a dynamic group beats an install on a static parent.
    let osaka = f.admin.create_group(&spec("osaka", Some(r#"attr.site = "osaka""#), None)).await.unwrap();
    assert_eq!(osaka.enrollment_key, None);
    assert!(!osaka.group.has_enrollment_key);
    approve(&f, &r11, "osaka", ApprovalAction::Decline).await;
    assert_eq!(offers_at(&device, "osaka").await, Vec::<ReleaseId>::new());
    let why = f.admin.device_applicability(&id).await.unwrap();
    assert_eq!(why.groups, vec![name("company"), name("office"), name("osaka")]);
    let verdict = why.decisions.iter().find(|d| d.release == r11.id).unwrap().verdict.clone();
    assert_eq!(verdict, Verdict::Declined);
    assert_eq!(f.admin.get_device(&id).await.unwrap().effective_groups.len(), 3);

    // A dynamic group's parent passes its approval down too: kyoto (under west) gets 1.2.
    f.admin.create_group(&spec("west", None, None)).await.unwrap();
    f.admin.create_group(&spec("kyoto", Some(r#"attr.site in ("kyoto", "kobe")"#), Some("west"))).await.unwrap();
    approve(&f, &r12, "west", ApprovalAction::Install).await;
    assert_eq!(offers_at(&device, "kyoto").await, vec![r12.id]);
    let detail = f.admin.get_device(&id).await.unwrap();
    assert_eq!(detail.effective_groups, vec![name("company"), name("kyoto"), name("office"), name("west")]);

    // The device stops matching the filter and loses the approval on its next check-in.
    assert_eq!(offers_at(&device, "nagoya").await, vec![r11.id]);
    assert_eq!(f.admin.get_device(&id).await.unwrap().effective_groups, vec![name("company"), name("office")]);
    // And only that group's: removing the parent removes the inherited approval.
    assert_eq!(set_parent(&f, "office", "").await.unwrap().parent, None);
    assert_eq!(offers_at(&device, "nagoya").await, Vec::<ReleaseId>::new());
});

on_both_backends!(
    group_routes_refuse_cycles_bad_filters_and_static_members_of_dynamic_groups,
    |srv: common::TestServer| async move {
        let f = fleet(&srv).await;
        f.enroll("pc-1").await;
        f.enroll("lab-1").await;
        let pc = "pc-1".parse().unwrap();

        // A filter that does not parse is a 400 that says where and what.
        let e =
            f.admin.create_group(&spec("bad", Some(r#"platform = "linux-x86_64" and attr.site "osaka""#), None)).await;
        let e = e.unwrap_err();
        assert_eq!(code(&e), (400, ErrorCode::BadRequest));
        let text = message(&e);
        assert!(text.contains("at column 41: expected a comparison operator"), "{text}");
        assert!(text.contains(r#"found "osaka""#), "{text}");

        // Parents: missing, cycles and self are refused, naming the cycle.
        f.admin.create_group(&spec("a", None, None)).await.unwrap();
        f.admin.create_group(&spec("b", None, Some("a"))).await.unwrap();
        let e = f.admin.create_group(&spec("c", None, Some("nope"))).await.unwrap_err();
        assert_eq!(code(&e).0, 404);
        let e = set_parent(&f, "a", "b").await.unwrap_err();
        assert_eq!(code(&e), (409, ErrorCode::Conflict));
        assert!(message(&e).contains("a -> b -> a"), "{}", message(&e));
        assert!(message(&set_parent(&f, "a", "a").await.unwrap_err()).contains("a -> a"));
        assert_eq!(f.admin.get_group(&name("a")).await.unwrap().parent, None, "a refused parent changes nothing");

        // A dynamic group has no key and no static members.
        let filter = r#"id ~ "pc-*""#;
        f.admin.create_group(&spec("pcs", Some(filter), Some("a"))).await.unwrap();
        let shown = f.admin.get_group(&name("pcs")).await.unwrap();
        assert_eq!((shown.filter.as_deref(), shown.parent.clone()), (Some(filter), Some(name("a"))));
        let e = f.admin.rotate_enrollment_key(&name("pcs")).await.unwrap_err();
        assert_eq!(code(&e).0, 409);
        assert!(message(&e).contains("dynamic"), "{}", message(&e));
        let e = f.admin.set_device_groups(&pc, &DeviceGroups { groups: vec![name("pcs")] }).await.unwrap_err();
        assert_eq!(code(&e).0, 409);
        assert!(message(&e).contains("group pcs is dynamic"), "{}", message(&e));
        let spec_pre = PreauthorizeSpec { id: "pc-9".parse().unwrap(), groups: vec![name("pcs")] };
        assert_eq!(code(&f.admin.preauthorize_device(&spec_pre).await.unwrap_err()).0, 409);

        // A static group with members cannot become dynamic; an empty one can, and loses its key.
        let e = set_filter(&f, "office", filter).await.unwrap_err();
        assert_eq!(code(&e).0, 409);
        assert!(message(&e).contains("static members"), "{}", message(&e));
        f.admin.rotate_enrollment_key(&name("b")).await.unwrap();
        let b = set_filter(&f, "b", filter).await.unwrap();
        assert!(!b.has_enrollment_key && b.filter.is_some());
        assert_eq!(code(&set_filter(&f, "b", "id ~").await.unwrap_err()).0, 400);
        assert_eq!(set_filter(&f, "b", "").await.unwrap().filter, None);

        // The preview counts and lists the matching devices.
        let preview = f.admin.preview_filter(filter).await.unwrap();
        assert_eq!((preview.count, preview.devices), (1, vec!["pc-1".parse().unwrap()]));
        let preview = f.admin.preview_filter(r#"platform exists or id ~ "*-1""#).await.unwrap();
        assert_eq!(preview.count, 2);
        let e = f.admin.preview_filter("platform =").await.unwrap_err();
        assert_eq!(code(&e).0, 400);
        assert!(message(&e).contains("at column 11"), "{}", message(&e));

        let doc = f.admin.openapi().await.unwrap();
        assert!(doc["paths"]["/api/v1/groups/preview"]["post"].is_object());
    }
);

on_both_backends!(last_contact_age_follows_the_server_clock, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let id = "pc-quiet".parse().unwrap();
    let device = f.enroll("pc-quiet").await;
    srv.state.clock.set(1_900_000_000);
    offers_at(&device, "osaka").await;
    f.admin.create_group(&spec("quiet", Some("last_contact_age > 30d"), None)).await.unwrap();
    let count = |filter: &'static str| {
        let admin = &f.admin;
        async move { admin.preview_filter(filter).await.unwrap().count }
    };
    assert_eq!((count("last_contact_age < 7d").await, count("last_contact_age > 30d").await), (1, 0));
    assert_eq!(f.admin.get_device(&id).await.unwrap().effective_groups, vec![name("office")]);

    srv.state.clock.advance(31 * 86_400);
    assert_eq!((count("last_contact_age < 7d").await, count("last_contact_age > 30d").await), (0, 1));
    assert_eq!(f.admin.get_device(&id).await.unwrap().effective_groups, vec![name("office"), name("quiet")]);
    // Checking in makes it recent again (once the write-behind contact stamp is flushed).
    offers_at(&device, "osaka").await;
    srv.state.contacts.flush(srv.store.as_ref()).await;
    assert_eq!(count("last_contact_age > 30d").await, 0);
});
