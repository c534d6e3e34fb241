//! The rules: each with its name, why it matters, and the safe way.

use std::fmt;

use crate::problem::edit_distance;

/// What a [`Rule`] protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// Data never lost (ADR-0004): checked in up sections only; down sections serve
    /// development and CI and may destroy.
    DataLoss,
    /// Production PostgreSQL stays available: long locks and changes that break the
    /// release still running; checked in up sections that run on PostgreSQL (shared and
    /// `postgres`), on tables the migration did not create itself.
    Locks,
    /// One file, two dialects: checked in the shared `-- calista:up` / `-- calista:down`
    /// sections, which both PostgreSQL and SQLite run.
    Portability,
}

/// One lint rule. Its [`name`](Rule::name) is what `-- calista:allow <rule> -- <reason>`
/// names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    /// `DROP TABLE`.
    DropTable,
    /// `ALTER TABLE … DROP COLUMN`.
    DropColumn,
    /// `DROP SCHEMA`.
    DropSchema,
    /// `TRUNCATE`.
    Truncate,
    /// `DELETE` without `WHERE`.
    DeleteWithoutWhere,
    /// `UPDATE` without `WHERE`.
    UpdateWithoutWhere,
    /// `ALTER COLUMN … TYPE`.
    ChangeColumnType,
    /// `… CASCADE` on a drop or truncate.
    DropCascade,
    /// `CREATE INDEX` without `CONCURRENTLY`.
    IndexWithoutConcurrently,
    /// A foreign key or check constraint added without `NOT VALID`.
    ConstraintWithoutNotValid,
    /// `ALTER COLUMN … SET NOT NULL`.
    SetNotNull,
    /// `ADD COLUMN` with a volatile default (or a serial type).
    VolatileDefault,
    /// `VACUUM FULL` and `CLUSTER`.
    RewriteTable,
    /// `REINDEX` without `CONCURRENTLY`.
    ReindexWithoutConcurrently,
    /// `ADD PRIMARY KEY` or `ADD … UNIQUE` without `USING INDEX`.
    UniqueWithoutUsingIndex,
    /// `ALTER TABLE … RENAME TO`.
    RenameTable,
    /// `ALTER TABLE … RENAME COLUMN`.
    RenameColumn,
    /// PostgreSQL-only syntax or types in a shared section.
    PostgresOnly,
    /// SQLite-only syntax in a shared section.
    SqliteOnly,
}

impl Rule {
    /// Every rule, in the order `docs/LINT.md` lists them.
    pub const ALL: [Rule; 19] = [
        Rule::DropTable,
        Rule::DropColumn,
        Rule::DropSchema,
        Rule::Truncate,
        Rule::DeleteWithoutWhere,
        Rule::UpdateWithoutWhere,
        Rule::ChangeColumnType,
        Rule::DropCascade,
        Rule::IndexWithoutConcurrently,
        Rule::ConstraintWithoutNotValid,
        Rule::SetNotNull,
        Rule::VolatileDefault,
        Rule::RewriteTable,
        Rule::ReindexWithoutConcurrently,
        Rule::UniqueWithoutUsingIndex,
        Rule::RenameTable,
        Rule::RenameColumn,
        Rule::PostgresOnly,
        Rule::SqliteOnly,
    ];

    /// The kebab-case name an allow line uses.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::DropTable => "drop-table",
            Rule::DropColumn => "drop-column",
            Rule::DropSchema => "drop-schema",
            Rule::Truncate => "truncate",
            Rule::DeleteWithoutWhere => "delete-without-where",
            Rule::UpdateWithoutWhere => "update-without-where",
            Rule::ChangeColumnType => "change-column-type",
            Rule::DropCascade => "drop-cascade",
            Rule::IndexWithoutConcurrently => "index-without-concurrently",
            Rule::ConstraintWithoutNotValid => "constraint-without-not-valid",
            Rule::SetNotNull => "set-not-null",
            Rule::VolatileDefault => "volatile-default",
            Rule::RewriteTable => "rewrite-table",
            Rule::ReindexWithoutConcurrently => "reindex-without-concurrently",
            Rule::UniqueWithoutUsingIndex => "unique-without-using-index",
            Rule::RenameTable => "rename-table",
            Rule::RenameColumn => "rename-column",
            Rule::PostgresOnly => "postgres-only",
            Rule::SqliteOnly => "sqlite-only",
        }
    }

    /// The rule called `name`, if any.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The rule whose name is closest to `name`, for "did you mean" (a typo of a few
    /// letters, or a name that contains it or that it contains).
    pub fn suggest(name: &str) -> Option<Rule> {
        closest(name, Rule::ALL.map(Rule::name)).and_then(Rule::from_name)
    }

    /// What the rule protects.
    pub const fn category(self) -> Category {
        match self {
            Rule::DropTable
            | Rule::DropColumn
            | Rule::DropSchema
            | Rule::Truncate
            | Rule::DeleteWithoutWhere
            | Rule::UpdateWithoutWhere
            | Rule::ChangeColumnType
            | Rule::DropCascade => Category::DataLoss,
            Rule::IndexWithoutConcurrently
            | Rule::ConstraintWithoutNotValid
            | Rule::SetNotNull
            | Rule::VolatileDefault
            | Rule::RewriteTable
            | Rule::ReindexWithoutConcurrently
            | Rule::UniqueWithoutUsingIndex
            | Rule::RenameTable
            | Rule::RenameColumn => Category::Locks,
            Rule::PostgresOnly | Rule::SqliteOnly => Category::Portability,
        }
    }

    /// Why the statement is dangerous, in one line.
    pub const fn why(self) -> &'static str {
        match self {
            Rule::DropTable => {
                "drops a table and all its rows; migrations are forward-only and must never lose data"
            }
            Rule::DropColumn => {
                "drops a column and its values for good, and breaks the release still reading it"
            }
            Rule::DropSchema => "drops a schema with everything in it",
            Rule::Truncate => "deletes every row of the table",
            Rule::DeleteWithoutWhere => "deletes every row of the table (no WHERE)",
            Rule::UpdateWithoutWhere => "overwrites every row of the table (no WHERE)",
            Rule::ChangeColumnType => {
                "changes a column's type: it can lose data (a narrower type) and, on PostgreSQL, rewrites the table under an ACCESS EXCLUSIVE lock that blocks reads and writes"
            }
            Rule::DropCascade => {
                "also drops every object that depends on it (views, foreign keys, rows of other tables), unnamed in the migration"
            }
            Rule::IndexWithoutConcurrently => {
                "builds the index under a lock that blocks every write to the table on PostgreSQL until it is done"
            }
            Rule::ConstraintWithoutNotValid => {
                "checks every existing row under a lock that blocks writes on PostgreSQL (for a foreign key, on both tables)"
            }
            Rule::SetNotNull => {
                "makes PostgreSQL scan the whole table under an ACCESS EXCLUSIVE lock, blocking reads and writes"
            }
            Rule::VolatileDefault => {
                "adds a column with a volatile default (random(), gen_random_uuid(), clock_timestamp(), nextval(), a serial type, a function the folder declared without IMMUTABLE or STABLE), which rewrites the whole table under an ACCESS EXCLUSIVE lock on PostgreSQL"
            }
            Rule::RewriteTable => {
                "rewrites the whole table under an ACCESS EXCLUSIVE lock on PostgreSQL, blocking reads and writes"
            }
            Rule::ReindexWithoutConcurrently => {
                "rebuilds the index under a lock that blocks writes (and reads that use it) on PostgreSQL"
            }
            Rule::UniqueWithoutUsingIndex => {
                "builds the unique index of a primary key or unique constraint under an ACCESS EXCLUSIVE lock on PostgreSQL, blocking reads and writes until it is done"
            }
            Rule::RenameTable => {
                "renames a table: the release still running queries the old name and fails as soon as the migration commits"
            }
            Rule::RenameColumn => {
                "renames a column: the release still running queries the old name and fails as soon as the migration commits"
            }
            Rule::PostgresOnly => {
                "is PostgreSQL-only: SQLite does not understand it, yet shared sections run on both dialects"
            }
            Rule::SqliteOnly => {
                "is SQLite-only: PostgreSQL does not understand it, yet shared sections run on both dialects"
            }
        }
    }

    /// The safe way to get the same result.
    pub const fn safe_way(self) -> &'static str {
        match self {
            Rule::DropTable | Rule::DropColumn => {
                "stop using it in one release; drop it in a later migration, once no running release reads it and its data is kept elsewhere if needed"
            }
            Rule::DropSchema => {
                "drop the objects one by one in a migration of their own, once nothing reads them"
            }
            Rule::Truncate | Rule::DeleteWithoutWhere => {
                "delete only the rows meant to go, with a WHERE clause"
            }
            Rule::UpdateWithoutWhere => {
                "update only the rows meant to change, with a WHERE clause (`WHERE true` if every row really must change)"
            }
            Rule::ChangeColumnType => {
                "add a column of the new type, fill it in batches, switch the application to it, then drop the old one in a later release"
            }
            Rule::DropCascade => {
                "drop the dependent objects by name first, then drop without CASCADE"
            }
            Rule::IndexWithoutConcurrently => {
                "use `CREATE INDEX CONCURRENTLY` in a `-- calista:up postgres` section of a `-- calista:no-transaction` migration (a `-- calista:up sqlite` section keeps the plain form)"
            }
            Rule::ConstraintWithoutNotValid => {
                "add it with `NOT VALID` (`ALTER TABLE t ADD CONSTRAINT c … NOT VALID`), then `ALTER TABLE t VALIDATE CONSTRAINT c` in a later migration, which does not block writes"
            }
            Rule::SetNotNull => {
                "add `CHECK (col IS NOT NULL) NOT VALID`, validate it in a later migration, then SET NOT NULL (PostgreSQL 12+ uses the valid check and skips the scan) and drop the check"
            }
            Rule::VolatileDefault => {
                "add the column without the default (or with a constant or now()), set the default with ALTER COLUMN … SET DEFAULT, and fill the existing rows in batches"
            }
            Rule::RewriteTable => {
                "leave it out of migrations: run it (or pg_repack) by hand in a maintenance window"
            }
            Rule::ReindexWithoutConcurrently => {
                "use `REINDEX … CONCURRENTLY` in a `-- calista:up postgres` section of a `-- calista:no-transaction` migration"
            }
            Rule::UniqueWithoutUsingIndex => {
                "build the index first with `CREATE UNIQUE INDEX CONCURRENTLY` (in a `-- calista:no-transaction` migration), then attach it in a later one: `ALTER TABLE t ADD CONSTRAINT c UNIQUE USING INDEX ix` (or `PRIMARY KEY USING INDEX ix`)"
            }
            Rule::RenameTable => {
                "create the new table (or a view under the new name), move the application over in one release, then drop the old name in a later one"
            }
            Rule::RenameColumn => {
                "add the new column, write both, move the application over in one release, then drop the old column in a later one"
            }
            Rule::PostgresOnly => {
                "move it into a `-- calista:up postgres` (or `-- calista:down postgres`) section, with the SQLite form in a `-- calista:up sqlite` section"
            }
            Rule::SqliteOnly => {
                "move it into a `-- calista:up sqlite` (or `-- calista:down sqlite`) section, with the PostgreSQL form in a `-- calista:up postgres` section"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name among `candidates` closest to `name`: a typo of a few letters, or a name that
/// contains it or that it contains.
pub(crate) fn closest<const N: usize>(
    name: &str,
    candidates: [&'static str; N],
) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name, c), c))
        .filter(|&(d, c)| d <= 3 || c.contains(&name) || name.contains(c))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_read_back() {
        for rule in Rule::ALL {
            let name = rule.name();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
            assert_eq!(Rule::from_name(name), Some(rule));
            assert!(!rule.why().is_empty() && !rule.safe_way().is_empty());
        }
        assert_eq!(Rule::from_name("DROP-TABLE"), None);
    }

    #[test]
    fn typos_get_a_suggestion_and_nonsense_gets_none() {
        assert_eq!(Rule::suggest("drop-tabel"), Some(Rule::DropTable));
        assert_eq!(Rule::suggest("drop_column"), Some(Rule::DropColumn));
        assert_eq!(Rule::suggest("cascade"), Some(Rule::DropCascade));
        assert_eq!(Rule::suggest("jsonb-is-fine"), None);
    }
}
