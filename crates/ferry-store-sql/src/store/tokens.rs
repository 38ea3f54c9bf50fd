//! Admin tokens.

use super::*;

#[async_trait::async_trait]
impl TokenStore for Backend {
    async fn create_admin_token(&self, token: &NewAdminToken, now: i64) -> Result<AdminToken> {
        let row =
            sqlx::query("INSERT INTO admin_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(&token.name)
                .bind(token.role.as_str())
                .bind(&token.hash)
                .bind(now)
                .fetch_one(&self.writer)
                .await
                .map_err(|e| conflict(e, || "an admin token with this hash already exists".to_owned()))?;
        Ok(AdminToken {
            id: get(&row, "admin_tokens", "id")?,
            name: token.name.clone(),
            role: token.role,
            created_at: now,
            revoked_at: None,
        })
    }

    async fn admin_token_by_hash(&self, hash: &str) -> Result<Option<AdminToken>> {
        let row =
            sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE hash = $1 AND revoked_at IS NULL"))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_admin_token(&self, id: i64, now: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Lock the unrevoked admin tokens first, so that two revocations cannot each
        // see the other's token as the admin that remains (PostgreSQL); SQLite's
        // write transaction already excludes other writers.
        let admins: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM admin_tokens WHERE role = $1 AND revoked_at IS NULL{}",
            SqlDialect::FOR_UPDATE
        ))
        .bind(Role::Admin.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        if admins == [id] {
            return Err(StoreError::Conflict(
                "this is the last admin token: revoking it would leave nobody able to manage \
                 tokens; create another admin token first (ferry token create NAME --role admin)"
                    .to_owned(),
            ));
        }
        // Revoking twice keeps the first revocation time.
        let done = sqlx::query("UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("admin token", id));
        }
        tx.commit().await.map_err(err)
    }
}
