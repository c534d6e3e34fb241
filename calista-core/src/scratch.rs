//! Scratch databases: PostgreSQL databases created on a server and dropped after use, and
//! SQLite files in the temporary folder. Used by `verify` and `testing`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::backend::postgres::describe;
use crate::error::Error;
use crate::url::PostgresUrl;

/// A name no other scratch database of this or another process uses: `prefix_pid_n_nanos`.
pub(crate) fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", unique_suffix())
}

/// What makes a [`unique_name`] unique: `pid_n_nanos`.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A connection to the server's database named in `server` (for `CREATE DATABASE`).
pub(crate) async fn admin(server: &PostgresUrl) -> Result<PgConnection, Error> {
    PgConnection::connect(server.expose_secret())
        .await
        .map_err(|source| Error::connect(server.to_string(), source))
}

/// `CREATE DATABASE name [TEMPLATE template]`; both names come from [`unique_name`] or
/// another plain identifier, and are quoted.
pub(crate) async fn create_database(
    admin: &mut PgConnection,
    name: &str,
    template: Option<&str>,
) -> Result<(), Error> {
    let sql = match template {
        Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        None => format!("CREATE DATABASE \"{name}\""),
    };
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(admin)
        .await
        .map_err(|e| describe(e, &format!("creating the scratch database {name}")))?;
    Ok(())
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)`.
pub(crate) async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), Error> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .map_err(|e| describe(e, &format!("dropping the scratch database {name}")))?;
    Ok(())
}

/// A path for a scratch SQLite file in the temporary folder (not created).
pub(crate) fn sqlite_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.db", unique_name(prefix)))
}

/// Removes a SQLite file and its journal files; what is already gone is fine.
pub(crate) fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
}
