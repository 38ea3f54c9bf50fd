//! Devices: pre-authorisation, enrollment, credential lookups, check-ins and memberships.

use super::*;

#[async_trait::async_trait]
impl DeviceStore for Backend {
    async fn preauthorize_device(
        &self,
        id: &DeviceId,
        groups: &[GroupName],
        secret_hash: &str,
        now: i64,
    ) -> Result<Device> {
        let mut tx = self.begin_write().await?;
        ensure_groups(&mut tx, groups).await?;
        // Still waiting for its device: the new secret and groups replace the old.
        let done = sqlx::query(
            "INSERT INTO devices (id, status, preauth_secret_hash, installed, configs, attributes, \
             enrolled_at) VALUES ($1, $2, $3, '{}', '{}', '{}', $4) \
             ON CONFLICT (id) DO UPDATE SET preauth_secret_hash = excluded.preauth_secret_hash, \
             enrolled_at = excluded.enrolled_at WHERE devices.status = $2",
        )
        .bind(id.as_str())
        .bind(DeviceStatus::Preauthorized.as_str())
        .bind(secret_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("device {id} has already enrolled")));
        }
        sqlx::query("DELETE FROM device_groups WHERE device_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        add_device_groups(&mut tx, id, groups).await?;
        let device = load_device(&mut tx, id).await?;
        tx.commit().await.map_err(backend)?;
        device.ok_or_else(|| StoreError::not_found("device", id))
    }

    async fn enroll_device(&self, enrollment: &Enrollment) -> Result<Device> {
        let id = &enrollment.id;
        let taken = || "this credential is already in use by another device".to_owned();
        // One answer for every unproven claim, whatever the id's state (see Enrollment).
        let refused = || StoreError::Refused(format!("the claim on device id {id} is not proven"));
        let mut tx = self.begin_write().await?;
        let (mut status, mut secret) = lock_enrollment(&mut tx, id).await?;
        if status.is_none() && enrollment.secret_hash.is_some() {
            return Err(refused());
        }
        if status.is_none() {
            ensure_groups(&mut tx, &enrollment.groups).await?;
            let done = sqlx::query(
                "INSERT INTO devices (id, status, credential_hash, installed, configs, attributes, \
                 enrolled_at) VALUES ($1, $2, $3, '{}', '{}', '{}', $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(enrollment.status.as_str())
            .bind(&enrollment.credential_hash)
            .bind(enrollment.now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, taken))?;
            if done.rows_affected() == 1 {
                add_device_groups(&mut tx, id, &enrollment.groups).await?;
                let device = load_device(&mut tx, id).await?;
                tx.commit().await.map_err(backend)?;
                return device.ok_or_else(|| StoreError::not_found("device", id));
            }
            // Another enrollment with this id committed meanwhile: it is known now.
            (status, secret) = lock_enrollment(&mut tx, id).await?;
        }
        let by_secret = secret.is_some() && enrollment.secret_hash == secret;
        if status.as_deref() == Some(DeviceStatus::Preauthorized.as_str()) {
            if !by_secret {
                return Err(refused());
            }
            ensure_groups(&mut tx, &enrollment.groups).await?;
            sqlx::query("UPDATE devices SET status = $2, credential_hash = $3, enrolled_at = $4 WHERE id = $1")
                .bind(id.as_str())
                .bind(DeviceStatus::Accepted.as_str())
                .bind(&enrollment.credential_hash)
                .bind(enrollment.now)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, taken))?;
            add_device_groups(&mut tx, id, &enrollment.groups).await?;
            let device = load_device(&mut tx, id).await?;
            tx.commit().await.map_err(backend)?;
            return device.ok_or_else(|| StoreError::not_found("device", id));
        }
        // Known and enrolled. Only a claim proven like an enrollment would be (the
        // device's secret, or a group key) is another machine holding this identity.
        let by_key = enrollment.secret_hash.is_none() && enrollment.status == DeviceStatus::Accepted;
        tx.rollback().await.map_err(backend)?;
        if !(by_secret || by_key) {
            return Err(refused());
        }
        // The refusal is recorded in a write of its own, after the transaction ended.
        sqlx::query(
            "UPDATE devices SET identity_conflicts = identity_conflicts + 1, last_conflict = $2, \
             last_conflict_at = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(&enrollment.origin)
        .bind(enrollment.now)
        .execute(&self.writer)
        .await
        .map_err(err)?;
        Err(StoreError::IdentityConflict(id.clone()))
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>> {
        let mut conn = self.conn().await?;
        load_device(&mut conn, id).await
    }

    async fn devices_by_credentials(&self, credential_hashes: &[String]) -> Result<Vec<(String, CredentialMatch)>> {
        // Few distinct statement shapes, so each stays in the connection's prepared
        // statement cache: a chunk is padded to a power of two with its first hash.
        const CHUNK: usize = 128;
        let mut found: Vec<(String, CredentialMatch)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for chunk in credential_hashes.chunks(CHUNK) {
            let slots = chunk.len().next_power_of_two();
            let sql = format!(
                "SELECT credential_hash, {DEVICE_COLUMNS}, {} AS group_list, \
                 ds.version AS director_version, ds.digest AS director_digest, \
                 ds.issued_at AS director_issued_at \
                 FROM devices LEFT JOIN director_state ds ON ds.device_id = devices.id \
                 WHERE credential_hash IN ({})",
                <SqlDialect as crate::common::Dialect>::GROUP_LIST,
                placeholders(1, slots)
            );
            let mut query = sqlx::query(&sql);
            for i in 0..slots {
                query = query.bind(chunk.get(i).unwrap_or(&chunk[0]).as_str());
            }
            for row in query.fetch_all(&self.pool).await.map_err(err)? {
                let hash: String = get(&row, "devices", "credential_hash")?;
                if seen.insert(hash.clone()) {
                    let device = device_with_groups(&row)?;
                    const T: &str = "director_state";
                    let director = match get::<Option<i64>>(&row, T, "director_version")? {
                        Some(version) => Some(DirectorStamp {
                            version: to_u64(T, "version", version)?,
                            digest: get(&row, T, "director_digest")?,
                            issued_at: get(&row, T, "director_issued_at")?,
                        }),
                        None => None,
                    };
                    found.push((hash, CredentialMatch { device, director }));
                }
            }
        }
        Ok(found)
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<Device>> {
        const MAX: u32 = 1000;
        let limit = if filter.limit == 0 { MAX } else { filter.limit.min(MAX) };
        let mut conds = vec!["1 = 1".to_owned()];
        let mut args = Vec::new();
        if let Some(status) = filter.status {
            args.push(Arg::Text(status.as_str().to_owned()));
            conds.push(format!("status = ${}", args.len()));
        }
        if let Some(group) = &filter.group {
            args.push(Arg::Text(group.as_str().to_owned()));
            conds.push(format!("id IN (SELECT device_id FROM device_groups WHERE group_name = ${})", args.len()));
        }
        if filter.conflicts_only {
            conds.push("identity_conflicts > 0".to_owned());
        }
        if let Some(after) = &filter.after {
            args.push(Arg::Text(after.as_str().to_owned()));
            conds.push(format!("id > ${}", args.len()));
        }
        args.push(Arg::Int(i64::from(limit)));
        let tail = format!("ORDER BY id LIMIT ${}", args.len());
        let mut conn = self.conn().await?;
        load_devices(&mut conn, &conds.join(" AND "), &tail, &args).await
    }

    async fn set_device_status(&self, id: &DeviceId, status: DeviceStatus) -> Result<()> {
        let done = sqlx::query("UPDATE devices SET status = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(status.as_str())
            .execute(&self.writer)
            .await
            .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("device", id));
        }
        Ok(())
    }

    async fn set_device_test(&self, id: &DeviceId, test: bool) -> Result<()> {
        let done = sqlx::query("UPDATE devices SET test = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(test)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("device", id));
        }
        Ok(())
    }

    async fn set_device_groups(&self, id: &DeviceId, groups: &[GroupName]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if lock_enrollment(&mut tx, id).await?.0.is_none() {
            return Err(StoreError::not_found("device", id));
        }
        ensure_groups(&mut tx, groups).await?;
        sqlx::query("DELETE FROM device_groups WHERE device_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        add_device_groups(&mut tx, id, groups).await?;
        tx.commit().await.map_err(backend)
    }

    async fn record_checkin(&self, id: &DeviceId, checkin: &CheckinRecord) -> Result<()> {
        let conflicts = i64::from(checkin.conflict.is_some());
        let done = sqlx::query(
            "UPDATE devices SET platform = $2, installed = $3, configs = $4, attributes = $5, \
             agent_version = $6, boot_id = $7, prev_boot_id = $8, last_contact = $9, \
             identity_conflicts = identity_conflicts + $10, \
             last_conflict = CASE WHEN $10 > 0 THEN $11 ELSE last_conflict END, \
             last_conflict_at = CASE WHEN $10 > 0 THEN $9 ELSE last_conflict_at END \
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(checkin.platform.as_ref().map(PlatformName::as_str))
        .bind(to_json(&checkin.installed)?)
        .bind(to_json(&checkin.configs)?)
        .bind(to_json(&checkin.attributes)?)
        .bind(checkin.agent_version.as_deref())
        .bind(checkin.boot_id.as_deref())
        .bind(checkin.prev_boot_id.as_deref())
        .bind(checkin.last_contact)
        .bind(conflicts)
        .bind(checkin.conflict.as_deref())
        .execute(&self.writer)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("device", id));
        }
        Ok(())
    }

    async fn touch_devices(&self, contacts: &[(DeviceId, i64)]) -> Result<()> {
        if contacts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (id, at) in contacts {
            // Never moves last contact backwards: a delayed write-behind must not
            // undo a newer check-in recorded meanwhile.
            sqlx::query(
                "UPDATE devices SET last_contact = $2 \
                 WHERE id = $1 AND (last_contact IS NULL OR last_contact < $2)",
            )
            .bind(id.as_str())
            .bind(*at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(backend)
    }
}
