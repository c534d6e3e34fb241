//! Tokens of PostgreSQL and SQLite text, with their byte offsets.
//!
//! The lexer covers every byte of its input: the tokens' texts, concatenated, are the input.
//! It never fails and never panics; a quote or comment left open becomes one token running
//! to the end of the text, marked [`Token::terminated`] `false`.

use crate::migration::Dialect;

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A keyword or an unquoted identifier: `CREATE`, `event_store`, `café`.
    Word,
    /// A numeric literal: `42`, `3.14`, `.5e-3`, `0x1F`.
    Number,
    /// A string literal: `'it''s'`, PostgreSQL's `E'it\'s'` (backslash escapes), and the
    /// one-letter prefixed forms `B'…'`, `X'…'`, `N'…'`. The prefix is part of the token.
    String,
    /// PostgreSQL's dollar-quoted string: `$$…$$`, `$body$…$body$`.
    DollarString,
    /// A quoted identifier: `"Name"` (both dialects), and SQLite's `` `name` `` and `[name]`.
    QuotedIdent,
    /// A bound parameter: PostgreSQL's `$1`; SQLite's `?`, `?1`, `:name`, `@name`, `$name`.
    Parameter,
    /// A `--` comment, up to (not including) the end of the line.
    LineComment,
    /// A `/* … */` comment; nested ones are part of it on PostgreSQL, not on SQLite.
    BlockComment,
    /// Spaces, tabs and line breaks.
    Whitespace,
    /// Punctuation: `;`, `,`, `(`, `)`, `.`, `::`, `[`, `]`, or an operator such as `=`,
    /// `<>`, `||`, `->>`. An operator never swallows a following `--` or `/*`.
    Punct,
}

/// One token: its kind, its text, and where it starts in the lexed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: TokenKind,
    /// Its text, exactly as written (quotes, prefixes and comment markers included).
    pub text: &'a str,
    /// Its byte offset in the lexed text.
    pub offset: usize,
    /// `false` for a string, quoted identifier or block comment left open at the end of
    /// the text; `true` for every other token.
    pub terminated: bool,
}

impl Token<'_> {
    /// Whether the token is whitespace or a comment: nothing the server executes.
    pub fn is_trivia(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment
        )
    }

    /// Whether the token is the word `keyword`, in any case (`begin` is `BEGIN`).
    /// Quoted identifiers are never keywords.
    pub fn is_keyword(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    /// The byte offset just past the token.
    pub fn end(&self) -> usize {
        self.offset + self.text.len()
    }
}

/// Keywords to look for in raw text before lexing it: a check that can only fire on one of
/// them skips the text that holds none, which keeps `migrations!()` fast on a thousand files.
#[derive(Debug)]
pub(crate) struct Keywords {
    words: &'static [&'static str],
    shortest: usize,
    longest: usize,
    /// Bit `n` is set when a word starts with the `n`th letter of the alphabet.
    initials: u32,
}

impl Keywords {
    /// The set of `words`, each of ASCII letters only (so that a word token is one run).
    pub(crate) const fn new(words: &'static [&'static str]) -> Self {
        let (mut shortest, mut longest, mut initials, mut i) = (usize::MAX, 0, 0, 0);
        while i < words.len() {
            let word = words[i].as_bytes();
            if word.len() < shortest {
                shortest = word.len();
            }
            if word.len() > longest {
                longest = word.len();
            }
            initials |= initial(word[0]);
            i += 1;
        }
        Keywords {
            words,
            shortest,
            longest,
            initials,
        }
    }

    /// Whether `text` holds one of the words, in any case, as a run of ASCII letters
    /// (in a string or comment too). The lexer reads a word token only where such a run
    /// is, so `false` means no token of `text` is one of the words.
    pub(crate) fn in_text(&self, text: &str) -> bool {
        // A plain loop: the macro's build runs this code unoptimised, on every section.
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            if !bytes[at].is_ascii_alphabetic() {
                at += 1;
                continue;
            }
            let start = at;
            while at < bytes.len() && bytes[at].is_ascii_alphabetic() {
                at += 1;
            }
            let length = at - start;
            if length >= self.shortest
                && length <= self.longest
                && self.initials & initial(bytes[start]) != 0
            {
                let run = &bytes[start..at];
                if self
                    .words
                    .iter()
                    .any(|w| run.eq_ignore_ascii_case(w.as_bytes()))
                {
                    return true;
                }
            }
        }
        false
    }
}

/// The bit of a letter's place in the alphabet, in either case.
const fn initial(letter: u8) -> u32 {
    1 << ((letter.to_ascii_lowercase().wrapping_sub(b'a')) % 32)
}

/// The tokens of `text` in `dialect`, in order, covering all of it.
pub(crate) fn tokens(text: &str, dialect: Dialect) -> Tokens<'_> {
    Tokens {
        text,
        at: 0,
        dialect,
    }
}

/// The iterator [`tokens`] returns.
#[derive(Debug, Clone)]
pub(crate) struct Tokens<'a> {
    text: &'a str,
    at: usize,
    dialect: Dialect,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let first = *bytes.get(start)?;
        let (kind, end, terminated) = lex_one(bytes, start, first, self.dialect);
        // Every branch ends on an ASCII byte or at the end of a run of non-ASCII bytes, so
        // `end` is a char boundary; the guard keeps even a mistake from panicking.
        let end = (start + 1).max(end).min(bytes.len());
        let end = (end..=bytes.len())
            .find(|&e| self.text.is_char_boundary(e))
            .unwrap_or(bytes.len());
        self.at = end;
        Some(Token {
            kind,
            text: &self.text[start..end],
            offset: start,
            terminated,
        })
    }
}

/// Reads the token at `i` (whose byte is `first`): its kind, end, and whether it is closed.
fn lex_one(bytes: &[u8], i: usize, first: u8, dialect: Dialect) -> (TokenKind, usize, bool) {
    let next = bytes.get(i + 1).copied();
    let postgres = dialect == Dialect::Postgres;
    match first {
        b if b.is_ascii_whitespace() => (
            TokenKind::Whitespace,
            run(bytes, i, |b| b.is_ascii_whitespace()),
            true,
        ),
        b'-' if next == Some(b'-') => (TokenKind::LineComment, run(bytes, i, |b| b != b'\n'), true),
        b'/' if next == Some(b'*') => {
            let (end, closed) = block_comment(bytes, i, postgres);
            (TokenKind::BlockComment, end, closed)
        }
        b'\'' => {
            let (end, closed) = quoted(bytes, i, b'\'', false);
            (TokenKind::String, end, closed)
        }
        b'e' | b'E' if postgres && next == Some(b'\'') => {
            let (end, closed) = quoted(bytes, i + 1, b'\'', true);
            (TokenKind::String, end, closed)
        }
        b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
            let (end, closed) = quoted(bytes, i + 1, b'\'', false);
            (TokenKind::String, end, closed)
        }
        b'"' => {
            let (end, closed) = quoted(bytes, i, b'"', false);
            (TokenKind::QuotedIdent, end, closed)
        }
        b'`' if !postgres => {
            let (end, closed) = quoted(bytes, i, b'`', false);
            (TokenKind::QuotedIdent, end, closed)
        }
        b'[' if !postgres => match bytes[i..].iter().position(|&b| b == b']') {
            Some(close) => (TokenKind::QuotedIdent, i + close + 1, true),
            None => (TokenKind::QuotedIdent, bytes.len(), false),
        },
        b'$' if postgres => dollar(bytes, i),
        b'$' | b':' | b'@' if !postgres && next.is_some_and(is_word_byte) => {
            (TokenKind::Parameter, run(bytes, i + 1, is_word_byte), true)
        }
        b'?' if !postgres => (
            TokenKind::Parameter,
            run(bytes, i + 1, |b| b.is_ascii_digit()),
            true,
        ),
        b'0'..=b'9' => (TokenKind::Number, number(bytes, i), true),
        b'.' if next.is_some_and(|b| b.is_ascii_digit()) => {
            (TokenKind::Number, number(bytes, i), true)
        }
        b if is_word_start(b) => (TokenKind::Word, run(bytes, i, is_word_byte), true),
        b':' if next == Some(b':') => (TokenKind::Punct, i + 2, true),
        b if is_operator_byte(b) => (TokenKind::Punct, operator(bytes, i), true),
        _ => (TokenKind::Punct, i + 1, true),
    }
}

/// The end of the run of bytes from `i` that `keep` accepts.
fn run(bytes: &[u8], i: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(bytes.len(), |p| i + p)
}

/// Letters, `_`, and every non-ASCII byte (both servers take any non-ASCII character as
/// part of an identifier).
fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// What may follow in a word: also digits and `$` (PostgreSQL allows `a$b`).
fn is_word_byte(b: u8) -> bool {
    is_word_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_operator_byte(b: u8) -> bool {
    b"+-*/<>=~!@#%^&|`?".contains(&b)
}

/// An operator: a run of operator bytes that stops before a `--` or `/*` inside it.
fn operator(bytes: &[u8], i: usize) -> usize {
    let mut end = i + 1;
    while end < bytes.len() && is_operator_byte(bytes[end]) {
        let pair = (bytes[end], bytes.get(end + 1).copied());
        if matches!(pair, (b'-', Some(b'-')) | (b'/', Some(b'*'))) {
            break;
        }
        end += 1;
    }
    end
}

/// A number: digits, a fraction, an exponent with its sign, and any letters or `_` glued
/// to it (`0x1F`, `1_000`), so a number never splits a word.
fn number(bytes: &[u8], i: usize) -> usize {
    let mut end = i;
    while let Some(&b) = bytes.get(end) {
        let signed_exponent = matches!(b, b'+' | b'-')
            && matches!(bytes.get(end.wrapping_sub(1)), Some(b'e' | b'E'))
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            && !bytes[i..end].starts_with(b"0x")
            && !bytes[i..end].starts_with(b"0X");
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || signed_exponent {
            end += 1;
        } else {
            break;
        }
    }
    end
}

/// A quoted run opened at `open`: a doubled quote is part of the text, and with
/// `backslash` so is a quote after a backslash. Returns its end and whether it closed.
fn quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> (usize, bool) {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return (i + 1, true),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// A `/* … */` comment; on PostgreSQL an inner `/*` needs its own `*/`.
fn block_comment(bytes: &[u8], open: usize, nested: bool) -> (usize, bool) {
    let mut depth = 0usize;
    let mut i = open;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') if depth == 0 || nested => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return (i, true);
                }
            }
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// PostgreSQL's `$`: a parameter `$1`, a dollar-quoted string `$tag$…$tag$`, or a lone `$`.
fn dollar(bytes: &[u8], open: usize) -> (TokenKind, usize, bool) {
    let after = open + 1;
    if bytes.get(after).is_some_and(u8::is_ascii_digit) {
        return (
            TokenKind::Parameter,
            run(bytes, after, |b| b.is_ascii_digit()),
            true,
        );
    }
    // A tag is empty or an identifier without `$`: letters, `_`, non-ASCII, then digits too.
    let tag_end = match bytes.get(after) {
        Some(&b) if is_word_start(b) => {
            run(bytes, after, |b| is_word_start(b) || b.is_ascii_digit())
        }
        _ => after,
    };
    if bytes.get(tag_end) != Some(&b'$') {
        return (TokenKind::Punct, after, true);
    }
    let delimiter = &bytes[open..=tag_end];
    let body = tag_end + 1;
    match bytes[body..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
    {
        Some(p) => (TokenKind::DollarString, body + p + delimiter.len(), true),
        None => (TokenKind::DollarString, bytes.len(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str, dialect: Dialect) -> Vec<(TokenKind, &str)> {
        tokens(text, dialect).map(|t| (t.kind, t.text)).collect()
    }

    fn significant(text: &str, dialect: Dialect) -> Vec<(TokenKind, &str)> {
        tokens(text, dialect)
            .filter(|t| !t.is_trivia())
            .map(|t| (t.kind, t.text))
            .collect()
    }

    use Dialect::{Postgres, Sqlite};
    use TokenKind::*;

    #[test]
    fn words_numbers_and_punctuation_with_offsets() {
        let all: Vec<_> = tokens("SELECT a.b::int, 3.5e-2 FROM t;", Postgres).collect();
        let seen: Vec<_> = all.iter().map(|t| (t.kind, t.text, t.offset)).collect();
        assert_eq!(
            seen,
            [
                (Word, "SELECT", 0),
                (Whitespace, " ", 6),
                (Word, "a", 7),
                (Punct, ".", 8),
                (Word, "b", 9),
                (Punct, "::", 10),
                (Word, "int", 12),
                (Punct, ",", 15),
                (Whitespace, " ", 16),
                (Number, "3.5e-2", 17),
                (Whitespace, " ", 23),
                (Word, "FROM", 24),
                (Whitespace, " ", 28),
                (Word, "t", 29),
                (Punct, ";", 30),
            ]
        );
        assert!(all.iter().all(|t| t.terminated));
    }

    #[test]
    fn strings_double_their_quotes_in_both_dialects() {
        for dialect in Dialect::ALL {
            assert_eq!(
                significant("'it''s; here' x", dialect),
                [(String, "'it''s; here'"), (Word, "x")]
            );
            assert_eq!(
                significant("X'0A' N'n'", dialect),
                [(String, "X'0A'"), (String, "N'n'")]
            );
        }
    }

    #[test]
    fn escape_strings_take_backslashes_on_postgres_only() {
        assert_eq!(
            significant(r"E'it\'s; here';", Postgres),
            [(String, r"E'it\'s; here'"), (Punct, ";")]
        );
        assert_eq!(
            significant(r"e'\\';", Postgres),
            [(String, r"e'\\'"), (Punct, ";")]
        );
        // SQLite has no E'' strings: E is a word, and a backslash is an ordinary character.
        assert_eq!(
            significant(r"E'a\';", Sqlite),
            [(Word, "E"), (String, r"'a\'"), (Punct, ";")]
        );
        // Standard strings on PostgreSQL keep backslashes literal too.
        assert_eq!(
            significant(r"'a\';", Postgres),
            [(String, r"'a\'"), (Punct, ";")]
        );
    }

    #[test]
    fn quoted_identifiers_of_each_dialect() {
        assert_eq!(
            significant(r#""odd;""name" x"#, Postgres),
            [(QuotedIdent, r#""odd;""name""#), (Word, "x")]
        );
        assert_eq!(
            significant("`a;``b` [c;d] \"e\"", Sqlite),
            [
                (QuotedIdent, "`a;``b`"),
                (QuotedIdent, "[c;d]"),
                (QuotedIdent, "\"e\"")
            ]
        );
        // On PostgreSQL brackets are array subscripts.
        assert_eq!(
            significant("a[1]", Postgres),
            [(Word, "a"), (Punct, "["), (Number, "1"), (Punct, "]")]
        );
    }

    #[test]
    fn dollar_quotes_parameters_and_dollar_words_on_postgres() {
        assert_eq!(
            significant("$$a; 'b$$ $body$ $$; $body$ $1 a$b$ $", Postgres),
            [
                (DollarString, "$$a; 'b$$"),
                (DollarString, "$body$ $$; $body$"),
                (Parameter, "$1"),
                (Word, "a$b$"),
                (Punct, "$"),
            ]
        );
    }

    #[test]
    fn sqlite_parameters() {
        assert_eq!(
            significant("? ?12 :name @n $v", Sqlite),
            [
                (Parameter, "?"),
                (Parameter, "?12"),
                (Parameter, ":name"),
                (Parameter, "@n"),
                (Parameter, "$v"),
            ]
        );
    }

    #[test]
    fn comments_nest_on_postgres_and_not_on_sqlite() {
        let text = "/* a /* b */ c */ d";
        assert_eq!(
            lex(text, Postgres),
            [
                (BlockComment, "/* a /* b */ c */"),
                (Whitespace, " "),
                (Word, "d")
            ]
        );
        assert_eq!(
            significant(text, Sqlite),
            [(Word, "c"), (Punct, "*/"), (Word, "d")]
        );
        assert_eq!(
            lex("x -- c; d\ny", Sqlite),
            [
                (Word, "x"),
                (Whitespace, " "),
                (LineComment, "-- c; d"),
                (Whitespace, "\n"),
                (Word, "y")
            ]
        );
    }

    #[test]
    fn operators_stop_before_comments() {
        assert_eq!(
            significant("a<>b||c->>'k' =-- c\n*/*x*/", Postgres),
            [
                (Word, "a"),
                (Punct, "<>"),
                (Word, "b"),
                (Punct, "||"),
                (Word, "c"),
                (Punct, "->>"),
                (String, "'k'"),
                (Punct, "="),
                (Punct, "*"),
            ]
        );
    }

    #[test]
    fn unterminated_tokens_run_to_the_end() {
        for (text, dialect, kind) in [
            ("'open; x", Postgres, String),
            ("E'open\\'", Postgres, String),
            ("$t$ open", Postgres, DollarString),
            ("/* open /* */", Postgres, BlockComment),
            ("\"open", Sqlite, QuotedIdent),
            ("[open", Sqlite, QuotedIdent),
            ("`open", Sqlite, QuotedIdent),
        ] {
            let all: Vec<_> = tokens(text, dialect).collect();
            assert_eq!(all.len(), 1, "{text}: {all:?}");
            assert_eq!((all[0].kind, all[0].text), (kind, text));
            assert!(!all[0].terminated, "{text}");
        }
    }

    #[test]
    fn non_ascii_text_is_kept_whole() {
        let text = "INSERT INTO café VALUES ('é;ü') -- ✓\n";
        for dialect in Dialect::ALL {
            assert_eq!(
                tokens(text, dialect)
                    .map(|t| t.text)
                    .collect::<std::string::String>(),
                text
            );
            assert!(tokens(text, dialect).any(|t| t.kind == Word && t.text == "café"));
        }
    }

    #[test]
    fn keyword_sets_find_whole_runs_of_letters_of_any_length_in_the_set() {
        const SET: Keywords = Keywords::new(&["END", "CONCURRENTLY"]);
        assert_eq!((SET.shortest, SET.longest), (3, 12));
        assert!(!SET.in_text("SELECT begin, commit FROM x"));
        assert!(SET.in_text("x;\nend"));
        assert!(SET.in_text("SELECT $1end"));
        assert!(SET.in_text("create index concurrently ix"));
        assert!(!SET.in_text("SELECT legend, ending, weekend_x FROM t"));
        // A word token is found whatever punctuation, quotes or comments surround it.
        let text = "a.end;(concurrently)'x'--c";
        assert!(SET.in_text(text));
        assert!(tokens(text, Postgres).any(|t| t.is_keyword("END")));
    }

    #[test]
    fn keywords_match_in_any_case_but_not_quoted() {
        let all: Vec<_> = tokens("begin \"BEGIN\"", Postgres).collect();
        assert!(all[0].is_keyword("BEGIN"));
        assert!(!all[2].is_keyword("BEGIN"));
    }
}

#[cfg(test)]
mod examples {
    #[test]
    fn tokens_cover_the_text_and_keep_quoted_semicolons() {
        use crate::Dialect;
        use crate::sql::{TokenKind, tokens};

        let sql = "SELECT E'it\\'s; here' -- done";
        let kinds: Vec<_> = tokens(sql, Dialect::Postgres)
            .filter(|t| !t.is_trivia())
            .map(|t| (t.kind, t.text))
            .collect();
        assert_eq!(
            kinds,
            [
                (TokenKind::Word, "SELECT"),
                (TokenKind::String, "E'it\\'s; here'")
            ]
        );
        assert_eq!(
            tokens(sql, Dialect::Postgres)
                .map(|t| t.text)
                .collect::<String>(),
            sql
        );
    }
}
