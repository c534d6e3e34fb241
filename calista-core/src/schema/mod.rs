//! Schema snapshots: what a database's application schema holds (tables, columns, keys,
//! indexes, constraints, views, triggers), read from the catalog, and readable differences
//! between two snapshots.
//!
//! CALISTA's own tables (`alembic_version`, `schema_history`) are never part of a snapshot.
//! On PostgreSQL the snapshot is of the application's schema (the one first on
//! `search_path`, [`crate::DatabaseOptions::schema`]); on SQLite, of the main database.
//!
//! # Two ways to compare
//!
//! [`Schema::diff`] compares two snapshots of the same dialect exactly: column types as the
//! catalog spells them, defaults, index definitions (method, columns, predicate), check
//! constraints, views, triggers and, on PostgreSQL, functions and types. Columns are compared
//! by name, not position.
//!
//! [`Schema::diff_logical`] compares a PostgreSQL snapshot with a SQLite one: the same
//! tables; the same columns, with the same [`LogicalType`] and nullability; the same
//! primary keys, unique constraints and foreign keys (by columns); the same B-tree indexes
//! (by columns and uniqueness, not name); the same views (by name). Defaults, checks,
//! triggers and functions are written differently in each dialect and are not compared,
//! nor are index methods SQLite lacks (GIN, GiST, BRIN, hash…): such an index is
//! PostgreSQL's alone by construction.
//!
//! # The mapping of types
//!
//! | logical | PostgreSQL | SQLite (declared type) |
//! |---|---|---|
//! | `integer` | `smallint`, `integer`, `bigint`, `serial`… | any name containing `INT` |
//! | `real` | `real`, `double precision` | `REAL`, `FLOAT`, `DOUBLE` |
//! | `numeric` | `numeric`, `decimal` | `NUMERIC`, `DECIMAL` |
//! | `text` | `text`, `varchar(n)`, `char(n)`, `citext` | `TEXT`, `VARCHAR(n)`, `CHAR(n)`, `CLOB` |
//! | `boolean` | `boolean` | `BOOLEAN`, `BOOL` |
//! | `timestamp` | `timestamp`, `timestamptz` | `TIMESTAMP`, `DATETIME`, `TIMESTAMPTZ` |
//! | `date` | `date` | `DATE` |
//! | `time` | `time`, `timetz` | `TIME` |
//! | `json` | `json`, `jsonb` | `JSON`, `JSONB` |
//! | `uuid` | `uuid` | `UUID` |
//! | `blob` | `bytea` | `BLOB`, or no type |
//!
//! SQLite has no storage class for JSON, UUIDs, times and dates, which it keeps as text: a
//! SQLite `text` column matches a PostgreSQL `json`, `uuid`, `timestamp`, `date` or `time`
//! one. Any other type is compared by its lowercase name.

mod postgres;
mod sqlite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::database::{Database, SchemaName};
use crate::error::Error;
use crate::migration::Dialect;

/// Tables of CALISTA's own, never part of a snapshot.
pub(crate) const OWN_TABLES: [&str; 2] = ["alembic_version", "schema_history"];

/// A database's application schema at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The dialect it was read from.
    pub dialect: Dialect,
    /// Tables by name.
    pub tables: BTreeMap<String, Table>,
    /// Views (and materialised views) by name, with their normalised definition.
    pub views: BTreeMap<String, String>,
    /// Triggers by name.
    pub triggers: BTreeMap<String, Trigger>,
    /// PostgreSQL functions and procedures, as `name(argument types)`.
    pub functions: BTreeSet<String>,
    /// PostgreSQL enum and domain types, by name, with their definition.
    pub types: BTreeMap<String, String>,
}

/// A table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Columns by name.
    pub columns: BTreeMap<String, Column>,
    /// The primary key's columns, in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Unique constraints, each by its columns in order.
    pub uniques: BTreeSet<Vec<String>>,
    /// Indexes that back no constraint, by name.
    pub indexes: BTreeMap<String, Index>,
    /// Foreign keys.
    pub foreign_keys: BTreeSet<ForeignKey>,
    /// Check constraints, by normalised expression.
    pub checks: BTreeSet<String>,
}

/// A column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The type as the catalog spells it (`character varying(200)`, `INTEGER`).
    pub data_type: String,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// The default expression, if any (PostgreSQL: an identity column says so here).
    pub default: Option<String>,
}

/// An index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    /// Its key columns or expressions, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
    /// Its access method (`btree`, `gin`…; always `btree` on SQLite).
    pub method: String,
    /// The predicate of a partial index.
    pub predicate: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ForeignKey {
    /// The referencing columns, in order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub references: String,
    /// The referenced columns, in order.
    pub referenced_columns: Vec<String>,
    /// `ON DELETE` action, e.g. `CASCADE` (`NO ACTION` when none was given).
    pub on_delete: String,
    /// `ON UPDATE` action.
    pub on_update: String,
}

/// A trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trigger {
    /// The table (or view) it is on.
    pub table: String,
    /// Its normalised definition.
    pub definition: String,
}

/// A column type, as compared across dialects (see the module's table).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogicalType {
    /// Integers of any width.
    Integer,
    /// Floating point.
    Real,
    /// Exact decimals.
    Numeric,
    /// Character strings of any length.
    Text,
    /// True or false.
    Boolean,
    /// Date and time, with or without a time zone.
    Timestamp,
    /// A date.
    Date,
    /// A time of day.
    Time,
    /// A JSON document.
    Json,
    /// A UUID.
    Uuid,
    /// Bytes.
    Blob,
    /// Any other type, by its lowercase name.
    Other(String),
}

impl LogicalType {
    /// The logical type of a PostgreSQL type as `format_type` spells it.
    pub fn of_postgres(data_type: &str) -> Self {
        let name = data_type.to_ascii_lowercase();
        let base = name.split('(').next().unwrap_or("").trim();
        let base = base.strip_suffix("[]").unwrap_or(base);
        match base {
            "smallint" | "integer" | "bigint" | "int" | "int2" | "int4" | "int8" | "serial"
            | "bigserial" | "smallserial" => Self::Integer,
            "real" | "double precision" | "float4" | "float8" => Self::Real,
            "numeric" | "decimal" => Self::Numeric,
            "text" | "character varying" | "varchar" | "character" | "char" | "bpchar"
            | "citext" | "name" => Self::Text,
            "boolean" | "bool" => Self::Boolean,
            "date" => Self::Date,
            "json" | "jsonb" => Self::Json,
            "uuid" => Self::Uuid,
            "bytea" => Self::Blob,
            other if other.starts_with("timestamp") => Self::Timestamp,
            other if other.starts_with("time") => Self::Time,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The logical type of a SQLite column's declared type.
    pub fn of_sqlite(declared: &str) -> Self {
        let name = declared.to_ascii_uppercase();
        let base = name.split('(').next().unwrap_or("").trim();
        match base {
            "" | "BLOB" => Self::Blob,
            "BOOLEAN" | "BOOL" => Self::Boolean,
            "TIMESTAMP" | "TIMESTAMPTZ" | "DATETIME" => Self::Timestamp,
            "DATE" => Self::Date,
            "TIME" => Self::Time,
            "JSON" | "JSONB" => Self::Json,
            "UUID" => Self::Uuid,
            "NUMERIC" | "DECIMAL" => Self::Numeric,
            "REAL" | "FLOAT" | "DOUBLE" | "DOUBLE PRECISION" => Self::Real,
            "TEXT" | "CLOB" => Self::Text,
            other if other.contains("INT") => Self::Integer,
            other if other.contains("CHAR") => Self::Text,
            other => Self::Other(other.to_ascii_lowercase()),
        }
    }

    /// Whether a PostgreSQL column of this type and a SQLite column of type `sqlite` hold
    /// the same values: the same type, or one SQLite keeps as text.
    fn matches_sqlite(&self, sqlite: &Self) -> bool {
        self == sqlite
            || (*sqlite == Self::Text
                && matches!(
                    self,
                    Self::Json | Self::Uuid | Self::Timestamp | Self::Date | Self::Time
                ))
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Integer => "integer",
            Self::Real => "real",
            Self::Numeric => "numeric",
            Self::Text => "text",
            Self::Boolean => "boolean",
            Self::Timestamp => "timestamp",
            Self::Date => "date",
            Self::Time => "time",
            Self::Json => "json",
            Self::Uuid => "uuid",
            Self::Blob => "blob",
            Self::Other(name) => name,
        };
        f.write_str(name)
    }
}

/// One difference between two snapshots: an object only on one side, or on both but
/// described differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What differs: `table t`, `column t.c`, `index ix on t`, `view v`…
    pub object: String,
    /// The table it belongs to, if any.
    pub table: Option<String>,
    /// The columns it involves, if any (for acknowledgements that name a column).
    pub columns: Vec<String>,
    /// How the first snapshot has it (`None`: absent).
    pub before: Option<String>,
    /// How the second snapshot has it (`None`: absent).
    pub after: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.before, &self.after) {
            (Some(before), None) => write!(f, "- {}: {before}", self.object),
            (None, Some(after)) => write!(f, "+ {}: {after}", self.object),
            (Some(before), Some(after)) => {
                write!(f, "~ {}: {before}  ->  {after}", self.object)
            }
            (None, None) => write!(f, "  {}", self.object),
        }
    }
}

/// The differences between two snapshots, in a stable order; empty when they are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SchemaDiff {
    /// Each difference.
    pub differences: Vec<Difference>,
}

impl SchemaDiff {
    /// Whether the snapshots are equal.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }
}

/// One line per difference: `-` only in the first snapshot, `+` only in the second, `~` in
/// both but different (`first  ->  second`).
impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, difference) in self.differences.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{difference}")?;
        }
        Ok(())
    }
}

/// A fact of a snapshot: an object's name, what it belongs to, and its description.
struct Fact {
    table: Option<String>,
    columns: Vec<String>,
    description: String,
}

type Facts = BTreeMap<String, Fact>;

impl Schema {
    /// Reads the application schema of `db`. A SQLite file that does not exist yet is an
    /// empty schema (and is not created by looking).
    pub async fn read(db: &Database) -> Result<Self, Error> {
        if db.sqlite_file().is_some_and(|file| !file.exists()) {
            return Ok(Self::empty(Dialect::Sqlite));
        }
        let pool = db.own_pool();
        if let Some(pool) = pool.as_postgres() {
            let schema = db.schema().await?.unwrap_or_else(SchemaName::calista);
            postgres::read(pool, schema.as_str()).await
        } else if let Some(pool) = pool.as_sqlite() {
            sqlite::read(pool).await
        } else {
            Ok(Self::empty(db.dialect()))
        }
    }

    /// A schema with nothing in it.
    pub fn empty(dialect: Dialect) -> Self {
        Self {
            dialect,
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            triggers: BTreeMap::new(),
            functions: BTreeSet::new(),
            types: BTreeMap::new(),
        }
    }

    /// Whether it holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.views.is_empty()
            && self.triggers.is_empty()
            && self.functions.is_empty()
            && self.types.is_empty()
    }

    /// What differs from `self` (before) to `other` (after), exactly: both snapshots
    /// should be of the same dialect.
    pub fn diff(&self, other: &Self) -> SchemaDiff {
        compare(&self.exact_facts(), &other.exact_facts())
    }

    /// What differs between a PostgreSQL snapshot (`self`) and a SQLite one, as the same
    /// logical schema (see the module documentation). `before` is PostgreSQL's side,
    /// `after` SQLite's. The snapshots may be given in either order.
    pub fn diff_logical(&self, other: &Self) -> SchemaDiff {
        let (postgres, sqlite) = if self.dialect == Dialect::Sqlite {
            (other, self)
        } else {
            (self, other)
        };
        let mut differences = compare(&postgres.logical_facts(), &sqlite.logical_facts());
        // Types: the same logical type, or one SQLite keeps as text.
        differences.differences.retain(|d| {
            let (Some(pg), Some(lite)) = (&d.before, &d.after) else {
                return true;
            };
            let (Some((pg_type, pg_rest)), Some((lite_type, lite_rest))) =
                (split_type(pg), split_type(lite))
            else {
                return true;
            };
            !(d.object.starts_with("column ")
                && pg_rest == lite_rest
                && parse_logical(pg_type).matches_sqlite(&parse_logical(lite_type)))
        });
        differences
    }

    fn exact_facts(&self) -> Facts {
        let mut facts = Facts::new();
        for (name, table) in &self.tables {
            let on = |object: String, columns: Vec<String>, description: String| {
                (
                    object,
                    Fact {
                        table: Some(name.clone()),
                        columns,
                        description,
                    },
                )
            };
            facts.extend([on(format!("table {name}"), Vec::new(), "table".to_owned())]);
            for (column, c) in &table.columns {
                let mut description = format!("{}{}", c.data_type, null_text(c.nullable));
                if let Some(default) = &c.default {
                    description.push_str(" DEFAULT ");
                    description.push_str(default);
                }
                facts.extend([on(
                    format!("column {name}.{column}"),
                    vec![column.clone()],
                    description,
                )]);
            }
            facts.extend(table_key_facts(name, table));
            for (index, i) in &table.indexes {
                facts.extend([on(
                    format!("index {index} on {name}"),
                    i.columns.clone(),
                    index_text(i),
                )]);
            }
            for check in &table.checks {
                facts.extend([on(
                    format!("check on {name}: {check}"),
                    Vec::new(),
                    "present".to_owned(),
                )]);
            }
        }
        for (view, definition) in &self.views {
            facts.insert(
                format!("view {view}"),
                Fact {
                    table: None,
                    columns: Vec::new(),
                    description: definition.clone(),
                },
            );
        }
        for (trigger, t) in &self.triggers {
            facts.insert(
                format!("trigger {trigger} on {}", t.table),
                Fact {
                    table: Some(t.table.clone()),
                    columns: Vec::new(),
                    description: t.definition.clone(),
                },
            );
        }
        for function in &self.functions {
            facts.insert(
                format!("function {function}"),
                Fact {
                    table: None,
                    columns: Vec::new(),
                    description: "present".to_owned(),
                },
            );
        }
        for (name, definition) in &self.types {
            facts.insert(
                format!("type {name}"),
                Fact {
                    table: None,
                    columns: Vec::new(),
                    description: definition.clone(),
                },
            );
        }
        facts
    }

    fn logical_facts(&self) -> Facts {
        let mut facts = Facts::new();
        for (name, table) in &self.tables {
            facts.insert(
                format!("table {name}"),
                Fact {
                    table: Some(name.clone()),
                    columns: Vec::new(),
                    description: "table".to_owned(),
                },
            );
            for (column, c) in &table.columns {
                let logical = match self.dialect {
                    Dialect::Postgres => LogicalType::of_postgres(&c.data_type),
                    Dialect::Sqlite => LogicalType::of_sqlite(&c.data_type),
                };
                facts.insert(
                    format!("column {name}.{column}"),
                    Fact {
                        table: Some(name.clone()),
                        columns: vec![column.clone()],
                        description: format!("{logical}{}", null_text(c.nullable)),
                    },
                );
            }
            facts.extend(table_key_facts(name, table));
            for index in table.indexes.values().filter(|i| i.method == "btree") {
                let unique = if index.unique { "unique " } else { "" };
                let mut object = format!("{unique}index on {name} ({})", index.columns.join(", "));
                if let Some(predicate) = &index.predicate {
                    object.push_str(" WHERE ");
                    object.push_str(predicate);
                }
                facts.insert(
                    object,
                    Fact {
                        table: Some(name.clone()),
                        columns: index.columns.clone(),
                        description: "present".to_owned(),
                    },
                );
            }
        }
        for view in self.views.keys() {
            facts.insert(
                format!("view {view}"),
                Fact {
                    table: None,
                    columns: Vec::new(),
                    description: "present".to_owned(),
                },
            );
        }
        facts
    }
}

/// Primary key, unique constraints and foreign keys: compared the same way in both modes.
fn table_key_facts(name: &str, table: &Table) -> Vec<(String, Fact)> {
    let fact = |object: String, columns: &[String], description: String| {
        (
            object,
            Fact {
                table: Some(name.to_owned()),
                columns: columns.to_vec(),
                description,
            },
        )
    };
    let mut facts = Vec::new();
    if !table.primary_key.is_empty() {
        facts.push(fact(
            format!("primary key of {name}"),
            &table.primary_key,
            format!("({})", table.primary_key.join(", ")),
        ));
    }
    for unique in &table.uniques {
        facts.push(fact(
            format!("unique constraint on {name} ({})", unique.join(", ")),
            unique,
            "present".to_owned(),
        ));
    }
    for fk in &table.foreign_keys {
        facts.push(fact(
            format!("foreign key on {name} ({})", fk.columns.join(", ")),
            &fk.columns,
            format!(
                "REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
                fk.references,
                fk.referenced_columns.join(", "),
                fk.on_delete,
                fk.on_update
            ),
        ));
    }
    facts
}

fn null_text(nullable: bool) -> &'static str {
    if nullable { " NULL" } else { " NOT NULL" }
}

fn index_text(index: &Index) -> String {
    let mut text = String::new();
    if index.unique {
        text.push_str("UNIQUE ");
    }
    text.push_str(&index.method);
    text.push(' ');
    text.push('(');
    text.push_str(&index.columns.join(", "));
    text.push(')');
    if let Some(predicate) = &index.predicate {
        text.push_str(" WHERE ");
        text.push_str(predicate);
    }
    text
}

/// `"integer NOT NULL"` → `("integer", " NOT NULL")`.
fn split_type(description: &str) -> Option<(&str, &str)> {
    let at = description
        .find(" NOT NULL")
        .or_else(|| description.find(" NULL"))?;
    Some(description.split_at(at))
}

fn parse_logical(name: &str) -> LogicalType {
    LogicalType::of_postgres(name)
}

fn compare(before: &Facts, after: &Facts) -> SchemaDiff {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let differences = keys
        .into_iter()
        .filter_map(|key| {
            let (b, a) = (before.get(key), after.get(key));
            if b.map(|f| &f.description) == a.map(|f| &f.description) {
                return None;
            }
            let fact = b.or(a)?;
            Some(Difference {
                object: key.clone(),
                table: fact.table.clone(),
                columns: fact.columns.clone(),
                before: b.map(|f| f.description.clone()),
                after: a.map(|f| f.description.clone()),
            })
        })
        .collect();
    SchemaDiff { differences }
}

/// SQL text with every run of whitespace made one space, and trimmed.
pub(crate) fn normalise(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: &[(&str, &str, bool)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|(name, data_type, nullable)| {
                    (
                        (*name).to_owned(),
                        Column {
                            data_type: (*data_type).to_owned(),
                            nullable: *nullable,
                            default: None,
                        },
                    )
                })
                .collect(),
            ..Table::default()
        }
    }

    fn schema(dialect: Dialect, tables: Vec<(&str, Table)>) -> Schema {
        let mut schema = Schema::empty(dialect);
        schema.tables = tables.into_iter().map(|(n, t)| (n.to_owned(), t)).collect();
        schema
    }

    #[test]
    fn types_map_across_dialects() {
        for (pg, lite) in [
            ("bigint", "INTEGER"),
            ("integer", "INT"),
            ("character varying(200)", "VARCHAR(200)"),
            ("text", "TEXT"),
            ("boolean", "BOOLEAN"),
            ("timestamp with time zone", "TIMESTAMP"),
            ("jsonb", "JSON"),
            ("jsonb", "TEXT"),
            ("uuid", "TEXT"),
            ("bytea", "BLOB"),
            ("double precision", "REAL"),
        ] {
            assert!(
                LogicalType::of_postgres(pg).matches_sqlite(&LogicalType::of_sqlite(lite)),
                "{pg} vs {lite}"
            );
        }
        assert!(!LogicalType::of_postgres("integer").matches_sqlite(&LogicalType::Text));
        assert!(!LogicalType::of_postgres("text").matches_sqlite(&LogicalType::Json));
    }

    #[test]
    fn a_missing_index_is_one_difference_naming_it() {
        let before = schema(Dialect::Sqlite, vec![("t", table(&[("a", "TEXT", true)]))]);
        let mut after = before.clone();
        if let Some(t) = after.tables.get_mut("t") {
            t.indexes.insert(
                "ix_t_a".to_owned(),
                Index {
                    columns: vec!["a".to_owned()],
                    unique: false,
                    method: "btree".to_owned(),
                    predicate: None,
                },
            );
        }
        let diff = before.diff(&after);
        assert_eq!(diff.to_string(), "+ index ix_t_a on t: btree (a)");
        assert!(after.diff(&after).is_empty());
    }

    #[test]
    fn logical_comparison_reports_nullability_not_spelling() {
        let pg = schema(
            Dialect::Postgres,
            vec![(
                "t",
                table(&[("a", "character varying(20)", false), ("j", "jsonb", true)]),
            )],
        );
        let lite = schema(
            Dialect::Sqlite,
            vec![(
                "t",
                table(&[("a", "VARCHAR(20)", true), ("j", "TEXT", true)]),
            )],
        );
        let diff = pg.diff_logical(&lite);
        assert_eq!(
            diff.to_string(),
            "~ column t.a: text NOT NULL  ->  text NULL"
        );
        assert_eq!(lite.diff_logical(&pg), diff);
    }
}
