//! Admin routes for admin tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ferry_api::{TokenCreated, TokenSpec, Whoami, ADMIN_TOKEN_PREFIX};
use ferry_core::{AdminToken, Role};
use ferry_store::{NewAdminToken, Store};

use crate::auth::{hash_secret, new_secret, Admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;

type S = State<Arc<AppState>>;

#[utoipa::path(get, path = "/api/v1/whoami", tag = "tokens", responses((status = 200, body = Whoami)))]
pub async fn whoami(admin: Admin) -> Json<Whoami> {
    Json(Whoami { name: admin.name, role: admin.role })
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = [AdminToken])))]
pub async fn list_tokens(State(st): S, admin: Admin) -> ApiResult<Json<Vec<AdminToken>>> {
    admin.require(Role::Admin)?;
    Ok(Json(st.store.list_admin_tokens().await?))
}

/// Creates a token at `at` (Unix seconds) and returns its secret, which is shown only this once.
pub async fn issue(store: &dyn Store, name: &str, role: Role, at: i64) -> ApiResult<TokenCreated> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("a token name must be 1 to 64 printable characters"));
    }
    let secret = new_secret(ADMIN_TOKEN_PREFIX);
    let token = store
        .create_admin_token(&NewAdminToken { name: name.to_owned(), role, hash: hash_secret(&secret) }, at)
        .await?;
    Ok(TokenCreated { token, secret })
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenSpec,
    responses((status = 201, body = TokenCreated)))]
pub async fn create_token(
    State(st): S,
    admin: Admin,
    Json(spec): Json<TokenSpec>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    admin.require(Role::Admin)?;
    let created = issue(st.store.as_ref(), &spec.name, spec.role, st.clock.now()).await?;
    tracing::info!(token = %created.token.name, role = spec.role.as_str(), by = %admin.name, "admin token created");
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ferry_api::ErrorBody),
        (status = 409, description = "the last admin token cannot be revoked", body = ferry_api::ErrorBody)))]
pub async fn revoke_token(State(st): S, admin: Admin, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    admin.require(Role::Admin)?;
    st.store.revoke_admin_token(id, st.clock.now()).await?;
    tracing::info!(token = id, by = %admin.name, "admin token revoked");
    Ok(StatusCode::NO_CONTENT)
}
