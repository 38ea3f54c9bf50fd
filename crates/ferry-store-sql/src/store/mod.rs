//! The one implementation of [`ferry_store::Store`], written once and compiled per backend.
//!
//! sqlx's query API is generic over the database, but spelling out the trait bounds generic
//! code would need (encode and decode bounds for every bound and read type, executor bounds
//! for connections) costs more than it saves. Instead each backend module compiles this
//! module for its concrete types: it names them `Backend` (the store struct, with fields
//! `pool: sqlx::Pool<BackendDb>` for reads and `writer: sqlx::Pool<BackendDb>` for every
//! statement that writes), `BackendDb` and `SqlDialect`, and includes this directory with
//! `#[path = "store/mod.rs"] mod store;`. The code is ordinary Rust, so rustfmt and
//! rust-analyzer read it. The SQL is written once: `$n` placeholders, `ON CONFLICT … DO
//! UPDATE/NOTHING`, `excluded.` and `RETURNING` mean the same in SQLite and PostgreSQL. What
//! differs lives in the backend modules: how to connect, the migrations, and a
//! [`Dialect`](crate::common::Dialect) (transaction begin statements, row locking,
//! recognising constraint violations).
//!
//! This module holds what every area shares (row decoding, loaders, transactions); one
//! submodule per area of the [`Store`] implements that area's trait.

mod catalogue;
mod devices;
mod events;
mod groups;
mod rollouts;
mod tokens;
mod trust;
mod wakes;

use std::collections::{BTreeMap, HashMap};

use ferry_core::{
    Artifact, ArtifactName, BadMark, DeviceId, DeviceStatus, GroupName, PlatformName, ProductName, Release, ReleaseId,
    Role, Sha256,
};
use ferry_store::{
    AdminToken, AppendOutcome, Approval, CatalogueStore, CheckinRecord, CredentialMatch, Device, DeviceFilter,
    DeviceStore, DirectorFiles, DirectorStamp, DirectorState, Enrollment, Event, EventStore, Group, GroupStore,
    MetadataFile, NewAdminToken, NewEvent, Platform, Product, ReleaseChange, ReleaseState, Repo, Result, Store,
    StoreError, TokenStore, TrustStore, WakeRequest, WakeStore,
};
use sqlx::Row as _;

use super::{Backend, BackendDb, SqlDialect};
use crate::common::{
    backend, corrupt, db_err, enum_str, from_json, map_err, parse_action, parse_enum, parse_name, parse_role,
    parse_state, parse_status, parse_version, placeholders, to_i64, to_json, to_u64, version_map, Arg, Dialect as _,
    Violation,
};

type Db = BackendDb;
type Row = <Db as sqlx::Database>::Row;
type Conn = <Db as sqlx::Database>::Connection;
type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// Reads a column; a value of the wrong type is corrupt data.
fn get<'r, T>(row: &'r Row, table: &str, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(column).map_err(|e| corrupt(table, column, e))
}

fn bind_args<'q>(mut query: Query<'q>, args: &'q [Arg]) -> Query<'q> {
    for arg in args {
        query = match arg {
            Arg::Int(i) => query.bind(*i),
            Arg::Text(s) => query.bind(s.as_str()),
        };
    }
    query
}

fn err(e: sqlx::Error) -> StoreError {
    db_err::<SqlDialect>(e)
}

fn conflict(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    map_err::<SqlDialect>(e, message)
}

fn line_of(release: &Release) -> &'static str {
    if release.kind.is_config() {
        "config"
    } else {
        "software"
    }
}

// --- row decoding ------------------------------------------------------------------

fn product_from_row(row: &Row) -> Result<Product> {
    const T: &str = "products";
    Ok(Product {
        name: parse_name(T, "name", get(row, T, "name")?, ProductName::new)?,
        description: get(row, T, "description")?,
        created_at: get(row, T, "created_at")?,
    })
}

fn platform_from_row(row: &Row) -> Result<Platform> {
    const T: &str = "platforms";
    Ok(Platform {
        name: parse_name(T, "name", get(row, T, "name")?, PlatformName::new)?,
        description: get(row, T, "description")?,
        created_at: get(row, T, "created_at")?,
    })
}

const GROUP_COLUMNS: &str =
    "name, description, checkin_interval_secs, checkin_jitter, enrollment_key_hash, created_at, test, filter, parent, \
     window_zone, window_periods";

fn group_from_row(row: &Row) -> Result<Group> {
    const T: &str = "groups";
    Ok(Group {
        name: parse_name(T, "name", get(row, T, "name")?, GroupName::new)?,
        description: get(row, T, "description")?,
        checkin_interval_secs: to_u64(T, "checkin_interval_secs", get(row, T, "checkin_interval_secs")?)?,
        checkin_jitter: get(row, T, "checkin_jitter")?,
        enrollment_key_hash: get(row, T, "enrollment_key_hash")?,
        created_at: get(row, T, "created_at")?,
        test: get(row, T, "test")?,
        filter: get(row, T, "filter")?,
        parent: get::<Option<String>>(row, T, "parent")?
            .map(|p| parse_name(T, "parent", p, GroupName::new))
            .transpose()?,
        window: match (get::<Option<String>>(row, T, "window_zone")?, get::<Option<String>>(row, T, "window_periods")?)
        {
            (Some(time_zone), Some(periods)) => Some(ferry_core::MaintenanceWindow { time_zone, periods }),
            _ => None,
        },
    })
}

const APPROVAL_COLUMNS: &str = "release_id, group_name, action, deadline, approved_by, approved_at";

fn approval_from_row(row: &Row) -> Result<Approval> {
    const T: &str = "approvals";
    Ok(Approval {
        release: ReleaseId(get(row, T, "release_id")?),
        group: parse_name(T, "group_name", get(row, T, "group_name")?, GroupName::new)?,
        action: parse_action(&get::<String>(row, T, "action")?)?,
        deadline: get(row, T, "deadline")?,
        approved_by: get(row, T, "approved_by")?,
        approved_at: get(row, T, "approved_at")?,
    })
}

const RELEASE_COLUMNS: &str = "id, product, version, kind, required, reboot, classification, notes, \
     dependencies, supersedes, no_update_versions, applies_to, counter, created_at, archived, \
     bad_at, bad_reason, bad_by";

fn release_from_row(row: &Row) -> Result<Release> {
    const T: &str = "releases";
    let applies_to: Option<String> = get(row, T, "applies_to")?;
    Ok(Release {
        id: ReleaseId(get(row, T, "id")?),
        product: parse_name(T, "product", get(row, T, "product")?, ProductName::new)?,
        version: parse_version(T, "version", get(row, T, "version")?)?,
        kind: parse_enum(T, "kind", get(row, T, "kind")?)?,
        platforms: Vec::new(),
        artifacts: Vec::new(),
        required: get(row, T, "required")?,
        reboot: parse_enum(T, "reboot", get(row, T, "reboot")?)?,
        classification: parse_enum(T, "classification", get(row, T, "classification")?)?,
        notes: get(row, T, "notes")?,
        dependencies: from_json(T, "dependencies", &get::<String>(row, T, "dependencies")?)?,
        supersedes: from_json(T, "supersedes", &get::<String>(row, T, "supersedes")?)?,
        no_update_versions: from_json(T, "no_update_versions", &get::<String>(row, T, "no_update_versions")?)?,
        applies_to: applies_to.map(|s| from_json(T, "applies_to", &s)).transpose()?,
        counter: get(row, T, "counter")?,
        created_at: get(row, T, "created_at")?,
        archived: get(row, T, "archived")?,
        bad: match get::<Option<i64>>(row, T, "bad_at")? {
            None => None,
            Some(at) => Some(BadMark {
                at,
                reason: get::<Option<String>>(row, T, "bad_reason")?.unwrap_or_default(),
                by: get::<Option<String>>(row, T, "bad_by")?.unwrap_or_default(),
            }),
        },
    })
}

fn artifact_from_row(row: &Row) -> Result<Artifact> {
    const T: &str = "artifacts";
    Ok(Artifact {
        name: parse_name(T, "name", get(row, T, "name")?, ArtifactName::new)?,
        length: to_u64(T, "length", get(row, T, "length")?)?,
        sha256: parse_name(T, "sha256", get::<String>(row, T, "sha256")?, |s| Sha256::parse(&s))?,
        media_type: get(row, T, "media_type")?,
        custom: from_json(T, "custom", &get::<String>(row, T, "custom")?)?,
    })
}

const DEVICE_COLUMNS: &str = "id, status, platform, installed, configs, attributes, agent_version, \
     boot_id, prev_boot_id, last_contact, enrolled_at, identity_conflicts, last_conflict, \
     last_conflict_at, test";

fn device_from_row(row: &Row) -> Result<Device> {
    const T: &str = "devices";
    let platform: Option<String> = get(row, T, "platform")?;
    Ok(Device {
        id: parse_name(T, "id", get(row, T, "id")?, DeviceId::new)?,
        status: parse_status(&get::<String>(row, T, "status")?)?,
        groups: Vec::new(),
        platform: platform.map(|p| parse_name(T, "platform", p, PlatformName::new)).transpose()?,
        installed: version_map("installed", &get::<String>(row, T, "installed")?)?,
        configs: version_map("configs", &get::<String>(row, T, "configs")?)?,
        attributes: from_json(T, "attributes", &get::<String>(row, T, "attributes")?)?,
        agent_version: get(row, T, "agent_version")?,
        boot_id: get(row, T, "boot_id")?,
        prev_boot_id: get(row, T, "prev_boot_id")?,
        last_contact: get(row, T, "last_contact")?,
        enrolled_at: get(row, T, "enrolled_at")?,
        identity_conflicts: get(row, T, "identity_conflicts")?,
        last_conflict: get(row, T, "last_conflict")?,
        last_conflict_at: get(row, T, "last_conflict_at")?,
        test: get(row, T, "test")?,
    })
}

const EVENT_COLUMNS: &str = "seq, release_id, state, progress, error_code, message, at, received_at";

fn event_from_row(row: &Row) -> Result<Event> {
    const T: &str = "events";
    Ok(Event {
        event: NewEvent {
            seq: get(row, T, "seq")?,
            release: ReleaseId(get(row, T, "release_id")?),
            state: parse_state(T, &get::<String>(row, T, "state")?)?,
            progress: get(row, T, "progress")?,
            error_code: get(row, T, "error_code")?,
            message: get(row, T, "message")?,
            at: get(row, T, "at")?,
        },
        received_at: get(row, T, "received_at")?,
    })
}

fn release_state_from_row(row: &Row) -> Result<ReleaseState> {
    const T: &str = "device_releases";
    Ok(ReleaseState {
        release: ReleaseId(get(row, T, "release_id")?),
        state: parse_state(T, &get::<String>(row, T, "state")?)?,
        progress: get(row, T, "progress")?,
        error_code: get(row, T, "error_code")?,
        message: get(row, T, "message")?,
        updated_at: get(row, T, "updated_at")?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at";

fn token_from_row(row: &Row) -> Result<AdminToken> {
    const T: &str = "admin_tokens";
    Ok(AdminToken {
        id: get(row, T, "id")?,
        name: get(row, T, "name")?,
        role: parse_role(&get::<String>(row, T, "role")?)?,
        created_at: get(row, T, "created_at")?,
        revoked_at: get(row, T, "revoked_at")?,
    })
}

// --- multi-row loaders ---------------------------------------------------------------

/// Releases matching `cond` (SQL over `releases`, with `args` as `$1…`), newest id first,
/// with their platforms and artifacts: three queries however many releases match.
async fn load_releases(conn: &mut Conn, cond: &str, args: &[Arg]) -> Result<Vec<Release>> {
    let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE {cond} ORDER BY id DESC");
    let rows = bind_args(sqlx::query(&sql), args).fetch_all(&mut *conn).await.map_err(err)?;
    let mut releases = rows.iter().map(release_from_row).collect::<Result<Vec<_>>>()?;
    if releases.is_empty() {
        return Ok(releases);
    }
    let index: HashMap<i64, usize> = releases.iter().enumerate().map(|(i, r)| (r.id.0, i)).collect();

    let sql = format!(
        "SELECT release_id, platform FROM release_platforms \
         WHERE release_id IN (SELECT id FROM releases WHERE {cond}) ORDER BY release_id, ordinal"
    );
    let rows = bind_args(sqlx::query(&sql), args).fetch_all(&mut *conn).await.map_err(err)?;
    for row in &rows {
        const T: &str = "release_platforms";
        let id: i64 = get(row, T, "release_id")?;
        if let Some(&i) = index.get(&id) {
            releases[i].platforms.push(parse_name(T, "platform", get(row, T, "platform")?, PlatformName::new)?);
        }
    }

    let sql = format!(
        "SELECT release_id, name, length, sha256, media_type, custom FROM artifacts \
         WHERE release_id IN (SELECT id FROM releases WHERE {cond}) ORDER BY release_id, ordinal"
    );
    let rows = bind_args(sqlx::query(&sql), args).fetch_all(&mut *conn).await.map_err(err)?;
    for row in &rows {
        let id: i64 = get(row, "artifacts", "release_id")?;
        if let Some(&i) = index.get(&id) {
            releases[i].artifacts.push(artifact_from_row(row)?);
        }
    }
    Ok(releases)
}

/// Devices matching `cond` (SQL over `devices`, with `args` as `$1…`) followed by `tail`
/// (ordering, limit), with their groups, in one query.
async fn load_devices(conn: &mut Conn, cond: &str, tail: &str, args: &[Arg]) -> Result<Vec<Device>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS}, {} AS group_list FROM devices WHERE {cond} {tail}",
        <SqlDialect as crate::common::Dialect>::GROUP_LIST
    );
    let rows = bind_args(sqlx::query(&sql), args).fetch_all(&mut *conn).await.map_err(err)?;
    rows.iter().map(device_with_groups).collect()
}

/// A device from a row of [`load_devices`]' shape: its columns and `group_list`.
fn device_with_groups(row: &Row) -> Result<Device> {
    let mut device = device_from_row(row)?;
    let list: Option<String> = get(row, "devices", "group_list")?;
    for name in list.as_deref().unwrap_or("").split('\n').filter(|n| !n.is_empty()) {
        device.groups.push(parse_name("device_groups", "group_name", name.to_owned(), GroupName::new)?);
    }
    device.groups.sort();
    Ok(device)
}

async fn load_device(conn: &mut Conn, id: &DeviceId) -> Result<Option<Device>> {
    let args = [Arg::Text(id.as_str().to_owned())];
    Ok(load_devices(conn, "id = $1", "", &args).await?.pop())
}

/// NotFound naming the first of `groups` that does not exist.
async fn ensure_groups(conn: &mut Conn, groups: &[GroupName]) -> Result<()> {
    for group in groups {
        let found = sqlx::query("SELECT name FROM groups WHERE name = $1")
            .bind(group.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
        if found.is_none() {
            return Err(StoreError::not_found("group", group));
        }
    }
    Ok(())
}

async fn add_device_groups(conn: &mut Conn, id: &DeviceId, groups: &[GroupName]) -> Result<()> {
    for group in groups {
        sqlx::query("INSERT INTO device_groups (device_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id.as_str())
            .bind(group.as_str())
            .execute(&mut *conn)
            .await
            .map_err(err)?;
    }
    Ok(())
}

async fn release_exists(conn: &mut Conn, id: ReleaseId) -> Result<bool> {
    Ok(sqlx::query("SELECT id FROM releases WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?
        .is_some())
}

/// The enrollment status of a device and the hash of its pre-authorisation secret,
/// locking its row for the transaction.
async fn lock_enrollment(conn: &mut Conn, id: &DeviceId) -> Result<(Option<String>, Option<String>)> {
    let sql = format!("SELECT status, preauth_secret_hash FROM devices WHERE id = $1{}", SqlDialect::FOR_UPDATE);
    let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&mut *conn).await.map_err(err)?;
    match row {
        None => Ok((None, None)),
        Some(r) => Ok((Some(get(&r, "devices", "status")?), get(&r, "devices", "preauth_secret_hash")?)),
    }
}

impl Backend {
    /// Fills in the version key of releases stored before it existed. Idempotent, so
    /// replicas opening the same database at once do no harm. A row whose version
    /// ranks equal to another's on the same line (possible only in a database from
    /// before the key) keeps no key: the other row's key still refuses a third.
    pub(crate) async fn backfill_version_keys(&self) -> Result<()> {
        let rows = sqlx::query("SELECT id, version FROM releases WHERE version_key IS NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        for row in &rows {
            let id: i64 = get(row, "releases", "id")?;
            let version = parse_version("releases", "version", get(row, "releases", "version")?)?;
            let result = sqlx::query("UPDATE releases SET version_key = $2 WHERE id = $1 AND version_key IS NULL")
                .bind(id)
                .bind(version.rank_key())
                .execute(&self.writer)
                .await;
            match result {
                Err(e) if SqlDialect::violation(&e) == Some(Violation::Unique) => {}
                other => {
                    other.map_err(err)?;
                }
            }
        }
        Ok(())
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>> {
        self.writer.begin_with(SqlDialect::BEGIN_WRITE).await.map_err(backend)
    }

    async fn begin_read(&self) -> Result<sqlx::Transaction<'static, Db>> {
        self.pool.begin_with(SqlDialect::BEGIN_READ).await.map_err(backend)
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Db>> {
        self.pool.acquire().await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl Store for Backend {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }
}
