//! TUF metadata files and devices' director versions.

use super::*;

#[async_trait::async_trait]
impl TrustStore for Backend {
    async fn put_metadata(&self, files: &[MetadataFile]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for file in files {
            sqlx::query(
                "INSERT INTO tuf_metadata (repo, role, version, bytes, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(file.repo.as_str())
            .bind(&file.role)
            .bind(to_i64("metadata version", file.version)?)
            .bind(&file.bytes)
            .bind(file.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                map_err::<SqlDialect>(e, || {
                    format!("{} metadata {} version {} already exists", file.repo.as_str(), file.role, file.version)
                })
            })?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn get_metadata(&self, repo: Repo, role: &str, version: u64) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM tuf_metadata WHERE repo = $1 AND role = $2 AND version = $3")
            .bind(repo.as_str())
            .bind(role)
            .bind(to_i64("metadata version", version)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(|r| get(r, "tuf_metadata", "bytes")).transpose()
    }

    async fn latest_metadata(&self, repo: Repo, role: &str) -> Result<Option<MetadataFile>> {
        let row = sqlx::query(
            "SELECT version, bytes, created_at FROM tuf_metadata WHERE repo = $1 AND role = $2 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(role)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        let Some(row) = row else { return Ok(None) };
        const T: &str = "tuf_metadata";
        Ok(Some(MetadataFile {
            repo,
            role: role.to_owned(),
            version: to_u64(T, "version", get(&row, T, "version")?)?,
            bytes: get(&row, T, "bytes")?,
            created_at: get(&row, T, "created_at")?,
        }))
    }

    async fn metadata_roles(&self, repo: Repo) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT role, MAX(version) AS version FROM tuf_metadata WHERE repo = $1 \
             GROUP BY role ORDER BY role",
        )
        .bind(repo.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        const T: &str = "tuf_metadata";
        rows.iter().map(|r| Ok((get(r, T, "role")?, to_u64(T, "version", get(r, T, "version")?)?))).collect()
    }

    async fn director_state(&self, device: &DeviceId) -> Result<Option<DirectorState>> {
        let row = sqlx::query(
            "SELECT version, digest, issued_at, targets, snapshot, timestamp \
             FROM director_state WHERE device_id = $1",
        )
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        const T: &str = "director_state";
        row.map(|r| {
            Ok(DirectorState {
                version: to_u64(T, "version", get(&r, T, "version")?)?,
                digest: get(&r, T, "digest")?,
                issued_at: get(&r, T, "issued_at")?,
                files: DirectorFiles {
                    targets: get(&r, T, "targets")?,
                    snapshot: get(&r, T, "snapshot")?,
                    timestamp: get(&r, T, "timestamp")?,
                },
            })
        })
        .transpose()
    }

    async fn advance_director_state(
        &self,
        device: &DeviceId,
        previous: Option<u64>,
        next: &DirectorState,
    ) -> Result<bool> {
        let version = to_i64("director version", next.version)?;
        let done = match previous {
            None => sqlx::query(
                "INSERT INTO director_state (device_id, version, digest, issued_at, targets, snapshot, timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id) DO NOTHING",
            )
            .bind(device.as_str())
            .bind(version)
            .bind(&next.digest)
            .bind(next.issued_at)
            .bind(&next.files.targets)
            .bind(&next.files.snapshot)
            .bind(&next.files.timestamp)
            .execute(&self.writer)
            .await
            .map_err(|e| match map_err::<SqlDialect>(e, String::new) {
                StoreError::NotFound { .. } => StoreError::not_found("device", device),
                other => other,
            })?,
            Some(previous) => sqlx::query(
                "UPDATE director_state SET version = $2, digest = $3, issued_at = $4, \
                 targets = $6, snapshot = $7, timestamp = $8 \
                 WHERE device_id = $1 AND version = $5 AND version < $2",
            )
            .bind(device.as_str())
            .bind(version)
            .bind(&next.digest)
            .bind(next.issued_at)
            .bind(to_i64("director version", previous)?)
            .bind(&next.files.targets)
            .bind(&next.files.snapshot)
            .bind(&next.files.timestamp)
            .execute(&self.writer)
            .await
            .map_err(err)?,
        };
        Ok(done.rows_affected() == 1)
    }
}
