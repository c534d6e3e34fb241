//! Reads a SQLite schema from `sqlite_master` and the table pragmas (as table-valued
//! functions, so that the table name is a bound parameter).

use sqlx::SqlitePool;

use super::{Column, ForeignKey, Index, OWN_TABLES, Schema, Table, Trigger, normalise};
use crate::backend::sqlite::describe;
use crate::error::Error;
use crate::migration::Dialect;

const CONTEXT: &str = "reading the schema from sqlite_master";

const OBJECTS: &str = "SELECT type, name, tbl_name, sql FROM sqlite_master \
     WHERE type IN ('table', 'view', 'trigger') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
     ORDER BY name";
const COLUMNS: &str = "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) WHERE hidden IN (0, 2, 3)";
const INDEXES: &str = "SELECT i.name, i.\"unique\", i.origin, i.partial, m.sql FROM pragma_index_list(?1) AS i \
     LEFT JOIN sqlite_master AS m ON m.type = 'index' AND m.name = i.name";
const INDEX_COLUMNS: &str =
    "SELECT cid, name FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno";
const FOREIGN_KEYS: &str = "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
     FROM pragma_foreign_key_list(?1) ORDER BY id, seq";

type ObjectRow = (String, String, String, Option<String>);
type ColumnRow = (String, String, bool, Option<String>, i64);
type IndexRow = (String, bool, String, bool, Option<String>);
type ForeignKeyRow = (i64, String, String, Option<String>, String, String);

/// Reads the main database's schema through `pool`.
pub(super) async fn read(pool: &SqlitePool) -> Result<Schema, Error> {
    let fail = |e| describe(e, CONTEXT);
    let mut snapshot = Schema::empty(Dialect::Sqlite);
    let objects: Vec<ObjectRow> = sqlx::query_as(OBJECTS)
        .fetch_all(pool)
        .await
        .map_err(fail)?;
    for (kind, name, table, sql) in objects {
        if OWN_TABLES.contains(&name.as_str()) || OWN_TABLES.contains(&table.as_str()) {
            continue;
        }
        let sql = sql.unwrap_or_default();
        match kind.as_str() {
            "view" => {
                snapshot.views.insert(name, normalise(&sql));
            }
            "trigger" => {
                let definition = normalise(&sql);
                snapshot
                    .triggers
                    .insert(name, Trigger { table, definition });
            }
            _ => {
                let read = read_table(pool, &name, &sql).await.map_err(fail)?;
                snapshot.tables.insert(name, read);
            }
        }
    }
    Ok(snapshot)
}

async fn read_table(pool: &SqlitePool, name: &str, sql: &str) -> Result<Table, sqlx::Error> {
    let mut table = Table::default();
    let columns: Vec<ColumnRow> = sqlx::query_as(COLUMNS).bind(name).fetch_all(pool).await?;
    let mut key: Vec<(i64, String)> = Vec::new();
    for (column, data_type, not_null, default, pk) in &columns {
        if *pk > 0 {
            key.push((*pk, column.clone()));
        }
        // An INTEGER PRIMARY KEY is the rowid, which is never NULL.
        let rowid = *pk == 1
            && data_type.eq_ignore_ascii_case("INTEGER")
            && columns.iter().filter(|c| c.4 > 0).count() == 1;
        table.columns.insert(
            column.clone(),
            Column {
                data_type: data_type.clone(),
                nullable: !(*not_null || rowid),
                default: default.clone(),
            },
        );
    }
    key.sort();
    table.primary_key = key.into_iter().map(|(_, column)| column).collect();

    let indexes: Vec<IndexRow> = sqlx::query_as(INDEXES).bind(name).fetch_all(pool).await?;
    for (index, unique, origin, partial, index_sql) in indexes {
        let rows: Vec<(i64, Option<String>)> = sqlx::query_as(INDEX_COLUMNS)
            .bind(&index)
            .fetch_all(pool)
            .await?;
        let columns: Vec<String> = rows
            .into_iter()
            .map(|(cid, column)| column.unwrap_or_else(|| format!("<expression {cid}>")))
            .collect();
        match origin.as_str() {
            // The primary key's index: the key itself is read from the columns.
            "pk" => {}
            "u" => {
                table.uniques.insert(columns);
            }
            _ => {
                let predicate = if partial {
                    index_sql.as_deref().and_then(predicate_of)
                } else {
                    None
                };
                table.indexes.insert(
                    index,
                    Index {
                        columns,
                        unique,
                        method: "btree".to_owned(),
                        predicate,
                    },
                );
            }
        }
    }

    let foreign_keys: Vec<ForeignKeyRow> = sqlx::query_as(FOREIGN_KEYS)
        .bind(name)
        .fetch_all(pool)
        .await?;
    let mut current: Option<(i64, ForeignKey)> = None;
    for (id, references, from, to, on_update, on_delete) in foreign_keys {
        match &mut current {
            Some((open, fk)) if *open == id => {
                fk.columns.push(from);
                fk.referenced_columns.extend(to);
            }
            _ => {
                if let Some((_, done)) = current.take() {
                    table.foreign_keys.insert(done);
                }
                current = Some((
                    id,
                    ForeignKey {
                        columns: vec![from],
                        references,
                        referenced_columns: to.into_iter().collect(),
                        on_delete,
                        on_update,
                    },
                ));
            }
        }
    }
    if let Some((_, done)) = current {
        table.foreign_keys.insert(done);
    }
    table.checks = checks_of(sql).into_iter().collect();
    Ok(table)
}

/// The predicate of a partial index's `CREATE INDEX … WHERE …`.
fn predicate_of(sql: &str) -> Option<String> {
    let at = top_level_keyword(sql, "WHERE").into_iter().last()?;
    Some(normalise(&sql[at + "WHERE".len()..]))
}

/// The expressions of every `CHECK (…)` in a `CREATE TABLE`, normalised.
fn checks_of(sql: &str) -> Vec<String> {
    top_level_keyword(sql, "CHECK")
        .into_iter()
        .filter_map(|at| {
            let rest = &sql[at + "CHECK".len()..];
            let open = rest.find(|c: char| !c.is_whitespace())?;
            if !rest[open..].starts_with('(') {
                return None;
            }
            let body = &rest[open..];
            let close = matching_paren(body)?;
            Some(normalise(&body[1..close]))
        })
        .collect()
}

/// Byte offsets of `keyword` (ASCII, any case) as a whole word outside quotes and comments.
fn top_level_keyword(sql: &str, keyword: &str) -> Vec<usize> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i, quote),
            b'[' => i = skip_quoted(bytes, i, b']'),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            _ => {
                let word_start = i == 0 || !is_word(bytes[i - 1]);
                let end = i + keyword.len();
                if word_start
                    && end <= bytes.len()
                    && bytes[i..end].eq_ignore_ascii_case(keyword.as_bytes())
                    && bytes.get(end).is_none_or(|b| !is_word(*b))
                {
                    found.push(i);
                    i = end;
                } else {
                    i += 1;
                }
            }
        }
    }
    found
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The offset after a quoted part that opens at `start`; a doubled quote is part of it.
fn skip_quoted(bytes: &[u8], start: usize, close: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The offset of the `)` that closes the `(` at the start of `text`.
fn matching_paren(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i = skip_quoted(bytes, i, quote);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_found_outside_quotes() {
        let sql = "CREATE TABLE t (a TEXT CHECK (a <> 'CHECK (x)'), b INT, \
                   CONSTRAINT ck CHECK ( length(a) = (b + 1) ), \"check\" INT)";
        assert_eq!(
            checks_of(sql),
            vec!["a <> 'CHECK (x)'", "length(a) = (b + 1)"]
        );
    }

    #[test]
    fn a_partial_index_keeps_its_predicate() {
        assert_eq!(
            predicate_of("CREATE INDEX ix ON t (a)\n  WHERE  a IS NOT NULL").as_deref(),
            Some("a IS NOT NULL")
        );
    }
}
