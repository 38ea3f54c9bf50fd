//! Device groups and the approvals of releases for them.

use super::*;

#[async_trait::async_trait]
impl GroupStore for Backend {
    async fn create_group(&self, group: &Group) -> Result<()> {
        let result = sqlx::query(&format!(
            "INSERT INTO groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(group.name.as_str())
        .bind(&group.description)
        .bind(to_i64("check-in interval", group.checkin_interval_secs)?)
        .bind(group.checkin_jitter)
        .bind(group.enrollment_key_hash.as_deref())
        .bind(group.created_at)
        .bind(group.test)
        .bind(group.filter.as_deref())
        .bind(group.parent.as_ref().map(|p| p.as_str()))
        .bind(group.window.as_ref().map(|w| w.time_zone.as_str()))
        .bind(group.window.as_ref().map(|w| w.periods.as_str()))
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let taken = SqlDialect::violation(&e) == Some(Violation::Unique)
                    && self.get_group(&group.name).await?.is_some();
                Err(conflict(e, || {
                    if taken {
                        format!("group {} already exists", group.name)
                    } else {
                        "another group already has this enrollment key".to_owned()
                    }
                }))
            }
        }
    }

    async fn get_group(&self, name: &GroupName) -> Result<Option<Group>> {
        let row = sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn list_groups(&self) -> Result<Vec<Group>> {
        let rows = sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(group_from_row).collect()
    }

    async fn update_group(&self, group: &Group) -> Result<()> {
        let done = sqlx::query(
            "UPDATE groups SET description = $2, checkin_interval_secs = $3, checkin_jitter = $4, \
             enrollment_key_hash = $5, created_at = $6, filter = $7, parent = $8, window_zone = $9, \
             window_periods = $10 WHERE name = $1",
        )
        .bind(group.name.as_str())
        .bind(&group.description)
        .bind(to_i64("check-in interval", group.checkin_interval_secs)?)
        .bind(group.checkin_jitter)
        .bind(group.enrollment_key_hash.as_deref())
        .bind(group.created_at)
        .bind(group.filter.as_deref())
        .bind(group.parent.as_ref().map(|p| p.as_str()))
        .bind(group.window.as_ref().map(|w| w.time_zone.as_str()))
        .bind(group.window.as_ref().map(|w| w.periods.as_str()))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, || "another group already has this enrollment key".to_owned()))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("group", &group.name));
        }
        Ok(())
    }

    async fn set_group_test(&self, name: &GroupName, test: bool) -> Result<()> {
        let done = sqlx::query("UPDATE groups SET test = $2 WHERE name = $1")
            .bind(name.as_str())
            .bind(test)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("group", name));
        }
        Ok(())
    }

    async fn group_by_enrollment_key(&self, key_hash: &str) -> Result<Option<Group>> {
        let row = sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE enrollment_key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn set_approval(&self, approval: &Approval) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if !release_exists(&mut tx, approval.release).await? {
            return Err(StoreError::not_found("release", approval.release));
        }
        ensure_groups(&mut tx, std::slice::from_ref(&approval.group)).await?;
        if approval.action == ferry_store::ApprovalAction::Install {
            sqlx::query("UPDATE releases SET ever_approved = TRUE WHERE id = $1")
                .bind(approval.release.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        sqlx::query(&format!(
            "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (release_id, group_name) DO UPDATE SET action = excluded.action, \
             deadline = excluded.deadline, approved_by = excluded.approved_by, \
             approved_at = excluded.approved_at"
        ))
        .bind(approval.release.0)
        .bind(approval.group.as_str())
        .bind(approval.action.as_str())
        .bind(approval.deadline)
        .bind(&approval.approved_by)
        .bind(approval.approved_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_approval(&self, release: ReleaseId, group: &GroupName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM approvals WHERE release_id = $1 AND group_name = $2")
            .bind(release.0)
            .bind(group.as_str())
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_approvals(&self, release: Option<ReleaseId>, group: Option<&GroupName>) -> Result<Vec<Approval>> {
        let mut conds = vec!["1 = 1".to_owned()];
        let mut args = Vec::new();
        if let Some(release) = release {
            args.push(Arg::Int(release.0));
            conds.push(format!("release_id = ${}", args.len()));
        }
        if let Some(group) = group {
            args.push(Arg::Text(group.as_str().to_owned()));
            conds.push(format!("group_name = ${}", args.len()));
        }
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {} ORDER BY release_id, group_name",
            conds.join(" AND ")
        );
        let rows = bind_args(sqlx::query(&sql), &args).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(approval_from_row).collect()
    }

    async fn approved_releases(&self, groups: &[GroupName]) -> Result<Vec<(Release, Vec<Approval>)>> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let args: Vec<Arg> = groups.iter().map(|g| Arg::Text(g.as_str().to_owned())).collect();
        let in_groups = placeholders(1, groups.len());
        let mut tx = self.begin_read().await?;
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE group_name IN ({in_groups}) \
             ORDER BY release_id, group_name"
        );
        let rows = bind_args(sqlx::query(&sql), &args).fetch_all(&mut *tx).await.map_err(err)?;
        let mut by_release: HashMap<i64, Vec<Approval>> = HashMap::new();
        for row in &rows {
            let approval = approval_from_row(row)?;
            by_release.entry(approval.release.0).or_default().push(approval);
        }
        let cond = format!("id IN (SELECT release_id FROM approvals WHERE group_name IN ({in_groups}))");
        let releases = load_releases(&mut tx, &cond, &args).await?;
        tx.commit().await.map_err(backend)?;
        Ok(releases.into_iter().filter_map(|r| by_release.remove(&r.id.0).map(|a| (r, a))).collect())
    }
}
