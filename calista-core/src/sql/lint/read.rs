//! Reading the parts of a statement the rules need: names, `ALTER TABLE` actions, column
//! types, copies of rows, function declarations. Each reader takes a statement's
//! significant tokens and answers `None` (or nothing) for any form it does not know, so that
//! a rule that depends on it stays on the safe side.

use crate::sql::{Token, TokenKind};

/// A statement's significant tokens, or a part of them.
pub(super) type Tokens<'t, 'a> = &'t [&'t Token<'a>];

/// Whether the token at `i` is the word `keyword`.
pub(super) fn kw(tokens: Tokens<'_, '_>, i: usize, keyword: &str) -> bool {
    tokens.get(i).is_some_and(|t| t.is_keyword(keyword))
}

/// Whether any token is the word `keyword`.
pub(super) fn has(tokens: Tokens<'_, '_>, keyword: &str) -> bool {
    tokens.iter().any(|t| t.is_keyword(keyword))
}

/// Whether the token at `i` is the punctuation `text`.
fn punct(tokens: Tokens<'_, '_>, i: usize, text: &str) -> bool {
    tokens
        .get(i)
        .is_some_and(|t| t.kind == TokenKind::Punct && t.text == text)
}

/// Skips `IF EXISTS` at `at`.
pub(super) fn skip_if_exists(tokens: Tokens<'_, '_>, at: usize) -> usize {
    if kw(tokens, at, "IF") && kw(tokens, at + 1, "EXISTS") {
        at + 2
    } else {
        at
    }
}

/// Skips `IF NOT EXISTS` at `at`.
pub(super) fn skip_if_not_exists(tokens: Tokens<'_, '_>, at: usize) -> usize {
    if kw(tokens, at, "IF") && kw(tokens, at + 1, "NOT") {
        at + 3
    } else {
        at
    }
}

/// An identifier token's name, as the server folds it (a quoted one as written).
fn ident(token: &Token<'_>) -> Option<String> {
    match token.kind {
        TokenKind::Word => Some(token.text.to_lowercase()),
        TokenKind::QuotedIdent => {
            let inner = token.text.get(1..token.text.len().saturating_sub(1));
            Some(inner.unwrap_or_default().replace("\"\"", "\""))
        }
        _ => None,
    }
}

/// The parts of the (possibly qualified) name at `at`, as the server folds them, and the
/// index after it.
fn name_parts(tokens: Tokens<'_, '_>, at: usize) -> Option<(Vec<String>, usize)> {
    let mut parts = Vec::new();
    let mut i = at;
    loop {
        parts.push(ident(tokens.get(i)?)?);
        i += 1;
        if punct(tokens, i, ".")
            && tokens
                .get(i + 1)
                .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
        {
            i += 1;
        } else {
            return Some((parts, i));
        }
    }
}

/// The (possibly qualified) name at `at`, as the server folds it, without its schema; and
/// the index after it. For columns, constraints, functions and types; a table or view is
/// read with [`relation_at`], which keeps its schema.
pub(super) fn name_at(tokens: Tokens<'_, '_>, at: usize) -> Option<(String, usize)> {
    let (mut parts, after) = name_parts(tokens, at)?;
    Some((parts.pop()?, after))
}

/// The schema an unqualified name is taken to be in: `public.t` and `t` are one relation.
/// A migration runs with the schema calista is given first on `search_path`, then `public`;
/// a folder that writes one table both ways only runs where they are one (that schema is
/// `public`, or the table is in `public` alone).
const DEFAULT_SCHEMA: &str = "public";

/// A relation's key in the lint's state: its name, or `schema.name` for a schema other than
/// [`DEFAULT_SCHEMA`]. A part holding `.` or `"` is quoted, so that no two relations share a
/// key (`"a.b"` is not `a.b`).
pub(super) fn relation_key(schema: Option<&str>, name: &str) -> String {
    let part = |p: &str| {
        if p.contains(['.', '"']) {
            format!("\"{}\"", p.replace('"', "\"\""))
        } else {
            p.to_owned()
        }
    };
    match schema.filter(|&s| s != DEFAULT_SCHEMA) {
        Some(schema) => format!("{}.{}", part(schema), part(name)),
        None => part(name),
    }
}

/// The schema part of a relation's key (as the key writes it), if it has one.
fn key_schema(key: &str) -> Option<&str> {
    let end = if let Some(quoted) = key.strip_prefix('"') {
        // The closing quote: one not doubled.
        let mut chars = quoted.char_indices().peekable();
        let mut close = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().is_some_and(|&(_, n)| n == '"') {
                    chars.next();
                } else {
                    close = Some(i + 2);
                    break;
                }
            }
        }
        close?
    } else {
        key.find('.')?
    };
    (key.get(end..end + 1) == Some(".")).then(|| &key[..end])
}

/// The key of a relation named `name` (a key without a schema) in the schema of `sibling`'s
/// key: `ALTER TABLE app.t RENAME TO u` names `app.u`.
pub(super) fn in_schema_of(sibling: &str, name: &str) -> String {
    match key_schema(sibling) {
        Some(schema) => format!("{schema}.{name}"),
        None => name.to_owned(),
    }
}

/// The key of relation `key` moved to schema `schema` (`ALTER TABLE … SET SCHEMA`).
pub(super) fn moved_to_schema(key: &str, schema: &str) -> String {
    let name = match key_schema(key) {
        Some(prefix) => &key[prefix.len() + 1..],
        None => key,
    };
    match schema {
        DEFAULT_SCHEMA => name.to_owned(),
        _ => format!("{}.{name}", relation_key(None, schema)),
    }
}

/// The relation (table, view) named at `at`, as its key in the lint's state
/// ([`relation_key`]: with its schema where one other than `public` is written), and the
/// index after it. A name with three parts (`db.schema.t`) keeps the last two.
pub(super) fn relation_at(tokens: Tokens<'_, '_>, at: usize) -> Option<(String, usize)> {
    let (mut parts, after) = name_parts(tokens, at)?;
    let name = parts.pop()?;
    Some((relation_key(parts.last().map(String::as_str), &name), after))
}

/// The comma-separated relations from `at` (`DROP TABLE a, b CASCADE`), as their keys.
pub(super) fn relations_from(tokens: Tokens<'_, '_>, at: usize) -> Vec<String> {
    list_from(tokens, at, relation_at)
}

/// The comma-separated names from `at` (`(a, b)`), without their schema.
pub(super) fn names_from(tokens: Tokens<'_, '_>, at: usize) -> Vec<String> {
    list_from(tokens, at, name_at)
}

/// The comma-separated names from `at`, each as `read` reads it.
fn list_from(
    tokens: Tokens<'_, '_>,
    mut at: usize,
    read: fn(Tokens<'_, '_>, usize) -> Option<(String, usize)>,
) -> Vec<String> {
    let mut names = Vec::new();
    while let Some((name, after)) = read(tokens, at) {
        names.push(name);
        if punct(tokens, after, ",") {
            at = after + 1;
        } else {
            break;
        }
    }
    names
}

/// The index just past the parenthesised group that opens at `at` (which must be `(`).
fn past_group(tokens: Tokens<'_, '_>, at: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(at) {
        match t.text {
            "(" => depth += 1,
            ")" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        if depth == 0 {
            return None;
        }
    }
    None
}

/// The tokens split at commas outside parentheses.
pub(super) fn split_top_level<'t, 'a>(tokens: Tokens<'t, 'a>) -> Vec<Tokens<'t, 'a>> {
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

/// The index of each token outside parentheses, in order.
fn top_level<'t>(tokens: Tokens<'t, '_>) -> impl Iterator<Item = usize> + 't {
    let mut depth = 0usize;
    tokens.iter().enumerate().filter_map(move |(i, t)| {
        let at_top = depth == 0 && t.text != "(";
        match t.text {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            _ => {}
        }
        at_top.then_some(i)
    })
}

/// Whether a top-level token from `from` on is the word `keyword`.
fn top_level_keyword(tokens: Tokens<'_, '_>, from: usize, keyword: &str) -> bool {
    top_level(tokens).any(|i| i >= from && tokens[i].is_keyword(keyword))
}

/// Where the statement's own verb is: 0, or for `WITH … AS (…) DELETE …` the verb after the
/// common table expressions.
pub(super) fn verb(tokens: Tokens<'_, '_>) -> usize {
    if !kw(tokens, 0, "WITH") {
        return 0;
    }
    const VERBS: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES"];
    top_level(tokens)
        .skip(1)
        .find(|&i| VERBS.iter().any(|v| tokens[i].is_keyword(v)))
        .unwrap_or(0)
}

/// Whether `WHERE` bounds the statement whose verb is at `verb` (not only a subquery in it).
pub(super) fn has_where(tokens: Tokens<'_, '_>, verb: usize) -> bool {
    top_level_keyword(tokens, verb, "WHERE")
}

/// Whether a `CASCADE` drops dependents (not `ON DELETE CASCADE` in a foreign key).
pub(super) fn cascades(tokens: Tokens<'_, '_>) -> bool {
    tokens.windows(2).any(|w| {
        w[1].is_keyword("CASCADE") && !(w[0].is_keyword("DELETE") || w[0].is_keyword("UPDATE"))
    })
}

/// `ALTER TABLE [IF EXISTS] [ONLY] t action, …`: the table and its actions.
pub(super) fn alter_table<'t, 'a>(tokens: Tokens<'t, 'a>) -> Option<(String, Vec<Tokens<'t, 'a>>)> {
    if !(kw(tokens, 0, "ALTER") && kw(tokens, 1, "TABLE")) {
        return None;
    }
    let mut at = skip_if_exists(tokens, 2);
    at += usize::from(kw(tokens, at, "ONLY"));
    let (table, after) = relation_at(tokens, at)?;
    Some((table, split_top_level(&tokens[after..])))
}

/// The key of the name `ALTER TABLE table action` gives the table: `RENAME TO u` (in the
/// table's schema) or `SET SCHEMA s`. `None` for other actions.
pub(super) fn new_table_name(table: &str, action: Tokens<'_, '_>) -> Option<String> {
    if kw(action, 0, "RENAME") && kw(action, 1, "TO") {
        let (to, _) = relation_at(action, 2)?;
        Some(in_schema_of(table, &to))
    } else if kw(action, 0, "SET") && kw(action, 1, "SCHEMA") {
        let (schema, _) = name_at(action, 2)?;
        Some(moved_to_schema(table, &schema))
    } else {
        None
    }
}

/// Where the column name of an `ADD`, `DROP`, `ALTER` or `RENAME` action stands: after the
/// optional `COLUMN` (and for `ADD`, `IF NOT EXISTS`; for `DROP`, `IF EXISTS`).
pub(super) fn action_column(action: Tokens<'_, '_>) -> Option<(String, usize)> {
    let at = if kw(action, 1, "COLUMN") { 2 } else { 1 };
    let at = if kw(action, 0, "ADD") {
        skip_if_not_exists(action, at)
    } else {
        skip_if_exists(action, at)
    };
    name_at(action, at)
}

/// The words a table constraint starts with, in `ALTER TABLE … ADD` and `CREATE TABLE (…)`.
const CONSTRAINTS: &[&str] = &[
    "CONSTRAINT",
    "PRIMARY",
    "UNIQUE",
    "CHECK",
    "FOREIGN",
    "EXCLUDE",
];

/// Whether an `ADD` action adds a column (not a constraint).
pub(super) fn adds_a_column(action: Tokens<'_, '_>) -> bool {
    kw(action, 0, "ADD") && !CONSTRAINTS.iter().any(|c| kw(action, 1, c))
}

/// What a `CREATE` statement creates that rows live in or are read from: a table of any
/// kind (temporary, unlogged, foreign, a partition, `AS SELECT`), a view or a materialized
/// view. Its name.
pub(super) fn created_relation(tokens: Tokens<'_, '_>) -> Option<String> {
    creation(tokens).map(|c| c.name)
}

/// A `CREATE … TABLE` or `CREATE … VIEW` statement's name, whether it is a table, and the
/// index after the name.
pub(super) struct Creation {
    pub(super) name: String,
    table: bool,
    after: usize,
}

pub(super) fn creation(tokens: Tokens<'_, '_>) -> Option<Creation> {
    const MODIFIERS: &[&str] = &[
        "OR",
        "REPLACE",
        "GLOBAL",
        "LOCAL",
        "TEMP",
        "TEMPORARY",
        "UNLOGGED",
        "FOREIGN",
        "MATERIALIZED",
        "RECURSIVE",
    ];
    if !kw(tokens, 0, "CREATE") {
        let (name, after) = select_into(tokens)?;
        return Some(Creation {
            name,
            table: true,
            after,
        });
    }
    let mut at = 1;
    while MODIFIERS.iter().any(|m| kw(tokens, at, m)) {
        at += 1;
    }
    let table = kw(tokens, at, "TABLE");
    if !(table || kw(tokens, at, "VIEW")) {
        return None;
    }
    let (name, after) = relation_at(tokens, skip_if_not_exists(tokens, at + 1))?;
    Some(Creation { name, table, after })
}

/// `SELECT … INTO [[GLOBAL | LOCAL] TEMPORARY | TEMP | UNLOGGED] [TABLE] t [FROM …]`, also
/// after `WITH …`: PostgreSQL creates table `t` and fills it with the query's rows, as
/// `CREATE TABLE t AS` does. The table's key and the index after its name.
fn select_into(tokens: Tokens<'_, '_>) -> Option<(String, usize)> {
    const MODIFIERS: &[&str] = &["GLOBAL", "LOCAL", "TEMPORARY", "TEMP", "UNLOGGED", "TABLE"];
    let mut at = select_into_at(tokens)? + 1;
    while MODIFIERS.iter().any(|m| kw(tokens, at, m)) {
        at += 1;
    }
    relation_at(tokens, at)
}

/// The `INTO` of a `SELECT … INTO t` (also after `WITH …`), which only PostgreSQL runs.
pub(super) fn select_into_at(tokens: Tokens<'_, '_>) -> Option<usize> {
    let verb = verb(tokens);
    if !kw(tokens, verb, "SELECT") {
        return None;
    }
    top_level(tokens).find(|&i| i > verb && tokens[i].is_keyword("INTO"))
}

/// `CREATE … TABLE t (col type …, …)`: the table and each column with its type's tokens.
/// `None` for a table whose columns are not written out (`AS`, `PARTITION OF`, `OF type`).
pub(super) fn created_columns<'t, 'a>(
    tokens: Tokens<'t, 'a>,
    creation: &Creation,
) -> Option<Vec<(String, Tokens<'t, 'a>)>> {
    let columns = created_elements(tokens, creation)?
        .into_iter()
        .filter(|element| !is_table_constraint(element))
        .filter_map(|element| {
            let (column, at) = name_at(element, 0)?;
            Some((column, &element[at..]))
        })
        .collect();
    Some(columns)
}

/// `CREATE … TABLE t (…, [CONSTRAINT c] PRIMARY KEY (a, b), …)`: the columns of the table's
/// primary key constraint, if it has one.
pub(super) fn created_primary_key(tokens: Tokens<'_, '_>, creation: &Creation) -> Vec<String> {
    let elements = created_elements(tokens, creation).unwrap_or_default();
    elements
        .into_iter()
        .flat_map(|element| primary_key_columns(element, 0))
        .collect()
}

/// The elements of a `CREATE … TABLE t (…)` list: columns and table constraints.
fn created_elements<'t, 'a>(
    tokens: Tokens<'t, 'a>,
    creation: &Creation,
) -> Option<Vec<Tokens<'t, 'a>>> {
    let after = creation.after;
    if !creation.table || !punct(tokens, after, "(") {
        return None;
    }
    let close = past_group(tokens, after)?;
    Some(split_top_level(&tokens[after + 1..close - 1]))
}

/// `[CONSTRAINT c] PRIMARY KEY (a, b) …` from `at`: the columns; none for anything else
/// (`PRIMARY KEY USING INDEX ix` included, whose columns are not written).
pub(super) fn primary_key_columns(tokens: Tokens<'_, '_>, at: usize) -> Vec<String> {
    let at = if kw(tokens, at, "CONSTRAINT") {
        at + 2
    } else {
        at
    };
    if !(kw(tokens, at, "PRIMARY") && kw(tokens, at + 1, "KEY") && punct(tokens, at + 2, "(")) {
        return Vec::new();
    }
    match past_group(tokens, at + 2) {
        Some(close) => names_from(&tokens[at + 3..close - 1], 0),
        None => Vec::new(),
    }
}

/// Whether a column definition's tokens after its name say `NOT NULL` or `PRIMARY KEY`
/// (outside parentheses: not a `CHECK (c IS NOT NULL)`).
pub(super) fn declares_not_null(definition: Tokens<'_, '_>) -> bool {
    let top: Vec<usize> = top_level(definition).collect();
    top.windows(2).any(|w| {
        w[1] == w[0] + 1
            && definition[w[0]].is_keyword("NOT")
            && definition[w[1]].is_keyword("NULL")
    }) || top.iter().any(|&i| definition[i].is_keyword("PRIMARY"))
}

/// Whether an element of a `CREATE TABLE` list is a table constraint or `LIKE`, not a column.
fn is_table_constraint(element: Tokens<'_, '_>) -> bool {
    kw(element, 0, "LIKE") || CONSTRAINTS.iter().any(|c| kw(element, 0, c))
}

/// A string column's type, as far as widening it goes: `varchar(n)` (and `character
/// varying(n)`) holds at most `n` characters; `text` and `varchar` without a length hold any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StringType {
    /// At most this many characters.
    Bounded(u32),
    /// Any string.
    Unbounded,
}

impl StringType {
    /// Whether every value of `self` fits `wider` unchanged: PostgreSQL then changes the
    /// type without rewriting the table or checking a row.
    pub(super) fn fits(self, wider: StringType) -> bool {
        match (self, wider) {
            (_, StringType::Unbounded) => true,
            (StringType::Bounded(n), StringType::Bounded(m)) => n <= m,
            (StringType::Unbounded, StringType::Bounded(_)) => false,
        }
    }
}

/// A column's type as PostgreSQL knows it, whatever the spelling (`int4`, `int` and
/// `integer` alike; `VARCHAR (32)` and `character varying(32)` alike), with its modifiers and
/// array brackets: two equal ones are the same type, and changing a column from one to
/// the other changes nothing stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ColumnType(String);

impl ColumnType {
    /// Whether PostgreSQL changes a column of this type to `new` without rewriting the
    /// table or checking a row, every value kept as it is: the same type; a string type
    /// widened (see [`StringType::fits`]); a `numeric` whose precision grows at the same
    /// scale, or loses its bounds; a time, timestamp or interval whose fractional digits grow,
    /// or lose their bound.
    pub(super) fn keeps_values_as(&self, new: &ColumnType) -> bool {
        if self == new {
            return true;
        }
        if let (Some(old), Some(new)) = (self.string(), new.string()) {
            return old.fits(new);
        }
        let (Some((base, old)), Some((new_base, new))) = (self.modifiers(), new.modifiers()) else {
            return false;
        };
        if base != new_base {
            return false;
        }
        match (base, old.as_slice(), new.as_slice()) {
            ("numeric" | "timestamp" | "timestamptz" | "time" | "timetz" | "interval", _, []) => {
                true
            }
            ("numeric", [p] | [p, 0], [q] | [q, 0]) => q >= p,
            ("numeric", [p, s], [q, t]) => s == t && q >= p,
            ("timestamp" | "timestamptz" | "time" | "timetz" | "interval", [p], [q]) => q >= p,
            _ => false,
        }
    }

    /// The type's name and its numeric modifiers (`numeric(10,2)`: `numeric`, `[10, 2]`);
    /// `None` for an array or a modifier that is not a number.
    fn modifiers(&self) -> Option<(&str, Vec<u32>)> {
        if self.0.ends_with(']') {
            return None;
        }
        let Some((base, rest)) = self.0.split_once('(') else {
            return Some((&self.0, Vec::new()));
        };
        let list = rest.strip_suffix(')')?;
        let numbers = list
            .split(',')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        Some((base, numbers))
    }

    /// The string type it is, as far as widening it goes; `None` for any other type
    /// (arrays of strings and `char(n)`, which pads, included).
    pub(super) fn string(&self) -> Option<StringType> {
        match self.0.as_str() {
            "text" | "varchar" => Some(StringType::Unbounded),
            other => {
                let length = other.strip_prefix("varchar(")?.strip_suffix(')')?;
                Some(StringType::Bounded(length.parse().ok()?))
            }
        }
    }
}

/// PostgreSQL's own name of a type word, for the names it gives several spellings.
fn canonical_type(word: &str) -> &str {
    match word {
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "decimal" => "numeric",
        "character" | "char" => "bpchar",
        other => other,
    }
}

/// The column type its tokens begin with, and the index after it; `None` if they do not
/// begin with a type name.
pub(super) fn column_type(tokens: Tokens<'_, '_>) -> Option<(ColumnType, usize)> {
    let first = tokens.first()?;
    let (mut name, mut at) = name_at(tokens, 0)?;
    if first.kind == TokenKind::Word {
        name = canonical_type(&name).to_owned();
        let second = |word| kw(tokens, at, word);
        if name == "bpchar" && second("VARYING") {
            (name, at) = ("varchar".to_owned(), at + 1);
        } else if name == "double" && second("PRECISION") {
            (name, at) = ("float8".to_owned(), at + 1);
        } else if name == "bit" && second("VARYING") {
            (name, at) = ("varbit".to_owned(), at + 1);
        }
    } else {
        // A quoted name is never an alias: `"char"` is a type of its own.
        name = format!("\"{name}\"");
    }
    if punct(tokens, at, "(") {
        let close = past_group(tokens, at)?;
        name.extend(tokens[at..close].iter().map(|t| t.text));
        at = close;
    } else if name == "bpchar" && first.kind == TokenKind::Word && !kw(tokens, 0, "BPCHAR") {
        name.push_str("(1)"); // `char` is `char(1)`
    }
    // Quoted names start with `"`: only the words name these.
    if name == "time" || name.starts_with("time(") || name.starts_with("timestamp") {
        let zone = |with: &str| {
            kw(tokens, at, with) && kw(tokens, at + 1, "TIME") && kw(tokens, at + 2, "ZONE")
        };
        if zone("WITH") {
            let (base, modifiers) = name.split_at(name.find('(').unwrap_or(name.len()));
            name = format!("{base}tz{modifiers}");
            at += 3;
        } else if zone("WITHOUT") {
            at += 3;
        }
    }
    loop {
        if punct(tokens, at, "[") {
            let close = (at..tokens.len()).find(|&i| punct(tokens, i, "]"))?;
            name.push_str("[]");
            at = close + 1;
        } else if kw(tokens, at, "ARRAY") {
            name.push_str("[]");
            at += 1;
            if punct(tokens, at, "[") {
                at = (at..tokens.len()).find(|&i| punct(tokens, i, "]"))? + 1;
            }
        } else {
            return Some((ColumnType(name), at));
        }
    }
}

/// `ALTER [COLUMN] c [SET DATA] TYPE …`: the column and the new type's tokens (to the end of
/// the action: `COLLATE` and `USING` included).
pub(super) fn type_change<'t, 'a>(action: Tokens<'t, 'a>) -> Option<(String, Tokens<'t, 'a>)> {
    if !kw(action, 0, "ALTER") {
        return None;
    }
    let (column, at) = action_column(action)?;
    if kw(action, at, "TYPE") {
        Some((column, &action[at + 1..]))
    } else if kw(action, at, "SET") && kw(action, at + 1, "DATA") && kw(action, at + 2, "TYPE") {
        Some((column, &action[at + 3..]))
    } else {
        None
    }
}

/// `ALTER [COLUMN] c SET NOT NULL` or `… DROP NOT NULL`: the column, and whether it is now
/// `NOT NULL`.
pub(super) fn nullability_change(action: Tokens<'_, '_>) -> Option<(String, bool)> {
    if !kw(action, 0, "ALTER") {
        return None;
    }
    let (column, at) = action_column(action)?;
    let not_null = kw(action, at + 1, "NOT") && kw(action, at + 2, "NULL");
    if !not_null || at + 3 != action.len() {
        return None;
    }
    if kw(action, at, "SET") {
        Some((column, true))
    } else if kw(action, at, "DROP") {
        Some((column, false))
    } else {
        None
    }
}

/// `CHECK (c IS NOT NULL)` at `at` (the word `CHECK`): the column.
pub(super) fn not_null_check(tokens: Tokens<'_, '_>, at: usize) -> Option<String> {
    if !kw(tokens, at, "CHECK") {
        return None;
    }
    let end = past_group(tokens, at + 1)?;
    let mut inner = &tokens[at + 1..end];
    while inner.len() >= 2
        && inner[0].text == "("
        && inner[inner.len() - 1].text == ")"
        && past_group(inner, 0) == Some(inner.len())
    {
        inner = &inner[1..inner.len() - 1];
    }
    let (column, after) = name_at(inner, 0)?;
    let rest = &inner[after..];
    let is_not_null = rest.len() == 3
        && rest[0].is_keyword("IS")
        && rest[1].is_keyword("NOT")
        && rest[2].is_keyword("NULL");
    (after == 1 && is_not_null).then_some(column)
}

/// Whether an action ends in `NOT VALID`.
pub(super) fn not_valid(action: Tokens<'_, '_>) -> bool {
    action
        .windows(2)
        .any(|w| w[0].is_keyword("NOT") && w[1].is_keyword("VALID"))
}

/// Whether an action attaches an existing index (`… USING INDEX ix`, not `USING INDEX
/// TABLESPACE`, which only says where a new one goes).
pub(super) fn uses_an_index(action: Tokens<'_, '_>) -> bool {
    action.windows(3).any(|w| {
        w[0].is_keyword("USING") && w[1].is_keyword("INDEX") && !w[2].is_keyword("TABLESPACE")
    })
}

/// `INSERT INTO y [(cols)] SELECT … FROM x`, `CREATE TABLE y AS SELECT … FROM x` or
/// `SELECT … INTO y FROM x`, copying every row of `x`: `(y, x)`. Nothing for a copy that can
/// leave rows behind or merge them (`WHERE`, a join, `GROUP BY`, `DISTINCT`, `LIMIT`, a set
/// operation, `ON CONFLICT`, SQLite's `INSERT OR IGNORE`).
pub(super) fn whole_copy(tokens: Tokens<'_, '_>) -> Option<(String, String)> {
    let (target, source, after) = copy(tokens)?;
    let lossy = top_level(tokens)
        .filter(|&i| i >= after)
        .any(|i| lossy(tokens, i));
    (!lossy).then_some((target, source))
}

/// The same copies as [`whole_copy`], but of the rows a `WHERE` at its end selects, read as a
/// [`Condition`]: `(y, x, condition)`. Nothing for a condition not of that form, or a copy
/// that may lose rows otherwise.
pub(super) fn copy_where(tokens: Tokens<'_, '_>) -> Option<(String, String, Condition)> {
    let (target, source, after) = copy(tokens)?;
    let mut lossy_at = top_level(tokens).filter(|&i| i >= after && lossy(tokens, i));
    let at = lossy_at.next().filter(|&i| tokens[i].is_keyword("WHERE"))?;
    if lossy_at.next().is_some() {
        return None;
    }
    Some((target, source, Condition::read(&tokens[at + 1..])?))
}

/// Whether the top-level token at `i` of a copy's query may leave rows behind or merge them.
fn lossy(tokens: Tokens<'_, '_>, i: usize) -> bool {
    const LOSSY: &[&str] = &[
        "WHERE",
        "JOIN",
        "GROUP",
        "HAVING",
        "LIMIT",
        "OFFSET",
        "FETCH",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "CONFLICT",
        "WITH",
    ];
    tokens[i].text == "," || LOSSY.iter().any(|k| tokens[i].is_keyword(k))
}

/// A copy's target, source, and the index after the source's name; `None` for a statement
/// that is not `INSERT INTO y … SELECT … FROM x …`, `CREATE TABLE y AS SELECT …` / `AS TABLE x`
/// or `SELECT … INTO y FROM x …`, or a `SELECT DISTINCT`.
fn copy(tokens: Tokens<'_, '_>) -> Option<(String, String, usize)> {
    let (target, select) = if kw(tokens, 0, "INSERT") && kw(tokens, 1, "INTO") {
        let (target, mut at) = relation_at(tokens, 2)?;
        if punct(tokens, at, "(") {
            at = past_group(tokens, at)?;
        }
        (target, at)
    } else if kw(tokens, 0, "SELECT") {
        (select_into(tokens)?.0, 0)
    } else {
        // A view holds no rows: only a table made `AS SELECT` is a copy.
        let created = creation(tokens).filter(|c| c.table)?;
        if !kw(tokens, created.after, "AS") {
            return None;
        }
        (created.name, created.after + 1)
    };
    if kw(tokens, select, "TABLE") {
        let (source, after) = relation_at(tokens, select + 1)?;
        return (after == tokens.len()).then_some((target, source, after));
    }
    if !kw(tokens, select, "SELECT") || kw(tokens, select + 1, "DISTINCT") {
        return None;
    }
    let from = top_level(tokens).find(|&i| i > select && tokens[i].is_keyword("FROM"))?;
    let (source, after) = relation_at(tokens, from + 1)?;
    Some((target, source, after))
}

/// A `WHERE` condition on one column that a copy can be split by: `c = v`, `c != v` (or
/// `<>`), `c IS [NOT] NULL`, `c IS [NOT] DISTINCT FROM v`, SQLite's `c IS [NOT] v`, each
/// possibly in parentheses or after `NOT`, with `v` one literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Condition {
    column: String,
    value: String,
    /// Whether it holds where the column equals the value (`=`), or where it does not.
    equal: bool,
    /// Whether a null column makes it true or false (`IS …`), not null (`=`, `!=`).
    null_safe: bool,
}

impl Condition {
    /// The condition its tokens write, if it is one of the forms above.
    fn read(tokens: Tokens<'_, '_>) -> Option<Condition> {
        let mut inner = tokens;
        let mut negated = false;
        loop {
            if kw(inner, 0, "NOT") {
                negated = !negated;
                inner = &inner[1..];
            } else if punct(inner, 0, "(") && past_group(inner, 0) == Some(inner.len()) {
                inner = &inner[1..inner.len() - 1];
            } else {
                break;
            }
        }
        let (column, at) = name_at(inner, 0)?;
        let rest = &inner[at..];
        let (equal, null_safe, value) = match rest {
            [is, null] if is.is_keyword("IS") && null.is_keyword("NULL") => (true, true, *null),
            [is, not, null]
                if is.is_keyword("IS") && not.is_keyword("NOT") && null.is_keyword("NULL") =>
            {
                (false, true, *null)
            }
            [is, not, distinct, from, value]
                if is.is_keyword("IS")
                    && not.is_keyword("NOT")
                    && distinct.is_keyword("DISTINCT")
                    && from.is_keyword("FROM") =>
            {
                (true, true, *value)
            }
            [is, distinct, from, value]
                if is.is_keyword("IS")
                    && distinct.is_keyword("DISTINCT")
                    && from.is_keyword("FROM") =>
            {
                (false, true, *value)
            }
            [is, not, value] if is.is_keyword("IS") && not.is_keyword("NOT") => {
                (false, true, *value)
            }
            [is, value] if is.is_keyword("IS") => (true, true, *value),
            [op, value] if op.kind == TokenKind::Punct && matches!(op.text, "=" | "==") => {
                (true, false, *value)
            }
            [op, value] if op.kind == TokenKind::Punct && matches!(op.text, "!=" | "<>") => {
                (false, false, *value)
            }
            _ => return None,
        };
        // `= NULL` holds nowhere, so it cannot be a half.
        let literal = matches!(value.kind, TokenKind::String | TokenKind::Number)
            || value.is_keyword("TRUE")
            || value.is_keyword("FALSE")
            || null_safe && value.is_keyword("NULL");
        literal.then(|| Condition {
            column,
            value: value.text.to_lowercase(),
            equal: equal != negated,
            null_safe,
        })
    }

    /// The column it reads.
    pub(super) fn column(&self) -> &str {
        &self.column
    }

    /// Whether every row matches exactly one of `self` and `other`: the same column and value,
    /// opposite senses, and no row where neither holds (a null column, unless both are
    /// `IS …` forms or the column is `NOT NULL`).
    pub(super) fn complements(&self, other: &Condition, not_null: bool) -> bool {
        self.column == other.column
            && self.value == other.value
            && self.equal != other.equal
            && (self.null_safe && other.null_safe || not_null)
    }
}

/// `UPDATE [ONLY] t [[AS] alias] SET a = …, (b, c) = …`: the table and the columns it sets.
pub(super) fn update_targets(tokens: Tokens<'_, '_>, verb: usize) -> Option<(String, Vec<String>)> {
    let at = verb + 1 + usize::from(kw(tokens, verb + 1, "ONLY"));
    let (table, _) = relation_at(tokens, at)?;
    let set = top_level(tokens).find(|&i| i > at && tokens[i].is_keyword("SET"))?;
    let end = top_level(tokens)
        .find(|&i| {
            i > set
                && ["FROM", "WHERE", "RETURNING"]
                    .iter()
                    .any(|k| tokens[i].is_keyword(k))
        })
        .unwrap_or(tokens.len());
    let mut columns = Vec::new();
    for assignment in split_top_level(&tokens[set + 1..end]) {
        if punct(assignment, 0, "(") {
            let close = past_group(assignment, 0)?;
            columns.extend(names_from(&assignment[1..close - 1], 0));
        } else {
            columns.push(name_at(assignment, 0)?.0);
        }
    }
    Some((table, columns))
}

/// `UPDATE t SET a = b, … [WHERE true]` (no `FROM`, no other `WHERE`), setting on every row
/// a column to another column's value unchanged: the table and each `(a, b)`. Nothing for
/// other statements.
pub(super) fn column_copies(tokens: Tokens<'_, '_>) -> Option<(String, Vec<(String, String)>)> {
    /// Words that stand where a column could, and are values.
    const VALUES: &[&str] = &[
        "TRUE",
        "FALSE",
        "NULL",
        "DEFAULT",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "CURRENT_USER",
        "SESSION_USER",
        "USER",
    ];
    if !kw(tokens, 0, "UPDATE") {
        return None;
    }
    let clause = |keyword| top_level(tokens).find(|&i| tokens[i].is_keyword(keyword));
    if clause("FROM").is_some() {
        return None;
    }
    let end = match clause("WHERE") {
        Some(at) if kw(tokens, at + 1, "TRUE") && at + 2 == tokens.len() => at,
        Some(_) => return None,
        None => tokens.len(),
    };
    let (table, _) = update_targets(tokens, 0)?;
    let set = top_level(tokens).find(|&i| tokens[i].is_keyword("SET"))?;
    let copies = split_top_level(&tokens[set + 1..end])
        .into_iter()
        .filter_map(|assignment| {
            let (target, at) = name_at(assignment, 0)?;
            let value = assignment
                .get(at + 1..)
                .filter(|_| punct(assignment, at, "="))?;
            let (source, after) = name_at(value, 0)?;
            let lone = after == value.len() && !VALUES.iter().any(|v| value[0].is_keyword(v));
            lone.then_some((target, source))
        })
        .collect();
    Some((table, copies))
}

/// How often a function's result may change, as `CREATE FUNCTION` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Volatility {
    /// `IMMUTABLE` or `STABLE`: one value per statement at most, which an `ADD COLUMN`
    /// default stores once.
    Stable,
    /// `VOLATILE`, PostgreSQL's default: a value per row, which rewrites the table.
    Volatile,
}

/// `CREATE [OR REPLACE] FUNCTION f(…) … [IMMUTABLE|STABLE|VOLATILE] …` or `ALTER FUNCTION
/// f(…) …`: the name and the volatility it declares (`CREATE` without a marker: volatile;
/// `ALTER` without one: `None`, unchanged).
pub(super) fn function_volatility(tokens: Tokens<'_, '_>) -> Option<(String, Option<Volatility>)> {
    let creates = kw(tokens, 0, "CREATE");
    let at = if creates && kw(tokens, 1, "OR") && kw(tokens, 2, "REPLACE") {
        3
    } else {
        1
    };
    if !((creates || kw(tokens, 0, "ALTER")) && kw(tokens, at, "FUNCTION")) {
        return None;
    }
    let (name, after) = name_at(tokens, at + 1)?;
    let after = if punct(tokens, after, "(") {
        past_group(tokens, after)?
    } else {
        after
    };
    // The body is one string token, so its words are not seen; a `BEGIN ATOMIC` body is
    // where the clauses end.
    let clauses = tokens[after..]
        .iter()
        .take_while(|t| !t.is_keyword("BEGIN") && !t.is_keyword("RETURN"));
    let mut declared = None;
    for token in clauses {
        if token.is_keyword("IMMUTABLE") || token.is_keyword("STABLE") {
            declared = Some(Volatility::Stable);
        } else if token.is_keyword("VOLATILE") {
            declared = Some(Volatility::Volatile);
        }
    }
    let volatility = match declared {
        None if creates => Some(Volatility::Volatile),
        other => other,
    };
    Some((name, volatility))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::Dialect;
    use crate::sql::statements;

    /// Calls `read` on the significant tokens of `sql`'s first statement.
    fn with<R>(sql: &str, read: impl Fn(Tokens<'_, '_>) -> R) -> R {
        let found = statements(sql, Dialect::Postgres);
        let tokens: Vec<&Token<'_>> = found[0].significant().collect();
        read(&tokens)
    }

    #[test]
    fn relations_of_every_kind_are_created() {
        for (sql, name) in [
            ("CREATE TABLE IF NOT EXISTS app.t (a int)", "app.t"),
            ("CREATE TABLE public.t (a int)", "t"),
            ("CREATE TABLE db.App.t (a int)", "app.t"),
            (
                "CREATE TABLE \"a.b\".\"t\"\"x\" (a int)",
                "\"a.b\".\"t\"\"x\"",
            ),
            ("CREATE UNLOGGED TABLE t AS SELECT 1", "t"),
            ("CREATE TEMP TABLE t (a int)", "t"),
            (
                "CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT 1",
                "mv",
            ),
            ("create or replace view v as select 1", "v"),
            ("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)", "p1"),
            ("CREATE FOREIGN TABLE f (a int) SERVER s", "f"),
            ("CREATE TABLE \"Odd\" (a int)", "Odd"),
        ] {
            assert_eq!(with(sql, created_relation).as_deref(), Some(name), "{sql}");
        }
        for sql in [
            "CREATE INDEX ix ON t (a)",
            "CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        ] {
            assert_eq!(with(sql, created_relation), None, "{sql}");
        }
    }

    #[test]
    fn renamed_and_moved_tables_keep_or_change_their_schema() {
        for (sql, table, to) in [
            ("ALTER TABLE x RENAME TO u", "app.t", "app.u"),
            ("ALTER TABLE x RENAME TO u", "t", "u"),
            ("ALTER TABLE x RENAME TO \"U.v\"", "app.t", "app.\"U.v\""),
            ("ALTER TABLE x RENAME TO u", "\"a.b\".t", "\"a.b\".u"),
            ("ALTER TABLE x RENAME TO u", "\"a\"\"b\".t", "\"a\"\"b\".u"),
            ("ALTER TABLE x RENAME TO u", "\"a.b\"", "u"),
            ("ALTER TABLE x SET SCHEMA app", "t", "app.t"),
            ("ALTER TABLE x SET SCHEMA public", "app.t", "t"),
            (
                "ALTER TABLE x SET SCHEMA \"A.b\"",
                "app.\"t.u\"",
                "\"A.b\".\"t.u\"",
            ),
        ] {
            let found = with(sql, |t| new_table_name(table, &t[3..]));
            assert_eq!(found.as_deref(), Some(to), "{sql} on {table}");
        }
        assert_eq!(
            with("ALTER TABLE x OWNER TO u", |t| new_table_name("t", &t[3..])),
            None
        );
    }

    #[test]
    fn string_types_and_their_bounds() {
        use StringType::{Bounded, Unbounded};
        for (sql, expected) in [
            ("SELECT varchar(40)", Some(Bounded(40))),
            (
                "SELECT character varying (255) NOT NULL",
                Some(Bounded(255)),
            ),
            ("SELECT CHAR VARYING", Some(Unbounded)),
            ("SELECT text", Some(Unbounded)),
            ("SELECT varchar", Some(Unbounded)),
            ("SELECT text[]", None),
            ("SELECT varchar(10) ARRAY", None),
            ("SELECT char(10)", None),
            ("SELECT citext", None),
            ("SELECT bigint", None),
        ] {
            let found = with(sql, |t| column_type(&t[1..]).and_then(|(c, _)| c.string()));
            assert_eq!(found, expected, "{sql}");
        }
        assert!(Bounded(40).fits(Bounded(40)));
        assert!(Bounded(40).fits(Bounded(255)));
        assert!(Bounded(40).fits(Unbounded));
        assert!(Unbounded.fits(Unbounded));
        assert!(!Bounded(255).fits(Bounded(40)));
        assert!(!Unbounded.fits(Bounded(10_000)));
    }

    #[test]
    fn column_types_are_named_as_postgresql_names_them() {
        for (sql, name, after) in [
            ("SELECT integer NOT NULL", "int4", 1),
            ("SELECT INT", "int4", 1),
            ("SELECT character varying (255) NOT NULL", "varchar(255)", 5),
            ("SELECT char", "bpchar(1)", 1),
            ("SELECT character(36)", "bpchar(36)", 4),
            ("SELECT double precision DEFAULT 0", "float8", 2),
            ("SELECT numeric (10, 2)", "numeric(10,2)", 6),
            ("SELECT timestamp(3) with time zone", "timestamptz(3)", 7),
            ("SELECT timestamp without time zone", "timestamp", 4),
            ("SELECT time with time zone", "timetz", 4),
            ("SELECT pg_catalog.int8", "int8", 3),
            ("SELECT text[][]", "text[][]", 5),
            ("SELECT varchar(10) ARRAY", "varchar(10)[]", 5),
            ("SELECT \"char\"", "\"char\"", 1),
            ("SELECT interval day to second", "interval", 1),
        ] {
            let found = with(sql, |t| column_type(&t[1..]).map(|(c, at)| (c.0, at)));
            assert_eq!(found, Some((name.to_owned(), after)), "{sql}");
        }
        assert_eq!(with("SELECT (1)", |t| column_type(&t[1..])), None);
    }

    #[test]
    fn create_table_columns_are_read_with_their_types() {
        let columns = with(
            "CREATE TABLE t (id int PRIMARY KEY, \"Name\" varchar(10) NOT NULL, CONSTRAINT c CHECK (id > 0), body text)",
            |t| {
                let creation = creation(t)?;
                let columns = created_columns(t, &creation)?;
                let names: Vec<String> = columns.into_iter().map(|(c, _)| c).collect();
                Some((creation.name, names))
            },
        );
        assert_eq!(
            columns,
            Some((
                "t".to_owned(),
                vec!["id".into(), "Name".into(), "body".into()]
            ))
        );
        assert_eq!(
            with("CREATE TABLE t AS SELECT a FROM u", |t| created_columns(
                t,
                &creation(t)?
            )
            .map(|c| c.len())),
            None
        );
    }

    #[test]
    fn not_null_checks_are_told_from_other_checks() {
        for (sql, column) in [
            ("CHECK (c IS NOT NULL)", Some("c")),
            ("CHECK ((\"C\" IS NOT NULL))", Some("C")),
            ("CHECK (c IS NOT NULL AND d > 0)", None),
            ("CHECK (c IS NULL)", None),
            ("CHECK (t.c IS NOT NULL)", None),
        ] {
            let found = with(&format!("SELECT {sql}"), |t| not_null_check(t, 1));
            assert_eq!(found.as_deref(), column, "{sql}");
        }
    }

    #[test]
    fn whole_copies_are_told_from_partial_ones() {
        for (sql, copy) in [
            ("INSERT INTO n SELECT * FROM o", Some(("n", "o"))),
            (
                "INSERT INTO n (a, b) SELECT a, lower(b) FROM o ORDER BY a",
                Some(("n", "o")),
            ),
            ("CREATE TABLE n AS SELECT * FROM o", Some(("n", "o"))),
            ("CREATE TEMP TABLE n AS TABLE o", Some(("n", "o"))),
            ("CREATE VIEW n AS SELECT * FROM o", None),
            ("INSERT INTO n SELECT * FROM o WHERE a > 0", None),
            ("INSERT INTO n SELECT * FROM o JOIN p ON o.id = p.id", None),
            ("INSERT INTO n SELECT * FROM o, p", None),
            ("INSERT INTO n SELECT DISTINCT a FROM o", None),
            ("INSERT INTO n SELECT a FROM o GROUP BY a", None),
            ("INSERT INTO n SELECT * FROM o ON CONFLICT DO NOTHING", None),
            ("INSERT OR IGNORE INTO n SELECT * FROM o", None),
            ("INSERT INTO n VALUES (1)", None),
            ("INSERT INTO n SELECT * FROM o UNION SELECT * FROM p", None),
        ] {
            let found = with(sql, whole_copy);
            let expected = copy.map(|(a, b): (&str, &str)| (a.to_owned(), b.to_owned()));
            assert_eq!(found, expected, "{sql}");
        }
    }

    #[test]
    fn update_targets_are_the_columns_set() {
        let found = with(
            "UPDATE ONLY t AS x SET a = (SELECT 1 FROM u WHERE u.b = x.b), (b, c) = (1, 2) FROM v WHERE true",
            |t| update_targets(t, 0),
        );
        assert_eq!(
            found,
            Some(("t".to_owned(), vec!["a".into(), "b".into(), "c".into()]))
        );
        let with_cte = "WITH d AS (SELECT 1) UPDATE t SET a = 1";
        assert_eq!(with(with_cte, verb), 7);
        assert_eq!(
            with(with_cte, |t| update_targets(t, verb(t))),
            Some(("t".to_owned(), vec!["a".into()]))
        );
    }

    #[test]
    fn functions_declare_their_volatility() {
        use Volatility::{Stable, Volatile};
        for (sql, expected) in [
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
                Some(Volatile),
            ),
            (
                "CREATE OR REPLACE FUNCTION app.f(a int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT a'",
                Some(Stable),
            ),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql STABLE BEGIN ATOMIC SELECT 1; END",
                Some(Stable),
            ),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN volatile_thing()",
                Some(Volatile),
            ),
            ("ALTER FUNCTION f() STABLE", Some(Stable)),
            ("ALTER FUNCTION f(int) OWNER TO x", None),
        ] {
            let found = with(sql, function_volatility);
            assert_eq!(found, Some(("f".to_owned(), expected)), "{sql}");
        }
        assert_eq!(
            with("CREATE PROCEDURE f() AS 'x'", function_volatility),
            None
        );
    }

    #[test]
    fn using_index_is_told_from_an_index_tablespace() {
        for (sql, uses) in [
            ("ADD CONSTRAINT k PRIMARY KEY USING INDEX ix", true),
            ("ADD UNIQUE USING INDEX ix", true),
            (
                "ADD CONSTRAINT k UNIQUE (a) USING INDEX TABLESPACE fast",
                false,
            ),
            ("ADD PRIMARY KEY (a)", false),
        ] {
            assert_eq!(with(sql, uses_an_index), uses, "{sql}");
        }
    }
}
