//! The rows of a database's application tables, read as text for the stairway's row check.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, Row};

use crate::database::Database;
use crate::error::Error;
use crate::migration::Dialect;
use crate::schema::{LogicalType, Schema, Table};

/// Tables per query: SQLite allows at most 500 terms in a compound `SELECT`.
const TABLES_PER_QUERY: usize = 100;

/// Each table's rows, each row shown as `(column=value, …)`, sorted.
pub(super) type Rows = BTreeMap<String, Vec<String>>;

/// Reads every row of every table of `schema` (the snapshot just read from `db`): one
/// round trip per hundred tables. Values are shown as SQL would write them (`NULL`, `'text'`,
/// `42`), so NULL and `''` differ; the rows of each table are sorted as text, so the result
/// does not depend on the order the database returns them in.
pub(super) async fn read(db: &Database, schema: &Schema) -> Result<Rows, Error> {
    let mut rows: Rows = schema
        .tables
        .keys()
        .map(|name| (name.clone(), Vec::new()))
        .collect();
    let tables: Vec<_> = schema.tables.iter().collect();
    let in_schema = db.schema().await?;
    let in_schema = in_schema.as_ref().map_or("", |name| name.as_str());
    for chunk in tables.chunks(TABLES_PER_QUERY) {
        // Names are quoted identifiers and literals (quotes doubled): nothing else is spliced.
        let sql = query(db.dialect(), in_schema, chunk);
        let pool = db.own_pool();
        let read: Vec<(String, String)> = if let Some(pool) = pool.as_postgres() {
            // A simple query, which a pooler in transaction mode passes as it is.
            sqlx::raw_sql(AssertSqlSafe(sql.as_str()))
                .fetch_all(pool)
                .await
                .and_then(|rows| {
                    rows.iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .collect()
                })
                .map_err(fail)?
        } else if let Some(pool) = pool.as_sqlite() {
            sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .fetch_all(pool)
                .await
                .map_err(fail)?
        } else {
            Vec::new()
        };
        for (table, row) in read {
            rows.entry(table).or_default().push(row);
        }
    }
    rows.values_mut().for_each(|rows| rows.sort_unstable());
    Ok(rows)
}

fn fail(error: sqlx::Error) -> Error {
    Error::database("reading the rows of the application's tables", error)
}

/// One `SELECT '<table>', '(<column>=<value>, …)' FROM <table>` per table, joined by
/// `UNION ALL`.
fn query(dialect: Dialect, schema: &str, tables: &[(&String, &Table)]) -> String {
    let parts: Vec<String> = tables
        .iter()
        .map(|(name, table)| {
            let values: Vec<String> = table
                .columns
                .iter()
                .map(|(column, definition)| {
                    format!(
                        "{} || {}",
                        literal(&format!("{column}=")),
                        value(dialect, &identifier(column), &definition.data_type)
                    )
                })
                .collect();
            let (row, from) = match dialect {
                Dialect::Postgres => (
                    format!("concat_ws(', ', {})", values.join(", ")),
                    format!("{}.{}", identifier(schema), identifier(name)),
                ),
                Dialect::Sqlite => (
                    if values.is_empty() {
                        "''".to_owned()
                    } else {
                        values.join(" || ', ' || ")
                    },
                    identifier(name),
                ),
            };
            format!(
                "SELECT CAST({} AS TEXT), '(' || {row} || ')' FROM {from}",
                literal(name)
            )
        })
        .collect();
    parts.join(" UNION ALL ")
}

/// A column's value as text that is never NULL: numbers and booleans as they are, anything
/// else quoted; NULL as `NULL`.
fn value(dialect: Dialect, column: &str, data_type: &str) -> String {
    match dialect {
        // SQLite's quote() writes any value as an SQL literal, blobs included.
        Dialect::Sqlite => format!("quote({column})"),
        Dialect::Postgres => match LogicalType::of_postgres(data_type) {
            LogicalType::Integer
            | LogicalType::Real
            | LogicalType::Numeric
            | LogicalType::Boolean => {
                format!("COALESCE({column}::text, 'NULL')")
            }
            _ => format!("quote_nullable({column}::text)"),
        },
    }
}

fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    #[test]
    fn the_query_quotes_names_and_shows_null_apart_from_empty_text() {
        let mut table = Table::default();
        for (name, data_type) in [("id", "integer"), ("it's", "text")] {
            let column = Column {
                data_type: data_type.to_owned(),
                nullable: true,
                default: None,
            };
            table.columns.insert(name.to_owned(), column);
        }
        let name = "a\"b".to_owned();
        assert_eq!(
            query(Dialect::Postgres, "app", &[(&name, &table)]),
            "SELECT CAST('a\"b' AS TEXT), '(' || concat_ws(', ', 'id=' || COALESCE(\"id\"::text, 'NULL'), \
             'it''s=' || quote_nullable(\"it's\"::text)) || ')' FROM \"app\".\"a\"\"b\""
        );
        assert_eq!(
            query(Dialect::Sqlite, "app", &[(&name, &table)]),
            "SELECT CAST('a\"b' AS TEXT), '(' || 'id=' || quote(\"id\") || ', ' || 'it''s=' || quote(\"it's\") || ')' \
             FROM \"a\"\"b\""
        );
    }
}
