//! The rules applied to a migration's sections, statement by statement.

use super::read::{self, Tokens, has, kw};
use super::rules::{Category, Rule};
use super::state::{Declared, RunsIn, ThisMigration};
use crate::migration::{Dialect, Direction, Section, Span, section_view};
use crate::sql::{Keywords, Token, TokenKind, statements};

/// One finding: a rule a statement breaks, where, and what to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The line in the file (1-based).
    pub(crate) line: u32,
    /// The rule broken.
    pub(crate) rule: Rule,
    /// The statement's first line, or for portability the construct itself (`JSONB`).
    pub(crate) subject: String,
}

/// The findings of every section of a file, in file order, for a migration whose statements
/// run as `runs_in` says. `declared` holds what the folder's earlier migrations declared,
/// and learns what this one declares (a file that is not linted should still be read, so
/// that later files know its columns and functions).
pub(crate) fn lint(
    text: &str,
    spans: &[Span],
    runs_in: RunsIn,
    declared: &mut Declared,
) -> Vec<Finding> {
    declared.next_migration();
    let mut this = ThisMigration::new(runs_in);
    let mut findings = Findings::default();
    let sections: Vec<Section<'_>> = spans.iter().map(|&s| section_view(text, s)).collect();
    // Up sections are read only if one of them may break a rule (they are then all read,
    // in order, to learn what the migration creates), or to learn what a section declares
    // for the migrations after it.
    let up_may_break = sections
        .iter()
        .any(|s| s.direction() == Direction::Up && DANGER_WORDS.in_text(s.sql()));
    for section in &sections {
        let up = section.direction() == Direction::Up;
        let declares = up && declares(section.sql());
        let portability_may_break = section.dialect().is_none() && may_be_unportable(section.sql());
        if (up && up_may_break) || declares || portability_may_break {
            lint_section(section, &mut this, declared, &mut findings);
        }
    }
    let Findings {
        mut found,
        unless_restored,
    } = findings;
    for (finding, dialects, table, column) in unless_restored {
        if !this.restored(dialects, &table, &column) && !found.contains(&finding) {
            found.push(finding);
        }
    }
    found.sort_by_key(|f| f.line);
    found
}

/// The findings of a migration so far.
#[derive(Default)]
struct Findings {
    found: Vec<Finding>,
    /// Drops of a column whose values were copied into a column the migration added: a
    /// finding unless, by the end of the migration, a column holding them bears the
    /// dropped column's name from before the migration (on the dialects given), so that
    /// the release still running reads the same values under the same name.
    unless_restored: Vec<(Finding, &'static [Dialect], String, String)>,
}

/// The words a data-loss or lock rule starts from; an up section without any of them
/// breaks none.
const DANGER_WORDS: Keywords = Keywords::new(&[
    "DROP", "TRUNCATE", "DELETE", "UPDATE", "ALTER", "INDEX", "VACUUM", "CLUSTER", "REINDEX",
    "CASCADE",
]);

/// The words of the statements that declare what later migrations' rules need (tables and
/// their columns, functions; on every dialect, the tables created and dropped).
const DECLARING_WORDS: Keywords = Keywords::new(&["TABLE", "FUNCTION"]);

/// Whether an up section's text may declare what later migrations' rules need: a
/// [`DECLARING_WORDS`] word, or `SELECT … INTO`, which creates a table.
fn declares(sql: &str) -> bool {
    const SELECT: Keywords = Keywords::new(&["SELECT"]);
    const INTO: Keywords = Keywords::new(&["INTO"]);
    DECLARING_WORDS.in_text(sql) || SELECT.in_text(sql) && INTO.in_text(sql)
}

/// Words that are PostgreSQL's alone, wherever they stand.
const POSTGRES_WORDS: &[&str] = &[
    "JSONB",
    "SERIAL",
    "BIGSERIAL",
    "SMALLSERIAL",
    "ILIKE",
    "CONCURRENTLY",
];

/// The words the other portability rules start from.
const PORTABILITY_WORDS: [Keywords; 2] = [
    Keywords::new(POSTGRES_WORDS),
    Keywords::new(&[
        "USING",
        "SCHEMA",
        "AUTOINCREMENT",
        "PRAGMA",
        "ROWID",
        "INTO",
    ]),
];

/// Whether a shared section may break a portability rule: a portability word, or a `:`
/// (casts), `$` (dollar quotes) or `.` (schema-qualified names).
fn may_be_unportable(sql: &str) -> bool {
    sql.contains(':')
        || sql.contains('$')
        || sql.contains('.')
        || PORTABILITY_WORDS.iter().any(|words| words.in_text(sql))
}

/// What a section is: which rule categories apply to it.
struct Context {
    up: bool,
    shared: bool,
    on_postgres: bool,
}

impl Context {
    fn applies(&self, rule: Rule) -> bool {
        match rule.category() {
            Category::DataLoss => self.up,
            Category::Locks => self.up && self.on_postgres,
            Category::Portability => self.shared,
        }
    }
}

fn lint_section(
    section: &Section<'_>,
    this: &mut ThisMigration,
    declared: &mut Declared,
    out: &mut Findings,
) {
    use Dialect::{Postgres, Sqlite};
    let dialects: &'static [Dialect] = match section.dialect() {
        Some(Postgres) => &[Postgres],
        Some(Sqlite) => &[Sqlite],
        None => &[Postgres, Sqlite],
    };
    let context = Context {
        up: section.direction() == Direction::Up,
        shared: section.dialect().is_none(),
        on_postgres: dialects.contains(&Postgres),
    };
    if !context.up && !context.shared {
        return; // a dialect's down section: development and CI only, one dialect
    }
    // A shared section is read as PostgreSQL reads it: the lock rules are PostgreSQL's,
    // and PostgreSQL-only syntax (`$$`) must be seen to be reported.
    let lexed_as = section.dialect().unwrap_or(Postgres);
    for statement in statements(section.sql(), lexed_as) {
        let tokens: Vec<&Token<'_>> = statement.significant().collect();
        let mut hits = Vec::new();
        let mut copied_columns_dropped = Vec::new();
        if context.up {
            let known = Known {
                this,
                dialects,
                declared,
            };
            dangerous(&tokens, &known, &mut hits, &mut copied_columns_dropped);
        }
        if context.shared {
            unportable(&tokens, &mut hits);
        }
        for (rule, at, subject) in hits {
            if !context.applies(rule) {
                continue;
            }
            let (line, _) = section.line_col(at.unwrap_or(statement.offset));
            let subject = subject.unwrap_or_else(|| statement.shown());
            let finding = Finding {
                line,
                rule,
                subject,
            };
            if !out.found.contains(&finding) {
                out.found.push(finding);
            }
        }
        for (table, column) in copied_columns_dropped {
            let finding = Finding {
                line: section.line_col(statement.offset).0,
                rule: Rule::DropColumn,
                subject: statement.shown(),
            };
            let unless = (finding, dialects, table, column);
            out.unless_restored.push(unless);
        }
        if context.up {
            this.learn(dialects, &tokens, declared);
            declared.learn_relations(dialects, &tokens);
            declared.learn(dialects, &tokens);
        }
    }
}

/// What the rules may know about the names a statement touches.
struct Known<'k> {
    this: &'k ThisMigration,
    dialects: &'k [Dialect],
    declared: &'k Declared,
}

impl Known<'_> {
    /// Whether the migration created relation `name` earlier, on every dialect it runs on.
    fn new_relation(&self, name: &str) -> bool {
        self.this.relation(self.dialects, name)
    }

    /// Whether the migration added `table.column` earlier (or created `table`).
    fn new_column(&self, table: &str, column: &str) -> bool {
        self.this.column(self.dialects, table, column)
    }
}

/// A rule broken, at a token's offset (else the statement's), about a construct (else the
/// statement).
type Hit = (Rule, Option<usize>, Option<String>);

/// Data loss and lock rules: what a statement does to what existed before the migration.
/// A drop of a column whose values were copied is a finding unless the name comes back
/// (`(table, the column's name before the migration)`): see [`Findings::unless_restored`].
fn dangerous(
    tokens: Tokens<'_, '_>,
    known: &Known<'_>,
    hits: &mut Vec<Hit>,
    copied_columns_dropped: &mut Vec<(String, String)>,
) {
    let mut hit = |rule| hits.push((rule, None, None));
    let verb = read::verb(tokens);
    let starts = |k: &str| kw(tokens, verb, k);
    if (starts("DROP") || starts("TRUNCATE") || starts("ALTER")) && read::cascades(tokens) {
        hit(Rule::DropCascade);
    }
    if starts("DROP") && kw(tokens, 1, "TABLE") {
        let names = read::relations_from(tokens, read::skip_if_exists(tokens, 2));
        let (this, dialects) = (known.this, known.dialects);
        let loses_nothing =
            |n: &String| this.may_drop(dialects, n) || known.declared.gone(dialects, n);
        if !names.iter().all(loses_nothing) {
            hit(Rule::DropTable);
        }
    } else if starts("DROP") && kw(tokens, 1, "SCHEMA") {
        hit(Rule::DropSchema);
    } else if starts("TRUNCATE") {
        let mut at = 1 + usize::from(kw(tokens, 1, "TABLE"));
        at += usize::from(kw(tokens, at, "ONLY"));
        if !read::relations_from(tokens, at)
            .iter()
            .all(|n| known.new_relation(n))
        {
            hit(Rule::Truncate);
        }
    } else if starts("DELETE") && kw(tokens, verb + 1, "FROM") {
        let at = verb + 2 + usize::from(kw(tokens, verb + 2, "ONLY"));
        let table = read::relation_at(tokens, at);
        if !read::has_where(tokens, verb) && !table.is_some_and(|(t, _)| known.new_relation(&t)) {
            hit(Rule::DeleteWithoutWhere);
        }
    } else if starts("UPDATE") {
        if !read::has_where(tokens, verb) && !sets_only_new_columns(tokens, verb, known) {
            hit(Rule::UpdateWithoutWhere);
        }
    } else if starts("CREATE")
        && (kw(tokens, 1, "INDEX") || kw(tokens, 1, "UNIQUE") && kw(tokens, 2, "INDEX"))
    {
        let on = tokens.iter().position(|t| t.is_keyword("ON"));
        let table = on.and_then(|on| {
            read::relation_at(tokens, on + 1 + usize::from(kw(tokens, on + 1, "ONLY")))
        });
        if !has(tokens, "CONCURRENTLY") && !table.is_some_and(|(n, _)| known.new_relation(&n)) {
            hit(Rule::IndexWithoutConcurrently);
        }
    } else if starts("VACUUM") && has(tokens, "FULL") || starts("CLUSTER") {
        hit(Rule::RewriteTable);
    } else if starts("REINDEX") && !has(tokens, "CONCURRENTLY") {
        hit(Rule::ReindexWithoutConcurrently);
    } else if let Some((table, actions)) = read::alter_table(tokens) {
        if known.new_relation(&table) {
            return;
        }
        for action in actions {
            alter_table_action(&table, action, known, &mut hit, copied_columns_dropped);
        }
    }
}

/// Whether an `UPDATE` only fills columns the migration added (or a table it created): no
/// value from before is overwritten.
fn sets_only_new_columns(tokens: Tokens<'_, '_>, verb: usize, known: &Known<'_>) -> bool {
    read::update_targets(tokens, verb).is_some_and(|(table, columns)| {
        known.new_relation(&table)
            || !columns.is_empty() && columns.iter().all(|c| known.new_column(&table, c))
    })
}

/// One action of `ALTER TABLE table …`, up to its comma, on a table that existed before.
fn alter_table_action(
    table: &str,
    action: Tokens<'_, '_>,
    known: &Known<'_>,
    hit: &mut impl FnMut(Rule),
    copied_columns_dropped: &mut Vec<(String, String)>,
) {
    let column = || read::action_column(action).map(|(c, _)| c);
    if read::adds_a_column(action) {
        // ADD [COLUMN] [IF NOT EXISTS] name type …
        if has(action, "REFERENCES") || has(action, "CHECK") {
            hit(Rule::ConstraintWithoutNotValid);
        }
        if adds_a_volatile_default(action, known.declared) {
            hit(Rule::VolatileDefault);
        }
        if has(action, "PRIMARY") || has(action, "UNIQUE") {
            hit(Rule::UniqueWithoutUsingIndex);
        }
    } else if kw(action, 0, "ADD") {
        let at = if kw(action, 1, "CONSTRAINT") { 3 } else { 1 };
        if (kw(action, at, "FOREIGN") || kw(action, at, "CHECK")) && !read::not_valid(action) {
            hit(Rule::ConstraintWithoutNotValid);
        } else if (kw(action, at, "PRIMARY") || kw(action, at, "UNIQUE"))
            && !read::uses_an_index(action)
        {
            hit(Rule::UniqueWithoutUsingIndex);
        }
    } else if kw(action, 0, "DROP") && !kw(action, 1, "CONSTRAINT") {
        let (this, dialects) = (known.this, known.dialects);
        match column() {
            Some(c) if this.new_column_without_values(dialects, table, &c) => {}
            Some(c) if copied_unchanged(known, table, &c) => {
                let original = this.name_before(dialects, table, &c);
                copied_columns_dropped.push((table.to_owned(), original));
            }
            _ => hit(Rule::DropColumn),
        }
    } else if let Some((column, new_type)) = read::type_change(action) {
        if !keeps_every_value(known.declared.column_type(table, &column), new_type) {
            hit(Rule::ChangeColumnType);
        }
    } else if kw(action, 0, "ALTER") {
        let sets_not_null = action
            .windows(3)
            .any(|w| w[0].is_keyword("SET") && w[1].is_keyword("NOT") && w[2].is_keyword("NULL"));
        let runs_in = known.this.runs_in();
        // A migration that fills the column first expects nulls in it: the folder's
        // `NOT NULL` is then not what the database has (River's 004, after its 002 was
        // rewritten); unless the migration made it `NOT NULL` itself since (Dokploy's 0106
        // sets it twice).
        let declared_not_null = |c: &String| {
            let (this, dialects) = (known.this, known.dialects);
            known.declared.not_null(table, c)
                && (!this.filled(dialects, table, c) || this.made_not_null(dialects, table, c))
        };
        let proven =
            |c: &String| declared_not_null(c) || known.declared.proves_not_null(table, c, runs_in);
        if sets_not_null && !column().is_some_and(|c| proven(&c)) {
            hit(Rule::SetNotNull);
        }
    } else if kw(action, 0, "VALIDATE") && kw(action, 1, "CONSTRAINT") {
        let (this, dialects) = (known.this, known.dialects);
        let name = read::name_at(action, 2).map(|(name, _)| name);
        if name.is_some_and(|n| this.validates_under_its_lock(dialects, table, &n)) {
            hit(Rule::ConstraintWithoutNotValid);
        }
    } else if kw(action, 0, "RENAME") {
        if kw(action, 1, "TO") {
            hit(Rule::RenameTable);
        } else if !kw(action, 1, "CONSTRAINT")
            && !column().is_some_and(|c| known.new_column(table, &c))
        {
            hit(Rule::RenameColumn);
        }
    }
}

/// Whether every value of `table.column` was copied, unchanged, into a column the migration
/// added: on PostgreSQL, the copy's type must keep the values as they are (a `numeric`
/// copied into an `integer` loses its fractions), so both types must be known; SQLite
/// stores a value as it is whatever the column's declared type.
fn copied_unchanged(known: &Known<'_>, table: &str, column: &str) -> bool {
    let Some(copy) = known.this.copy_of(known.dialects, table, column) else {
        return false;
    };
    if !known.dialects.contains(&Dialect::Postgres) {
        return true;
    }
    let ty = |c: &str| known.declared.column_type(table, c);
    ty(column)
        .zip(ty(&copy))
        .is_some_and(|(old, new)| old.keeps_values_as(new))
}

/// Whether `ALTER COLUMN … TYPE new` keeps every value as it is, for a column whose type the
/// folder declared: the same type restated (in any spelling), or widened as
/// [`read::ColumnType::keeps_values_as`] says. PostgreSQL then neither rewrites the table
/// nor checks a row. An unknown old type, another type, `COLLATE` or `USING` is not known
/// to be safe.
fn keeps_every_value(old: Option<&read::ColumnType>, new: Tokens<'_, '_>) -> bool {
    let Some(old) = old else {
        return false;
    };
    let Some((new_type, _)) = read::column_type(new).filter(|&(_, after)| after == new.len())
    else {
        return false;
    };
    old.keeps_values_as(&new_type)
}

/// Functions PostgreSQL marks volatile that a default might call; `now()` and
/// `CURRENT_TIMESTAMP` are stable (one value per transaction) and do not rewrite.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setval",
    "txid_current",
];

/// Serial types: an implicit `nextval()` default.
const SERIAL_TYPES: &[&str] = &[
    "SERIAL",
    "BIGSERIAL",
    "SMALLSERIAL",
    "SERIAL2",
    "SERIAL4",
    "SERIAL8",
];

/// Whether an `ADD COLUMN` gives existing rows values PostgreSQL must compute row by row:
/// a default calling a volatile function (one of PostgreSQL's, or one the folder declared
/// without `IMMUTABLE` or `STABLE`), a serial type, or a generated (stored or identity)
/// column. A function the folder does not declare and the list does not name is taken as
/// stable.
fn adds_a_volatile_default(action: Tokens<'_, '_>, declared: &Declared) -> bool {
    let serial_or_generated = action
        .iter()
        .any(|t| t.is_keyword("GENERATED") || SERIAL_TYPES.iter().any(|s| t.is_keyword(s)));
    let default = action.iter().position(|t| t.is_keyword("DEFAULT"));
    let volatile = default.is_some_and(|d| {
        action[d + 1..].windows(2).any(|w| {
            w[1].text == "("
                && w[0].kind == TokenKind::Word
                && (VOLATILE_FUNCTIONS.iter().any(|f| w[0].is_keyword(f))
                    || declared.volatile(&w[0].text.to_lowercase()))
        })
    });
    serial_or_generated || volatile
}

/// PostgreSQL-only and SQLite-only constructs in a statement of a shared section.
fn unportable(tokens: Tokens<'_, '_>, hits: &mut Vec<Hit>) {
    const INDEX_METHODS: &[&str] = &["GIN", "GIST", "BRIN", "SPGIST", "HASH"];
    /// Words after which a table name stands; a dot in it names a schema.
    const BEFORE_A_TABLE: &[&str] = &[
        "TABLE",
        "INTO",
        "REFERENCES",
        "JOIN",
        "FROM",
        "UPDATE",
        "EXISTS",
    ];
    let mut postgres = |at: &Token<'_>, what: String| {
        hits.push((Rule::PostgresOnly, Some(at.offset), Some(what)));
    };
    if (tokens
        .first()
        .is_some_and(|t| t.is_keyword("CREATE") || t.is_keyword("DROP")))
        && tokens.get(1).is_some_and(|t| t.is_keyword("SCHEMA"))
    {
        postgres(tokens[1], "SCHEMA".to_owned());
    }
    if let Some(into) = read::select_into_at(tokens) {
        postgres(tokens[into], "SELECT … INTO".to_owned());
    }
    for (i, token) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        match token.kind {
            TokenKind::Word => {
                if let Some(word) = POSTGRES_WORDS.iter().find(|w| token.is_keyword(w)) {
                    postgres(token, (*word).to_owned());
                } else if token.is_keyword("USING")
                    && let Some(method) =
                        next.filter(|n| INDEX_METHODS.iter().any(|m| n.is_keyword(m)))
                {
                    postgres(token, format!("USING {}", method.text.to_ascii_uppercase()));
                } else if BEFORE_A_TABLE.iter().any(|k| token.is_keyword(k))
                    && let Some((_, after)) = read::name_at(tokens, i + 1)
                    && after > i + 2
                {
                    let written: String = tokens[i + 1..after].iter().map(|t| t.text).collect();
                    postgres(tokens[i + 1], written);
                }
            }
            TokenKind::Punct if token.text == "::" => postgres(token, "::".to_owned()),
            TokenKind::DollarString => {
                let tag = token.text[1..]
                    .find('$')
                    .map_or("$$", |end| &token.text[..end + 2]);
                postgres(token, tag.to_owned());
            }
            _ => {}
        }
    }
    let mut sqlite = |at: &Token<'_>, what: &str| {
        hits.push((Rule::SqliteOnly, Some(at.offset), Some(what.to_owned())));
    };
    if let Some(first) = tokens.first().filter(|t| t.is_keyword("PRAGMA")) {
        sqlite(first, "PRAGMA");
    }
    for (i, token) in tokens.iter().enumerate() {
        if token.is_keyword("AUTOINCREMENT") {
            sqlite(token, "AUTOINCREMENT");
        } else if token.is_keyword("WITHOUT")
            && tokens.get(i + 1).is_some_and(|t| t.is_keyword("ROWID"))
        {
            sqlite(token, "WITHOUT ROWID");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::span_kind;

    /// The rules broken by `sql` in one section of the given kind, after the migrations
    /// `declared` has read.
    fn rules_after(
        declared: &mut Declared,
        direction: Direction,
        dialect: Option<Dialect>,
        sql: &str,
    ) -> Vec<Rule> {
        rules_of(declared, direction, dialect, sql, RunsIn::Transaction)
    }

    /// The rules broken by `sql` in one section of the given kind, in a migration that runs
    /// as `runs_in` says, after the migrations `declared` has read.
    fn rules_of(
        declared: &mut Declared,
        direction: Direction,
        dialect: Option<Dialect>,
        sql: &str,
        runs_in: RunsIn,
    ) -> Vec<Rule> {
        let file = format!("-- calista:x\n{sql}\n");
        let span = (
            span_kind(direction, dialect),
            1,
            13,
            u32::try_from(file.len()).unwrap_or(0),
        );
        lint(&file, &[span], runs_in, declared)
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    /// The rules a `-- calista:no-transaction` PostgreSQL migration breaks after the others.
    fn last_without_transaction(earlier: &[&str], sql: &str) -> Vec<Rule> {
        let mut declared = Declared::default();
        for sql in earlier {
            rules_after(&mut declared, Direction::Up, Some(Dialect::Postgres), sql);
        }
        let postgres = Some(Dialect::Postgres);
        rules_of(
            &mut declared,
            Direction::Up,
            postgres,
            sql,
            RunsIn::Statements,
        )
    }

    /// The rules broken by `sql` in one section of the given kind.
    fn rules_in(direction: Direction, dialect: Option<Dialect>, sql: &str) -> Vec<Rule> {
        rules_after(&mut Declared::default(), direction, dialect, sql)
    }

    /// The rules each migration of a folder breaks (each one a PostgreSQL up section), read
    /// in order.
    fn folder(migrations: &[&str]) -> Vec<Vec<Rule>> {
        let mut declared = Declared::default();
        migrations
            .iter()
            .map(|sql| rules_after(&mut declared, Direction::Up, Some(Dialect::Postgres), sql))
            .collect()
    }

    /// The rules the last of `migrations` breaks, after the others.
    fn last_of(migrations: &[&str]) -> Vec<Rule> {
        folder(migrations).pop().unwrap_or_default()
    }

    fn sqlite(sql: &str) -> Vec<Rule> {
        rules_in(Direction::Up, Some(Dialect::Sqlite), sql)
    }

    fn up(sql: &str) -> Vec<Rule> {
        rules_in(Direction::Up, Some(Dialect::Postgres), sql)
    }

    fn shared(sql: &str) -> Vec<Rule> {
        rules_in(Direction::Up, None, sql)
    }

    #[test]
    fn each_rule_fires_on_its_statement() {
        use Rule::*;
        let cases: &[(&str, &[Rule])] = &[
            ("DROP TABLE legacy", &[DropTable]),
            ("drop table if exists a, b", &[DropTable]),
            ("ALTER TABLE t DROP COLUMN flag", &[DropColumn]),
            ("ALTER TABLE t DROP flag", &[DropColumn]),
            ("DROP SCHEMA old", &[DropSchema]),
            ("TRUNCATE t", &[Truncate]),
            ("TRUNCATE TABLE ONLY t", &[Truncate]),
            ("DELETE FROM t", &[DeleteWithoutWhere]),
            ("DELETE FROM t USING u", &[DeleteWithoutWhere]),
            (
                "UPDATE t SET a = (SELECT b FROM u WHERE u.id = 1)",
                &[UpdateWithoutWhere],
            ),
            (
                "ALTER TABLE t ALTER COLUMN a TYPE bigint",
                &[ChangeColumnType],
            ),
            (
                "ALTER TABLE t ALTER a SET DATA TYPE text",
                &[ChangeColumnType],
            ),
            ("DROP VIEW v CASCADE", &[DropCascade]),
            ("DROP TABLE t CASCADE", &[DropCascade, DropTable]),
            ("CREATE INDEX ix ON t (a)", &[IndexWithoutConcurrently]),
            (
                "CREATE UNIQUE INDEX ix ON ONLY t (a)",
                &[IndexWithoutConcurrently],
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id)",
                &[ConstraintWithoutNotValid],
            ),
            (
                "ALTER TABLE t ADD CHECK (a > 0)",
                &[ConstraintWithoutNotValid],
            ),
            (
                "ALTER TABLE t ADD COLUMN u int REFERENCES u (id)",
                &[ConstraintWithoutNotValid],
            ),
            ("ALTER TABLE t ALTER COLUMN a SET NOT NULL", &[SetNotNull]),
            (
                "ALTER TABLE t ADD COLUMN id uuid DEFAULT gen_random_uuid()",
                &[VolatileDefault],
            ),
            (
                "ALTER TABLE t ADD COLUMN r float DEFAULT random() * 2",
                &[VolatileDefault],
            ),
            ("ALTER TABLE t ADD COLUMN n bigserial", &[VolatileDefault]),
            (
                "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
                &[VolatileDefault],
            ),
            ("VACUUM FULL t", &[RewriteTable]),
            ("VACUUM (FULL, ANALYZE) t", &[RewriteTable]),
            ("CLUSTER t USING ix", &[RewriteTable]),
            ("REINDEX TABLE t", &[ReindexWithoutConcurrently]),
            ("ALTER TABLE t RENAME TO u", &[RenameTable]),
            ("ALTER TABLE t RENAME COLUMN a TO b", &[RenameColumn]),
            ("ALTER TABLE t RENAME a TO b", &[RenameColumn]),
            (
                "ALTER TABLE t DROP COLUMN a, ALTER COLUMN b SET NOT NULL",
                &[DropColumn, SetNotNull],
            ),
        ];
        for &(sql, expected) in cases {
            let mut found = up(sql);
            found.sort();
            let mut expected = expected.to_vec();
            expected.sort();
            assert_eq!(found, expected, "{sql}");
        }
    }

    #[test]
    fn the_safe_ways_are_fine() {
        for sql in [
            "DELETE FROM t WHERE created < now() - interval '1 year'",
            "UPDATE t SET a = 1 WHERE true",
            "CREATE INDEX CONCURRENTLY ix ON t (a)",
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID",
            "ALTER TABLE t VALIDATE CONSTRAINT fk",
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID",
            "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT now()",
            "ALTER TABLE t ADD COLUMN at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP",
            "ALTER TABLE t ADD COLUMN n int DEFAULT 0",
            "ALTER TABLE t ALTER COLUMN a SET DEFAULT gen_random_uuid()",
            "ALTER TABLE t ALTER COLUMN a DROP NOT NULL",
            "ALTER TABLE t ALTER COLUMN a DROP DEFAULT",
            "ALTER TABLE t DROP CONSTRAINT c",
            "ALTER TABLE t RENAME CONSTRAINT c TO d",
            "CREATE TABLE t (u int REFERENCES u (id) ON DELETE CASCADE)",
            "REINDEX INDEX CONCURRENTLY ix",
            "VACUUM ANALYZE t",
            "DROP INDEX ix",
            "DROP VIEW v",
            "SELECT 'DROP TABLE t'",
            "-- DROP TABLE t\nSELECT 1",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; END $$",
        ] {
            assert_eq!(up(sql), [], "{sql}");
        }
    }

    #[test]
    fn tables_created_earlier_in_the_migration_are_exempt() {
        let sql = "CREATE TABLE IF NOT EXISTS public.t (a int);\n\
                   CREATE INDEX ix ON t (a);\n\
                   ALTER TABLE \"t\" ADD COLUMN b int REFERENCES u (id), ALTER COLUMN a SET NOT NULL;\n\
                   ALTER TABLE t ALTER COLUMN a TYPE bigint;\n\
                   UPDATE t SET a = 1;\n\
                   DROP TABLE t;";
        assert_eq!(up(sql), []);
        let added = "ALTER TABLE u ADD COLUMN IF NOT EXISTS a int, ADD b int;\n\
                     ALTER TABLE u DROP COLUMN IF EXISTS a, DROP b;";
        assert_eq!(up(added), []);
        // Only tables the migration created: another table still counts.
        assert_eq!(
            up("CREATE TABLE t (a int);\nCREATE INDEX ix ON u (a);"),
            [Rule::IndexWithoutConcurrently]
        );
    }

    /// After `create`, each of `silent` is: in a later migration, and in the same one; each
    /// of `firing` is a `change-column-type`.
    fn type_changes_after(create: &str, silent: &[&str], firing: &[&str]) {
        for sql in silent {
            assert_eq!(last_of(&[create, sql]), [], "{sql}");
            // The same migration declaring the column counts as much as an earlier one.
            assert_eq!(up(&format!("{create}\n{sql};")), [], "{sql}");
        }
        for sql in firing {
            assert_eq!(last_of(&[create, sql]), [Rule::ChangeColumnType], "{sql}");
        }
    }

    #[test]
    fn widening_a_string_column_the_folder_declared_is_silent() {
        let create = "CREATE TABLE accounts (id bigint, email VARCHAR(100), note text, code char(4), tags varchar(10)[]);";
        let widenings = [
            "ALTER TABLE accounts ALTER COLUMN email TYPE varchar(255)",
            "ALTER TABLE accounts ALTER COLUMN email TYPE VARCHAR(100)",
            "ALTER TABLE accounts ALTER email SET DATA TYPE text",
            "ALTER TABLE accounts ALTER COLUMN email TYPE character varying",
            "ALTER TABLE accounts ALTER COLUMN note TYPE varchar",
            "ALTER TABLE public.accounts ALTER COLUMN email TYPE text, ALTER COLUMN note TYPE text",
        ];
        let others = [
            "ALTER TABLE accounts ALTER COLUMN email TYPE varchar(50)",
            "ALTER TABLE accounts ALTER COLUMN note TYPE varchar(255)",
            "ALTER TABLE accounts ALTER COLUMN id TYPE text",
            "ALTER TABLE accounts ALTER COLUMN code TYPE text",
            "ALTER TABLE accounts ALTER COLUMN tags TYPE text[]",
            "ALTER TABLE accounts ALTER COLUMN email TYPE text USING lower(email)",
            "ALTER TABLE accounts ALTER COLUMN email TYPE text COLLATE \"C\"",
            "ALTER TABLE accounts ALTER COLUMN email TYPE citext",
            "ALTER TABLE accounts ALTER COLUMN unknown TYPE text",
            "ALTER TABLE others ALTER COLUMN email TYPE text",
            "ALTER TABLE accounts ALTER COLUMN email TYPE text, ALTER COLUMN id TYPE int",
        ];
        type_changes_after(create, &widenings, &others);
        // What the folder did to the column since counts: a narrowing, a rename, a drop.
        let narrowed = "ALTER TABLE accounts ALTER COLUMN note TYPE varchar(20);";
        let then = "ALTER TABLE accounts ALTER COLUMN note TYPE varchar(30)";
        assert_eq!(
            folder(&[create, narrowed, then]),
            [vec![], vec![Rule::ChangeColumnType], vec![]]
        );
        let renamed = "ALTER TABLE accounts RENAME COLUMN email TO mail;\nALTER TABLE accounts RENAME TO users;";
        assert_eq!(
            last_of(&[
                create,
                renamed,
                "ALTER TABLE users ALTER COLUMN mail TYPE text"
            ]),
            []
        );
        assert_eq!(
            last_of(&[
                create,
                renamed,
                "ALTER TABLE accounts ALTER COLUMN email TYPE text"
            ]),
            [Rule::ChangeColumnType]
        );
        let recreated =
            "DROP TABLE accounts;\nCREATE TABLE accounts AS SELECT * FROM old_accounts;";
        assert_eq!(
            last_of(&[
                create,
                recreated,
                "ALTER TABLE accounts ALTER COLUMN email TYPE text"
            ]),
            [Rule::ChangeColumnType]
        );
        let added = "ALTER TABLE users ADD COLUMN IF NOT EXISTS nick varchar(8);";
        assert_eq!(
            last_of(&[
                added,
                "ALTER TABLE users ALTER COLUMN nick TYPE varchar(16)"
            ]),
            []
        );
        // Declared in a SQLite section only: unknown to PostgreSQL's rules.
        let mut declared = Declared::default();
        rules_after(&mut declared, Direction::Up, Some(Dialect::Sqlite), create);
        assert_eq!(
            rules_after(
                &mut declared,
                Direction::Up,
                Some(Dialect::Postgres),
                "ALTER TABLE accounts ALTER COLUMN email TYPE text"
            ),
            [Rule::ChangeColumnType]
        );
    }

    #[test]
    fn restating_the_type_the_folder_declared_changes_nothing() {
        // Generated migrations (Ory's fizz `change_column`) restate a column's type to
        // change its nullability: PostgreSQL neither rewrites nor checks a row.
        let create = "CREATE TABLE \"sessions\" (\"id\" UUID NOT NULL, \"seen_at\" timestamp, n int4, \
                      ok bool DEFAULT false, total numeric(10, 2), at timestamptz, f float8, code char(36));\n\
                      ALTER TABLE \"sessions\" ADD COLUMN \"nid\" UUID;\n\
                      ALTER TABLE sessions ADD COLUMN ui jsonb, ADD COLUMN token VARCHAR (32);";
        let same = [
            "ALTER TABLE \"sessions\" ALTER COLUMN \"nid\" TYPE UUID, ALTER COLUMN \"nid\" DROP NOT NULL",
            "ALTER TABLE sessions ALTER COLUMN id TYPE uuid",
            "ALTER TABLE sessions ALTER COLUMN ui TYPE JSONB, ALTER COLUMN ui SET DEFAULT '{}'",
            "ALTER TABLE sessions ALTER COLUMN seen_at TYPE timestamp without time zone",
            "ALTER TABLE sessions ALTER COLUMN n SET DATA TYPE integer",
            "ALTER TABLE sessions ALTER COLUMN ok TYPE boolean",
            "ALTER TABLE sessions ALTER COLUMN total TYPE NUMERIC (10,2)",
            "ALTER TABLE sessions ALTER COLUMN at TYPE timestamp with time zone",
            "ALTER TABLE sessions ALTER COLUMN f TYPE double precision",
            "ALTER TABLE sessions ALTER COLUMN code TYPE character(36)",
            "ALTER TABLE sessions ALTER COLUMN token TYPE varchar(32)",
        ];
        let changes = [
            "ALTER TABLE sessions ALTER COLUMN seen_at TYPE timestamptz",
            "ALTER TABLE sessions ALTER COLUMN n TYPE bigint",
            "ALTER TABLE sessions ALTER COLUMN total TYPE numeric(12, 3)",
            "ALTER TABLE sessions ALTER COLUMN code TYPE varchar(36)",
            "ALTER TABLE sessions ALTER COLUMN code TYPE char",
            "ALTER TABLE sessions ALTER COLUMN id TYPE uuid USING id::text::uuid",
            "ALTER TABLE sessions ALTER COLUMN ui TYPE jsonb[]",
            "ALTER TABLE sessions ALTER COLUMN token TYPE varchar(32) COLLATE \"C\"",
            "ALTER TABLE sessions ALTER COLUMN unknown TYPE uuid",
            "ALTER TABLE other ALTER COLUMN nid TYPE uuid",
        ];
        type_changes_after(create, &same, &changes);
        // The type the folder changed it to since counts, and a dropped column is unknown.
        assert_eq!(
            last_of(&[
                create,
                "ALTER TABLE sessions ALTER COLUMN n TYPE bigint;",
                "ALTER TABLE sessions ALTER COLUMN n TYPE int8"
            ]),
            []
        );
        assert_eq!(
            last_of(&[
                create,
                "ALTER TABLE sessions DROP COLUMN nid;\nALTER TABLE sessions ADD COLUMN nid text;",
                "ALTER TABLE sessions ALTER COLUMN nid TYPE uuid"
            ]),
            [Rule::ChangeColumnType]
        );
    }

    #[test]
    fn widening_a_precision_the_folder_declared_is_silent() {
        // PostgreSQL keeps every value and the table as they are when a numeric's precision
        // grows at the same scale, or a time's fractional digits grow.
        let create = "CREATE TABLE \"Event\" (\"createdAt\" TIMESTAMP(3) NOT NULL, seen timetz(0), \
                      total numeric(10, 2), n numeric(5), d interval(2), at timestamptz);";
        let widenings = [
            "ALTER TABLE \"Event\" ALTER COLUMN \"createdAt\" TYPE timestamp, ALTER COLUMN \"createdAt\" SET DEFAULT clock_timestamp()",
            "ALTER TABLE \"Event\" ALTER COLUMN \"createdAt\" TYPE timestamp(6) without time zone",
            "ALTER TABLE \"Event\" ALTER COLUMN seen TYPE time(3) with time zone",
            "ALTER TABLE \"Event\" ALTER COLUMN total TYPE numeric(12, 2)",
            "ALTER TABLE \"Event\" ALTER COLUMN total TYPE decimal",
            "ALTER TABLE \"Event\" ALTER COLUMN n TYPE numeric(7, 0)",
            "ALTER TABLE \"Event\" ALTER COLUMN d TYPE interval",
        ];
        let others = [
            "ALTER TABLE \"Event\" ALTER COLUMN \"createdAt\" TYPE timestamp(0)",
            "ALTER TABLE \"Event\" ALTER COLUMN \"createdAt\" TYPE timestamptz",
            "ALTER TABLE \"Event\" ALTER COLUMN seen TYPE time(3)",
            "ALTER TABLE \"Event\" ALTER COLUMN total TYPE numeric(12, 3)",
            "ALTER TABLE \"Event\" ALTER COLUMN total TYPE numeric(9, 2)",
            "ALTER TABLE \"Event\" ALTER COLUMN n TYPE numeric(7, 1)",
            "ALTER TABLE \"Event\" ALTER COLUMN n TYPE bigint",
            "ALTER TABLE \"Event\" ALTER COLUMN at TYPE timestamptz(3)",
        ];
        type_changes_after(create, &widenings, &others);
    }

    #[test]
    fn an_index_of_any_relation_created_earlier_in_the_migration_is_silent() {
        for create in [
            "CREATE MATERIALIZED VIEW totals AS SELECT customer, sum(total) FROM orders GROUP BY 1",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS app.totals AS SELECT 1 AS customer",
            "CREATE TABLE totals AS SELECT customer FROM orders",
            "CREATE UNLOGGED TABLE totals (customer int)",
            "CREATE TEMPORARY TABLE totals (customer int)",
            "CREATE TABLE totals PARTITION OF all_totals FOR VALUES IN (2025)",
            "CREATE TABLE staging (customer int);\nALTER TABLE staging RENAME TO totals",
        ] {
            // The index names the relation as it was created: with its schema, if any.
            let name = if create.contains("app.") {
                "app.totals"
            } else {
                "totals"
            };
            for index in [
                format!("CREATE INDEX ix_totals ON {name} (customer)"),
                format!("CREATE UNIQUE INDEX IF NOT EXISTS ix_totals ON ONLY {name} (customer)"),
            ] {
                assert_eq!(up(&format!("{create};\n{index};")), [], "{create}; {index}");
            }
        }
        // Created by an earlier migration, or existing and renamed: it may hold rows.
        assert_eq!(
            last_of(&[
                "CREATE MATERIALIZED VIEW totals AS SELECT 1 AS customer;",
                "CREATE INDEX ix_totals ON totals (customer)"
            ]),
            [Rule::IndexWithoutConcurrently]
        );
        assert_eq!(
            up(
                "ALTER TABLE orders RENAME TO totals;\nCREATE INDEX ix_totals ON totals (customer);"
            ),
            [Rule::RenameTable, Rule::IndexWithoutConcurrently]
        );
        assert_eq!(
            up("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);\nCREATE INDEX ix ON p (a);"),
            [Rule::IndexWithoutConcurrently]
        );
    }

    #[test]
    fn sqlite_copy_and_rebuild_loses_no_row() {
        let rebuilds = [
            // SQLite's documented procedure: a new table, the rows, the old one dropped.
            "CREATE TABLE new_devices (uuid TEXT NOT NULL, user_uuid TEXT NOT NULL, PRIMARY KEY (uuid, user_uuid));\n\
             INSERT INTO new_devices SELECT * FROM devices;\n\
             DROP TABLE devices;\n\
             ALTER TABLE new_devices RENAME TO devices;\n\
             CREATE INDEX ix_devices_user ON devices (user_uuid);",
            // The old table renamed aside, a new one under its name, the rows copied back.
            "ALTER TABLE ciphers RENAME TO old_ciphers;\n\
             CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, name TEXT);\n\
             INSERT INTO ciphers (uuid, name) SELECT uuid, name FROM old_ciphers;\n\
             DROP TABLE old_ciphers;",
            // The rows out to a temporary table and back.
            "CREATE TEMPORARY TABLE devices_backup (uuid TEXT, user_uuid TEXT);\n\
             INSERT INTO devices_backup SELECT uuid, user_uuid FROM devices;\n\
             DROP TABLE devices;\n\
             CREATE TABLE devices (uuid TEXT, user_uuid TEXT, PRIMARY KEY (uuid, user_uuid));\n\
             INSERT INTO devices SELECT uuid, user_uuid FROM devices_backup ORDER BY uuid;\n\
             DROP TABLE devices_backup;",
            "CREATE TABLE totals AS SELECT * FROM orders;\nDROP TABLE orders;",
        ];
        for rebuild in rebuilds {
            assert_eq!(sqlite(rebuild), [], "{rebuild}");
            // On PostgreSQL too no row is lost (renaming the old table aside is still a
            // rename the running release may notice).
            assert!(!shared(rebuild).contains(&Rule::DropTable), "{rebuild}");
        }
        for loses in [
            "DROP TABLE devices;",
            "INSERT INTO new_devices SELECT * FROM devices WHERE user_uuid IS NOT NULL;\nDROP TABLE devices;",
            "INSERT OR IGNORE INTO new_devices SELECT * FROM devices;\nDROP TABLE devices;",
            "INSERT INTO new_devices SELECT DISTINCT * FROM devices;\nDROP TABLE devices;",
            "INSERT INTO new_devices SELECT d.* FROM devices d JOIN users u ON u.uuid = d.user_uuid;\nDROP TABLE devices;",
            "CREATE VIEW devices_view AS SELECT * FROM devices;\nDROP TABLE devices;",
            // The copy, dropped in turn: the rows are gone after all.
            "CREATE TABLE devices_backup (uuid TEXT);\nINSERT INTO devices_backup SELECT uuid FROM devices;\n\
             DROP TABLE devices;\nDROP TABLE devices_backup;",
        ] {
            assert_eq!(sqlite(loses), [Rule::DropTable], "{loses}");
        }
    }

    #[test]
    fn dropping_a_table_the_folder_already_dropped_drops_nothing() {
        // SQLite rebuilds (memos) start by clearing a leftover of the scratch name an
        // earlier rebuild used and dropped.
        let rebuild = "DROP TABLE IF EXISTS _user_old;\n\
                       ALTER TABLE user RENAME TO _user_old;\n\
                       CREATE TABLE user (id INTEGER PRIMARY KEY, name TEXT);\n\
                       INSERT INTO user SELECT * FROM _user_old;\n\
                       DROP TABLE IF EXISTS _user_old;";
        let mut declared = Declared::default();
        let sqlite = Some(Dialect::Sqlite);
        let first = rules_after(&mut declared, Direction::Up, sqlite, rebuild);
        assert_eq!(
            first,
            [Rule::DropTable],
            "nothing says _user_old is gone yet"
        );
        let second = rules_after(&mut declared, Direction::Up, sqlite, rebuild);
        assert_eq!(second, [], "the first rebuild dropped _user_old");
        // Created again since, or gone on one dialect only: it may hold rows.
        let again = "CREATE TABLE _user_old (id int);";
        rules_after(&mut declared, Direction::Up, sqlite, again);
        let third = rules_after(
            &mut declared,
            Direction::Up,
            sqlite,
            "DROP TABLE _user_old;",
        );
        assert_eq!(third, [Rule::DropTable]);
        let mut declared = Declared::default();
        rules_after(&mut declared, Direction::Up, sqlite, rebuild);
        let postgres = rules_after(
            &mut declared,
            Direction::Up,
            Some(Dialect::Postgres),
            "DROP TABLE _user_old;",
        );
        assert_eq!(postgres, [Rule::DropTable]);
        let mut declared = Declared::default();
        rules_after(&mut declared, Direction::Up, sqlite, rebuild);
        let shared = rules_after(&mut declared, Direction::Up, None, "DROP TABLE _user_old;");
        assert_eq!(shared, [Rule::DropTable]);
        // Renamed away: the old name holds nothing.
        assert_eq!(
            last_of(&[
                "CREATE TABLE a (id int);\nALTER TABLE a RENAME TO b;",
                "DROP TABLE IF EXISTS a"
            ]),
            []
        );
    }

    #[test]
    fn columns_added_earlier_in_the_migration_may_be_renamed_filled_and_dropped() {
        let add =
            "ALTER TABLE posts ADD COLUMN featured boolean, ADD COLUMN IF NOT EXISTS rank int;";
        for fine in [
            "UPDATE posts SET featured = sticky",
            "UPDATE ONLY posts AS p SET featured = true, rank = (SELECT count(*) FROM likes l WHERE l.post = p.id)",
            "UPDATE posts SET (featured, rank) = (true, 0)",
            "ALTER TABLE posts RENAME COLUMN featured TO pinned",
            "ALTER TABLE posts RENAME rank TO score",
            "ALTER TABLE posts DROP COLUMN rank",
        ] {
            assert_eq!(up(&format!("{add}\n{fine};")), [], "{fine}");
            assert_eq!(sqlite(&format!("{add}\n{fine};")), [], "{fine}");
        }
        assert_eq!(
            up(&format!(
                "{add}\nALTER TABLE posts RENAME featured TO pinned;\nUPDATE posts SET pinned = true;"
            )),
            []
        );
        for fires in [
            (
                "UPDATE posts SET featured = true, title = ''",
                Rule::UpdateWithoutWhere,
            ),
            ("UPDATE posts SET title = ''", Rule::UpdateWithoutWhere),
            ("UPDATE other SET featured = true", Rule::UpdateWithoutWhere),
            (
                "ALTER TABLE posts RENAME COLUMN title TO headline",
                Rule::RenameColumn,
            ),
        ] {
            assert_eq!(
                up(&format!("{add}\n{};", fires.0)),
                [fires.1],
                "{}",
                fires.0
            );
        }
        // Added by an earlier migration: the release running may read it.
        assert_eq!(
            last_of(&[add, "ALTER TABLE posts RENAME COLUMN featured TO pinned"]),
            [Rule::RenameColumn]
        );
    }

    #[test]
    fn a_column_copied_whole_into_a_new_one_may_be_dropped() {
        // SQLite's way to change a column's type (Ory Kratos): a new column, every value
        // copied over, the old one dropped, the new one renamed to the old name.
        let copy = |set: &str| {
            format!(
                "ALTER TABLE flows ADD COLUMN url_new TEXT NOT NULL DEFAULT '';\n\
                 {set};\n\
                 ALTER TABLE flows DROP COLUMN url;\n\
                 ALTER TABLE flows RENAME COLUMN url_new TO url;"
            )
        };
        for set in [
            "UPDATE flows SET url_new = url",
            "UPDATE flows SET url_new = flows.url WHERE true",
            "UPDATE \"flows\" SET \"url_new\" = \"url\"",
        ] {
            // On PostgreSQL, only into a type that keeps the values: both must be known.
            let create = "CREATE TABLE flows (id int, url VARCHAR (2048) NOT NULL);";
            assert_eq!(last_of(&[create, &copy(set)]), [], "{set}");
            assert_eq!(up(&copy(set)), [Rule::DropColumn], "{set}");
            assert_eq!(sqlite(&copy(set)), [], "{set}");
        }
        let narrowed = "ALTER TABLE prices ADD COLUMN amount_new integer;\n\
                        UPDATE prices SET amount_new = amount;\n\
                        ALTER TABLE prices DROP COLUMN amount;\n\
                        ALTER TABLE prices RENAME COLUMN amount_new TO amount;";
        let prices = "CREATE TABLE prices (id int, amount numeric(10, 2));";
        assert_eq!(last_of(&[prices, narrowed]), [Rule::DropColumn]);
        // An old column renamed, a new one filled from it, the old one dropped.
        let renamed = "ALTER TABLE sessions RENAME COLUMN token TO old_token;\n\
                       ALTER TABLE sessions ADD COLUMN token varchar(39) NULL;\n\
                       UPDATE sessions SET token = old_token WHERE true;\n\
                       ALTER TABLE sessions DROP COLUMN old_token;";
        assert_eq!(sqlite(renamed), []);
        for set in [
            // Some rows only, or values changed on the way, or from another table.
            "UPDATE flows SET url_new = url WHERE url <> ''",
            "UPDATE flows SET url_new = lower(url)",
            "UPDATE flows SET url_new = o.url FROM old_flows o WHERE o.id = flows.id",
            // Into a column that existed before, or into another table.
            "UPDATE flows SET kind = url",
            "UPDATE others SET url_new = url",
        ] {
            assert!(
                sqlite(&copy(set)).contains(&Rule::DropColumn),
                "{set}: {:?}",
                sqlite(&copy(set))
            );
        }
        // Kept under another name: the release still running reads the old one.
        let moved = "ALTER TABLE meta ADD COLUMN message TEXT;\n\
                     UPDATE meta SET message = body;\n\
                     ALTER TABLE meta DROP COLUMN body;";
        assert_eq!(up(moved), [Rule::DropColumn]);
        assert_eq!(sqlite(moved), [Rule::DropColumn]);
        // The copy, dropped in turn: the values are gone after all (both drops fire).
        let lost = "ALTER TABLE flows ADD COLUMN url_new TEXT;\n\
                    UPDATE flows SET url_new = url;\n\
                    ALTER TABLE flows DROP COLUMN url;\n\
                    ALTER TABLE flows DROP COLUMN url_new;";
        assert_eq!(sqlite(lost), [Rule::DropColumn, Rule::DropColumn]);
        // Copied by an earlier migration: the release running may have written since.
        assert_eq!(
            last_of(&[
                "ALTER TABLE flows ADD COLUMN url_new TEXT;\nUPDATE flows SET url_new = url;",
                "ALTER TABLE flows DROP COLUMN url"
            ]),
            [Rule::DropColumn]
        );
    }

    #[test]
    fn the_documented_safe_way_to_set_not_null_is_silent() {
        let check = "ALTER TABLE orders ADD CONSTRAINT ck_customer_nn CHECK (customer_id IS NOT NULL) NOT VALID;";
        let validate = "ALTER TABLE orders VALIDATE CONSTRAINT ck_customer_nn;";
        let set = "ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;";
        let drop = "ALTER TABLE orders DROP CONSTRAINT ck_customer_nn;";
        let next = format!("{validate}\n{set}\n{drop}");
        assert_eq!(folder(&[check, &next]), [vec![], vec![]]);
        assert_eq!(folder(&[check, validate, set]), [vec![], vec![], vec![]]);
        // Unnamed, PostgreSQL names it <table>_<column>_check.
        let unnamed = "ALTER TABLE orders ADD CHECK ((customer_id IS NOT NULL)) NOT VALID;";
        let next_unnamed = "ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_check;\n\
                            ALTER TABLE orders ALTER customer_id SET NOT NULL;";
        assert_eq!(last_of(&[unnamed, next_unnamed]), []);
        for (before, now) in [
            // Never validated.
            (check, set.to_owned()),
            // A check of another column, or of more than nullness.
            (check, "ALTER TABLE orders VALIDATE CONSTRAINT ck_customer_nn;\nALTER TABLE orders ALTER COLUMN total SET NOT NULL;".to_owned()),
            (
                "ALTER TABLE orders ADD CONSTRAINT ck CHECK (customer_id IS NOT NULL AND total > 0) NOT VALID;",
                "ALTER TABLE orders VALIDATE CONSTRAINT ck;\nALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;".to_owned(),
            ),
            // Dropped before the SET NOT NULL.
            (check, format!("{validate}\n{drop}\n{set}")),
        ] {
            assert_eq!(last_of(&[before, &now]), [Rule::SetNotNull], "{before} / {now}");
        }
        // Validated in the migration that added it: the scan ran under its lock (the
        // validation itself is a finding too).
        assert_eq!(
            up(&format!("{check}\n{validate}\n{set}")),
            [Rule::ConstraintWithoutNotValid, Rule::SetNotNull]
        );
    }

    #[test]
    fn set_not_null_on_a_column_the_folder_declared_not_null_does_nothing() {
        // PostgreSQL scans nothing for a column that is NOT NULL already (Ory's generated
        // `change_column` restates it; old migrations repeat it).
        let create = "CREATE TABLE \"courier_messages\" (\"id\" UUID, \"body\" VARCHAR (255) NOT NULL, \
                      note text, CONSTRAINT pk PRIMARY KEY (\"id\"), CHECK (note IS NOT NULL));\n\
                      CREATE TABLE codes (code int PRIMARY KEY);\n\
                      ALTER TABLE courier_messages ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0, ADD COLUMN n int;";
        for same in [
            "ALTER TABLE \"courier_messages\" ALTER COLUMN \"body\" TYPE text, ALTER COLUMN \"body\" SET NOT NULL",
            "ALTER TABLE courier_messages ALTER COLUMN downloads SET NOT NULL",
            "ALTER TABLE codes ALTER code SET NOT NULL",
            "ALTER TABLE courier_messages ALTER COLUMN id SET NOT NULL",
        ] {
            assert_eq!(last_of(&[create, same]), [], "{same}");
            assert_eq!(up(&format!("{create}\n{same};")), [], "{same}");
        }
        for scans in [
            "ALTER TABLE courier_messages ALTER COLUMN note SET NOT NULL",
            "ALTER TABLE courier_messages ALTER COLUMN n SET NOT NULL",
            "ALTER TABLE courier_messages ALTER COLUMN unknown SET NOT NULL",
            "ALTER TABLE others ALTER COLUMN body SET NOT NULL",
            // Made nullable since, or dropped and added again.
            "ALTER TABLE courier_messages ALTER COLUMN body DROP NOT NULL;\n\
             ALTER TABLE courier_messages ALTER COLUMN body SET NOT NULL",
            "ALTER TABLE courier_messages DROP COLUMN body, ADD COLUMN body text;\n\
             ALTER TABLE courier_messages ALTER COLUMN body SET NOT NULL",
        ] {
            let found = last_of(&[create, scans]);
            assert!(found.contains(&Rule::SetNotNull), "{scans}: {found:?}");
        }
        // Filled first: the migration expects nulls there, whatever the folder declared.
        let fill = "ALTER TABLE courier_messages ALTER COLUMN body SET DEFAULT '';\n\
                    UPDATE courier_messages SET body = '' WHERE body IS NULL;\n\
                    ALTER TABLE courier_messages ALTER COLUMN body SET NOT NULL;";
        assert_eq!(last_of(&[create, fill]), [Rule::SetNotNull]);
        // Set NOT NULL by an earlier migration, and renamed since.
        assert_eq!(
            last_of(&[
                create,
                "ALTER TABLE courier_messages ALTER COLUMN n SET NOT NULL;",
                "ALTER TABLE courier_messages RENAME COLUMN n TO m;\nALTER TABLE courier_messages RENAME TO messages;",
                "ALTER TABLE messages ALTER COLUMN m SET NOT NULL"
            ]),
            []
        );
    }

    #[test]
    fn validating_in_the_migration_that_added_not_valid_scans_under_its_lock() {
        let add = "ALTER TABLE orders ADD CONSTRAINT fk_customer FOREIGN KEY (customer_id) \
                   REFERENCES customers (id) NOT VALID;";
        let check = "ALTER TABLE orders ADD CONSTRAINT ck_total CHECK (total >= 0) NOT VALID;";
        let validate = |c: &str| format!("ALTER TABLE orders VALIDATE CONSTRAINT {c};");
        // In one transaction, the scan runs under the lock the ADD took.
        for (add, name) in [(add, "fk_customer"), (check, "ck_total")] {
            let both = format!("{add}\n{}", validate(name));
            assert_eq!(up(&both), [Rule::ConstraintWithoutNotValid], "{both}");
            // The documented safe way: validated in a later migration.
            assert_eq!(folder(&[add, &validate(name)]), [vec![], vec![]]);
            // Without a transaction, each statement commits and takes its own lock.
            assert_eq!(last_without_transaction(&[], &both), [], "{both}");
        }
        // Another constraint, or one of a table created here.
        assert_eq!(up(&format!("{add}\n{}", validate("other"))), []);
        let created = "CREATE TABLE orders (id int, customer_id int);";
        assert_eq!(
            up(&format!("{created}\n{add}\n{}", validate("fk_customer"))),
            []
        );
        // Set NOT NULL through a check validated in the same no-transaction migration.
        let not_null = "ALTER TABLE orders ADD CONSTRAINT ck_nn CHECK (customer_id IS NOT NULL) NOT VALID;\n\
                        ALTER TABLE orders VALIDATE CONSTRAINT ck_nn;\n\
                        ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;";
        assert_eq!(last_without_transaction(&[], not_null), []);
        assert_eq!(
            up(not_null),
            [Rule::ConstraintWithoutNotValid, Rule::SetNotNull]
        );
    }

    #[test]
    fn a_default_calling_a_volatile_function_of_the_folder_rewrites_the_table() {
        let functions = "CREATE FUNCTION make_code() RETURNS text LANGUAGE sql AS $$ SELECT md5(random()::text) $$;\n\
                         CREATE OR REPLACE FUNCTION app.fixed_code() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'x' $$;\n\
                         CREATE FUNCTION today_code() RETURNS text STABLE LANGUAGE sql AS 'SELECT now()::text';";
        let add = |default: &str| {
            format!("ALTER TABLE t ADD COLUMN code text NOT NULL DEFAULT {default}")
        };
        assert_eq!(
            last_of(&[functions, &add("make_code()")]),
            [Rule::VolatileDefault]
        );
        assert_eq!(
            last_of(&[functions, &add("'c-' || app.make_code ()")]),
            [Rule::VolatileDefault]
        );
        for fine in [
            "fixed_code()",
            "today_code()",
            "now()",
            "lower('X')",
            "'make_code()'",
            "unknown_function()",
        ] {
            assert_eq!(last_of(&[functions, &add(fine)]), [], "{fine}");
        }
        // Within one migration, and changed by ALTER FUNCTION.
        assert_eq!(
            up(&format!("{functions}\n{};", add("make_code()"))),
            [Rule::VolatileDefault]
        );
        assert_eq!(
            last_of(&[
                functions,
                "ALTER FUNCTION make_code() STABLE;",
                &add("make_code()")
            ]),
            []
        );
        assert_eq!(
            last_of(&[
                functions,
                "ALTER FUNCTION fixed_code() VOLATILE;",
                &add("fixed_code()")
            ]),
            [Rule::VolatileDefault]
        );
        // ALTER COLUMN … SET DEFAULT does not touch existing rows.
        assert_eq!(
            last_of(&[
                functions,
                "ALTER TABLE t ALTER COLUMN code SET DEFAULT make_code()"
            ]),
            []
        );
    }

    #[test]
    fn with_delete_and_update_need_a_where_of_their_own() {
        for (sql, rule) in [
            (
                "WITH old AS (SELECT id FROM sessions WHERE expired) DELETE FROM sessions",
                Rule::DeleteWithoutWhere,
            ),
            (
                "WITH RECURSIVE x AS (SELECT 1) UPDATE accounts SET plan = 'free'",
                Rule::UpdateWithoutWhere,
            ),
            (
                "with d as (delete from a where true returning *) update b set n = 0",
                Rule::UpdateWithoutWhere,
            ),
        ] {
            assert_eq!(up(sql), [rule], "{sql}");
            assert_eq!(sqlite(sql), [rule], "{sql}");
        }
        for fine in [
            "WITH old AS (SELECT id FROM sessions) DELETE FROM sessions WHERE id IN (SELECT id FROM old)",
            "WITH x AS (SELECT 1) UPDATE accounts SET plan = 'free' WHERE plan IS NULL",
            "WITH moved AS (DELETE FROM queue WHERE done RETURNING *) INSERT INTO archive SELECT * FROM moved",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert_eq!(up(fine), [], "{fine}");
        }
    }

    #[test]
    fn a_unique_or_primary_key_constraint_builds_its_index_under_lock_unless_given_one() {
        for sql in [
            "ALTER TABLE devices ADD PRIMARY KEY (uuid, user_uuid)",
            "ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email)",
            "ALTER TABLE accounts ADD UNIQUE NULLS NOT DISTINCT (email)",
            "ALTER TABLE accounts ADD CONSTRAINT k UNIQUE (email) USING INDEX TABLESPACE fast",
            "ALTER TABLE accounts DROP COLUMN id, ADD PRIMARY KEY (email)",
            "ALTER TABLE accounts ADD COLUMN handle text UNIQUE",
        ] {
            let found = up(sql);
            assert!(
                found.contains(&Rule::UniqueWithoutUsingIndex),
                "{sql}: {found:?}"
            );
        }
        assert_eq!(
            up(
                "ALTER TABLE accounts ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            ),
            [Rule::VolatileDefault, Rule::UniqueWithoutUsingIndex]
        );
        for fine in [
            "ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE USING INDEX ux_accounts_email",
            "ALTER TABLE devices ADD CONSTRAINT devices_pkey PRIMARY KEY USING INDEX ux_devices",
            "CREATE TABLE t (a int);\nALTER TABLE t ADD PRIMARY KEY (a);",
            "ALTER TABLE accounts ADD CONSTRAINT c EXCLUDE USING gist (during WITH &&)",
        ] {
            assert_eq!(up(fine), [], "{fine}");
        }
        // SQLite has no such ALTER TABLE, and the lock is PostgreSQL's.
        assert_eq!(sqlite("ALTER TABLE devices ADD PRIMARY KEY (uuid)"), []);
    }

    #[test]
    fn a_shared_section_is_exempt_only_for_tables_created_on_both_dialects() {
        let file = "-- calista:up postgres\nCREATE TABLE t (a int);\n-- calista:up sqlite\nCREATE TABLE t (a int);\n\
                    -- calista:up\nCREATE INDEX ix ON t (a);\nCREATE INDEX iu ON u (a);\n";
        let at = |s: &str| u32::try_from(file.find(s).unwrap_or(0)).unwrap_or(0);
        let spans = [
            (
                span_kind(Direction::Up, Some(Dialect::Postgres)),
                1,
                at("CREATE TABLE"),
                at("\n-- calista:up sqlite"),
            ),
            (
                span_kind(Direction::Up, Some(Dialect::Sqlite)),
                3,
                at("-- calista:up sqlite") + 21,
                at("\n-- calista:up\n"),
            ),
            (
                span_kind(Direction::Up, None),
                5,
                at("CREATE INDEX ix"),
                u32::try_from(file.len()).unwrap_or(0),
            ),
        ];
        let found = lint(file, &spans, RunsIn::Transaction, &mut Declared::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].line, found[0].rule),
            (7, Rule::IndexWithoutConcurrently)
        );
        assert_eq!(found[0].subject, "CREATE INDEX iu ON u (a)");
    }

    #[test]
    fn down_sections_may_destroy_and_lock() {
        for dialect in [None, Some(Dialect::Postgres), Some(Dialect::Sqlite)] {
            let sql = "DROP TABLE t;\nALTER TABLE u DROP COLUMN a;\nCREATE INDEX ix ON u (b);\nTRUNCATE v;";
            assert_eq!(rules_in(Direction::Down, dialect, sql), [], "{dialect:?}");
        }
    }

    #[test]
    fn lock_rules_apply_where_postgresql_runs_and_data_loss_everywhere() {
        let sql = "CREATE INDEX ix ON t (a);\nALTER TABLE t DROP COLUMN b;";
        assert_eq!(
            rules_in(Direction::Up, Some(Dialect::Sqlite), sql),
            [Rule::DropColumn]
        );
        assert_eq!(
            rules_in(Direction::Up, None, sql),
            [Rule::IndexWithoutConcurrently, Rule::DropColumn]
        );
    }

    #[test]
    fn portability_rules_fire_in_shared_sections_only() {
        use Rule::{PostgresOnly, SqliteOnly};
        let cases: &[(&str, &str, Rule)] = &[
            ("CREATE TABLE t (a JSONB)", "JSONB", PostgresOnly),
            (
                "CREATE TABLE t (id serial PRIMARY KEY)",
                "SERIAL",
                PostgresOnly,
            ),
            ("CREATE TABLE t (id BIGSERIAL)", "BIGSERIAL", PostgresOnly),
            ("SELECT '1'::int", "::", PostgresOnly),
            ("SELECT 1 WHERE 'a' ILIKE 'A'", "ILIKE", PostgresOnly),
            (
                "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
                "$$",
                PostgresOnly,
            ),
            ("CREATE TABLE app.t (a int)", "app.t", PostgresOnly),
            (
                "INSERT INTO \"app\".t VALUES (1)",
                "\"app\".t",
                PostgresOnly,
            ),
            ("CREATE SCHEMA app", "SCHEMA", PostgresOnly),
            ("SELECT * INTO copy_t FROM t", "SELECT … INTO", PostgresOnly),
            (
                "WITH x AS (SELECT 1 AS a) SELECT a INTO TEMP t FROM x",
                "SELECT … INTO",
                PostgresOnly,
            ),
            (
                "CREATE INDEX ix ON t USING gin (a)",
                "USING GIN",
                PostgresOnly,
            ),
            (
                "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)",
                "AUTOINCREMENT",
                SqliteOnly,
            ),
            ("PRAGMA foreign_keys = ON", "PRAGMA", SqliteOnly),
            (
                "CREATE TABLE t (a int PRIMARY KEY) WITHOUT ROWID",
                "WITHOUT ROWID",
                SqliteOnly,
            ),
        ];
        for &(sql, subject, rule) in cases {
            for direction in [Direction::Up, Direction::Down] {
                let file = format!("-- calista:x\n{sql}\n");
                let span = (
                    span_kind(direction, None),
                    1,
                    13,
                    u32::try_from(file.len()).unwrap_or(0),
                );
                let found: Vec<_> = lint(
                    &file,
                    &[span],
                    RunsIn::Transaction,
                    &mut Declared::default(),
                )
                .into_iter()
                .filter(|f| f.rule.category() == Category::Portability)
                .map(|f| (f.rule, f.subject))
                .collect();
                assert_eq!(found, [(rule, subject.to_owned())], "{sql}");
            }
            for dialect in Dialect::ALL {
                let found = rules_in(Direction::Up, Some(dialect), sql);
                assert!(
                    !found.contains(&rule),
                    "{sql} in a {dialect} section: {found:?}"
                );
            }
        }
        for fine in [
            "SELECT t.a FROM t JOIN u ON t.id = u.id",
            "CREATE TABLE t (a TEXT, b TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
            "SELECT 'JSONB :: $$ AUTOINCREMENT'",
            "-- PRAGMA\nSELECT \"serial\" FROM t",
            "CREATE INDEX ix ON t (a)",
        ] {
            assert!(
                !shared(fine)
                    .iter()
                    .any(|r| r.category() == Category::Portability),
                "{fine}"
            );
        }
    }

    #[test]
    fn a_finding_is_on_the_line_of_its_construct() {
        let file = "-- calista:up\nCREATE TABLE t (\n  a int,\n  b JSONB\n);\n";
        let span = (
            span_kind(Direction::Up, None),
            1,
            14,
            u32::try_from(file.len()).unwrap_or(0),
        );
        let found = lint(file, &[span], RunsIn::Transaction, &mut Declared::default());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].rule), (4, Rule::PostgresOnly));
    }

    #[test]
    fn relations_of_two_schemas_are_two_relations() {
        use Rule::{DropTable, IndexWithoutConcurrently, RenameTable, SetNotNull};
        // Created in one schema, indexed in another: the index is on a table from before.
        for (create, index, expected) in [
            (
                "CREATE TABLE a.t (x int)",
                "CREATE INDEX ix ON b.t (x)",
                &[IndexWithoutConcurrently][..],
            ),
            (
                "CREATE TABLE a.t (x int)",
                "CREATE INDEX ix ON t (x)",
                &[IndexWithoutConcurrently],
            ),
            (
                "CREATE TABLE t (x int)",
                "CREATE INDEX ix ON a.t (x)",
                &[IndexWithoutConcurrently],
            ),
            (
                "CREATE TABLE \"a.t\" (x int)",
                "CREATE INDEX ix ON a.t (x)",
                &[IndexWithoutConcurrently],
            ),
            (
                "CREATE TABLE a.t (x int)",
                "CREATE INDEX ix ON \"a\".\"t\" (x)",
                &[],
            ),
            (
                "CREATE TABLE A.T (x int)",
                "CREATE INDEX ix ON a.t (x)",
                &[],
            ),
            (
                "CREATE TABLE \"a.t\" (x int)",
                "CREATE INDEX ix ON \"a.t\" (x)",
                &[],
            ),
            // An unqualified name is public's, PostgreSQL's default search_path.
            (
                "CREATE TABLE public.t (x int)",
                "CREATE INDEX ix ON t (x)",
                &[],
            ),
            (
                "CREATE TABLE t (x int)",
                "CREATE INDEX ix ON public.t (x)",
                &[],
            ),
            // Renamed, the table stays in its schema; moved, it changes schema.
            (
                "CREATE TABLE a.s (x int);\nALTER TABLE a.s RENAME TO t",
                "CREATE INDEX ix ON a.t (x)",
                &[],
            ),
            (
                "CREATE TABLE a.s (x int);\nALTER TABLE a.s RENAME TO t",
                "CREATE INDEX ix ON t (x)",
                &[IndexWithoutConcurrently],
            ),
            (
                "CREATE TABLE t (x int);\nALTER TABLE t SET SCHEMA a",
                "CREATE INDEX ix ON a.t (x)",
                &[],
            ),
            (
                "CREATE TABLE t (x int);\nALTER TABLE t SET SCHEMA a",
                "CREATE INDEX ix ON t (x)",
                &[IndexWithoutConcurrently],
            ),
            (
                "CREATE TABLE a.t (x int);\nALTER TABLE a.t SET SCHEMA public",
                "CREATE INDEX ix ON t (x)",
                &[],
            ),
        ] {
            assert_eq!(
                up(&format!("{create};\n{index};")),
                expected,
                "{create}; {index}"
            );
        }
        // Rows copied out of one schema's table do not make another's droppable.
        let copy = "CREATE TABLE a.n (x int);\nINSERT INTO a.n SELECT * FROM a.t;\n";
        assert_eq!(sqlite(&format!("{copy}DROP TABLE b.t;")), [DropTable]);
        assert_eq!(sqlite(&format!("{copy}DROP TABLE a.t;")), []);
        // What earlier migrations dropped or declared is of its own schema.
        assert_eq!(
            last_of(&["DROP TABLE a.t;", "DROP TABLE b.t;"]),
            [DropTable]
        );
        assert_eq!(last_of(&["DROP TABLE a.t;", "DROP TABLE t;"]), [DropTable]);
        assert_eq!(
            last_of(&["DROP TABLE a.t;", "DROP TABLE IF EXISTS a.t;"]),
            []
        );
        assert_eq!(
            last_of(&["ALTER TABLE a.s RENAME TO t;", "DROP TABLE a.s;"]),
            []
        );
        assert_eq!(
            last_of(&["ALTER TABLE a.s RENAME TO t;", "DROP TABLE s;"]),
            [DropTable]
        );
        let declared = "CREATE TABLE a.t (id int, c int NOT NULL);";
        assert_eq!(
            last_of(&[declared, "ALTER TABLE b.t ALTER c SET NOT NULL;"]),
            [SetNotNull]
        );
        assert_eq!(
            last_of(&[declared, "ALTER TABLE a.t ALTER c SET NOT NULL;"]),
            []
        );
        assert_eq!(
            last_of(&[
                declared,
                "ALTER TABLE a.t RENAME TO u;",
                "ALTER TABLE a.u ALTER c SET NOT NULL;"
            ]),
            []
        );
        // The same table under its two spellings stays one.
        assert_eq!(
            last_of(&[
                "CREATE TABLE public.t (c int NOT NULL);",
                "ALTER TABLE t ALTER c SET NOT NULL;"
            ]),
            []
        );
        assert_eq!(up("ALTER TABLE a.t RENAME TO u;"), [RenameTable]);
    }

    #[test]
    fn select_into_creates_a_table() {
        use Rule::{DropTable, IndexWithoutConcurrently};
        for create in [
            "SELECT * INTO t2 FROM t",
            "SELECT a, b INTO TEMP t2 FROM t WHERE a > 0",
            "SELECT DISTINCT a INTO UNLOGGED TABLE t2 FROM t",
            "WITH x AS (SELECT a FROM t) SELECT a INTO TEMPORARY TABLE t2 FROM x",
            "SELECT 1 AS a INTO t2",
        ] {
            let index = format!("{create};\nCREATE INDEX ix ON t2 (a);");
            assert_eq!(up(&index), [], "{index}");
            let update = format!("{create};\nUPDATE t2 SET a = 0;\nDELETE FROM t2;");
            assert_eq!(up(&update), [], "{update}");
        }
        // Another table, or a SELECT that creates nothing, is still indexed under lock.
        for other in [
            "SELECT * INTO t3 FROM t2",
            "SELECT * FROM t2",
            "INSERT INTO t2 SELECT * FROM t",
            "WITH x AS (INSERT INTO t2 SELECT * FROM t RETURNING a) SELECT a FROM x",
        ] {
            let index = format!("{other};\nCREATE INDEX ix ON t2 (a);");
            assert_eq!(up(&index), [IndexWithoutConcurrently], "{index}");
        }
        // A whole copy, like CREATE TABLE … AS: the old table may go; a partial one may not.
        assert_eq!(sqlite("SELECT * INTO t2 FROM t;\nDROP TABLE t;"), []);
        assert_eq!(
            sqlite("SELECT a, b INTO t2 FROM t ORDER BY a;\nDROP TABLE t;"),
            []
        );
        for partial in [
            "SELECT * INTO t2 FROM t WHERE a > 0",
            "SELECT DISTINCT * INTO t2 FROM t",
            "SELECT t.* INTO t2 FROM t JOIN u ON u.id = t.id",
            "WITH x AS (SELECT 1) SELECT * INTO t2 FROM t",
        ] {
            let drop = format!("{partial};\nDROP TABLE t;");
            assert_eq!(sqlite(&drop), [DropTable], "{drop}");
        }
        // The folder learns it: the table exists again, with columns of unknown types.
        assert_eq!(
            last_of(&[
                "DROP TABLE t2;",
                "SELECT * INTO t2 FROM t;",
                "DROP TABLE t2;"
            ]),
            [DropTable]
        );
        assert_eq!(
            last_of(&[
                "CREATE TABLE t2 (a varchar(10));",
                "DROP TABLE t2;\nSELECT * INTO t2 FROM t;",
                "ALTER TABLE t2 ALTER a TYPE varchar(20);"
            ]),
            [Rule::ChangeColumnType]
        );
    }

    #[test]
    fn set_not_null_again_after_the_migration_set_it_checks_nothing() {
        use Rule::SetNotNull;
        // Dokploy's 0106: filled, made NOT NULL, and made NOT NULL again further down.
        let fill = "ALTER TABLE project ADD COLUMN org text;\n\
                    UPDATE project SET org = 'x' WHERE org IS NULL;\n";
        let set = "ALTER TABLE project ALTER COLUMN org SET NOT NULL;\n";
        assert_eq!(up(&format!("{fill}{set}")), [SetNotNull]);
        assert_eq!(up(&format!("{fill}{set}{set}")), [SetNotNull]);
        // Filled again after it: the column cannot hold a null, nothing to check.
        let refill = "UPDATE project SET org = 'y' WHERE org = 'x';\n";
        assert_eq!(up(&format!("{fill}{set}{refill}{set}")), [SetNotNull]);
        // Renamed since, with its table: still the same column.
        let renamed = "ALTER TABLE project RENAME COLUMN org TO o;\n\
                       ALTER TABLE project RENAME TO p;\n\
                       ALTER TABLE p ALTER COLUMN o SET NOT NULL;";
        let found = up(&format!("{fill}{set}{renamed}"));
        assert_eq!(
            found.iter().filter(|&&r| r == SetNotNull).count(),
            1,
            "{found:?}"
        );
        // Made nullable between, or another column: it is checked again.
        let dropped = "ALTER TABLE project ALTER COLUMN org DROP NOT NULL;\n";
        assert_eq!(
            up(&format!("{fill}{set}{dropped}{set}")),
            [SetNotNull, SetNotNull]
        );
        let other = "ALTER TABLE project ALTER COLUMN other SET NOT NULL;";
        assert_eq!(up(&format!("{fill}{set}{other}")), [SetNotNull, SetNotNull]);
    }

    #[test]
    fn a_scratch_copy_of_a_table_that_stays_may_be_dropped() {
        use Rule::DropTable;
        // Inbox Zero's 0335: a mapping table filled from a table the migration keeps.
        for scratch in [
            "CREATE TEMP TABLE map (link text, schedule text);\n\
             INSERT INTO map (link, schedule) SELECT id, gen_random_uuid()::text FROM booking;\n\
             INSERT INTO schedule (id) SELECT m.schedule FROM map m JOIN booking b ON b.id = m.link;\n\
             DROP TABLE map;",
            "CREATE TABLE bk AS SELECT * FROM t;\nDROP TABLE bk;",
            "SELECT * INTO TEMP bk FROM t;\nDROP TABLE bk;",
            // The rows out and back, the scratch copy dropped last (see the rebuilds above).
            "CREATE TABLE bk AS SELECT * FROM t;\nDROP TABLE t;\nCREATE TABLE t (a int);\n\
             INSERT INTO t SELECT * FROM bk;\nDROP TABLE bk;",
        ] {
            assert_eq!(sqlite(scratch), [], "{scratch}");
            assert_eq!(up(scratch), [], "{scratch}");
        }
        // The only copy left of rows whose table was dropped, or a copy dropped before the
        // table it kept: rows are lost.
        for loses in [
            "CREATE TABLE bk AS SELECT * FROM t;\nDROP TABLE t;\nDROP TABLE bk;",
            "CREATE TABLE bk AS SELECT * FROM t;\nDROP TABLE bk;\nDROP TABLE t;",
            "CREATE TABLE bk AS SELECT * FROM t;\nDROP TABLE t;\nCREATE TABLE t (a int);\nDROP TABLE bk;",
            "CREATE TABLE bk AS SELECT * FROM t;\nALTER TABLE t RENAME TO t_old;\n\
             DROP TABLE t_old;\nDROP TABLE bk;",
            "CREATE TABLE a AS SELECT * FROM t;\nCREATE TABLE b AS SELECT * FROM a;\n\
             DROP TABLE t;\nDROP TABLE a;\nDROP TABLE b;",
            "CREATE TABLE a AS SELECT * FROM t;\nCREATE TABLE b AS SELECT * FROM t;\n\
             DROP TABLE b;\nDROP TABLE a;\nDROP TABLE t;",
        ] {
            assert_eq!(sqlite(loses), [DropTable], "{loses}");
        }
    }

    #[test]
    fn rows_copied_in_two_complementary_halves_are_copied_whole() {
        use Rule::DropTable;
        // Homarr's 0025 (SQLite): the `everyone` group first, then every other one.
        let create = "CREATE TABLE \"group\" (id text PRIMARY KEY NOT NULL, name text NOT NULL, owner text);";
        let rebuild = |first: &str, second: &str| {
            format!(
                "CREATE TABLE new_group (id text, name text, position int);\n\
                 INSERT INTO new_group (id, name, position) SELECT id, name, -1 FROM `group` WHERE {first};\n\
                 INSERT INTO new_group (id, name, position) SELECT \"id\", \"name\", ROW_NUMBER() OVER (ORDER BY name) FROM \"group\" WHERE {second};\n\
                 DROP TABLE `group`;\n\
                 ALTER TABLE new_group RENAME TO \"group\";"
            )
        };
        let after_create = |dialect: Dialect, sql: &str| {
            let mut declared = Declared::default();
            rules_after(&mut declared, Direction::Up, Some(dialect), create);
            rules_after(&mut declared, Direction::Up, Some(dialect), sql)
        };
        for (first, second) in [
            ("\"name\" = 'everyone'", "\"name\" != 'everyone'"),
            ("name <> 'everyone'", "(name = 'everyone')"),
            ("NOT (name = 'everyone')", "\"group\".name = 'everyone'"),
            ("owner IS NULL", "owner IS NOT NULL"),
            (
                "owner IS NOT DISTINCT FROM 'x'",
                "owner IS DISTINCT FROM 'x'",
            ),
            ("owner IS 'x'", "NOT owner IS 'x'"),
            ("id = 1", "id != 1"),
        ] {
            let sql = rebuild(first, second);
            assert_eq!(after_create(Dialect::Sqlite, &sql), [], "{sql}");
            let on_postgres = after_create(Dialect::Postgres, &sql.replace('`', "\""));
            assert!(!on_postgres.contains(&DropTable), "{sql}: {on_postgres:?}");
        }
        for (first, second) in [
            // A nullable column: rows where it is null match neither half.
            ("owner = 'x'", "owner != 'x'"),
            ("NOT (owner = 'x')", "owner = 'x'"),
            // Not each other's complement.
            ("name = 'everyone'", "name != 'nobody'"),
            ("name = 'everyone'", "name = 'everyone'"),
            ("name = 'everyone'", "owner != 'everyone'"),
            ("name > 'm'", "name < 'm'"),
            ("name = 'everyone' AND owner IS NULL", "name != 'everyone'"),
            ("name = NULL", "name != NULL"),
        ] {
            let sql = rebuild(first, second);
            assert_eq!(after_create(Dialect::Sqlite, &sql), [DropTable], "{sql}");
        }
        // A column whose nullability the folder did not declare, or halves copied into two
        // tables, or from two tables: not known whole.
        assert_eq!(
            sqlite(&rebuild("name = 'everyone'", "name != 'everyone'")),
            [DropTable]
        );
        let split = "INSERT INTO a SELECT * FROM \"group\" WHERE name = 'x';\n\
                     INSERT INTO b SELECT * FROM \"group\" WHERE name != 'x';\n\
                     DROP TABLE \"group\";";
        assert_eq!(after_create(Dialect::Sqlite, split), [DropTable]);
    }
}
