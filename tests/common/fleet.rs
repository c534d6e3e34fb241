//! Fleets for tests: a migration set, PostgreSQL schemas in one scratch database and SQLite
//! files as targets, and the checks that every target has each migration applied exactly
//! once. Included by path beside `common` (`tests/fleet.rs`, `calista-cli/tests/fleet*.rs`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use sqlx::Connection;

use super::common::{MigrationSet, ScratchPg};

/// The revision of migration `i` (from 1): one a minute from 2025-01-01 00:00.
pub fn revision(i: usize) -> String {
    format!("20250101_{:02}{:02}", (i - 1) / 60, (i - 1) % 60)
}

/// `n` migrations, each creating table `t{i}` where the target's tables go (on PostgreSQL,
/// the target's schema, first on `search_path`).
pub fn migration_set(n: usize) -> MigrationSet {
    let files: Vec<(String, String)> = (1..=n)
        .map(|i| {
            (
                format!("{}_create_t{i}.sql", revision(i)),
                format!(
                    "-- calista:up\nCREATE TABLE t{i} (id INTEGER PRIMARY KEY, name VARCHAR(40));\n\
                     -- calista:down\nDROP TABLE t{i};\n"
                ),
            )
        })
        .collect();
    let named: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, body)| (name.as_str(), body.as_str()))
        .collect();
    MigrationSet::new(&named)
}

/// `url` without TLS: the program would otherwise negotiate it with the local test server,
/// which costs more than a small upgrade in a debug build.
pub fn without_tls(url: &str) -> String {
    if url.contains("sslmode=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

/// Targets: `schemas` schemas in one scratch PostgreSQL database and `files` SQLite files.
pub struct Fleet {
    pub pg: ScratchPg,
    pub dir: tempfile::TempDir,
    pub schemas: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// One target of a [`Fleet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Schema(String),
    File(PathBuf),
}

impl Fleet {
    pub async fn new(schemas: usize, files: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            pg: ScratchPg::new().await,
            schemas: (0..schemas).map(|i| format!("tenant_{i}")).collect(),
            files: (0..files)
                .map(|i| dir.path().join(format!("tenant_{i}.db")))
                .collect(),
            dir,
        }
    }

    /// A connection to the scratch database (without TLS, which costs more than the
    /// queries of a check).
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&without_tls(&self.pg.url))
            .await
            .expect("connect to the fleet's database")
    }

    /// Every target, schemas first.
    pub fn members(&self) -> Vec<Member> {
        self.schemas
            .iter()
            .cloned()
            .map(Member::Schema)
            .chain(self.files.iter().cloned().map(Member::File))
            .collect()
    }

    /// The targets file line of `member`.
    pub fn line(&self, member: &Member) -> String {
        match member {
            Member::Schema(schema) => format!("{} {schema}", without_tls(&self.pg.url)),
            Member::File(file) => format!("sqlite:///{}", file.display()),
        }
    }

    /// Writes a targets file of `members` and returns its path.
    pub fn write_targets(&self, name: &str, members: &[Member]) -> PathBuf {
        let mut text = String::from("# written by a test\n");
        for member in members {
            text.push_str(&self.line(member));
            text.push('\n');
        }
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write targets");
        path
    }

    /// Back to nothing: the schemas dropped, the files deleted.
    pub async fn reset(&self) {
        let mut conn = self.connect().await;
        for schema in &self.schemas {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut conn)
            .await
            .expect("drop schema");
        }
        conn.close().await.ok();
        for file in &self.files {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }

    /// What `member` holds: the `up` rows of its history by revision, with how many times
    /// each was recorded, and its `alembic_version` rows.
    pub async fn applied(&self, member: &Member) -> Applied {
        match member {
            Member::Schema(schema) => {
                let mut conn = self.connect().await;
                let present: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                     WHERE table_schema = $1 AND table_name = 'schema_history')",
                )
                .bind(schema)
                .fetch_one(&mut conn)
                .await
                .unwrap();
                let applied = if present {
                    let history = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT revision, count(*) FROM {schema}.schema_history \
                         WHERE direction = 'up' AND finished GROUP BY revision ORDER BY revision"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    let versions = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT version_num FROM {schema}.alembic_version"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    let tables: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM information_schema.tables \
                         WHERE table_schema = $1 AND table_name ~ '^t[0-9]+$'",
                    )
                    .bind(schema)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                    Applied {
                        history,
                        versions,
                        tables,
                    }
                } else {
                    Applied::default()
                };
                conn.close().await.ok();
                applied
            }
            Member::File(file) => {
                if !file.exists() {
                    return Applied::default();
                }
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(file);
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                let present: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'schema_history')",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                let applied = if present {
                    Applied {
                        history: sqlx::query_as(
                            "SELECT revision, count(*) FROM schema_history \
                             WHERE direction = 'up' AND finished GROUP BY revision ORDER BY revision",
                        )
                        .fetch_all(&mut conn)
                        .await
                        .unwrap(),
                        versions: sqlx::query_scalar("SELECT version_num FROM alembic_version")
                            .fetch_all(&mut conn)
                            .await
                            .unwrap(),
                        tables: sqlx::query_scalar(
                            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                             AND name GLOB 't[0-9]*'",
                        )
                        .fetch_one(&mut conn)
                        .await
                        .unwrap(),
                    }
                } else {
                    Applied::default()
                };
                conn.close().await.ok();
                applied
            }
        }
    }

    /// Every member has exactly the first `n` migrations applied, each once, and is at
    /// revision `n`.
    pub async fn assert_each_applied_once(&self, n: usize, context: &str) {
        for member in self.members() {
            self.applied(&member)
                .await
                .assert_at(n, &format!("{member:?}: {context}"));
        }
    }

    /// Advisory locks held in the scratch database now.
    pub async fn advisory_locks(&self) -> i64 {
        let mut conn = self.connect().await;
        let held = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
        )
        .bind(&self.pg.name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
        held
    }

    /// No advisory lock is left, allowing a moment for the server to end the sessions of
    /// a killed process.
    pub async fn assert_no_lock_left(&self, context: &str) {
        let mut held = self.advisory_locks().await;
        for _ in 0..50 {
            if held == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            held = self.advisory_locks().await;
        }
        panic!("{held} advisory lock(s) left in the database: {context}");
    }
}

/// What one target holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// (revision, times recorded as applied).
    pub history: Vec<(String, i64)>,
    /// The rows of `alembic_version`.
    pub versions: Vec<String>,
    /// The migrations' tables present.
    pub tables: i64,
}

impl Applied {
    /// How many migrations are applied, after checking none was applied twice and the
    /// version row, history and tables agree.
    pub fn count(&self, context: &str) -> usize {
        let twice: Vec<&(String, i64)> = self.history.iter().filter(|(_, n)| *n != 1).collect();
        assert!(
            twice.is_empty(),
            "applied more than once: {twice:?}; {context}"
        );
        let n = self.history.len();
        let expected: Vec<String> = if n == 0 {
            Vec::new()
        } else {
            vec![revision(n)]
        };
        assert!(
            self.versions == expected || (n == 0 && self.versions.is_empty()),
            "alembic_version {:?} after {n} migrations; {context}",
            self.versions
        );
        let revisions: Vec<String> = self.history.iter().map(|(r, _)| r.clone()).collect();
        let first: Vec<String> = (1..=n).map(revision).collect();
        assert_eq!(revisions, first, "history not a prefix; {context}");
        assert_eq!(self.tables, n as i64, "tables; {context}");
        n
    }

    /// Exactly the first `n` migrations, each once.
    pub fn assert_at(&self, n: usize, context: &str) {
        assert_eq!(self.count(context), n, "{context}");
    }
}

/// The path as a string, for command lines.
pub fn shown(path: &Path) -> String {
    path.display().to_string()
}
