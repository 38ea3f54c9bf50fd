//! The one implementation of [`ferry_store::Store`], written once and instantiated per backend.
//!
//! sqlx's query API is generic over the database, but spelling out the trait bounds generic
//! code would need (encode and decode bounds for every bound and read type, executor bounds
//! for connections) costs more than it saves. Instead [`impl_store!`] expands the same source
//! for each concrete database type, the approach vaultwarden takes. The SQL is written once:
//! `$n` placeholders, `ON CONFLICT … DO UPDATE/NOTHING`, `excluded.` and `RETURNING` mean the
//! same in SQLite and PostgreSQL. What differs lives in the backend modules: how to connect,
//! the migrations, and a [`Dialect`](crate::common::Dialect) (transaction begin statements,
//! row locking, recognising constraint violations).

/// Implements `ferry_store::Store` for `$store`, a struct with fields `pool: sqlx::Pool<$db>`
/// for reads and `writer: sqlx::Pool<$db>` for every statement that writes,
/// using `$dialect: Dialect` for what differs between databases.
macro_rules! impl_store {
    ($store:ident, $db:ty, $dialect:ident) => {
        mod store_impl {
            use std::collections::{BTreeMap, HashMap};

            use ferry_core::{
                Artifact, ArtifactName, DeviceId, DeviceStatus, GroupName, PlatformName,
                ProductName, Release, ReleaseId, Role, Sha256,
            };
            use ferry_store::{
                AdminToken, AppendOutcome, Approval, CheckinRecord, CredentialMatch, Device, DeviceFilter,
                DirectorFiles, DirectorStamp, DirectorState, Enrollment, Event, Group, MetadataFile, NewAdminToken, NewEvent,
                Platform, Product, ReleaseChange, ReleaseState, Repo, Result, Store, StoreError,
            };
            use sqlx::Row as _;

            use super::{$dialect, $store};
            use $crate::common::{
                backend, corrupt, db_err, enum_str, from_json, map_err, parse_action, parse_enum,
                parse_name, parse_role, parse_state, parse_status, parse_version, placeholders,
                to_i64, to_json, to_u64, version_map, Arg, Dialect as _, Violation,
            };

            type Db = $db;
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
                db_err::<$dialect>(e)
            }

            fn conflict(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
                map_err::<$dialect>(e, message)
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
                "name, description, checkin_interval_secs, checkin_jitter, enrollment_key_hash, created_at";

            fn group_from_row(row: &Row) -> Result<Group> {
                const T: &str = "groups";
                Ok(Group {
                    name: parse_name(T, "name", get(row, T, "name")?, GroupName::new)?,
                    description: get(row, T, "description")?,
                    checkin_interval_secs: to_u64(
                        T,
                        "checkin_interval_secs",
                        get(row, T, "checkin_interval_secs")?,
                    )?,
                    checkin_jitter: get(row, T, "checkin_jitter")?,
                    enrollment_key_hash: get(row, T, "enrollment_key_hash")?,
                    created_at: get(row, T, "created_at")?,
                })
            }

            const APPROVAL_COLUMNS: &str =
                "release_id, group_name, action, deadline, approved_by, approved_at";

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

            const RELEASE_COLUMNS: &str =
                "id, product, version, kind, required, reboot, classification, notes, \
                 dependencies, supersedes, no_update_versions, applies_to, counter, created_at, archived";

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
                    classification: parse_enum(
                        T,
                        "classification",
                        get(row, T, "classification")?,
                    )?,
                    notes: get(row, T, "notes")?,
                    dependencies: from_json(
                        T,
                        "dependencies",
                        &get::<String>(row, T, "dependencies")?,
                    )?,
                    supersedes: from_json(T, "supersedes", &get::<String>(row, T, "supersedes")?)?,
                    no_update_versions: from_json(
                        T,
                        "no_update_versions",
                        &get::<String>(row, T, "no_update_versions")?,
                    )?,
                    applies_to: applies_to
                        .map(|s| from_json(T, "applies_to", &s))
                        .transpose()?,
                    counter: get(row, T, "counter")?,
                    created_at: get(row, T, "created_at")?,
                    archived: get(row, T, "archived")?,
                })
            }

            fn artifact_from_row(row: &Row) -> Result<Artifact> {
                const T: &str = "artifacts";
                Ok(Artifact {
                    name: parse_name(T, "name", get(row, T, "name")?, ArtifactName::new)?,
                    length: to_u64(T, "length", get(row, T, "length")?)?,
                    sha256: parse_name(T, "sha256", get::<String>(row, T, "sha256")?, |s| {
                        Sha256::parse(&s)
                    })?,
                    media_type: get(row, T, "media_type")?,
                    custom: from_json(T, "custom", &get::<String>(row, T, "custom")?)?,
                })
            }

            const DEVICE_COLUMNS: &str = "id, status, platform, installed, configs, attributes, agent_version, \
                 boot_id, prev_boot_id, last_contact, enrolled_at, identity_conflicts, last_conflict, \
                 last_conflict_at";

            fn device_from_row(row: &Row) -> Result<Device> {
                const T: &str = "devices";
                let platform: Option<String> = get(row, T, "platform")?;
                Ok(Device {
                    id: parse_name(T, "id", get(row, T, "id")?, DeviceId::new)?,
                    status: parse_status(&get::<String>(row, T, "status")?)?,
                    groups: Vec::new(),
                    platform: platform
                        .map(|p| parse_name(T, "platform", p, PlatformName::new))
                        .transpose()?,
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
                })
            }

            const EVENT_COLUMNS: &str =
                "seq, release_id, state, progress, error_code, message, at, received_at";

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
            async fn load_releases(
                conn: &mut Conn,
                cond: &str,
                args: &[Arg],
            ) -> Result<Vec<Release>> {
                let sql =
                    format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE {cond} ORDER BY id DESC");
                let rows = bind_args(sqlx::query(&sql), args)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(err)?;
                let mut releases = rows
                    .iter()
                    .map(release_from_row)
                    .collect::<Result<Vec<_>>>()?;
                if releases.is_empty() {
                    return Ok(releases);
                }
                let index: HashMap<i64, usize> = releases
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.id.0, i))
                    .collect();

                let sql = format!(
                    "SELECT release_id, platform FROM release_platforms \
                     WHERE release_id IN (SELECT id FROM releases WHERE {cond}) ORDER BY release_id, ordinal"
                );
                let rows = bind_args(sqlx::query(&sql), args)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(err)?;
                for row in &rows {
                    const T: &str = "release_platforms";
                    let id: i64 = get(row, T, "release_id")?;
                    if let Some(&i) = index.get(&id) {
                        releases[i].platforms.push(parse_name(
                            T,
                            "platform",
                            get(row, T, "platform")?,
                            PlatformName::new,
                        )?);
                    }
                }

                let sql = format!(
                    "SELECT release_id, name, length, sha256, media_type, custom FROM artifacts \
                     WHERE release_id IN (SELECT id FROM releases WHERE {cond}) ORDER BY release_id, ordinal"
                );
                let rows = bind_args(sqlx::query(&sql), args)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(err)?;
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
            async fn load_devices(
                conn: &mut Conn,
                cond: &str,
                tail: &str,
                args: &[Arg],
            ) -> Result<Vec<Device>> {
                let sql = format!(
                    "SELECT {DEVICE_COLUMNS}, {} AS group_list FROM devices WHERE {cond} {tail}",
                    <$dialect as crate::common::Dialect>::GROUP_LIST
                );
                let rows = bind_args(sqlx::query(&sql), args)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(err)?;
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

            async fn add_device_groups(
                conn: &mut Conn,
                id: &DeviceId,
                groups: &[GroupName],
            ) -> Result<()> {
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
                let sql = format!(
                    "SELECT status, preauth_secret_hash FROM devices WHERE id = $1{}",
                    $dialect::FOR_UPDATE
                );
                let row = sqlx::query(&sql)
                    .bind(id.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(err)?;
                match row {
                    None => Ok((None, None)),
                    Some(r) => Ok((Some(get(&r, "devices", "status")?), get(&r, "devices", "preauth_secret_hash")?)),
                }
            }

            impl $store {
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
                            Err(e) if $dialect::violation(&e) == Some(Violation::Unique) => {}
                            other => {
                                other.map_err(err)?;
                            }
                        }
                    }
                    Ok(())
                }

                async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>> {
                    self.writer
                        .begin_with($dialect::BEGIN_WRITE)
                        .await
                        .map_err(backend)
                }

                async fn begin_read(&self) -> Result<sqlx::Transaction<'static, Db>> {
                    self.pool
                        .begin_with($dialect::BEGIN_READ)
                        .await
                        .map_err(backend)
                }

                async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Db>> {
                    self.pool.acquire().await.map_err(backend)
                }
            }

            #[async_trait::async_trait]
            impl Store for $store {
                async fn ping(&self) -> Result<()> {
                    sqlx::query("SELECT 1")
                        .execute(&self.pool)
                        .await
                        .map_err(backend)?;
                    Ok(())
                }

                // --- catalogue ---------------------------------------------------------------

                async fn create_product(&self, product: &Product) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO products (name, description, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(product.name.as_str())
                    .bind(&product.description)
                    .bind(product.created_at)
                    .execute(&self.writer)
                    .await
                    .map_err(|e| {
                        conflict(e, || format!("product {} already exists", product.name))
                    })?;
                    Ok(())
                }

                async fn get_product(&self, name: &ProductName) -> Result<Option<Product>> {
                    let row = sqlx::query(
                        "SELECT name, description, created_at FROM products WHERE name = $1",
                    )
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    row.as_ref().map(product_from_row).transpose()
                }

                async fn list_products(&self) -> Result<Vec<Product>> {
                    let rows = sqlx::query(
                        "SELECT name, description, created_at FROM products ORDER BY name",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.iter().map(product_from_row).collect()
                }

                async fn create_platform(&self, platform: &Platform) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO platforms (name, description, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(platform.name.as_str())
                    .bind(&platform.description)
                    .bind(platform.created_at)
                    .execute(&self.writer)
                    .await
                    .map_err(|e| {
                        conflict(e, || format!("platform {} already exists", platform.name))
                    })?;
                    Ok(())
                }

                async fn get_platform(&self, name: &PlatformName) -> Result<Option<Platform>> {
                    let row = sqlx::query(
                        "SELECT name, description, created_at FROM platforms WHERE name = $1",
                    )
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    row.as_ref().map(platform_from_row).transpose()
                }

                async fn list_platforms(&self) -> Result<Vec<Platform>> {
                    let rows = sqlx::query(
                        "SELECT name, description, created_at FROM platforms ORDER BY name",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.iter().map(platform_from_row).collect()
                }

                async fn record_content(
                    &self,
                    sha256: &Sha256,
                    length: u64,
                    now: i64,
                ) -> Result<()> {
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
                        Some(stored) if stored != length => Err(StoreError::Conflict(format!(
                            "content {sha256} is recorded with length {stored}, not {length}"
                        ))),
                        _ => Ok(()),
                    }
                }

                async fn content_length(&self, sha256: &Sha256) -> Result<Option<u64>> {
                    let row = sqlx::query("SELECT length FROM content WHERE sha256 = $1")
                        .bind(sha256.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    row.map(|r| to_u64("content", "length", get(&r, "content", "length")?))
                        .transpose()
                }

                async fn create_release(&self, release: &Release, now: i64) -> Result<Release> {
                    let line = line_of(release);
                    let mut tx = self.begin_write().await?;

                    // Locking the product row serialises releases of one product, so counters
                    // and the duplicate check below cannot race (PostgreSQL; SQLite's write
                    // transaction already excludes other writers).
                    let sql = format!(
                        "SELECT name FROM products WHERE name = $1{}",
                        $dialect::FOR_UPDATE
                    );
                    let product = sqlx::query(&sql)
                        .bind(release.product.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                    if product.is_none() {
                        return Err(StoreError::not_found("product", &release.product));
                    }
                    for (i, platform) in release.platforms.iter().enumerate() {
                        if release.platforms[..i].contains(platform) {
                            return Err(StoreError::Conflict(format!(
                                "platform {platform} is listed twice"
                            )));
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
                        if release.artifacts[..i]
                            .iter()
                            .any(|a| a.name == artifact.name)
                        {
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
                        let stored: Option<i64> =
                            row.map(|r| get(&r, "content", "length")).transpose()?;
                        if stored != Some(to_i64("artifact length", artifact.length)?) {
                            return Err(StoreError::not_found(
                                "content",
                                format!(
                                    "{} of length {} (artifact {})",
                                    artifact.sha256, artifact.length, artifact.name
                                ),
                            ));
                        }
                    }
                    // Versions are compared by rank (5 = 5.0 = 5.0 (Rel)); the unique index on
                    // the key backs this check up against anything that bypasses the lock.
                    let key = release.version.rank_key();
                    let existing = sqlx::query(
                        "SELECT id, version FROM releases WHERE product = $1 AND line = $2 AND version_key = $3",
                    )
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
                    let row = sqlx::query(
                        "SELECT COALESCE(MAX(counter), 0) AS top FROM releases WHERE product = $1",
                    )
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
                    .map_err(|e| {
                        conflict(e, || format!("{} already has {line} version {}", release.product, release.version))
                    })?;
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
                    Ok(Release {
                        id: ReleaseId(id),
                        counter,
                        created_at: now,
                        archived: false,
                        ..release.clone()
                    })
                }

                async fn delete_release(&self, id: ReleaseId) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    // The row lock orders this against set_approval, which marks the row in
                    // its own transaction: either the approval sees no release or this sees
                    // the mark.
                    let sql = format!(
                        "SELECT ever_approved FROM releases WHERE id = $1{}",
                        $dialect::FOR_UPDATE
                    );
                    let row = sqlx::query(&sql)
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
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
                    sqlx::query("DELETE FROM releases WHERE id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
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

                async fn get_release(&self, id: ReleaseId) -> Result<Option<Release>> {
                    let mut tx = self.begin_read().await?;
                    let releases = load_releases(&mut tx, "id = $1", &[Arg::Int(id.0)]).await?;
                    tx.commit().await.map_err(backend)?;
                    Ok(releases.into_iter().next())
                }

                async fn list_releases(
                    &self,
                    product: Option<&ProductName>,
                ) -> Result<Vec<Release>> {
                    let mut tx = self.begin_read().await?;
                    let releases = match product {
                        Some(p) => {
                            load_releases(
                                &mut tx,
                                "product = $1",
                                &[Arg::Text(p.as_str().to_owned())],
                            )
                            .await?
                        }
                        None => load_releases(&mut tx, "1 = 1", &[]).await?,
                    };
                    tx.commit().await.map_err(backend)?;
                    Ok(releases)
                }

                // --- groups and approvals ----------------------------------------------------

                async fn create_group(&self, group: &Group) -> Result<()> {
                    let result = sqlx::query(&format!(
                        "INSERT INTO groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                    ))
                    .bind(group.name.as_str())
                    .bind(&group.description)
                    .bind(to_i64("check-in interval", group.checkin_interval_secs)?)
                    .bind(group.checkin_jitter)
                    .bind(group.enrollment_key_hash.as_deref())
                    .bind(group.created_at)
                    .execute(&self.writer)
                    .await;
                    match result {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            let taken = $dialect::violation(&e) == Some(Violation::Unique)
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
                    let row = sqlx::query(&format!(
                        "SELECT {GROUP_COLUMNS} FROM groups WHERE name = $1"
                    ))
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    row.as_ref().map(group_from_row).transpose()
                }

                async fn list_groups(&self) -> Result<Vec<Group>> {
                    let rows =
                        sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY name"))
                            .fetch_all(&self.pool)
                            .await
                            .map_err(err)?;
                    rows.iter().map(group_from_row).collect()
                }

                async fn update_group(&self, group: &Group) -> Result<()> {
                    let done = sqlx::query(
                        "UPDATE groups SET description = $2, checkin_interval_secs = $3, checkin_jitter = $4, \
                         enrollment_key_hash = $5, created_at = $6 WHERE name = $1",
                    )
                    .bind(group.name.as_str())
                    .bind(&group.description)
                    .bind(to_i64("check-in interval", group.checkin_interval_secs)?)
                    .bind(group.checkin_jitter)
                    .bind(group.enrollment_key_hash.as_deref())
                    .bind(group.created_at)
                    .execute(&self.writer)
                    .await
                    .map_err(|e| conflict(e, || "another group already has this enrollment key".to_owned()))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::not_found("group", &group.name));
                    }
                    Ok(())
                }

                async fn group_by_enrollment_key(&self, key_hash: &str) -> Result<Option<Group>> {
                    let row = sqlx::query(&format!(
                        "SELECT {GROUP_COLUMNS} FROM groups WHERE enrollment_key_hash = $1"
                    ))
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

                async fn delete_approval(
                    &self,
                    release: ReleaseId,
                    group: &GroupName,
                ) -> Result<bool> {
                    let done = sqlx::query(
                        "DELETE FROM approvals WHERE release_id = $1 AND group_name = $2",
                    )
                    .bind(release.0)
                    .bind(group.as_str())
                    .execute(&self.writer)
                    .await
                    .map_err(err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn list_approvals(
                    &self,
                    release: Option<ReleaseId>,
                    group: Option<&GroupName>,
                ) -> Result<Vec<Approval>> {
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
                    let rows = bind_args(sqlx::query(&sql), &args)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(err)?;
                    rows.iter().map(approval_from_row).collect()
                }

                async fn approved_releases(
                    &self,
                    groups: &[GroupName],
                ) -> Result<Vec<(Release, Vec<Approval>)>> {
                    if groups.is_empty() {
                        return Ok(Vec::new());
                    }
                    let args: Vec<Arg> = groups
                        .iter()
                        .map(|g| Arg::Text(g.as_str().to_owned()))
                        .collect();
                    let in_groups = placeholders(1, groups.len());
                    let mut tx = self.begin_read().await?;
                    let sql = format!(
                        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE group_name IN ({in_groups}) \
                         ORDER BY release_id, group_name"
                    );
                    let rows = bind_args(sqlx::query(&sql), &args)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(err)?;
                    let mut by_release: HashMap<i64, Vec<Approval>> = HashMap::new();
                    for row in &rows {
                        let approval = approval_from_row(row)?;
                        by_release
                            .entry(approval.release.0)
                            .or_default()
                            .push(approval);
                    }
                    let cond = format!("id IN (SELECT release_id FROM approvals WHERE group_name IN ({in_groups}))");
                    let releases = load_releases(&mut tx, &cond, &args).await?;
                    tx.commit().await.map_err(backend)?;
                    Ok(releases
                        .into_iter()
                        .filter_map(|r| by_release.remove(&r.id.0).map(|a| (r, a)))
                        .collect())
                }

                // --- devices -----------------------------------------------------------------

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
                    Err(StoreError::Conflict(format!(
                        "device {id} is already enrolled; the attempt was recorded as an identity conflict"
                    )))
                }

                async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>> {
                    let mut conn = self.conn().await?;
                    load_device(&mut conn, id).await
                }

                async fn devices_by_credentials(
                    &self,
                    credential_hashes: &[String],
                ) -> Result<Vec<(String, CredentialMatch)>> {
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
                            <$dialect as crate::common::Dialect>::GROUP_LIST,
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
                    let limit = if filter.limit == 0 {
                        MAX
                    } else {
                        filter.limit.min(MAX)
                    };
                    let mut conds = vec!["1 = 1".to_owned()];
                    let mut args = Vec::new();
                    if let Some(status) = filter.status {
                        args.push(Arg::Text(status.as_str().to_owned()));
                        conds.push(format!("status = ${}", args.len()));
                    }
                    if let Some(group) = &filter.group {
                        args.push(Arg::Text(group.as_str().to_owned()));
                        conds.push(format!(
                            "id IN (SELECT device_id FROM device_groups WHERE group_name = ${})",
                            args.len()
                        ));
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

                async fn set_device_status(
                    &self,
                    id: &DeviceId,
                    status: DeviceStatus,
                ) -> Result<()> {
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

                async fn set_device_groups(
                    &self,
                    id: &DeviceId,
                    groups: &[GroupName],
                ) -> Result<()> {
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

                async fn record_checkin(
                    &self,
                    id: &DeviceId,
                    checkin: &CheckinRecord,
                ) -> Result<()> {
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

                // --- status events -----------------------------------------------------------

                async fn append_events(
                    &self,
                    device: &DeviceId,
                    events: &[NewEvent],
                    received_at: i64,
                ) -> Result<AppendOutcome> {
                    if let Some(w) = events.windows(2).find(|w| w[0].seq >= w[1].seq) {
                        return Err(StoreError::Conflict(format!(
                            "events must be sent in increasing seq order; {} is followed by {}",
                            w[0].seq, w[1].seq
                        )));
                    }
                    let mut tx = self.begin_write().await?;
                    if lock_enrollment(&mut tx, device).await?.0.is_none() {
                        return Err(StoreError::not_found("device", device));
                    }
                    let row =
                        sqlx::query("SELECT MAX(seq) AS top FROM events WHERE device_id = $1")
                            .bind(device.as_str())
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(err)?;
                    let highest: Option<i64> = get(&row, "events", "top")?;

                    let mut fresh = Vec::new();
                    let mut duplicates = 0u32;
                    for event in events {
                        if highest.is_some_and(|h| event.seq <= h) {
                            let stored = sqlx::query(&format!(
                                "SELECT {EVENT_COLUMNS} FROM events WHERE device_id = $1 AND seq = $2"
                            ))
                            .bind(device.as_str())
                            .bind(event.seq)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(err)?;
                            let Some(stored) = stored else {
                                return Err(StoreError::Conflict(format!(
                                    "event {} of device {device} is older than its latest stored event {} and \
                                     was not stored before; nothing of the batch was stored",
                                    event.seq,
                                    highest.unwrap_or_default()
                                )));
                            };
                            // A retry repeats the event exactly; anything else reusing the seq
                            // would be lost silently if it were skipped.
                            if event_from_row(&stored)?.event != *event {
                                return Err(StoreError::Conflict(format!(
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
                    Ok(AppendOutcome {
                        stored: u32::try_from(fresh.len()).unwrap_or(u32::MAX),
                        duplicates,
                    })
                }

                async fn list_events(
                    &self,
                    device: &DeviceId,
                    release: Option<ReleaseId>,
                    limit: u32,
                ) -> Result<Vec<Event>> {
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
                    let rows = bind_args(sqlx::query(&sql), &args)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(err)?;
                    rows.iter().map(event_from_row).collect()
                }

                async fn device_release_states(
                    &self,
                    device: &DeviceId,
                ) -> Result<Vec<ReleaseState>> {
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

                // --- admin tokens ------------------------------------------------------------

                async fn create_admin_token(
                    &self,
                    token: &NewAdminToken,
                    now: i64,
                ) -> Result<AdminToken> {
                    let row = sqlx::query(
                        "INSERT INTO admin_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
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
                    let row = sqlx::query(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE hash = $1 AND revoked_at IS NULL"
                    ))
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    row.as_ref().map(token_from_row).transpose()
                }

                async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY id"
                    ))
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
                        $dialect::FOR_UPDATE
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

                // --- trust -------------------------------------------------------------------

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
                            map_err::<$dialect>(e, || {
                                format!(
                                    "{} metadata {} version {} already exists",
                                    file.repo.as_str(),
                                    file.role,
                                    file.version
                                )
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
                    rows.iter()
                        .map(|r| Ok((get(r, T, "role")?, to_u64(T, "version", get(r, T, "version")?)?)))
                        .collect()
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
                        .map_err(|e| match map_err::<$dialect>(e, String::new) {
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
        }
    };
}

pub(crate) use impl_store;
