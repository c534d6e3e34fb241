//! Database access: the connection pool, locked migration sessions, and the queries on the
//! version and history tables, for PostgreSQL and SQLite.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use crate::migration::{Checksum, Direction};
use crate::plan::HistoryRecord;
use crate::store::Value;

/// A history row about to be written.
#[derive(Debug, Clone)]
pub(crate) struct NewRecord {
    pub(crate) revision: String,
    pub(crate) summary: String,
    pub(crate) direction: Direction,
    pub(crate) finished: bool,
    pub(crate) checksum: Checksum,
    pub(crate) chain: Option<Checksum>,
    pub(crate) duration_ms: i64,
    pub(crate) app_version: String,
    pub(crate) backup: Option<String>,
    /// The down SQL of the dialect, recorded with an applied migration.
    pub(crate) down_sql: Option<String>,
    /// How many attempts the migration's transaction took; 1 unless it was retried.
    pub(crate) attempts: i64,
}

impl NewRecord {
    /// The values of [`crate::store::Store::insert_history`]'s columns, in order: bound by
    /// the upgrade, written as literals by the script.
    pub(crate) fn values(&self) -> [Value; 11] {
        let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::Text);
        [
            Value::Text(self.revision.clone()),
            Value::Text(self.summary.clone()),
            Value::Text(self.direction.as_str().to_owned()),
            Value::Bool(self.finished),
            Value::Text(self.checksum.to_string()),
            text(&self.chain.map(|c| c.to_string())),
            Value::Int(self.duration_ms),
            Value::Text(self.app_version.clone()),
            text(&self.backup),
            text(&self.down_sql),
            Value::Int(self.attempts),
        ]
    }
}

/// The columns of a history row as read, before they are checked.
#[derive(Default)]
pub(crate) struct RawRecord {
    pub(crate) revision: Option<String>,
    pub(crate) summary: Option<String>,
    pub(crate) direction: Option<String>,
    pub(crate) finished: Option<bool>,
    pub(crate) checksum: Option<String>,
    pub(crate) chain: Option<String>,
    pub(crate) applied_at: Option<String>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) app_version: Option<String>,
    pub(crate) backup: Option<String>,
}

impl RawRecord {
    /// The record, or `None` when the row is the empty side of an outer join.
    pub(crate) fn into_record(self) -> Option<HistoryRecord> {
        Some(HistoryRecord {
            revision: self.revision?,
            summary: self.summary.unwrap_or_default(),
            direction: if self.direction.as_deref() == Some("down") {
                Direction::Down
            } else {
                Direction::Up
            },
            finished: self.finished.unwrap_or(true),
            checksum: self.checksum.as_deref().and_then(Checksum::from_hex),
            chain: self.chain.as_deref().and_then(Checksum::from_hex),
            applied_at: self.applied_at.unwrap_or_default(),
            duration_ms: self.duration_ms.unwrap_or_default(),
            app_version: self.app_version.unwrap_or_default(),
            backup: self.backup,
        })
    }
}

/// The queries on the version and history tables, the same on every backend but for the
/// connection type: expanded once in each backend module, which provides
/// `is_missing_table(&sqlx::Error) -> bool` and `describe(&sqlx::Error, &str) -> Error`.
macro_rules! state_queries {
    ($conn:ty, $row:ty) => {
        use std::sync::Arc;

        use sqlx::{AssertSqlSafe, Row};

        use crate::backend::{NewRecord, RawRecord};
        use crate::error::Error;
        use crate::plan::{DbState, HistoryRecord};
        use crate::store::{Store, history_insert_chunk};

        fn raw_record(row: &$row, first: usize) -> Result<RawRecord, sqlx::Error> {
            Ok(RawRecord {
                revision: row.try_get(first)?,
                summary: row.try_get(first + 1)?,
                direction: row.try_get(first + 2)?,
                finished: row.try_get(first + 3)?,
                checksum: row.try_get(first + 4)?,
                chain: row.try_get(first + 5)?,
                applied_at: row.try_get(first + 6)?,
                duration_ms: row.try_get(first + 7)?,
                app_version: row.try_get(first + 8)?,
                backup: row.try_get(first + 9)?,
            })
        }

        fn sql(text: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
            AssertSqlSafe(Arc::clone(text))
        }

        /// The guard's read: one query, the version rows and the newest history row.
        pub(crate) async fn read_state(conn: &mut $conn, store: &Store) -> Result<DbState, Error> {
            match sqlx::query(sql(&store.read_state)).fetch_all(&mut *conn).await {
                Ok(rows) => {
                    let mut versions = Vec::new();
                    let mut last = None;
                    for row in &rows {
                        let decoded = row
                            .try_get::<Option<String>, _>(0)
                            .and_then(|version| Ok((version, raw_record(row, 1)?)))
                            .map_err(|e| describe(e, "reading the migration state"))?;
                        versions.extend(decoded.0);
                        last = decoded.1.into_record();
                    }
                    Ok(DbState { versions: Some(versions), last, tables_present: true })
                }
                Err(e) if is_missing_table(&e) => read_partial_state(conn, store).await,
                Err(e) => Err(describe(e, "reading the migration state")),
            }
        }

        /// The guard's hot read: the version row with the newest history row's revision,
        /// completion and chained digest. `None` when that does not settle the state (no
        /// version row, or several): the caller reads everything.
        pub(crate) async fn read_state_brief(conn: &mut $conn, store: &Store) -> Result<Option<DbState>, Error> {
            let context = "reading the migration state";
            let query = sqlx::query(sql(&store.read_state_brief));
            // SQLite's query is one row (see `Store::read_state_brief`), which its driver
            // hands over without waking again to look for a second.
            let rows = match store.dialect {
                crate::migration::Dialect::Sqlite => query.fetch_optional(&mut *conn).await.map(Vec::from_iter),
                crate::migration::Dialect::Postgres => query.fetch_all(&mut *conn).await,
            };
            let rows = match rows {
                Ok(rows) => rows,
                // A table is missing (an empty database, or one Alembic made): what the
                // full read would find out, found out now.
                Err(e) if is_missing_table(&e) => return read_partial_state(conn, store).await.map(Some),
                Err(e) => return Err(describe(e, context)),
            };
            let decode = |row: &$row| {
                let version_rows: i64 = row.try_get(0)?;
                let version: Option<String> = row.try_get(1)?;
                let raw = RawRecord {
                    revision: row.try_get(2)?,
                    finished: row.try_get(3)?,
                    chain: row.try_get(4)?,
                    ..RawRecord::default()
                };
                Ok::<_, sqlx::Error>((version_rows, version, raw))
            };
            Ok(match rows.as_slice() {
                [row] => match decode(row).map_err(|e| describe(e, context))? {
                    (1, Some(version), raw) => Some(DbState {
                        versions: Some(vec![version]),
                        last: raw.into_record(),
                        tables_present: true,
                    }),
                    _ => None,
                },
                _ => None,
            })
        }

        /// The state when one table or both are missing: an empty database, or one made
        /// by another tool (Alembic creates only `alembic_version`).
        async fn read_partial_state(conn: &mut $conn, store: &Store) -> Result<DbState, Error> {
            let context = "checking which migration tables exist";
            let (has_versions, has_history): (bool, bool) = sqlx::query_as(sql(&store.probe_tables))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| describe(e, context))?;
            let versions = if has_versions {
                let rows: Vec<(String,)> = sqlx::query_as(sql(&store.read_versions))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| describe(e, context))?;
                Some(rows.into_iter().map(|(v,)| v).collect())
            } else {
                None
            };
            let last = if has_history {
                let row = sqlx::query(sql(&store.read_last))
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| describe(e, context))?;
                match row {
                    Some(row) => raw_record(&row, 0).map_err(|e| describe(e, context))?.into_record(),
                    None => None,
                }
            } else {
                None
            };
            Ok(DbState { versions, last, tables_present: has_versions && has_history })
        }

        /// Every history row, oldest first.
        pub(crate) async fn read_history(conn: &mut $conn, store: &Store) -> Result<Vec<HistoryRecord>, Error> {
            let context = "reading schema_history";
            match sqlx::query(sql(&store.read_history)).fetch_all(&mut *conn).await {
                Ok(rows) => rows
                    .iter()
                    .map(|row| raw_record(row, 0).map(RawRecord::into_record))
                    .filter_map(Result::transpose)
                    .collect::<Result<_, _>>()
                    .map_err(|e| describe(e, context)),
                Err(e) if is_missing_table(&e) => Ok(Vec::new()),
                Err(e) => Err(describe(e, context)),
            }
        }

        /// Creates the schema (PostgreSQL) and both tables, if missing.
        pub(crate) async fn create_tables(conn: &mut $conn, store: &Store) -> Result<(), Error> {
            // One round trip for the three statements.
            sqlx::raw_sql(sql(&store.create_tables))
                .execute(&mut *conn)
                .await
                .map_err(|e| describe(e, "creating the migration tables"))?;
            Ok(())
        }

        /// Writes history rows, many per statement.
        pub(crate) async fn insert_history(
            conn: &mut $conn,
            store: &Store,
            records: &[NewRecord],
        ) -> Result<(), Error> {
            for chunk in records.chunks(history_insert_chunk(store.dialect)) {
                let mut query = sqlx::query(AssertSqlSafe(store.insert_history(chunk.len())));
                for record in chunk {
                    query = bind_record(query, record);
                }
                query.execute(&mut *conn).await.map_err(|e| describe(e, "writing schema_history"))?;
            }
            Ok(())
        }

        /// Adds the history columns a database made by an older build lacks; returns the
        /// names of those it added. Runs under the migration lock, inside the write
        /// transaction, so that two processes never both add one.
        pub(crate) async fn upgrade_layout(conn: &mut $conn, store: &Store) -> Result<Vec<&'static str>, Error> {
            let context = "upgrading the layout of schema_history";
            let mut added = Vec::new();
            for (name, definition) in missing_history_columns(conn, store).await? {
                sqlx::raw_sql(AssertSqlSafe(store.add_history_column(name, definition)))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| describe(e, context))?;
                added.push(name);
            }
            Ok(added)
        }

        /// The history columns of this build that the table lacks (it was made by an older
        /// build), with their definitions.
        pub(crate) async fn missing_history_columns(
            conn: &mut $conn,
            store: &Store,
        ) -> Result<Vec<(&'static str, &'static str)>, Error> {
            let present: Vec<(String,)> = sqlx::query_as(sql(&store.read_added_columns))
                .bind(store.schema.to_string())
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| describe(e, "reading the layout of schema_history"))?;
            Ok(crate::store::ADDED_HISTORY_COLUMNS
                .into_iter()
                .filter(|(name, _)| !present.iter().any(|(p,)| p == name))
                .collect())
        }

        /// The down SQL recorded when `revision` was last applied (`None`: not recorded,
        /// e.g. applied by an older build).
        pub(crate) async fn read_down_sql(conn: &mut $conn, store: &Store, revision: &str) -> Result<Option<String>, Error> {
            let row: Option<(Option<String>,)> = sqlx::query_as(sql(&store.read_down_sql))
                .bind(revision.to_owned())
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| describe(e, "reading the recorded down SQL from schema_history"))?;
            Ok(row.and_then(|(down,)| down))
        }

        /// Marks the newest row finished, if it is a started one; returns whether it was.
        pub(crate) async fn finish_started(conn: &mut $conn, store: &Store, duration_ms: i64) -> Result<bool, Error> {
            let done = sqlx::query(sql(&store.finish_started))
                .bind(duration_ms)
                .execute(&mut *conn)
                .await
                .map_err(|e| describe(e, "writing schema_history"))?;
            Ok(done.rows_affected() == 1)
        }

        /// Whether the database holds no tables at all (PostgreSQL: in the schema).
        pub(crate) async fn is_empty(conn: &mut $conn, store: &Store) -> Result<bool, Error> {
            let any: bool = sqlx::query_scalar(sql(&store.any_table))
                .bind(store.schema.to_string())
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| describe(e, "checking whether the database is empty"))?;
            Ok(!any)
        }

        /// Deletes the newest row if it is an unfinished one; returns whether it did.
        pub(crate) async fn delete_started(conn: &mut $conn, store: &Store) -> Result<bool, Error> {
            let done = sqlx::query(sql(&store.delete_started))
                .execute(&mut *conn)
                .await
                .map_err(|e| describe(e, "writing schema_history"))?;
            Ok(done.rows_affected() == 1)
        }

        /// Moves `alembic_version` from one revision to another (`None`: no row).
        pub(crate) async fn set_version(
            conn: &mut $conn,
            store: &Store,
            from: Option<&str>,
            to: Option<&str>,
        ) -> Result<(), Error> {
            let query = match (from, to) {
                (None, None) => return Ok(()),
                (None, Some(to)) => sqlx::query(sql(&store.insert_version)).bind(to.to_owned()),
                (Some(from), Some(to)) => {
                    sqlx::query(sql(&store.update_version)).bind(to.to_owned()).bind(from.to_owned())
                }
                (Some(from), None) => sqlx::query(sql(&store.delete_version)).bind(from.to_owned()),
            };
            let done = query.execute(&mut *conn).await.map_err(|e| describe(e, "writing alembic_version"))?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(describe(
                    sqlx::Error::RowNotFound,
                    "alembic_version changed under the migration lock (edited by hand?); the transaction was rolled back",
                ))
            }
        }

        fn bind_record<'q>(
            query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
            record: &NewRecord,
        ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments> {
            record.values().into_iter().fold(query, |query, value| match value {
                crate::store::Value::Text(text) => query.bind(text),
                crate::store::Value::Null => query.bind(None::<String>),
                crate::store::Value::Bool(on) => query.bind(on),
                crate::store::Value::Int(n) => query.bind(n),
            })
        }

        /// Runs a migration's SQL as sent; on failure, also how many of its statements
        /// completed before the one that failed (the driver reports each one's end).
        pub(crate) async fn run_counted(conn: &mut $conn, script: &str) -> Result<(), (usize, sqlx::Error)> {
            let mut results = sqlx::raw_sql(AssertSqlSafe(script)).execute_many(&mut *conn);
            let mut done = 0;
            while let Some(result) = std::future::poll_fn(|cx| results.as_mut().poll_next(cx)).await {
                match result {
                    Ok(_) => done += 1,
                    Err(error) => return Err((done, error)),
                }
            }
            Ok(())
        }

        /// Runs statements of our own (settings, `BEGIN`, …) in one round trip.
        pub(crate) async fn run_own(conn: &mut $conn, statements: &[String], context: &str) -> Result<(), Error> {
            if statements.is_empty() {
                return Ok(());
            }
            sqlx::raw_sql(AssertSqlSafe(statements.join(";\n")))
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(|e| describe(e, context))
        }

        /// Runs a fixed statement such as `BEGIN` or `COMMIT`.
        pub(crate) async fn run_control(conn: &mut $conn, statement: &'static str, context: &str) -> Result<(), Error> {
            sqlx::raw_sql(statement).execute(&mut *conn).await.map(|_| ()).map_err(|e| describe(e, context))
        }
    };
}

pub(crate) use state_queries;
