//! Admin access cannot be lost through the API: the last admin token cannot be revoked, and
//! whoever runs the server can always create a new admin token from its configuration.

mod common;

use ferry_api::{ErrorCode, TokenSpec};
use ferry_client::{AdminClient, ClientError};
use ferry_core::Role;

on_both_backends!(
    the_last_admin_token_cannot_be_revoked_and_access_is_recoverable,
    |srv: common::TestServer| async move {
        let admin = AdminClient::new(&srv.url, &srv.admin_token).unwrap();
        let initial = admin.list_tokens().await.unwrap()[0].id;
        let viewer = admin.create_token(&TokenSpec { name: "dashboard".into(), role: Role::Viewer }).await.unwrap();
        match admin.revoke_token(initial).await {
            Err(ClientError::Api { status: 409, code: ErrorCode::Conflict, message }) => {
                assert!(message.contains("last admin token") && message.contains("--role admin"), "{message}")
            }
            other => panic!("expected 409 conflict, got {other:?}"),
        }
        assert_eq!(admin.whoami().await.unwrap().role, Role::Admin, "the token still works");
        admin.revoke_token(viewer.token.id).await.unwrap();

        // Recovery works with what the server runs with, while it runs.
        let secret = ferry_server::recover_admin_token(&srv.state.config).await.unwrap();
        assert_eq!(std::fs::read_to_string(srv.data_dir.join("admin-token")).unwrap().trim(), secret);
        let recovered = AdminClient::new(&srv.url, &secret).unwrap();
        let whoami = recovered.whoami().await.unwrap();
        assert_eq!((whoami.name.as_str(), whoami.role), (ferry_server::RECOVERED_TOKEN_NAME, Role::Admin));
        recovered.revoke_token(initial).await.unwrap();
        assert!(admin.whoami().await.is_err(), "the old token is revoked");
    }
);
