//! Status events and the release states derived from them.

use super::*;

#[async_trait::async_trait]
impl EventStore for Backend {
    async fn append_events(&self, device: &DeviceId, events: &[NewEvent], received_at: i64) -> Result<AppendOutcome> {
        if let Some(w) = events.windows(2).find(|w| w[0].seq >= w[1].seq) {
            return Err(StoreError::OutOfOrder(format!(
                "events must be sent in increasing seq order; {} is followed by {}",
                w[0].seq, w[1].seq
            )));
        }
        let mut tx = self.begin_write().await?;
        if lock_enrollment(&mut tx, device).await?.0.is_none() {
            return Err(StoreError::not_found("device", device));
        }
        let row = sqlx::query("SELECT MAX(seq) AS top FROM events WHERE device_id = $1")
            .bind(device.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let highest: Option<i64> = get(&row, "events", "top")?;

        let mut fresh = Vec::new();
        let mut duplicates = 0u32;
        for event in events {
            if highest.is_some_and(|h| event.seq <= h) {
                let stored =
                    sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE device_id = $1 AND seq = $2"))
                        .bind(device.as_str())
                        .bind(event.seq)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                let Some(stored) = stored else {
                    return Err(StoreError::OutOfOrder(format!(
                        "event {} of device {device} is older than its latest stored event {} and \
                         was not stored before; nothing of the batch was stored",
                        event.seq,
                        highest.unwrap_or_default()
                    )));
                };
                // A retry repeats the event exactly; anything else reusing the seq
                // would be lost silently if it were skipped.
                if event_from_row(&stored)?.event != *event {
                    return Err(StoreError::OutOfOrder(format!(
                        "event {} of device {device} was stored before with different content; a \
                         retry must repeat an event exactly, and a new event needs a new seq; nothing \
                         of the batch was stored",
                        event.seq
                    )));
                }
                duplicates += 1;
            } else {
                fresh.push(event);
            }
        }

        let mut checked = Vec::new();
        for event in &fresh {
            if !checked.contains(&event.release) {
                if !release_exists(&mut tx, event.release).await? {
                    return Err(StoreError::not_found("release", event.release));
                }
                checked.push(event.release);
            }
        }

        let mut latest: BTreeMap<i64, &NewEvent> = BTreeMap::new();
        for event in &fresh {
            sqlx::query(&format!(
                "INSERT INTO events (device_id, {EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(device.as_str())
            .bind(event.seq)
            .bind(event.release.0)
            .bind(event.state.as_str())
            .bind(event.progress)
            .bind(event.error_code.as_deref())
            .bind(event.message.as_deref())
            .bind(event.at)
            .bind(received_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || format!("event {} of device {device} is already stored", event.seq)))?;
            // Events are in seq order, so the last one per release is its latest.
            latest.insert(event.release.0, event);
        }
        for (release, event) in &latest {
            sqlx::query(
                "INSERT INTO device_releases (device_id, release_id, state, progress, error_code, \
                 message, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (device_id, release_id) DO UPDATE SET state = excluded.state, \
                 progress = excluded.progress, error_code = excluded.error_code, \
                 message = excluded.message, updated_at = excluded.updated_at",
            )
            .bind(device.as_str())
            .bind(*release)
            .bind(event.state.as_str())
            .bind(event.progress)
            .bind(event.error_code.as_deref())
            .bind(event.message.as_deref())
            .bind(received_at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        if let Some(last) = fresh.last() {
            sqlx::query("UPDATE devices SET last_event_seq = $2 WHERE id = $1 AND last_event_seq < $2")
                .bind(device.as_str())
                .bind(last.seq)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(AppendOutcome { stored: u32::try_from(fresh.len()).unwrap_or(u32::MAX), duplicates })
    }

    async fn list_events(&self, device: &DeviceId, release: Option<ReleaseId>, limit: u32) -> Result<Vec<Event>> {
        let mut args = vec![Arg::Text(device.as_str().to_owned())];
        let mut cond = "device_id = $1".to_owned();
        if let Some(release) = release {
            args.push(Arg::Int(release.0));
            cond.push_str(" AND release_id = $2");
        }
        args.push(Arg::Int(i64::from(limit)));
        // The latest `limit` events, returned oldest first.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM (SELECT {EVENT_COLUMNS} FROM events WHERE {cond} \
             ORDER BY seq DESC LIMIT ${}) AS latest ORDER BY seq",
            args.len()
        );
        let rows = bind_args(sqlx::query(&sql), &args).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn device_release_states(&self, device: &DeviceId) -> Result<Vec<ReleaseState>> {
        let rows = sqlx::query(
            "SELECT release_id, state, progress, error_code, message, updated_at FROM device_releases \
             WHERE device_id = $1 ORDER BY release_id",
        )
        .bind(device.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(release_state_from_row).collect()
    }

    async fn release_test_states(&self, release: ReleaseId) -> Result<Vec<(DeviceId, ReleaseState)>> {
        let rows = sqlx::query(
            "SELECT dr.device_id, dr.release_id, dr.state, dr.progress, dr.error_code, dr.message, dr.updated_at \
             FROM device_releases dr JOIN devices d ON d.id = dr.device_id \
             WHERE dr.release_id = $1 AND (d.test OR EXISTS (SELECT 1 FROM device_groups dg \
                 JOIN groups g ON g.name = dg.group_name WHERE dg.device_id = d.id AND g.test)) \
             ORDER BY dr.device_id",
        )
        .bind(release.0)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                let id = parse_name(
                    "device_releases",
                    "device_id",
                    get(row, "device_releases", "device_id")?,
                    DeviceId::new,
                )?;
                Ok((id, release_state_from_row(row)?))
            })
            .collect()
    }
}
