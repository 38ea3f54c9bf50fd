//! Products, platforms, recorded content and releases.

use super::*;

#[async_trait::async_trait]
impl CatalogueStore for Backend {
    async fn create_product(&self, product: &Product) -> Result<()> {
        sqlx::query("INSERT INTO products (name, description, created_at) VALUES ($1, $2, $3)")
            .bind(product.name.as_str())
            .bind(&product.description)
            .bind(product.created_at)
            .execute(&self.writer)
            .await
            .map_err(|e| conflict(e, || format!("product {} already exists", product.name)))?;
        Ok(())
    }

    async fn get_product(&self, name: &ProductName) -> Result<Option<Product>> {
        let row = sqlx::query("SELECT name, description, created_at FROM products WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(product_from_row).transpose()
    }

    async fn list_products(&self) -> Result<Vec<Product>> {
        let rows = sqlx::query("SELECT name, description, created_at FROM products ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(product_from_row).collect()
    }

    async fn create_platform(&self, platform: &Platform) -> Result<()> {
        sqlx::query("INSERT INTO platforms (name, description, created_at) VALUES ($1, $2, $3)")
            .bind(platform.name.as_str())
            .bind(&platform.description)
            .bind(platform.created_at)
            .execute(&self.writer)
            .await
            .map_err(|e| conflict(e, || format!("platform {} already exists", platform.name)))?;
        Ok(())
    }

    async fn get_platform(&self, name: &PlatformName) -> Result<Option<Platform>> {
        let row = sqlx::query("SELECT name, description, created_at FROM platforms WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(platform_from_row).transpose()
    }

    async fn list_platforms(&self) -> Result<Vec<Platform>> {
        let rows = sqlx::query("SELECT name, description, created_at FROM platforms ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(platform_from_row).collect()
    }

    async fn record_content(&self, sha256: &Sha256, length: u64, now: i64) -> Result<()> {
        let length_i = to_i64("content length", length)?;
        sqlx::query(
            "INSERT INTO content (sha256, length, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256.as_str())
        .bind(length_i)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(err)?;
        match self.content_length(sha256).await? {
            Some(stored) if stored != length => {
                Err(StoreError::Conflict(format!("content {sha256} is recorded with length {stored}, not {length}")))
            }
            _ => Ok(()),
        }
    }

    async fn content_length(&self, sha256: &Sha256) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT length FROM content WHERE sha256 = $1")
            .bind(sha256.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| to_u64("content", "length", get(&r, "content", "length")?)).transpose()
    }

    async fn create_release(&self, release: &Release, now: i64) -> Result<Release> {
        let line = line_of(release);
        let mut tx = self.begin_write().await?;

        // Locking the product row serialises releases of one product, so counters
        // and the duplicate check below cannot race (PostgreSQL; SQLite's write
        // transaction already excludes other writers).
        let sql = format!("SELECT name FROM products WHERE name = $1{}", SqlDialect::FOR_UPDATE);
        let product = sqlx::query(&sql).bind(release.product.as_str()).fetch_optional(&mut *tx).await.map_err(err)?;
        if product.is_none() {
            return Err(StoreError::not_found("product", &release.product));
        }
        for (i, platform) in release.platforms.iter().enumerate() {
            if release.platforms[..i].contains(platform) {
                return Err(StoreError::Conflict(format!("platform {platform} is listed twice")));
            }
            let found = sqlx::query("SELECT name FROM platforms WHERE name = $1")
                .bind(platform.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            if found.is_none() {
                return Err(StoreError::not_found("platform", platform));
            }
        }
        for (i, artifact) in release.artifacts.iter().enumerate() {
            if release.artifacts[..i].iter().any(|a| a.name == artifact.name) {
                return Err(StoreError::Conflict(format!(
                    "artifact name {} appears twice; names must be unique within a release",
                    artifact.name
                )));
            }
            let row = sqlx::query("SELECT length FROM content WHERE sha256 = $1")
                .bind(artifact.sha256.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            let stored: Option<i64> = row.map(|r| get(&r, "content", "length")).transpose()?;
            if stored != Some(to_i64("artifact length", artifact.length)?) {
                return Err(StoreError::not_found(
                    "content",
                    format!("{} of length {} (artifact {})", artifact.sha256, artifact.length, artifact.name),
                ));
            }
        }
        // Versions are compared by rank (5 = 5.0 = 5.0 (Rel)); the unique index on
        // the key backs this check up against anything that bypasses the lock.
        let key = release.version.rank_key();
        let existing =
            sqlx::query("SELECT id, version FROM releases WHERE product = $1 AND line = $2 AND version_key = $3")
                .bind(release.product.as_str())
                .bind(line)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
        if let Some(row) = existing {
            let id: i64 = get(&row, "releases", "id")?;
            let version: String = get(&row, "releases", "version")?;
            return Err(StoreError::Conflict(if version == release.version.as_str() {
                format!("{} already has {line} version {version} (release {id})", release.product)
            } else {
                format!(
                    "{} already has {line} version {version} (release {id}), which ranks equal to {}; \
                     use a version that orders differently",
                    release.product, release.version
                )
            }));
        }
        let row = sqlx::query("SELECT COALESCE(MAX(counter), 0) AS top FROM releases WHERE product = $1")
            .bind(release.product.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let counter = get::<i64>(&row, "releases", "top")? + 1;

        let row = sqlx::query(
            "INSERT INTO releases (product, version, line, kind, required, reboot, classification, \
             notes, dependencies, supersedes, no_update_versions, applies_to, counter, created_at, \
             version_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(release.product.as_str())
        .bind(release.version.as_str())
        .bind(line)
        .bind(release.kind.as_str())
        .bind(release.required)
        .bind(enum_str(release.reboot)?)
        .bind(enum_str(release.classification)?)
        .bind(&release.notes)
        .bind(to_json(&release.dependencies)?)
        .bind(to_json(&release.supersedes)?)
        .bind(to_json(&release.no_update_versions)?)
        .bind(release.applies_to.as_ref().map(to_json).transpose()?)
        .bind(counter)
        .bind(now)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict(e, || format!("{} already has {line} version {}", release.product, release.version)))?;
        let id: i64 = get(&row, "releases", "id")?;

        for (ordinal, platform) in release.platforms.iter().enumerate() {
            sqlx::query("INSERT INTO release_platforms (release_id, platform, ordinal) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(platform.as_str())
                .bind(ordinal as i64)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        for (ordinal, artifact) in release.artifacts.iter().enumerate() {
            sqlx::query(
                "INSERT INTO artifacts (release_id, name, length, sha256, media_type, custom, ordinal) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(artifact.name.as_str())
            .bind(to_i64("artifact length", artifact.length)?)
            .bind(artifact.sha256.as_str())
            .bind(&artifact.media_type)
            .bind(to_json(&artifact.custom)?)
            .bind(ordinal as i64)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Release { id: ReleaseId(id), counter, created_at: now, archived: false, bad: None, ..release.clone() })
    }

    async fn delete_release(&self, id: ReleaseId) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The row lock orders this against set_approval, which marks the row in
        // its own transaction: either the approval sees no release or this sees
        // the mark.
        let sql = format!("SELECT ever_approved FROM releases WHERE id = $1{}", SqlDialect::FOR_UPDATE);
        let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *tx).await.map_err(err)?;
        let Some(row) = row else {
            return Err(StoreError::not_found("release", id));
        };
        if get::<bool>(&row, "releases", "ever_approved")? {
            return Err(StoreError::Conflict(format!(
                "release {id} has been approved for install, so devices may have been offered it; \
                 archive it instead (ferry release archive {id})"
            )));
        }
        let reported = sqlx::query(
            "SELECT device_id FROM events WHERE release_id = $1 \
             UNION ALL SELECT device_id FROM device_releases WHERE release_id = $1 LIMIT 1",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        if let Some(row) = reported {
            let device: String = get(&row, "events", "device_id")?;
            return Err(StoreError::Conflict(format!(
                "device {device} has reported on release {id}; archive it instead (ferry release archive {id})"
            )));
        }
        sqlx::query("DELETE FROM releases WHERE id = $1").bind(id.0).execute(&mut *tx).await.map_err(err)?;
        tx.commit().await.map_err(backend)
    }

    async fn update_release(&self, id: ReleaseId, change: &ReleaseChange) -> Result<Release> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE releases SET notes = COALESCE($2, notes), archived = COALESCE($3, archived) \
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(change.notes.as_deref())
        .bind(change.archived)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("release", id));
        }
        let release = load_releases(&mut tx, "id = $1", &[Arg::Int(id.0)]).await?.into_iter().next();
        tx.commit().await.map_err(backend)?;
        release.ok_or_else(|| StoreError::not_found("release", id))
    }

    async fn mark_release_bad(&self, id: ReleaseId, reason: &str, by: &str, now: i64) -> Result<Release> {
        let mut tx = self.begin_write().await?;
        // Only the first mark is recorded: marking again returns the release as it was marked.
        sqlx::query("UPDATE releases SET bad_at = $2, bad_reason = $3, bad_by = $4 WHERE id = $1 AND bad_at IS NULL")
            .bind(id.0)
            .bind(now)
            .bind(reason)
            .bind(by)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let release = load_releases(&mut tx, "id = $1", &[Arg::Int(id.0)]).await?.into_iter().next();
        tx.commit().await.map_err(backend)?;
        release.ok_or_else(|| StoreError::not_found("release", id))
    }

    async fn bad_releases(&self) -> Result<Vec<Release>> {
        let mut tx = self.begin_read().await?;
        let releases = load_releases(&mut tx, "bad_at IS NOT NULL", &[]).await?;
        tx.commit().await.map_err(backend)?;
        Ok(releases)
    }

    async fn get_release(&self, id: ReleaseId) -> Result<Option<Release>> {
        let mut tx = self.begin_read().await?;
        let releases = load_releases(&mut tx, "id = $1", &[Arg::Int(id.0)]).await?;
        tx.commit().await.map_err(backend)?;
        Ok(releases.into_iter().next())
    }

    async fn list_releases(&self, product: Option<&ProductName>) -> Result<Vec<Release>> {
        let mut tx = self.begin_read().await?;
        let releases = match product {
            Some(p) => load_releases(&mut tx, "product = $1", &[Arg::Text(p.as_str().to_owned())]).await?,
            None => load_releases(&mut tx, "1 = 1", &[]).await?,
        };
        tx.commit().await.map_err(backend)?;
        Ok(releases)
    }
}
