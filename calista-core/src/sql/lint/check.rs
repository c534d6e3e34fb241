//! The rules applied to a migration's sections, statement by statement.

use std::collections::HashSet;

use super::rules::{Category, Rule};
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

/// The findings of every section of a file, in file order.
pub(crate) fn lint(text: &str, spans: &[Span]) -> Vec<Finding> {
    let mut created = Created::default();
    let mut findings = Vec::new();
    let sections: Vec<Section<'_>> = spans.iter().map(|&s| section_view(text, s)).collect();
    // Up sections are read only if one of them may break a rule; they are then all read,
    // in order, to learn which tables the migration creates.
    let up_may_break = sections
        .iter()
        .any(|s| s.direction() == Direction::Up && DANGER_WORDS.in_text(s.sql()));
    for section in &sections {
        let up = section.direction() == Direction::Up;
        let shared = section.dialect().is_none();
        let portability_may_break = shared && may_be_unportable(section.sql());
        if (up && up_may_break) || portability_may_break {
            lint_section(section, &mut created, &mut findings);
        }
    }
    findings.sort_by_key(|f| f.line);
    findings
}

/// The words a data-loss or lock rule starts from; an up section without any of them
/// breaks none, and is not lexed.
const DANGER_WORDS: Keywords = Keywords::new(&[
    "DROP", "TRUNCATE", "DELETE", "UPDATE", "ALTER", "INDEX", "VACUUM", "CLUSTER", "REINDEX",
    "CASCADE",
]);

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
    Keywords::new(&["USING", "SCHEMA", "AUTOINCREMENT", "PRAGMA", "ROWID"]),
];

/// Whether a shared section may break a portability rule: a portability word, or a `:`
/// (casts), `$` (dollar quotes) or `.` (schema-qualified names).
fn may_be_unportable(sql: &str) -> bool {
    sql.bytes().any(|b| matches!(b, b':' | b'$' | b'.'))
        || PORTABILITY_WORDS.iter().any(|words| words.in_text(sql))
}

/// Tables (`t`) created and columns (`t.c`) added by the up sections read so far, per
/// dialect: the migration owns them, so nobody reads them yet, and nothing in them can be
/// lost or kept waiting.
#[derive(Default)]
struct Created {
    postgres: HashSet<String>,
    sqlite: HashSet<String>,
}

impl Created {
    fn of(&mut self, dialect: Dialect) -> &mut HashSet<String> {
        match dialect {
            Dialect::Postgres => &mut self.postgres,
            Dialect::Sqlite => &mut self.sqlite,
        }
    }
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

fn lint_section(section: &Section<'_>, created: &mut Created, out: &mut Vec<Finding>) {
    use Dialect::{Postgres, Sqlite};
    let dialects: &[Dialect] = match section.dialect() {
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
        let is_new = |name: &str| {
            dialects.iter().all(|&d| match d {
                Postgres => created.postgres.contains(name),
                Sqlite => created.sqlite.contains(name),
            })
        };
        if context.up {
            dangerous(&tokens, &is_new, &mut hits);
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
            if !out.contains(&finding) {
                out.push(finding);
            }
        }
        if context.up {
            let new = created_table(&tokens)
                .into_iter()
                .chain(added_columns(&tokens));
            for name in new {
                for &d in dialects {
                    created.of(d).insert(name.clone());
                }
            }
        }
    }
}

/// A rule broken, at a token's offset (else the statement's), about a construct (else the
/// statement).
type Hit = (Rule, Option<usize>, Option<String>);

/// Data loss and lock rules: what a statement does to existing tables.
fn dangerous(tokens: &[&Token<'_>], is_new: &dyn Fn(&str) -> bool, hits: &mut Vec<Hit>) {
    let kw = |i: usize, k: &str| tokens.get(i).is_some_and(|t| t.is_keyword(k));
    let mut hit = |rule| hits.push((rule, None, None));
    let has = |k: &str| tokens.iter().any(|t| t.is_keyword(k));
    let starts = |k: &str| kw(0, k);
    if (starts("DROP") || starts("TRUNCATE") || starts("ALTER")) && cascades(tokens) {
        hit(Rule::DropCascade);
    }
    if starts("DROP") && kw(1, "TABLE") {
        let names = names_from(tokens, skip_if_exists(tokens, 2));
        if !names.iter().all(|n| is_new(n)) {
            hit(Rule::DropTable);
        }
    } else if starts("DROP") && kw(1, "SCHEMA") {
        hit(Rule::DropSchema);
    } else if starts("TRUNCATE") {
        let mut at = 1 + usize::from(kw(1, "TABLE"));
        at += usize::from(kw(at, "ONLY"));
        if !names_from(tokens, at).iter().all(|n| is_new(n)) {
            hit(Rule::Truncate);
        }
    } else if starts("DELETE") && kw(1, "FROM") {
        let at = 2 + usize::from(kw(2, "ONLY"));
        if !top_level_where(tokens) && !name_at(tokens, at).is_some_and(|(n, _)| is_new(&n)) {
            hit(Rule::DeleteWithoutWhere);
        }
    } else if starts("UPDATE") {
        let at = 1 + usize::from(kw(1, "ONLY"));
        if !top_level_where(tokens) && !name_at(tokens, at).is_some_and(|(n, _)| is_new(&n)) {
            hit(Rule::UpdateWithoutWhere);
        }
    } else if starts("CREATE") && (kw(1, "INDEX") || kw(1, "UNIQUE") && kw(2, "INDEX")) {
        let on = tokens.iter().position(|t| t.is_keyword("ON"));
        let table = on.and_then(|on| name_at(tokens, on + 1 + usize::from(kw(on + 1, "ONLY"))));
        if !has("CONCURRENTLY") && !table.is_some_and(|(n, _)| is_new(&n)) {
            hit(Rule::IndexWithoutConcurrently);
        }
    } else if starts("VACUUM") && has("FULL") || starts("CLUSTER") {
        hit(Rule::RewriteTable);
    } else if starts("REINDEX") && !has("CONCURRENTLY") {
        hit(Rule::ReindexWithoutConcurrently);
    } else if starts("ALTER") && kw(1, "TABLE") {
        let mut at = skip_if_exists(tokens, 2);
        at += usize::from(kw(at, "ONLY"));
        let Some((table, after)) = name_at(tokens, at) else {
            return;
        };
        if is_new(&table) {
            return;
        }
        for action in split_top_level(&tokens[after..]) {
            let column_is_new = |at| {
                name_at(action, skip_if_exists(action, at))
                    .is_some_and(|(c, _)| is_new(&format!("{table}.{c}")))
            };
            let at = if kw_in(action, 1, "COLUMN") { 2 } else { 1 };
            if kw_in(action, 0, "DROP") && column_is_new(at) {
                continue;
            }
            alter_table_action(action, &mut hit);
        }
    }
}

fn kw_in(tokens: &[&Token<'_>], i: usize, keyword: &str) -> bool {
    tokens.get(i).is_some_and(|t| t.is_keyword(keyword))
}

/// `ALTER TABLE t ADD [COLUMN] [IF NOT EXISTS] c …, …`: each `t.c`.
fn added_columns(tokens: &[&Token<'_>]) -> Vec<String> {
    if !(kw_in(tokens, 0, "ALTER") && kw_in(tokens, 1, "TABLE")) {
        return Vec::new();
    }
    let mut at = skip_if_exists(tokens, 2);
    at += usize::from(kw_in(tokens, at, "ONLY"));
    let Some((table, after)) = name_at(tokens, at) else {
        return Vec::new();
    };
    split_top_level(&tokens[after..])
        .into_iter()
        .filter(|action| kw_in(action, 0, "ADD") && !kw_in(action, 1, "CONSTRAINT"))
        .filter_map(|action| {
            let mut at = if kw_in(action, 1, "COLUMN") { 2 } else { 1 };
            if kw_in(action, at, "IF") {
                at += 3;
            }
            name_at(action, at).map(|(c, _)| format!("{table}.{c}"))
        })
        .collect()
}

/// One action of `ALTER TABLE t …`, up to its comma.
fn alter_table_action(action: &[&Token<'_>], hit: &mut impl FnMut(Rule)) {
    let kw = |i: usize, k: &str| action.get(i).is_some_and(|t| t.is_keyword(k));
    let has = |k: &str| action.iter().any(|t| t.is_keyword(k));
    let not_valid = action
        .windows(2)
        .any(|w| w[0].is_keyword("NOT") && w[1].is_keyword("VALID"));
    if kw(0, "ADD") {
        let at = if kw(1, "CONSTRAINT") { 3 } else { 1 };
        if kw(at, "FOREIGN") || kw(at, "CHECK") {
            if !not_valid {
                hit(Rule::ConstraintWithoutNotValid);
            }
        } else if !(kw(at, "PRIMARY") || kw(at, "UNIQUE") || kw(at, "EXCLUDE")) {
            // A column: ADD [COLUMN] [IF NOT EXISTS] name type …
            if has("REFERENCES") || has("CHECK") {
                hit(Rule::ConstraintWithoutNotValid);
            }
            if adds_a_volatile_default(action) {
                hit(Rule::VolatileDefault);
            }
        }
    } else if kw(0, "DROP") && !kw(1, "CONSTRAINT") {
        hit(Rule::DropColumn);
    } else if kw(0, "ALTER") {
        let at = if kw(1, "COLUMN") { 3 } else { 2 };
        if kw(at, "TYPE") || kw(at, "SET") && kw(at + 1, "DATA") && kw(at + 2, "TYPE") {
            hit(Rule::ChangeColumnType);
        } else if kw(at, "SET") && kw(at + 1, "NOT") && kw(at + 2, "NULL") {
            hit(Rule::SetNotNull);
        }
    } else if kw(0, "RENAME") {
        if kw(1, "TO") {
            hit(Rule::RenameTable);
        } else if !kw(1, "CONSTRAINT") {
            hit(Rule::RenameColumn);
        }
    }
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
/// a volatile default, a serial type, or a generated (stored or identity) column.
fn adds_a_volatile_default(action: &[&Token<'_>]) -> bool {
    let serial_or_generated = action
        .iter()
        .any(|t| t.is_keyword("GENERATED") || SERIAL_TYPES.iter().any(|s| t.is_keyword(s)));
    let default = action.iter().position(|t| t.is_keyword("DEFAULT"));
    let volatile = default.is_some_and(|d| {
        action[d + 1..]
            .windows(2)
            .any(|w| w[1].text == "(" && VOLATILE_FUNCTIONS.iter().any(|f| w[0].is_keyword(f)))
    });
    serial_or_generated || volatile
}

/// PostgreSQL-only and SQLite-only constructs in a statement of a shared section.
fn unportable(tokens: &[&Token<'_>], hits: &mut Vec<Hit>) {
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
                    && let Some((_, after)) = name_at(tokens, i + 1)
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

/// `CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE [IF NOT EXISTS] name`: the name.
fn created_table(tokens: &[&Token<'_>]) -> Option<String> {
    if !tokens.first()?.is_keyword("CREATE") {
        return None;
    }
    let table = tokens.iter().take(4).position(|t| t.is_keyword("TABLE"))?;
    let mut at = table + 1;
    if tokens.get(at).is_some_and(|t| t.is_keyword("IF")) {
        at += 3;
    }
    name_at(tokens, at).map(|(name, _)| name)
}

/// Skips `IF EXISTS` at `at`.
fn skip_if_exists(tokens: &[&Token<'_>], at: usize) -> usize {
    let is_if = tokens.get(at).is_some_and(|t| t.is_keyword("IF"));
    if is_if { at + 2 } else { at }
}

/// The (possibly qualified) name at `at`, as the server folds it, without its schema; and
/// the index after it.
fn name_at(tokens: &[&Token<'_>], at: usize) -> Option<(String, usize)> {
    let mut i = at;
    loop {
        let token = tokens.get(i)?;
        let name = match token.kind {
            TokenKind::Word => token.text.to_lowercase(),
            TokenKind::QuotedIdent => {
                let inner = token.text.get(1..token.text.len().saturating_sub(1));
                inner.unwrap_or_default().to_owned()
            }
            _ => return None,
        };
        i += 1;
        if tokens.get(i).is_some_and(|t| t.text == ".")
            && tokens
                .get(i + 1)
                .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
        {
            i += 1;
        } else {
            return Some((name, i));
        }
    }
}

/// The comma-separated names from `at` (`DROP TABLE a, b CASCADE`).
fn names_from(tokens: &[&Token<'_>], mut at: usize) -> Vec<String> {
    let mut names = Vec::new();
    while let Some((name, after)) = name_at(tokens, at) {
        names.push(name);
        if tokens.get(after).is_some_and(|t| t.text == ",") {
            at = after + 1;
        } else {
            break;
        }
    }
    names
}

/// Whether `WHERE` bounds the statement itself (not only a subquery in it).
fn top_level_where(tokens: &[&Token<'_>]) -> bool {
    let mut depth = 0usize;
    tokens.iter().any(|t| {
        match t.text {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            _ => {}
        }
        depth == 0 && t.is_keyword("WHERE")
    })
}

/// Whether a `CASCADE` drops dependents (not `ON DELETE CASCADE` in a foreign key).
fn cascades(tokens: &[&Token<'_>]) -> bool {
    tokens.windows(2).any(|w| {
        w[1].is_keyword("CASCADE") && !(w[0].is_keyword("DELETE") || w[0].is_keyword("UPDATE"))
    })
}

/// The tokens split at commas outside parentheses.
fn split_top_level<'t, 'a>(tokens: &'t [&'t Token<'a>]) -> Vec<&'t [&'t Token<'a>]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t.text {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            "," if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::span_kind;

    /// The rules broken by `sql` in one section of the given kind.
    fn rules_in(direction: Direction, dialect: Option<Dialect>, sql: &str) -> Vec<Rule> {
        let file = format!("-- calista:x\n{sql}\n");
        let span = (
            span_kind(direction, dialect),
            1,
            13,
            u32::try_from(file.len()).unwrap_or(0),
        );
        lint(&file, &[span]).into_iter().map(|f| f.rule).collect()
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
        let found = lint(file, &spans);
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
                let found: Vec<_> = lint(&file, &[span])
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
        let found = lint(file, &[span]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].rule), (4, Rule::PostgresOnly));
    }
}
