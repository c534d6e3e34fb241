//! Reads a PostgreSQL schema from `pg_catalog`. The schema name is a bound parameter.

use sqlx::{PgConnection, PgPool};

use super::{Column, ForeignKey, Index, OWN_TABLES, Schema, Table, Trigger, normalise};
use crate::backend::postgres::describe;
use crate::error::Error;
use crate::migration::Dialect;

const CONTEXT: &str = "reading the schema from pg_catalog";

const TABLES: &str = "SELECT c.relname::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition";

const COLUMNS: &str = "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
     NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text \
     FROM pg_attribute a \
     JOIN pg_class c ON c.oid = a.attrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
     AND a.attnum > 0 AND NOT a.attisdropped";

const CONSTRAINTS: &str = "SELECT c.relname::text, k.contype::text, pg_get_constraintdef(k.oid, true), \
     ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(num, ord) \
           JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.ord), \
     f.relname::text, \
     ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(num, ord) \
           JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.ord), \
     k.confdeltype::text, k.confupdtype::text \
     FROM pg_constraint k \
     JOIN pg_class c ON c.oid = k.conrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_class f ON f.oid = k.confrelid \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')";

/// Indexes that back no primary key, unique or exclusion constraint.
const INDEXES: &str = "SELECT t.relname::text, i.relname::text, x.indisunique, am.amname::text, \
     ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k), \
     pg_get_expr(x.indpred, x.indrelid) \
     FROM pg_index x \
     JOIN pg_class i ON i.oid = x.indexrelid \
     JOIN pg_class t ON t.oid = x.indrelid \
     JOIN pg_namespace n ON n.oid = t.relnamespace \
     JOIN pg_am am ON am.oid = i.relam \
     WHERE n.nspname = $1 \
     AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x'))";

const VIEWS: &str = "SELECT c.relname::text, pg_get_viewdef(c.oid, true) FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')";

const TRIGGERS: &str = "SELECT t.tgname::text, c.relname::text, pg_get_triggerdef(t.oid, true) FROM pg_trigger t \
     JOIN pg_class c ON c.oid = t.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND NOT t.tgisinternal";

const FUNCTIONS: &str = "SELECT p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1";

const TYPES: &str = "SELECT t.typname::text, CASE t.typtype \
       WHEN 'e' THEN 'enum (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) \
                                  FROM pg_enum e WHERE e.enumtypid = t.oid) || ')' \
       ELSE 'domain over ' || format_type(t.typbasetype, t.typtypmod) END \
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
     WHERE n.nspname = $1 AND t.typtype IN ('e', 'd')";

type ColumnRow = (String, String, String, bool, Option<String>, String, String);
type ConstraintRow = (
    String,
    String,
    String,
    Vec<String>,
    Option<String>,
    Vec<String>,
    String,
    String,
);
type IndexRow = (String, String, bool, String, Vec<String>, Option<String>);

/// Reads the schema `schema` through `pool`, in one transaction of unnamed statements,
/// which a pooler in transaction mode keeps on one server connection and leaves nothing of.
pub(super) async fn read(pool: &PgPool, schema: &str) -> Result<Schema, Error> {
    let fail = |e| describe(e, CONTEXT);
    let mut tx = pool.begin().await.map_err(fail)?;
    let snapshot = read_in(&mut tx, schema).await?;
    tx.rollback().await.map_err(fail)?;
    Ok(snapshot)
}

async fn read_in(conn: &mut PgConnection, schema: &str) -> Result<Schema, Error> {
    let fail = |e| describe(e, CONTEXT);
    let mut snapshot = Schema::empty(Dialect::Postgres);
    let own = |name: &str| OWN_TABLES.contains(&name);

    let tables: Vec<(String,)> = sqlx::query_as(TABLES)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    for (name,) in tables.into_iter().filter(|(n,)| !own(n)) {
        snapshot.tables.insert(name, Table::default());
    }

    let columns: Vec<ColumnRow> = sqlx::query_as(COLUMNS)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    for (table, column, data_type, nullable, default, identity, generated) in columns {
        let Some(t) = snapshot.tables.get_mut(&table) else {
            continue;
        };
        let default = match (identity.as_str(), generated.as_str()) {
            ("a", _) => Some("GENERATED ALWAYS AS IDENTITY".to_owned()),
            ("d", _) => Some("GENERATED BY DEFAULT AS IDENTITY".to_owned()),
            (_, "s") => default.map(|d| format!("GENERATED ALWAYS AS ({d}) STORED")),
            _ => default,
        };
        t.columns.insert(
            column,
            Column {
                data_type,
                nullable,
                default,
            },
        );
    }

    let constraints: Vec<ConstraintRow> = sqlx::query_as(CONSTRAINTS)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    for (table, kind, definition, columns, references, referenced_columns, on_delete, on_update) in
        constraints
    {
        let Some(t) = snapshot.tables.get_mut(&table) else {
            continue;
        };
        match kind.as_str() {
            "p" => t.primary_key = columns,
            "u" => {
                t.uniques.insert(columns);
            }
            "f" => {
                t.foreign_keys.insert(ForeignKey {
                    columns,
                    references: references.unwrap_or_default(),
                    referenced_columns,
                    on_delete: action(&on_delete).to_owned(),
                    on_update: action(&on_update).to_owned(),
                });
            }
            // Checks and exclusion constraints, as the server prints them.
            _ => {
                t.checks.insert(normalise(&definition));
            }
        }
    }

    let indexes: Vec<IndexRow> = sqlx::query_as(INDEXES)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    for (table, name, unique, method, columns, predicate) in indexes {
        let Some(t) = snapshot.tables.get_mut(&table) else {
            continue;
        };
        t.indexes.insert(
            name,
            Index {
                columns,
                unique,
                method,
                predicate: predicate.map(|p| normalise(&p)),
            },
        );
    }

    let views: Vec<(String, String)> = sqlx::query_as(VIEWS)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    snapshot.views = views
        .into_iter()
        .map(|(name, definition)| (name, normalise(&definition)))
        .collect();

    let triggers: Vec<(String, String, String)> = sqlx::query_as(TRIGGERS)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    snapshot.triggers = triggers
        .into_iter()
        .filter(|(_, table, _)| !own(table))
        .map(|(name, table, definition)| {
            let definition = normalise(&definition);
            (name, Trigger { table, definition })
        })
        .collect();

    let functions: Vec<(String,)> = sqlx::query_as(FUNCTIONS)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    snapshot.functions = functions.into_iter().map(|(f,)| f).collect();

    let types: Vec<(String, Option<String>)> = sqlx::query_as(TYPES)
        .persistent(false)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    snapshot.types = types
        .into_iter()
        .map(|(name, definition)| (name, definition.unwrap_or_default()))
        .collect();
    Ok(snapshot)
}

/// A foreign key action code of `pg_constraint`, as SQL says it.
fn action(code: &str) -> &'static str {
    match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
}
