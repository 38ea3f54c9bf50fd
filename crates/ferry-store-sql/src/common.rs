//! Code both backends share that does not depend on the database type: what a backend must
//! tell the shared implementation ([`Dialect`]), error mapping and value conversions.

use std::collections::BTreeMap;

use ferry_core::{DeviceState, DeviceStatus, Role, Version};
use ferry_store::{ApprovalAction, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A constraint violation a backend recognised in a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A unique or primary-key constraint.
    Unique,
    /// A foreign-key constraint.
    ForeignKey,
}

/// What differs between the SQL dialects beyond connecting and migrating.
pub(crate) trait Dialect {
    /// Starts a transaction that will write. SQLite takes the write lock at once
    /// (`BEGIN IMMEDIATE`) so that a transaction that reads first cannot fail to upgrade.
    const BEGIN_WRITE: &'static str;
    /// Starts a transaction that only reads, from one consistent snapshot.
    const BEGIN_READ: &'static str;
    /// Appended to a `SELECT` to lock the rows read until the transaction ends (PostgreSQL);
    /// empty where the write transaction already excludes other writers (SQLite).
    const FOR_UPDATE: &'static str;
    /// A scalar subquery giving the groups of the device in the current `devices` row, joined
    /// by newlines (group names cannot contain one), or NULL. Loading a device with its groups
    /// in one query keeps the check-in path to a single database round trip.
    const GROUP_LIST: &'static str;
    /// Recognises unique and foreign-key violations by the database's error code.
    fn violation(err: &sqlx::Error) -> Option<Violation>;
}

/// The database's own message, without sqlx's prefix.
pub(crate) fn message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Maps a database error: a unique violation becomes Conflict with `conflict()` as its message,
/// a foreign-key violation NotFound, anything else Backend.
pub(crate) fn map_err<D: Dialect>(err: sqlx::Error, conflict: impl FnOnce() -> String) -> StoreError {
    match D::violation(&err) {
        Some(Violation::Unique) => StoreError::Conflict(conflict()),
        Some(Violation::ForeignKey) => StoreError::NotFound { what: "referenced record", key: message(&err) },
        None => backend(err),
    }
}

/// Maps a database error that no constraint explains to Backend (and violations as
/// [`map_err`] does, with the database's message).
pub(crate) fn db_err<D: Dialect>(err: sqlx::Error) -> StoreError {
    let msg = message(&err);
    map_err::<D>(err, || msg)
}

/// A database error as Backend.
pub(crate) fn backend(err: sqlx::Error) -> StoreError {
    StoreError::Backend(message(&err))
}

/// A value that could not be decoded.
pub(crate) fn corrupt(table: &str, column: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {err}"))
}

/// Converts an unsigned quantity to the signed 64-bit integer SQL stores.
pub(crate) fn to_i64(what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} {value} is too large to store")))
}

/// Converts a stored signed integer back to an unsigned quantity.
pub(crate) fn to_u64(table: &str, column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(table, column, format!("negative value {value}")))
}

/// Serialises a value to JSON text for a TEXT column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot serialise to json: {e}")))
}

/// Parses JSON text of a TEXT column.
pub(crate) fn from_json<T: DeserializeOwned>(table: &str, column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(table, column, e))
}

/// The name serde gives a unit enum variant (`"required"`, `"security"`…).
pub(crate) fn enum_str<T: Serialize>(value: T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Backend("enum did not serialise to a string".to_owned())),
    }
}

/// Parses an enum stored by [`enum_str`].
pub(crate) fn parse_enum<T: DeserializeOwned>(table: &str, column: &str, text: String) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| corrupt(table, column, e))
}

/// Parses a validated name (`ProductName`, `DeviceId`…) read from a column.
pub(crate) fn parse_name<T, E>(
    table: &str,
    column: &str,
    text: String,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Result<T, StoreError>
where
    E: std::fmt::Display,
{
    parse(text).map_err(|e| corrupt(table, column, e))
}

/// Parses a stored version.
pub(crate) fn parse_version(table: &str, column: &str, text: String) -> Result<Version, StoreError> {
    Version::new(text).map_err(|e| corrupt(table, column, e))
}

/// Parses a stored device status.
pub(crate) fn parse_status(text: &str) -> Result<DeviceStatus, StoreError> {
    DeviceStatus::parse(text).ok_or_else(|| corrupt("devices", "status", format!("unknown status {text:?}")))
}

/// Parses a stored device state.
pub(crate) fn parse_state(table: &str, text: &str) -> Result<DeviceState, StoreError> {
    DeviceState::parse(text).ok_or_else(|| corrupt(table, "state", format!("unknown state {text:?}")))
}

/// Parses a stored approval action.
pub(crate) fn parse_action(text: &str) -> Result<ApprovalAction, StoreError> {
    ApprovalAction::parse(text).ok_or_else(|| corrupt("approvals", "action", format!("unknown action {text:?}")))
}

/// Parses a stored admin role.
pub(crate) fn parse_role(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| corrupt("admin_tokens", "role", format!("unknown role {text:?}")))
}

/// `$first, $first+1, …` for `count` parameters, for an `IN (…)` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A dynamically bound parameter of a query whose text is built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
}

/// Parses a JSON map of names to versions (installed software, configs).
pub(crate) fn version_map<K: Ord + DeserializeOwned>(
    column: &str,
    text: &str,
) -> Result<BTreeMap<K, Version>, StoreError> {
    from_json("devices", column, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Classification, RebootBehaviour};

    #[test]
    fn enums_round_trip_through_their_serde_names() {
        assert_eq!(enum_str(RebootBehaviour::Possible).unwrap(), "possible");
        let c: Classification = parse_enum("releases", "classification", "security".to_owned()).unwrap();
        assert_eq!(c, Classification::Security);
        let err = parse_enum::<Classification>("releases", "classification", "nope".to_owned()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }
}
