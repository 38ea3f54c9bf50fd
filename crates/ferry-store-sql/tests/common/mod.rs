//! What both backends' tests share.

use ferry_store::Store;

/// A product, a platform, content and release `vpn` 5.0 of it.
pub async fn old_release(store: &dyn Store) -> ferry_core::Release {
    let vpn: ferry_core::ProductName = "vpn".parse().unwrap();
    let linux: ferry_core::PlatformName = "linux-x86_64".parse().unwrap();
    store
        .create_product(&ferry_store::Product { name: vpn.clone(), description: String::new(), created_at: 1 })
        .await
        .unwrap();
    store
        .create_platform(&ferry_store::Platform { name: linux.clone(), description: String::new(), created_at: 1 })
        .await
        .unwrap();
    let sha = ferry_core::Sha256::from_bytes([7; 32]);
    store.record_content(&sha, 10, 1).await.unwrap();
    let release = ferry_core::Release {
        id: ferry_core::ReleaseId(0),
        product: vpn,
        version: "5.0".parse().unwrap(),
        kind: ferry_core::ReleaseKind::Full,
        platforms: vec![linux],
        artifacts: vec![ferry_core::Artifact {
            name: "vpn.bin".parse().unwrap(),
            length: 10,
            sha256: sha,
            media_type: "application/octet-stream".to_owned(),
            custom: Default::default(),
        }],
        required: false,
        reboot: Default::default(),
        classification: Default::default(),
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
    store.create_release(&release, 1).await.unwrap()
}
