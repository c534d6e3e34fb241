//! Statements of a script, split where the server would end them.

use super::lexer::{Token, TokenKind, tokens};
use crate::migration::Dialect;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement as written, from its first token to its last, without the `;` that
    /// ends it and without comments before it.
    pub text: &'a str,
    /// The byte offset of `text` in the script.
    pub offset: usize,
    /// Its tokens, comments and whitespace inside it included; offsets are in the script.
    pub tokens: Vec<Token<'a>>,
}

impl<'a> Statement<'a> {
    /// The tokens that are not whitespace or comments.
    pub fn significant(&self) -> impl Iterator<Item = &Token<'a>> {
        self.tokens.iter().filter(|t| !t.is_trivia())
    }

    /// Whether the statement begins with these keywords, in any case: `["CREATE", "INDEX"]`
    /// matches `create index …` but not `CREATE UNIQUE INDEX …`.
    pub fn starts_with(&self, keywords: &[&str]) -> bool {
        let mut words = self.significant();
        keywords
            .iter()
            .all(|k| words.next().is_some_and(|t| t.is_keyword(k)))
    }

    /// Its first keywords, upper-cased, up to `n` of them (stopping at the first token
    /// that is not a word): `CREATE UNIQUE INDEX` for `create unique index ix ON t (a)`
    /// with `n` 3.
    pub fn first_keywords(&self, n: usize) -> Vec<String> {
        self.significant()
            .take(n)
            .take_while(|t| t.kind == TokenKind::Word)
            .map(|t| t.text.to_ascii_uppercase())
            .collect()
    }

    /// Whether any word of the statement is `keyword`, in any case.
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.significant().any(|t| t.is_keyword(keyword))
    }

    /// The first line of its text, for messages.
    pub fn first_line(&self) -> &'a str {
        self.text.lines().next().unwrap_or_default().trim_end()
    }

    /// The statement as messages show it: its first line, shortened to 80 characters.
    pub fn shown(&self) -> String {
        const MAX: usize = 80;
        let line = self.first_line();
        match line.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_owned(),
        }
    }
}

/// The statements of `script` in `dialect`, in order; comment-only and empty ones are left
/// out.
///
/// A `;` outside quotes, comments and parentheses ends a statement, except inside a
/// PostgreSQL `BEGIN ATOMIC … END` body or a SQLite `CREATE TRIGGER … BEGIN … END` body,
/// where `CASE … END` inside does not end the body either.
pub fn statements(script: &str, dialect: Dialect) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    let mut current: Vec<Token<'_>> = Vec::new();
    let mut scope = Scope::default();
    for token in tokens(script, dialect) {
        if token.kind == TokenKind::Punct && token.text == ";" && scope.at_top() {
            push(&mut out, script, std::mem::take(&mut current));
            scope = Scope::default();
            continue;
        }
        if !token.is_trivia() {
            scope.see(&token, dialect);
        }
        current.push(token);
    }
    push(&mut out, script, current);
    out
}

/// Ends a statement: trims trivia from both ends and drops it if nothing is left.
fn push<'a>(out: &mut Vec<Statement<'a>>, script: &'a str, mut tokens: Vec<Token<'a>>) {
    let Some(first) = tokens.iter().position(|t| !t.is_trivia()) else {
        return;
    };
    let last = tokens.iter().rposition(|t| !t.is_trivia()).unwrap_or(first);
    tokens.truncate(last + 1);
    tokens.drain(..first);
    let (Some(start), Some(end)) = (tokens.first(), tokens.last()) else {
        return;
    };
    let (offset, end) = (start.offset, end.end());
    out.push(Statement {
        text: &script[offset..end],
        offset,
        tokens,
    });
}

/// Where the splitter is inside one statement.
#[derive(Debug, Default)]
struct Scope {
    /// Open parentheses (PostgreSQL's `CREATE RULE … DO ALSO (a; b)` holds `;`).
    parens: usize,
    /// Open bodies and `CASE`s: a `;` inside a body belongs to it, an `END` closes one.
    blocks: usize,
    /// The statement's leading words so far, to recognise `CREATE [TEMP] TRIGGER`.
    leading: Vec<Leading>,
    /// The previous significant token was the word `BEGIN`.
    after_begin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leading {
    Create,
    Temp,
    Trigger,
    Other,
}

impl Scope {
    fn at_top(&self) -> bool {
        self.parens == 0 && self.blocks == 0
    }

    fn is_trigger(&self) -> bool {
        matches!(
            self.leading.as_slice(),
            [Leading::Create, Leading::Trigger, ..]
                | [Leading::Create, Leading::Temp, Leading::Trigger, ..]
        )
    }

    fn see(&mut self, token: &Token<'_>, dialect: Dialect) {
        if self.leading.len() < 3 {
            self.leading.push(match token {
                t if t.is_keyword("CREATE") => Leading::Create,
                t if t.is_keyword("TEMP") || t.is_keyword("TEMPORARY") => Leading::Temp,
                t if t.is_keyword("TRIGGER") => Leading::Trigger,
                _ => Leading::Other,
            });
        }
        let after_begin = std::mem::replace(&mut self.after_begin, token.is_keyword("BEGIN"));
        match token.kind {
            TokenKind::Punct if token.text == "(" => self.parens += 1,
            TokenKind::Punct if token.text == ")" => self.parens = self.parens.saturating_sub(1),
            TokenKind::Word => match dialect {
                Dialect::Postgres if after_begin && token.is_keyword("ATOMIC") => self.blocks += 1,
                Dialect::Sqlite if token.is_keyword("BEGIN") && self.is_trigger() => {
                    self.blocks += 1;
                }
                _ if token.is_keyword("CASE") && self.blocks > 0 => self.blocks += 1,
                _ if token.is_keyword("END") => self.blocks = self.blocks.saturating_sub(1),
                _ => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{Postgres, Sqlite};

    fn texts(script: &str, dialect: Dialect) -> Vec<&str> {
        statements(script, dialect)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let script = "CREATE INDEX CONCURRENTLY a ON t (x);\n-- a comment; with a semicolon\n\
                      INSERT INTO t VALUES ('a;b', \"odd;name\", 'it''s;');\n/* block; /* nested; */ still; */ SELECT 1";
        assert_eq!(
            texts(script, Postgres),
            [
                "CREATE INDEX CONCURRENTLY a ON t (x)",
                "INSERT INTO t VALUES ('a;b', \"odd;name\", 'it''s;')",
                "SELECT 1",
            ]
        );
    }

    #[test]
    fn offsets_point_into_the_script() {
        let script = "  -- lead\n SELECT 1 ;\n\nSELECT 2";
        for s in statements(script, Sqlite) {
            assert_eq!(&script[s.offset..s.offset + s.text.len()], s.text);
        }
        assert_eq!(statements(script, Sqlite)[1].offset, 23);
    }

    #[test]
    fn escape_strings_do_not_end_a_statement() {
        assert_eq!(
            texts(
                r"INSERT INTO t VALUES (E'it\'s; here'); SELECT 1;",
                Postgres
            ),
            [r"INSERT INTO t VALUES (E'it\'s; here')", "SELECT 1"]
        );
    }

    #[test]
    fn begin_atomic_bodies_stay_whole_with_case_inside() {
        let function = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\n\
                        BEGIN ATOMIC\n  INSERT INTO t VALUES (a);\n  \
                        SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\nEND";
        let script = format!("{function};\nSELECT f(1);");
        assert_eq!(texts(&script, Postgres), [function, "SELECT f(1)"]);
    }

    #[test]
    fn transaction_begin_and_end_are_statements_of_their_own() {
        assert_eq!(
            texts("BEGIN; SELECT CASE WHEN true THEN 1 END; END;", Postgres),
            ["BEGIN", "SELECT CASE WHEN true THEN 1 END", "END"]
        );
        assert_eq!(
            texts("BEGIN; CREATE TABLE t (a); COMMIT;", Sqlite),
            ["BEGIN", "CREATE TABLE t (a)", "COMMIT"]
        );
    }

    #[test]
    fn sqlite_trigger_bodies_stay_whole_with_case_inside() {
        let trigger = "CREATE TEMP TRIGGER tr AFTER INSERT ON t\n\
                       WHEN CASE WHEN new.a > 0 THEN 1 END\nBEGIN\n  \
                       INSERT INTO log VALUES (CASE new.a WHEN 1 THEN 'one' ELSE 'many' END);\n  \
                       UPDATE t SET a = 0 WHERE a < 0;\nEND";
        let script = format!("{trigger};\nINSERT INTO t VALUES (1);");
        assert_eq!(
            texts(&script, Sqlite),
            [trigger, "INSERT INTO t VALUES (1)"]
        );
    }

    #[test]
    fn semicolons_inside_parentheses_belong_to_the_statement() {
        let rule = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))";
        assert_eq!(
            texts(&format!("{rule}; SELECT 1"), Postgres),
            [rule, "SELECT 1"]
        );
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let script = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n\
                      DO $$ BEGIN PERFORM 1; END $$;\nSELECT $1::int;";
        let found = texts(script, Postgres);
        assert_eq!(found.len(), 3);
        assert!(found[0].ends_with("$body$"));
    }

    #[test]
    fn comment_only_and_empty_statements_are_dropped() {
        assert!(texts("  ;\n-- nothing here\n;/* nor here */", Postgres).is_empty());
        assert_eq!(
            texts("SELECT 1;;SELECT 2;", Sqlite),
            ["SELECT 1", "SELECT 2"]
        );
    }

    #[test]
    fn first_keywords_and_prefixes() {
        let found = statements("create unique index ix ON t (a); \"BEGIN\";", Postgres);
        assert_eq!(found[0].first_keywords(3), ["CREATE", "UNIQUE", "INDEX"]);
        assert!(found[0].starts_with(&["CREATE", "UNIQUE"]));
        assert!(!found[0].starts_with(&["CREATE", "INDEX"]));
        assert!(found[1].first_keywords(2).is_empty());
        assert_eq!(found[0].first_line(), "create unique index ix ON t (a)");
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for script in [
            "'open",
            "$tag$ open",
            "/* open",
            "\"open",
            "$",
            "$$",
            "-- x",
            "$a",
            "BEGIN ATOMIC (",
            "E'\\",
        ] {
            for dialect in Dialect::ALL {
                let _ = statements(script, dialect);
            }
        }
    }
}

#[cfg(test)]
mod examples {
    #[test]
    fn atomic_bodies_stay_whole_and_comments_are_not_statements() {
        use crate::Dialect;
        use crate::sql::statements;

        let script = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n\
                      BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;\n\
                      -- a comment; not a statement\n\
                      INSERT INTO t VALUES (E'it\\'s; here');";
        let found = statements(script, Dialect::Postgres);
        assert_eq!(found.len(), 2);
        assert!(found[0].text.ends_with("END; END"));
        assert_eq!(found[1].text, "INSERT INTO t VALUES (E'it\\'s; here')");
        assert_eq!(&script[found[1].offset..][..6], "INSERT");
    }
}
