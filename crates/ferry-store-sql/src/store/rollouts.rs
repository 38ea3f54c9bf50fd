//! Staged rollouts, their grants and their timelines.

use ferry_core::rollout::{
    policy, Cause, Grant, GrantState, Limits, Load, Rollout, RolloutId, RolloutState, TimelineEntry, Wave,
};
use ferry_store::{GrantOutcome, RolloutStore};

use super::*;

const ROLLOUT_COLUMNS: &str = "id, release_id, targets, waves, limits, commit_timeout_secs, emergency, state, wave, \
     wave_started_at, created_by, created_at, revision";

fn rollout_from_row(row: &Row) -> Result<Rollout> {
    const T: &str = "rollouts";
    let targets: Vec<String> = from_json(T, "targets", &get::<String>(row, T, "targets")?)?;
    let wave: i64 = get(row, T, "wave")?;
    Ok(Rollout {
        id: RolloutId(get(row, T, "id")?),
        release: ReleaseId(get(row, T, "release_id")?),
        targets: targets
            .into_iter()
            .map(|g| parse_name(T, "targets", g, GroupName::new))
            .collect::<Result<Vec<_>>>()?,
        waves: from_json::<Vec<Wave>>(T, "waves", &get::<String>(row, T, "waves")?)?,
        limits: from_json::<Limits>(T, "limits", &get::<String>(row, T, "limits")?)?,
        commit_timeout_secs: to_u64(T, "commit_timeout_secs", get(row, T, "commit_timeout_secs")?)?,
        emergency: get(row, T, "emergency")?,
        state: parse_rollout_state(T, get(row, T, "state")?)?,
        wave: u32::try_from(wave).map_err(|e| corrupt(T, "wave", e))?,
        wave_started_at: get(row, T, "wave_started_at")?,
        created_by: get(row, T, "created_by")?,
        created_at: get(row, T, "created_at")?,
        revision: get(row, T, "revision")?,
    })
}

fn parse_rollout_state(table: &str, text: String) -> Result<RolloutState> {
    RolloutState::parse(&text).ok_or_else(|| corrupt(table, "state", format!("unknown rollout state {text:?}")))
}

fn entry_from_row(row: &Row) -> Result<TimelineEntry> {
    const T: &str = "rollout_timeline";
    let wave: i64 = get(row, T, "wave")?;
    Ok(TimelineEntry {
        at: get(row, T, "at")?,
        state: parse_rollout_state(T, get(row, T, "state")?)?,
        wave: u32::try_from(wave).map_err(|e| corrupt(T, "wave", e))?,
        cause: from_json::<Cause>(T, "cause", &get::<String>(row, T, "cause")?)?,
        by: get(row, T, "by_name")?,
    })
}

/// Grants with the state their device reported on the rollout's release since the grant.
const GRANT_QUERY: &str = "SELECT g.rollout_id, g.device_id, g.wave, g.granted_at, d.state AS reported, \
     d.updated_at AS reported_at FROM rollout_grants g JOIN rollouts r ON r.id = g.rollout_id \
     LEFT JOIN device_releases d ON d.device_id = g.device_id AND d.release_id = r.release_id";

fn grant_from_row(row: &Row) -> Result<Grant> {
    const T: &str = "rollout_grants";
    let wave: i64 = get(row, T, "wave")?;
    let granted_at: i64 = get(row, T, "granted_at")?;
    let reported: Option<String> = get(row, T, "reported")?;
    let reported_at: Option<i64> = get(row, T, "reported_at")?;
    let (state, updated_at) = match (reported, reported_at) {
        (Some(state), Some(at)) if at >= granted_at => (GrantState::from_event(parse_state(T, &state)?), at),
        _ => (GrantState::Granted, granted_at),
    };
    Ok(Grant {
        rollout: RolloutId(get(row, T, "rollout_id")?),
        device: parse_name(T, "device_id", get(row, T, "device_id")?, DeviceId::new)?,
        wave: u32::try_from(wave).map_err(|e| corrupt(T, "wave", e))?,
        state,
        granted_at,
        updated_at,
    })
}

async fn insert_entry(conn: &mut Conn, id: RolloutId, revision: i64, entry: &TimelineEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollout_timeline (rollout_id, revision, at, state, wave, cause, by_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.0)
    .bind(revision)
    .bind(entry.at)
    .bind(entry.state.as_str())
    .bind(i64::from(entry.wave))
    .bind(to_json(&entry.cause)?)
    .bind(entry.by.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    Ok(())
}

async fn load_rollout(conn: &mut Conn, id: RolloutId, lock: bool) -> Result<Option<Rollout>> {
    let sql = format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1{}",
        if lock { SqlDialect::FOR_UPDATE } else { "" }
    );
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *conn).await.map_err(err)?;
    row.as_ref().map(rollout_from_row).transpose()
}

#[async_trait::async_trait]
impl RolloutStore for Backend {
    async fn create_rollout(&self, rollout: &Rollout, created: &TimelineEntry) -> Result<Rollout> {
        let mut tx = self.begin_write().await?;
        if !release_exists(&mut tx, rollout.release).await? {
            return Err(StoreError::not_found("release", rollout.release));
        }
        ensure_groups(&mut tx, &rollout.targets).await?;
        let targets: Vec<&str> = rollout.targets.iter().map(GroupName::as_str).collect();
        let row = sqlx::query(
            "INSERT INTO rollouts (release_id, targets, waves, limits, commit_timeout_secs, emergency, state, wave, \
             wave_started_at, created_by, created_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, 1) RETURNING id",
        )
        .bind(rollout.release.0)
        .bind(to_json(&targets)?)
        .bind(to_json(&rollout.waves)?)
        .bind(to_json(&rollout.limits)?)
        .bind(to_i64("commit timeout", rollout.commit_timeout_secs)?)
        .bind(rollout.emergency)
        .bind(created.state.as_str())
        .bind(created.at)
        .bind(&rollout.created_by)
        .bind(rollout.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let id = RolloutId(get(&row, "rollouts", "id")?);
        insert_entry(&mut tx, id, 1, created).await?;
        sqlx::query("UPDATE releases SET ever_approved = $2 WHERE id = $1")
            .bind(rollout.release.0)
            .bind(true)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let stored = load_rollout(&mut tx, id, false).await?.ok_or_else(|| StoreError::not_found("rollout", id))?;
        tx.commit().await.map_err(err)?;
        Ok(stored)
    }

    async fn get_rollout(&self, id: RolloutId) -> Result<Option<Rollout>> {
        let mut conn = self.conn().await?;
        load_rollout(&mut conn, id, false).await
    }

    async fn list_rollouts(&self, release: Option<ReleaseId>, active_only: bool) -> Result<Vec<Rollout>> {
        let mut conds = vec!["1 = 1".to_owned()];
        if release.is_some() {
            conds.push("release_id = $1".to_owned());
        }
        if active_only {
            conds.push("state IN ('running', 'at_gate', 'paused')".to_owned());
        }
        let sql = format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE {} ORDER BY id DESC", conds.join(" AND "));
        let mut query = sqlx::query(&sql);
        if let Some(r) = release {
            query = query.bind(r.0);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(rollout_from_row).collect()
    }

    async fn rollout_timeline(&self, id: RolloutId) -> Result<Vec<TimelineEntry>> {
        let rows = sqlx::query(
            "SELECT at, state, wave, cause, by_name FROM rollout_timeline WHERE rollout_id = $1 ORDER BY revision",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn transition_rollout(
        &self,
        id: RolloutId,
        revision: i64,
        entry: &TimelineEntry,
        wave_opened: bool,
    ) -> Result<Option<Rollout>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE rollouts SET state = $3, wave = $4, revision = revision + 1, \
             wave_started_at = CASE WHEN $5 THEN $6 ELSE wave_started_at END \
             WHERE id = $1 AND revision = $2",
        )
        .bind(id.0)
        .bind(revision)
        .bind(entry.state.as_str())
        .bind(i64::from(entry.wave))
        .bind(wave_opened)
        .bind(entry.at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        insert_entry(&mut tx, id, revision + 1, entry).await?;
        let stored = load_rollout(&mut tx, id, false).await?;
        tx.commit().await.map_err(err)?;
        Ok(stored)
    }

    async fn grant(&self, rollout: RolloutId, device: &DeviceId, wave: u32, now: i64) -> Result<GrantOutcome> {
        let mut tx = self.begin_write().await?;
        let existing = format!("{GRANT_QUERY} WHERE g.rollout_id = $1 AND g.device_id = $2");
        let found = sqlx::query(&existing).bind(rollout.0).bind(device.as_str()).fetch_optional(&mut *tx).await;
        if let Some(row) = found.map_err(err)? {
            return Ok(GrantOutcome::Existing(grant_from_row(&row)?));
        }
        let sql = format!(
            "SELECT {ROLLOUT_COLUMNS}, period_start, period_grants, open_grants FROM rollouts WHERE id = $1{}",
            SqlDialect::FOR_UPDATE
        );
        let row = sqlx::query(&sql)
            .bind(rollout.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .ok_or_else(|| StoreError::not_found("rollout", rollout))?;
        let stored = rollout_from_row(&row)?;
        let period_start: i64 = get(&row, "rollouts", "period_start")?;
        let period_grants: i64 = get(&row, "rollouts", "period_grants")?;
        let open: i64 = get(&row, "rollouts", "open_grants")?;
        // A new rate period starts with the first grant after the last one ended.
        let period = stored.limits.rate.map_or(0, |r| r.period_secs.min(i64::MAX as u64) as i64);
        let new_period = now >= period_start.saturating_add(period);
        let load = Load {
            granted_in_period: if new_period { 0 } else { period_grants.max(0) as u64 },
            open: open.max(0) as u64,
        };
        if let Err(refusal) = policy::may_grant(&stored, wave, load) {
            return Ok(GrantOutcome::Refused(refusal));
        }
        let inserted = sqlx::query(
            "INSERT INTO rollout_grants (rollout_id, device_id, wave, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(rollout.0)
        .bind(device.as_str())
        .bind(i64::from(wave))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || format!("device {device} does not exist")))?;
        if inserted.rows_affected() == 0 {
            // Granted meanwhile by a transaction this one did not see (SQLite cannot get here:
            // its writes are serialised).
            let row = sqlx::query(&existing).bind(rollout.0).bind(device.as_str()).fetch_one(&mut *tx).await;
            return Ok(GrantOutcome::Existing(grant_from_row(&row.map_err(err)?)?));
        }
        sqlx::query(
            "UPDATE rollouts SET period_start = CASE WHEN $2 THEN $3 ELSE period_start END, \
             period_grants = CASE WHEN $2 THEN 1 ELSE period_grants + 1 END, \
             open_grants = open_grants + 1, granted_total = granted_total + 1 WHERE id = $1",
        )
        .bind(rollout.0)
        .bind(new_period)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(GrantOutcome::Granted(Grant {
            rollout,
            device: device.clone(),
            wave,
            state: GrantState::Granted,
            granted_at: now,
            updated_at: now,
        }))
    }

    async fn device_grants(&self, device: &DeviceId) -> Result<Vec<Grant>> {
        let sql = format!("{GRANT_QUERY} WHERE g.device_id = $1 ORDER BY g.rollout_id");
        let rows = sqlx::query(&sql).bind(device.as_str()).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn rollout_grants(&self, id: RolloutId) -> Result<Vec<Grant>> {
        let sql = format!("{GRANT_QUERY} WHERE g.rollout_id = $1 ORDER BY g.device_id");
        let rows = sqlx::query(&sql).bind(id.0).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn recount_open_grants(&self, id: RolloutId, open: u64, seen: u64) -> Result<()> {
        sqlx::query("UPDATE rollouts SET open_grants = $2 + granted_total - $3 WHERE id = $1")
            .bind(id.0)
            .bind(to_i64("open grants", open)?)
            .bind(to_i64("grants", seen)?)
            .execute(&self.writer)
            .await
            .map_err(err)?;
        Ok(())
    }
}
