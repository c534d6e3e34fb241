//! What the lint knows while it reads a folder: what the migration being read created,
//! added and copied so far (per dialect), and what the folder's migrations declared before
//! it (on PostgreSQL, where the rules that need it apply).

use std::collections::{HashMap, HashSet};

use super::read::{self, ColumnType, Condition, Tokens, Volatility, kw};
use crate::migration::Dialect;

/// How a migration's statements run, which decides the lock a later statement of it runs
/// under: in one transaction (the default; every lock is held to the end), or each on its
/// own (`-- calista:no-transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunsIn {
    /// One transaction: a lock a statement took is held by the statements after it.
    Transaction,
    /// Each statement commits on its own.
    Statements,
}

/// What the up sections of one migration, read so far, created, added or copied on one
/// dialect: the migration owns it, so nobody reads it yet and nothing in it can be lost.
#[derive(Debug, Default)]
pub(super) struct Owned {
    /// Relations created (tables of any kind, views, materialized views).
    relations: HashSet<String>,
    /// Columns added to a table that existed before, as `(table, column)`.
    columns: HashSet<(String, String)>,
    /// Relations whose rows were all copied into another one, with the relations they were
    /// copied into that the migration has not dropped since.
    copied: HashMap<String, HashSet<String>>,
    /// Relations created here that received the rows of ones that were not (directly, or
    /// through another one created here).
    holding: HashMap<String, Holding>,
    /// Rows copied by a `WHERE`, as `(target, source)`: the conditions, each a half that
    /// its complement makes a whole copy.
    halves: HashMap<(String, String), Vec<Condition>>,
    /// Columns whose every value was copied into a column added here, as `(table, column)`,
    /// with the column they were copied into.
    copied_columns: HashMap<(String, String), String>,
    /// Columns added here that received the values of one that was not.
    holding_columns: HashSet<(String, String)>,
    /// Columns from before renamed here, as `(table, column)`: the name they had.
    names_before: HashMap<(String, String), String>,
    /// Constraints added `NOT VALID` here, as `(table, constraint)`.
    not_valid: HashSet<(String, String)>,
    /// Columns an `UPDATE` here set, as `(table, column)`.
    filled: HashSet<(String, String)>,
    /// Columns an `ALTER COLUMN … SET NOT NULL` here made `NOT NULL` (and no `DROP NOT NULL`
    /// made nullable since), as `(table, column)`: they hold no null from then on.
    made_not_null: HashSet<(String, String)>,
}

/// The rows from before that a relation created in the migration received.
#[derive(Debug, Default, Clone)]
struct Holding {
    /// The relations from before whose rows it received, under their names now.
    sources: HashSet<String>,
    /// Whether the migration dropped one of them since: it holds the only copy of its rows.
    only_copy: bool,
}

/// The `(table, column)` keys of `table`, to move when it is renamed.
fn of_table<'k>(
    keys: impl Iterator<Item = &'k (String, String)>,
    table: &str,
) -> Vec<(String, String)> {
    keys.filter(|(t, _)| t == table).cloned().collect()
}

/// Moves `map`'s entry for relation `from` to `to` (a renamed relation); an entry left under
/// `to` is of a relation no longer there.
fn rename_key<V>(map: &mut HashMap<String, V>, from: &str, to: &str) {
    match map.remove(from) {
        Some(value) => map.insert(to.to_owned(), value),
        None => map.remove(to),
    };
}

/// `(table, column)`, as the sets of columns hold it.
fn key(table: &str, column: &str) -> (String, String) {
    (table.to_owned(), column.to_owned())
}

impl Owned {
    fn relation(&self, name: &str) -> bool {
        self.relations.contains(name)
    }

    fn column(&self, table: &str, column: &str) -> bool {
        self.relation(table) || self.columns.contains(&key(table, column))
    }

    /// Whether `table.column` was added here (or its table created) and holds no value
    /// from before.
    fn new_column_without_values(&self, table: &str, column: &str) -> bool {
        self.column(table, column) && !self.holding_columns.contains(&key(table, column))
    }

    /// The column added here that every value of `table.column` was copied into, if any.
    fn copy_of(&self, table: &str, column: &str) -> Option<&String> {
        self.copied_columns.get(&key(table, column))
    }

    /// The name `table.column` had before the migration renamed it, if it did.
    fn name_before(&self, table: &str, column: &str) -> String {
        let before = self.names_before.get(&key(table, column));
        before.map_or_else(|| column.to_owned(), Clone::clone)
    }

    /// Whether dropping `name` loses no row: its rows were copied whole into another table
    /// that stays (SQLite's copy-and-rebuild), or it was created here and holds no row from
    /// before that is not still in the table it came from (a scratch copy).
    fn may_drop(&self, name: &str) -> bool {
        self.copied.get(name).is_some_and(|into| !into.is_empty())
            || self.relation(name) && !self.holding.get(name).is_some_and(|h| h.only_copy)
    }

    /// Learns a copy of the rows of `source` that `condition` selects into `target`: with
    /// an earlier copy of the complementary rows (`not_null`: the column holds no null),
    /// every row was copied.
    fn copied_where(&mut self, target: &str, source: &str, condition: &Condition, not_null: bool) {
        let halves = self.halves.entry(key(target, source)).or_default();
        let whole = halves.iter().any(|h| h.complements(condition, not_null));
        halves.push(condition.clone());
        if whole {
            self.apply(&Change::Copied {
                target: target.to_owned(),
                source: source.to_owned(),
            });
        }
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Created(name) => {
                self.holding.remove(name);
                self.copied.remove(name);
                self.relations.insert(name.clone());
            }
            Change::Copied { target, source } => {
                if self.relation(target) {
                    let received = match self.holding.get(source) {
                        Some(holding) => Some(holding.clone()),
                        None if !self.relation(source) => Some(Holding {
                            sources: HashSet::from([source.clone()]),
                            only_copy: false,
                        }),
                        None => None,
                    };
                    if let Some(received) = received {
                        let holding = self.holding.entry(target.clone()).or_default();
                        holding.sources.extend(received.sources);
                        holding.only_copy |= received.only_copy;
                    }
                }
                let into = self.copied.entry(source.clone()).or_default();
                into.insert(target.clone());
            }
            Change::CopiedWhere { .. } => {}
            Change::Dropped(name) => {
                self.halves.retain(|(t, s), _| t != name && s != name);
                self.relations.remove(name);
                self.holding.remove(name);
                self.copied.remove(name);
                for into in self.copied.values_mut() {
                    into.remove(name);
                }
                for holding in self.holding.values_mut() {
                    if holding.sources.remove(name) {
                        holding.only_copy = true;
                    }
                }
            }
            Change::RenamedTable { from, to } => self.rename_table(from, to),
            Change::RenamedColumn { table, from, to } => {
                if !self.column(table, from) {
                    let before = self.name_before(table, from);
                    self.names_before.remove(&key(table, from));
                    self.names_before.insert(key(table, to), before);
                }
                for ((copied_from, _), copy) in &mut self.copied_columns {
                    if copied_from == table && copy == from {
                        copy.clone_from(to);
                    }
                }
                let (from, to) = (key(table, from), key(table, to));
                for set in [
                    &mut self.columns,
                    &mut self.holding_columns,
                    &mut self.filled,
                    &mut self.made_not_null,
                ] {
                    if set.remove(&from) {
                        set.insert(to.clone());
                    } else {
                        set.remove(&to);
                    }
                }
                match self.copied_columns.remove(&from) {
                    Some(copy) => self.copied_columns.insert(to, copy),
                    None => self.copied_columns.remove(&to),
                };
            }
            Change::AddedColumn { table, column } => {
                self.columns.insert(key(table, column));
            }
            Change::DroppedColumn { table, column } => {
                let column = key(table, column);
                self.columns.remove(&column);
                self.copied_columns.remove(&column);
                self.holding_columns.remove(&column);
                self.filled.remove(&column);
                self.made_not_null.remove(&column);
                self.names_before.remove(&column);
            }
            Change::AddedNotValid { table, constraint } => {
                self.not_valid.insert(key(table, constraint));
            }
            Change::Filled { table, column } => {
                self.filled.insert(key(table, column));
            }
            Change::Nullability {
                table,
                column,
                not_null,
            } => {
                if *not_null {
                    self.made_not_null.insert(key(table, column));
                } else {
                    self.made_not_null.remove(&key(table, column));
                }
            }
            Change::CopiedColumn {
                table,
                target,
                source,
            } => {
                if self.column(table, target) && !self.relation(table) {
                    if !self.column(table, source)
                        || self.holding_columns.contains(&key(table, source))
                    {
                        self.holding_columns.insert(key(table, target));
                    }
                    self.copied_columns
                        .insert(key(table, source), target.clone());
                }
            }
        }
    }

    fn rename_table(&mut self, from: &str, to: &str) {
        self.halves.retain(|(t, s), _| {
            ![from, to].contains(&t.as_str()) && ![from, to].contains(&s.as_str())
        });
        if self.relations.remove(from) {
            self.relations.insert(to.to_owned());
        } else {
            self.relations.remove(to);
        }
        rename_key(&mut self.copied, from, to);
        rename_key(&mut self.holding, from, to);
        let names = self.copied.values_mut();
        let sources = self.holding.values_mut().map(|h| &mut h.sources);
        for set in names.chain(sources) {
            if set.remove(from) {
                set.insert(to.to_owned());
            }
        }
        for set in [
            &mut self.columns,
            &mut self.holding_columns,
            &mut self.not_valid,
            &mut self.filled,
            &mut self.made_not_null,
        ] {
            for (table, column) in of_table(set.iter(), from) {
                set.remove(&(table, column.clone()));
                set.insert((to.to_owned(), column));
            }
        }
        for map in [&mut self.names_before, &mut self.copied_columns] {
            for (table, column) in of_table(map.keys(), from) {
                if let Some(value) = map.remove(&(table, column.clone())) {
                    map.insert((to.to_owned(), column), value);
                }
            }
        }
    }
}

/// What a statement does to the relations and columns a migration owns.
#[derive(Debug)]
enum Change {
    Created(String),
    Copied {
        target: String,
        source: String,
    },
    /// The rows of `source` that `condition` selects, copied into `target`.
    CopiedWhere {
        target: String,
        source: String,
        condition: Condition,
    },
    Dropped(String),
    RenamedTable {
        from: String,
        to: String,
    },
    RenamedColumn {
        table: String,
        from: String,
        to: String,
    },
    AddedColumn {
        table: String,
        column: String,
    },
    DroppedColumn {
        table: String,
        column: String,
    },
    /// `ALTER TABLE table ADD CONSTRAINT constraint … NOT VALID`.
    AddedNotValid {
        table: String,
        constraint: String,
    },
    /// `UPDATE table SET column = …`.
    Filled {
        table: String,
        column: String,
    },
    /// `ALTER TABLE table ALTER [COLUMN] column SET NOT NULL` (`not_null`) or `DROP NOT NULL`.
    Nullability {
        table: String,
        column: String,
        not_null: bool,
    },
    /// `UPDATE table SET target = source` on every row.
    CopiedColumn {
        table: String,
        target: String,
        source: String,
    },
}

/// What `tokens` (a statement) creates, copies, drops, renames or adds, in order.
fn changes(tokens: Tokens<'_, '_>) -> Vec<Change> {
    let mut changes = Vec::new();
    if kw(tokens, 0, "CREATE") || kw(tokens, 0, "SELECT") || kw(tokens, 0, "WITH") {
        if let Some(name) = read::created_relation(tokens) {
            changes.push(Change::Created(name));
        }
    } else if kw(tokens, 0, "DROP") && kw(tokens, 1, "TABLE") {
        let names = read::relations_from(tokens, read::skip_if_exists(tokens, 2));
        changes.extend(names.into_iter().map(Change::Dropped));
    } else if let Some((table, actions)) = read::alter_table(tokens) {
        for action in actions {
            if kw(action, 0, "RENAME") && kw(action, 1, "TO")
                || kw(action, 0, "SET") && kw(action, 1, "SCHEMA")
            {
                if let Some(to) = read::new_table_name(&table, action) {
                    let from = table.clone();
                    changes.push(Change::RenamedTable { from, to });
                }
            } else if kw(action, 0, "RENAME") && !kw(action, 1, "CONSTRAINT") {
                let renamed = read::action_column(action)
                    .and_then(|(from, at)| Some((from, read::name_at(action, at + 1)?.0)));
                if let Some((from, to)) = renamed {
                    let table = table.clone();
                    changes.push(Change::RenamedColumn { table, from, to });
                }
            } else if read::adds_a_column(action)
                && let Some((column, _)) = read::action_column(action)
            {
                let table = table.clone();
                changes.push(Change::AddedColumn { table, column });
            } else if kw(action, 0, "ADD")
                && kw(action, 1, "CONSTRAINT")
                && read::not_valid(action)
                && let Some((constraint, _)) = read::name_at(action, 2)
            {
                let table = table.clone();
                changes.push(Change::AddedNotValid { table, constraint });
            } else if kw(action, 0, "DROP")
                && !kw(action, 1, "CONSTRAINT")
                && let Some((column, _)) = read::action_column(action)
            {
                let table = table.clone();
                changes.push(Change::DroppedColumn { table, column });
            } else if let Some((column, not_null)) = read::nullability_change(action) {
                let table = table.clone();
                changes.push(Change::Nullability {
                    table,
                    column,
                    not_null,
                });
            }
        }
    } else if kw(tokens, 0, "UPDATE") {
        if let Some((table, columns)) = read::update_targets(tokens, 0) {
            changes.extend(columns.into_iter().map(|column| {
                let table = table.clone();
                Change::Filled { table, column }
            }));
        }
        if let Some((table, copies)) = read::column_copies(tokens) {
            changes.extend(copies.into_iter().map(|(target, source)| {
                let table = table.clone();
                Change::CopiedColumn {
                    table,
                    target,
                    source,
                }
            }));
        }
    }
    if kw(tokens, 0, "CREATE") || kw(tokens, 0, "INSERT") || kw(tokens, 0, "SELECT") {
        if let Some((target, source)) = read::whole_copy(tokens) {
            changes.push(Change::Copied { target, source });
        } else if let Some((target, source, condition)) = read::copy_where(tokens) {
            changes.push(Change::CopiedWhere {
                target,
                source,
                condition,
            });
        }
    }
    changes
}

/// What one migration owns, per dialect; a name counts as the migration's only if it is on
/// every dialect the statement runs on.
#[derive(Debug)]
pub(super) struct ThisMigration {
    postgres: Owned,
    sqlite: Owned,
    runs_in: RunsIn,
}

impl ThisMigration {
    /// A migration whose statements run as `runs_in` says, before any is read.
    pub(super) fn new(runs_in: RunsIn) -> ThisMigration {
        ThisMigration {
            postgres: Owned::default(),
            sqlite: Owned::default(),
            runs_in,
        }
    }

    /// How the migration's statements run.
    pub(super) fn runs_in(&self) -> RunsIn {
        self.runs_in
    }

    /// Whether an `UPDATE` of the migration set `table.column` (on each of `dialects`): it
    /// expects to fill nulls there, whatever the folder declared.
    pub(super) fn filled(&self, dialects: &[Dialect], table: &str, column: &str) -> bool {
        dialects
            .iter()
            .all(|&d| self.on(d).filled.contains(&key(table, column)))
    }

    /// Whether the migration made `table.column` `NOT NULL` itself (on each of `dialects`),
    /// and not nullable since: it holds no null, filled or not.
    pub(super) fn made_not_null(&self, dialects: &[Dialect], table: &str, column: &str) -> bool {
        dialects
            .iter()
            .all(|&d| self.on(d).made_not_null.contains(&key(table, column)))
    }

    /// Whether validating `table`'s constraint `name` scans the table under the lock that
    /// adding it took: the migration added it `NOT VALID` (on each of `dialects`), and runs
    /// in one transaction.
    pub(super) fn validates_under_its_lock(
        &self,
        dialects: &[Dialect],
        table: &str,
        name: &str,
    ) -> bool {
        self.runs_in == RunsIn::Transaction
            && dialects
                .iter()
                .all(|&d| self.on(d).not_valid.contains(&key(table, name)))
    }

    fn on(&self, dialect: Dialect) -> &Owned {
        match dialect {
            Dialect::Postgres => &self.postgres,
            Dialect::Sqlite => &self.sqlite,
        }
    }

    /// Whether the migration created relation `name` on each of `dialects`.
    pub(super) fn relation(&self, dialects: &[Dialect], name: &str) -> bool {
        dialects.iter().all(|&d| self.on(d).relation(name))
    }

    /// Whether the migration added `table.column` (or created `table`) on each of `dialects`.
    pub(super) fn column(&self, dialects: &[Dialect], table: &str, column: &str) -> bool {
        dialects.iter().all(|&d| self.on(d).column(table, column))
    }

    /// Whether `table.column` was added here and holds no value from before, on each of
    /// `dialects`: dropping it loses nothing.
    pub(super) fn new_column_without_values(
        &self,
        dialects: &[Dialect],
        table: &str,
        column: &str,
    ) -> bool {
        dialects
            .iter()
            .all(|&d| self.on(d).new_column_without_values(table, column))
    }

    /// The column added here that every value of `table.column` was copied into, on each
    /// of `dialects` (its name on the first).
    pub(super) fn copy_of(
        &self,
        dialects: &[Dialect],
        table: &str,
        column: &str,
    ) -> Option<String> {
        let copies: Option<Vec<&String>> = dialects
            .iter()
            .map(|&d| self.on(d).copy_of(table, column))
            .collect();
        copies?.first().map(|copy| (*copy).clone())
    }

    /// The name `table.column` had before the migration (on the first of `dialects`).
    pub(super) fn name_before(&self, dialects: &[Dialect], table: &str, column: &str) -> String {
        match dialects.first() {
            Some(&d) => self.on(d).name_before(table, column),
            None => column.to_owned(),
        }
    }

    /// Whether, on each of `dialects`, a column added here that holds values from before
    /// bears the name `table.column`.
    pub(super) fn restored(&self, dialects: &[Dialect], table: &str, column: &str) -> bool {
        dialects
            .iter()
            .all(|&d| self.on(d).holding_columns.contains(&key(table, column)))
    }

    /// Whether dropping table `name` loses no row on any of `dialects`.
    pub(super) fn may_drop(&self, dialects: &[Dialect], name: &str) -> bool {
        dialects.iter().all(|&d| self.on(d).may_drop(name))
    }

    /// Learns from a statement of an up section that runs on `dialects`, after the
    /// statements `declared` has read.
    pub(super) fn learn(
        &mut self,
        dialects: &[Dialect],
        tokens: Tokens<'_, '_>,
        declared: &Declared,
    ) {
        for change in changes(tokens) {
            for &dialect in dialects {
                let owned = match dialect {
                    Dialect::Postgres => &mut self.postgres,
                    Dialect::Sqlite => &mut self.sqlite,
                };
                if let Change::CopiedWhere {
                    target,
                    source,
                    condition,
                } = &change
                {
                    let not_null = declared.not_null_on(dialect, source, condition.column());
                    owned.copied_where(target, source, condition, not_null);
                } else {
                    owned.apply(&change);
                }
            }
        }
    }
}

/// What the folder's migrations declared, read in order up to the statement being checked,
/// per dialect: columns' types and nullability, functions' volatility, and checks that prove
/// a column holds no null. A rule that needs something not here stays on the safe side
/// (fires): the lint reads migrations, not the database.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    /// What the up sections that run on PostgreSQL declared, which the lock rules read.
    postgres: Schema,
    /// What the up sections that run on SQLite declared (a column's nullability, for a copy
    /// split in complementary halves).
    sqlite: Schema,
    /// Per dialect, the tables the folder dropped (or renamed away) and did not create
    /// again since: nothing is left to drop. Read from every up section, not PostgreSQL's
    /// only.
    gone: HashMap<Dialect, HashSet<String>>,
    /// The migration being read, counted from 1.
    migration: u32,
}

/// What the folder declared on one dialect.
#[derive(Debug, Default)]
struct Schema {
    /// Each table's columns the folder declared.
    columns: HashMap<String, HashMap<String, Column>>,
    /// Each function's volatility, as last declared (by name: overloads share it).
    functions: HashMap<String, Volatility>,
    /// Each table's `CHECK (c IS NOT NULL)` constraints.
    not_null_checks: HashMap<String, Vec<NotNullCheck>>,
}

/// What the folder declared of a column.
#[derive(Debug, Default)]
struct Column {
    /// Its type, if the lint read it.
    ty: Option<ColumnType>,
    /// Whether it was declared `NOT NULL` (or part of a primary key), and not made nullable
    /// since.
    not_null: bool,
}

impl Column {
    /// A column as its definition's tokens after its name declare it.
    fn declared(definition: Tokens<'_, '_>) -> Column {
        Column {
            ty: read::column_type(definition).map(|(ty, _)| ty),
            not_null: read::declares_not_null(definition),
        }
    }
}

/// A `CHECK (column IS NOT NULL)` constraint, and the migrations that added and validated it.
#[derive(Debug)]
struct NotNullCheck {
    name: String,
    column: String,
    added: u32,
    validated: Option<u32>,
}

impl Declared {
    /// Starts reading the folder's next migration.
    pub(super) fn next_migration(&mut self) {
        self.migration += 1;
    }

    /// The type of `table.column` on PostgreSQL, if the folder declared it.
    pub(super) fn column_type(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.postgres.column(table, column)?.ty.as_ref()
    }

    /// Whether the folder declared `table.column` `NOT NULL` on PostgreSQL (and never made it
    /// nullable since): `SET NOT NULL` then has nothing to check.
    pub(super) fn not_null(&self, table: &str, column: &str) -> bool {
        self.not_null_on(Dialect::Postgres, table, column)
    }

    /// Whether the folder declared `table.column` `NOT NULL` on `dialect`, and never made it
    /// nullable since.
    pub(super) fn not_null_on(&self, dialect: Dialect, table: &str, column: &str) -> bool {
        let schema = match dialect {
            Dialect::Postgres => &self.postgres,
            Dialect::Sqlite => &self.sqlite,
        };
        schema.column(table, column).is_some_and(|c| c.not_null)
    }

    /// Whether the folder declared function `name` volatile on PostgreSQL (`CREATE FUNCTION`
    /// without `IMMUTABLE` or `STABLE`).
    pub(super) fn volatile(&self, name: &str) -> bool {
        self.postgres.functions.get(name) == Some(&Volatility::Volatile)
    }

    /// Whether a valid `CHECK (column IS NOT NULL)` on `table` lets `SET NOT NULL` skip its
    /// scan, without a scan under this migration's lock: the check was added `NOT VALID` and
    /// validated in a later migration, or validated in this one after an earlier one added
    /// it, or added and validated in this one if its statements each commit on their own.
    pub(super) fn proves_not_null(&self, table: &str, column: &str, runs_in: RunsIn) -> bool {
        let own_lock = |at: u32, check: &NotNullCheck| {
            at == self.migration && check.added == self.migration && runs_in == RunsIn::Transaction
        };
        self.postgres
            .not_null_checks
            .get(table)
            .is_some_and(|checks| {
                checks.iter().any(|check| {
                    check.column == column && check.validated.is_some_and(|at| !own_lock(at, check))
                })
            })
    }

    /// Whether the folder dropped table `name` (or renamed it away), on each of `dialects`,
    /// and did not create it again since.
    pub(super) fn gone(&self, dialects: &[Dialect], name: &str) -> bool {
        dialects
            .iter()
            .all(|d| self.gone.get(d).is_some_and(|gone| gone.contains(name)))
    }

    /// Learns which tables one statement of an up section that runs on `dialects` drops,
    /// renames away or creates.
    pub(super) fn learn_relations(&mut self, dialects: &[Dialect], tokens: Tokens<'_, '_>) {
        for change in changes(tokens) {
            for &dialect in dialects {
                let gone = self.gone.entry(dialect).or_default();
                match &change {
                    Change::Dropped(name) => {
                        gone.insert(name.clone());
                    }
                    Change::RenamedTable { from, to } => {
                        gone.insert(from.clone());
                        gone.remove(to);
                    }
                    Change::Created(name) => {
                        gone.remove(name);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Learns what one statement of an up section that runs on `dialects` declares.
    pub(super) fn learn(&mut self, dialects: &[Dialect], tokens: Tokens<'_, '_>) {
        for &dialect in dialects {
            let schema = match dialect {
                Dialect::Postgres => &mut self.postgres,
                Dialect::Sqlite => &mut self.sqlite,
            };
            schema.learn(tokens, self.migration);
        }
    }
}

impl Schema {
    fn column(&self, table: &str, column: &str) -> Option<&Column> {
        self.columns.get(table)?.get(column)
    }

    fn column_mut(&mut self, table: &str, column: String) -> &mut Column {
        let columns = self.columns.entry(table.to_owned()).or_default();
        columns.entry(column).or_default()
    }

    /// Learns what one statement of an up section declares, in the folder's migration
    /// `migration`.
    fn learn(&mut self, tokens: Tokens<'_, '_>, migration: u32) {
        const VERBS: &[&str] = &["CREATE", "ALTER", "DROP", "SELECT", "WITH"];
        if !VERBS.iter().any(|v| kw(tokens, 0, v)) {
            return;
        }
        if let Some((name, volatility)) = read::function_volatility(tokens) {
            if let Some(volatility) = volatility {
                self.functions.insert(name, volatility);
            }
            return;
        }
        if let Some(creation) = read::creation(tokens) {
            let mut columns: HashMap<String, Column> = read::created_columns(tokens, &creation)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, definition)| (name, Column::declared(definition)))
                .collect();
            for key in read::created_primary_key(tokens, &creation) {
                columns.entry(key).or_default().not_null = true;
            }
            self.not_null_checks.remove(&creation.name);
            self.columns.insert(creation.name, columns);
            return;
        }
        if kw(tokens, 0, "DROP") && kw(tokens, 1, "TABLE") {
            for name in read::relations_from(tokens, read::skip_if_exists(tokens, 2)) {
                self.columns.remove(&name);
                self.not_null_checks.remove(&name);
            }
            return;
        }
        let Some((table, actions)) = read::alter_table(tokens) else {
            return;
        };
        for action in actions {
            self.learn_action(&table, action, migration);
        }
    }

    fn learn_action(&mut self, table: &str, action: Tokens<'_, '_>, migration: u32) {
        if kw(action, 0, "RENAME") && kw(action, 1, "TO")
            || kw(action, 0, "SET") && kw(action, 1, "SCHEMA")
        {
            let Some(to) = read::new_table_name(table, action) else {
                return;
            };
            let columns = self.columns.remove(table);
            let checks = self.not_null_checks.remove(table);
            self.columns.insert(to.clone(), columns.unwrap_or_default());
            self.not_null_checks.insert(to, checks.unwrap_or_default());
        } else if kw(action, 0, "ADD") {
            self.learn_addition(table, action, migration);
        } else if kw(action, 0, "VALIDATE") && kw(action, 1, "CONSTRAINT") {
            let Some((name, _)) = read::name_at(action, 2) else {
                return;
            };
            let checks = self.not_null_checks.get_mut(table).into_iter().flatten();
            for check in checks.filter(|c| c.name == name) {
                check.validated = Some(migration);
            }
        } else if kw(action, 0, "DROP") && kw(action, 1, "CONSTRAINT") {
            let at = read::skip_if_exists(action, 2);
            if let (Some((name, _)), Some(checks)) = (
                read::name_at(action, at),
                self.not_null_checks.get_mut(table),
            ) {
                checks.retain(|c| c.name != name);
            }
        } else if kw(action, 0, "DROP") {
            if let (Some((column, _)), Some(columns)) =
                (read::action_column(action), self.columns.get_mut(table))
            {
                columns.remove(&column);
            }
        } else if let Some((column, new)) = read::type_change(action) {
            // The column has the new type, whatever `USING` computed; after `COLLATE` (or
            // anything else not read) it is unknown.
            let ty = read::column_type(new)
                .filter(|&(_, after)| after == new.len() || kw(new, after, "USING"))
                .map(|(ty, _)| ty);
            self.column_mut(table, column).ty = ty;
        } else if let Some((column, not_null)) = read::nullability_change(action) {
            self.column_mut(table, column).not_null = not_null;
        } else if kw(action, 0, "RENAME") && !kw(action, 1, "CONSTRAINT") {
            let Some((from, at)) = read::action_column(action) else {
                return;
            };
            let Some((to, _)) = read::name_at(action, at + 1) else {
                return;
            };
            let columns = self.columns.entry(table.to_owned()).or_default();
            match columns.remove(&from) {
                Some(column) => columns.insert(to.clone(), column),
                None => columns.remove(&to),
            };
            let checks = self.not_null_checks.get_mut(table).into_iter().flatten();
            for check in checks.filter(|c| c.column == from) {
                check.column.clone_from(&to);
            }
        }
    }

    /// `ADD [COLUMN] c type …`, or `ADD [CONSTRAINT name] CHECK (c IS NOT NULL) [NOT VALID]`.
    fn learn_addition(&mut self, table: &str, action: Tokens<'_, '_>, migration: u32) {
        if read::adds_a_column(action) {
            if let Some((column, at)) = read::action_column(action) {
                let declared = Column::declared(&action[at..]);
                self.columns
                    .entry(table.to_owned())
                    .or_default()
                    .insert(column, declared);
            }
            return;
        }
        for key in read::primary_key_columns(action, 1) {
            self.column_mut(table, key).not_null = true;
        }
        let named = kw(action, 1, "CONSTRAINT");
        let check_at = if named { 3 } else { 1 };
        let Some(column) = read::not_null_check(action, check_at) else {
            return;
        };
        let name = match read::name_at(action, 2).filter(|_| named) {
            Some((name, _)) => name,
            // PostgreSQL's name for an unnamed column check.
            None => format!("{table}_{column}_check"),
        };
        let validated = (!read::not_valid(action)).then_some(migration);
        self.not_null_checks
            .entry(table.to_owned())
            .or_default()
            .push(NotNullCheck {
                name,
                column,
                added: migration,
                validated,
            });
    }
}
