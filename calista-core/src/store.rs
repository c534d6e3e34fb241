//! Where migration state lives: `alembic_version` and `schema_history`, and the SQL that
//! reads and writes them on each dialect.
//!
//! The only identifier put into SQL text is the schema name, which is validated as a plain
//! identifier and quoted; every value is a bound parameter.

use std::sync::Arc;
use std::time::Duration;

use crate::migration::Dialect;

/// The default schema of CALISTA's tables on PostgreSQL.
pub const DEFAULT_SCHEMA: &str = "calista";

/// The history columns written on insert, in order.
const HISTORY_INSERT_COLUMNS: &str = "revision, summary, direction, finished, checksum, chain, duration_ms, app_version, backup, \
     down_sql, attempts";
const HISTORY_INSERT_WIDTH: usize = 11;

/// Columns `schema_history` gained after the first release, with their definitions: a
/// database made by an older build gets them in place (`add_history_columns`), once,
/// under the migration lock. Older builds name the columns they read and write, so they
/// keep working with them.
pub(crate) const ADDED_HISTORY_COLUMNS: [(&str, &str); 2] = [
    // The down SQL of the dialect, as it was when the migration was applied: what
    // `db redo` and the downgrade of an edited migration run.
    ("down_sql", "TEXT NULL"),
    // How many attempts the migration's transaction took (lock-wait retries).
    ("attempts", "INTEGER NOT NULL DEFAULT 1"),
];
/// Rows per multi-row insert of history: few on SQLite, whose cost grows steeply with the
/// size of a multi-row `VALUES` (500 rows at once cost 12 times as much per row as 10), and
/// more on PostgreSQL, where each statement is a round trip. Both stay far below the bound
/// parameter limits (65535 and 32766).
pub(crate) const fn history_insert_chunk(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Sqlite => 10,
        Dialect::Postgres => 100,
    }
}

/// Whether a schema name can hold an application's tables: a plain identifier
/// (`[a-z_][a-z0-9_]{0,62}`) that is not one PostgreSQL reserves (see
/// [`is_reserved_schema_name`]).
pub fn is_valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && name.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !is_reserved_schema_name(name)
}

/// Whether PostgreSQL keeps a schema name for itself: `information_schema`, and every
/// name starting with `pg_` (`pg_catalog`, `pg_toast`, `pg_temp_3`, …), which
/// `CREATE SCHEMA` refuses or, worse, which already hold the system's tables.
pub fn is_reserved_schema_name(name: &str) -> bool {
    name == "information_schema" || name.starts_with("pg_")
}

/// The SQL of one database, prepared once.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) dialect: Dialect,
    /// `"calista".` on PostgreSQL, empty on SQLite.
    prefix: Arc<str>,
    pub(crate) read_state: Arc<str>,
    pub(crate) read_state_brief: Arc<str>,
    pub(crate) read_versions: Arc<str>,
    pub(crate) read_last: Arc<str>,
    pub(crate) read_history: Arc<str>,
    pub(crate) probe_tables: Arc<str>,
    /// The schema (PostgreSQL) and both tables, in one batch of statements.
    pub(crate) create_tables: Arc<str>,
    pub(crate) insert_version: Arc<str>,
    pub(crate) update_version: Arc<str>,
    pub(crate) delete_version: Arc<str>,
    pub(crate) finish_started: Arc<str>,
    pub(crate) any_table: Arc<str>,
    /// The schema name (PostgreSQL).
    pub(crate) schema: Arc<str>,
    pub(crate) delete_started: Arc<str>,
    /// The names of `schema_history`'s columns among [`ADDED_HISTORY_COLUMNS`].
    pub(crate) read_added_columns: Arc<str>,
    /// The down SQL recorded with a revision's newest `up` row.
    pub(crate) read_down_sql: Arc<str>,
}

impl Store {
    /// The SQL for a dialect; `schema` must satisfy [`is_valid_schema_name`] (PostgreSQL only).
    pub(crate) fn new(dialect: Dialect, schema: &str) -> Self {
        let prefix = match dialect {
            Dialect::Postgres => format!("\"{schema}\"."),
            Dialect::Sqlite => String::new(),
        };
        let p = &prefix;
        let param = |n: usize| placeholder(dialect, n);
        let applied_at = match dialect {
            Dialect::Postgres => {
                r#"to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"#
            }
            Dialect::Sqlite => "applied_at",
        };
        let last_columns = format!(
            "revision, summary, direction, finished, checksum, chain, {applied_at} AS applied_at, duration_ms, \
             app_version, backup"
        );
        let history_table = match dialect {
            Dialect::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {p}schema_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_schema_history PRIMARY KEY,
    revision    VARCHAR(32)  NOT NULL,
    summary     VARCHAR(200) NOT NULL,
    direction   VARCHAR(4)   NOT NULL CONSTRAINT ck_schema_history_direction CHECK (direction IN ('up', 'down')),
    finished    BOOLEAN      NOT NULL,
    checksum    CHAR(64)     NOT NULL,
    chain       CHAR(64)     NULL,
    applied_at  TIMESTAMPTZ  NOT NULL DEFAULT clock_timestamp(),
    duration_ms BIGINT       NOT NULL,
    app_version VARCHAR(64)  NOT NULL,
    backup      TEXT         NULL,
    down_sql    TEXT         NULL,
    attempts    INTEGER      NOT NULL DEFAULT 1
)"
            ),
            Dialect::Sqlite => "CREATE TABLE IF NOT EXISTS schema_history (
    id          INTEGER      NOT NULL CONSTRAINT pk_schema_history PRIMARY KEY AUTOINCREMENT,
    revision    VARCHAR(32)  NOT NULL,
    summary     VARCHAR(200) NOT NULL,
    direction   VARCHAR(4)   NOT NULL CONSTRAINT ck_schema_history_direction CHECK (direction IN ('up', 'down')),
    finished    BOOLEAN      NOT NULL,
    checksum    CHAR(64)     NOT NULL,
    chain       CHAR(64)     NULL,
    applied_at  TEXT         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    duration_ms BIGINT       NOT NULL,
    app_version VARCHAR(64)  NOT NULL,
    backup      TEXT         NULL,
    down_sql    TEXT         NULL,
    attempts    INTEGER      NOT NULL DEFAULT 1
)"
            .to_owned(),
        };
        // Exactly the table Alembic creates, so tools that read it keep working.
        let version_table = format!(
            "CREATE TABLE IF NOT EXISTS {p}alembic_version (version_num VARCHAR(32) NOT NULL, \
             CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        );
        let mut create_tables = Vec::new();
        if dialect == Dialect::Postgres {
            create_tables.push(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""));
        }
        create_tables.push(version_table);
        create_tables.push(history_table);

        let probe_tables = match dialect {
            Dialect::Postgres => format!(
                "SELECT to_regclass('{p}alembic_version') IS NOT NULL, to_regclass('{p}schema_history') IS NOT NULL"
            ),
            Dialect::Sqlite => "SELECT \
                 EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'), \
                 EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_history')"
                .to_owned(),
        };
        let read_versions = format!("SELECT version_num FROM {p}alembic_version LIMIT 2");
        let read_last =
            format!("SELECT {last_columns} FROM {p}schema_history ORDER BY id DESC LIMIT 1");

        Self {
            dialect,
            // The guard's one query: at most two version rows beside the newest history row.
            read_state: format!(
                "SELECT v.version_num, h.* FROM (SELECT 1 AS one) AS o \
                 LEFT JOIN ({read_versions}) AS v ON 1 = 1 \
                 LEFT JOIN ({read_last}) AS h ON 1 = 1"
            )
            .into(),
            // The guard's hot path: rows of (version rows counted, the version, and the
            // revision, completion and chained digest of the newest history row). Each
            // dialect gets the shape it runs fastest; see `read_state_brief` in backend/mod.rs.
            read_state_brief: match dialect {
                // One row that counts the version rows: SQLite's driver would wake once more
                // to find that no second row follows, which costs as much as the query. The
                // newest row by `max(id)` spares SQLite materialising an ordered subquery.
                Dialect::Sqlite => format!(
                    "SELECT v.n, v.version_num, h.revision, h.finished, h.chain \
                     FROM (SELECT count(*) AS n, min(version_num) AS version_num FROM {p}alembic_version) AS v \
                     LEFT JOIN {p}schema_history AS h ON h.id = (SELECT max(id) FROM {p}schema_history)"
                ),
                // A row per version row, at most two: PostgreSQL sends a second row for
                // nothing but runs an aggregate slower, and the ordered subquery is one
                // backward index scan.
                Dialect::Postgres => format!(
                    "SELECT 1::BIGINT, v.version_num, h.revision, h.finished, h.chain FROM {p}alembic_version AS v \
                     LEFT JOIN (SELECT revision, finished, chain FROM {p}schema_history ORDER BY id DESC LIMIT 1) AS h \
                     ON 1 = 1 LIMIT 2"
                ),
            }
            .into(),
            read_versions: read_versions.into(),
            read_last: read_last.into(),
            read_history: format!("SELECT {last_columns} FROM {p}schema_history ORDER BY id").into(),
            probe_tables: probe_tables.into(),
            create_tables: create_tables.join(";\n").into(),
            insert_version: format!("INSERT INTO {p}alembic_version (version_num) VALUES ({})", param(1)).into(),
            update_version: format!(
                "UPDATE {p}alembic_version SET version_num = {} WHERE version_num = {}",
                param(1),
                param(2)
            )
            .into(),
            delete_version: format!("DELETE FROM {p}alembic_version WHERE version_num = {}", param(1)).into(),
            finish_started: format!(
                "UPDATE {p}schema_history SET finished = TRUE, duration_ms = {} \
                 WHERE id = (SELECT max(id) FROM {p}schema_history) AND NOT finished",
                param(1)
            )
            .into(),
            any_table: match dialect {
                Dialect::Postgres => "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1)",
                // The parameter is unused on SQLite; it keeps one calling convention.
                Dialect::Sqlite => "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table') OR ?1 IS NULL",
            }
            .into(),
            schema: schema.into(),
            delete_started: format!(
                "DELETE FROM {p}schema_history WHERE id = (SELECT max(id) FROM {p}schema_history) AND NOT finished"
            )
            .into(),
            read_added_columns: match dialect {
                Dialect::Postgres => "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = 'schema_history' \
                     AND column_name IN ('down_sql', 'attempts')",
                // The parameter is unused on SQLite; it keeps one calling convention.
                Dialect::Sqlite => "SELECT name FROM pragma_table_info('schema_history') \
                     WHERE name IN ('down_sql', 'attempts') AND ?1 IS NOT NULL",
            }
            .into(),
            read_down_sql: format!(
                "SELECT down_sql FROM {p}schema_history WHERE revision = {} AND direction = 'up' \
                 ORDER BY id DESC LIMIT 1",
                param(1)
            )
            .into(),
            prefix: prefix.into(),
        }
    }

    /// `ALTER TABLE` adding one of [`ADDED_HISTORY_COLUMNS`].
    pub(crate) fn add_history_column(&self, name: &str, definition: &str) -> String {
        format!(
            "ALTER TABLE {}schema_history ADD COLUMN {name} {definition}",
            self.prefix
        )
    }

    /// `INSERT` of `rows` history rows at once.
    pub(crate) fn insert_history(&self, rows: usize) -> String {
        let mut sql = format!(
            "INSERT INTO {}schema_history ({HISTORY_INSERT_COLUMNS}) VALUES ",
            self.prefix
        );
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for column in 0..HISTORY_INSERT_WIDTH {
                if column > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&placeholder(
                    self.dialect,
                    row * HISTORY_INSERT_WIDTH + column + 1,
                ));
            }
            sql.push(')');
        }
        sql
    }

    /// Opens a migration transaction; on SQLite it takes the write lock.
    pub(crate) fn begin(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// What a migration needs around it on PostgreSQL, for a transaction (`SET LOCAL`) or
    /// for the dedicated connection of a no-transaction migration (`SET`): how long one
    /// attempt waits for a table lock, and the application's schema first on `search_path`,
    /// so that its tables go there whatever the connection's own `search_path` is. Nothing
    /// on SQLite.
    pub(crate) fn migration_settings(&self, scope: Scope, lock_wait: Duration) -> Vec<String> {
        match self.dialect {
            Dialect::Postgres => vec![
                self.set_lock_wait(scope, lock_wait),
                format!("{} search_path = \"{}\", public", scope.set(), self.schema),
            ],
            Dialect::Sqlite => Vec::new(),
        }
    }

    /// `SET [LOCAL] lock_timeout = '2000ms'` (PostgreSQL): one attempt's wait for a lock.
    pub(crate) fn set_lock_wait(&self, scope: Scope, lock_wait: Duration) -> String {
        format!(
            "{} lock_timeout = '{}ms'",
            scope.set(),
            lock_wait.as_millis().max(1)
        )
    }

    /// Undoes [`Store::migration_settings`] at session level (PostgreSQL).
    pub(crate) fn reset_migration_settings(&self) -> Vec<String> {
        match self.dialect {
            Dialect::Postgres => vec![
                "RESET lock_timeout".to_owned(),
                "RESET search_path".to_owned(),
            ],
            Dialect::Sqlite => Vec::new(),
        }
    }
}

/// Where a setting holds: the transaction, or the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Transaction,
    Session,
}

impl Scope {
    fn set(self) -> &'static str {
        match self {
            Self::Transaction => "SET LOCAL",
            Self::Session => "SET",
        }
    }
}

/// A value for one of the store's statements: bound by the upgrade, written as a literal
/// in the `--sql` script, so both run the same statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Null,
    Bool(bool),
    Int(i64),
}

impl Value {
    /// The value as a SQL literal.
    pub(crate) fn literal(&self) -> String {
        match self {
            Self::Text(text) => format!("'{}'", text.replace('\'', "''")),
            Self::Null => "NULL".to_owned(),
            Self::Bool(true) => "TRUE".to_owned(),
            Self::Bool(false) => "FALSE".to_owned(),
            Self::Int(n) => n.to_string(),
        }
    }
}

/// One of the store's statements with its parameters written as literals (for the script).
/// The store's SQL holds no string literal, so every `$n` / `?n` is a parameter.
pub(crate) fn inline(sql: &str, values: &[Value]) -> String {
    let mut out = sql.to_owned();
    // The highest first, so that `$1` does not eat the start of `$10`.
    for (index, value) in values.iter().enumerate().rev() {
        for marker in ["$", "?"] {
            out = out.replace(&format!("{marker}{}", index + 1), &value.literal());
        }
    }
    out
}

fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${n}"),
        Dialect::Sqlite => format!("?{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_valid_schema_name("calista"));
        assert!(is_valid_schema_name("_app_2"));
        for bad in [
            "",
            "Calista",
            "2app",
            "a-b",
            "a\"b",
            "a;drop",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_schema_name(bad), "{bad}");
        }
    }

    #[test]
    fn inlined_statements_quote_every_value() {
        let store = Store::new(Dialect::Postgres, "app");
        let values: Vec<Value> = (1..=11)
            .map(|n| {
                if n == 1 {
                    Value::Text("it's".into())
                } else {
                    Value::Int(n)
                }
            })
            .chain([Value::Null])
            .collect();
        let sql = inline(&store.insert_history(1), &values[..11]);
        assert!(
            sql.ends_with("VALUES ('it''s', 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)"),
            "{sql}"
        );
        let sql = inline(
            &Store::new(Dialect::Sqlite, "app").update_version,
            &[Value::Text("b".into()), Value::Null],
        );
        assert_eq!(
            sql,
            "UPDATE alembic_version SET version_num = 'b' WHERE version_num = NULL"
        );
    }

    #[test]
    fn multi_row_insert_numbers_every_parameter() {
        let store = Store::new(Dialect::Postgres, "app");
        let sql = store.insert_history(2);
        assert!(sql.starts_with("INSERT INTO \"app\".schema_history"));
        assert!(sql.ends_with("($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"));
        assert!(
            Store::new(Dialect::Sqlite, "app")
                .insert_history(1)
                .contains("(?1, ?2")
        );
    }
}
