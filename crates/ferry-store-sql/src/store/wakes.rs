//! Requests to wake devices' agents now.

use super::*;

#[async_trait::async_trait]
impl WakeStore for Backend {
    async fn request_wakes(&self, devices: &[DeviceId], now: i64, forget_before: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM wake_requests WHERE requested_at < $1")
            .bind(forget_before)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for device in devices {
            sqlx::query("INSERT INTO wake_requests (device_id, requested_at) SELECT id, $2 FROM devices WHERE id = $1")
                .bind(device.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn wake_requests_since(&self, after: i64, since: i64, limit: u32) -> Result<Vec<WakeRequest>> {
        const T: &str = "wake_requests";
        let rows = sqlx::query(
            "SELECT id, device_id, requested_at FROM wake_requests WHERE id > $1 OR requested_at >= $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                Ok(WakeRequest {
                    id: get(row, T, "id")?,
                    device: parse_name(T, "device_id", get(row, T, "device_id")?, DeviceId::new)?,
                    requested_at: get(row, T, "requested_at")?,
                })
            })
            .collect()
    }

    async fn take_wakes(&self, device: &DeviceId, since: i64) -> Result<bool> {
        let rows = sqlx::query("DELETE FROM wake_requests WHERE device_id = $1 RETURNING requested_at")
            .bind(device.as_str())
            .fetch_all(&self.writer)
            .await
            .map_err(err)?;
        let mut recent = false;
        for row in &rows {
            recent |= get::<i64>(row, "wake_requests", "requested_at")? >= since;
        }
        Ok(recent)
    }
}
