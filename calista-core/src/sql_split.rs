//! Splits a PostgreSQL script into statements, for no-transaction migrations.
//!
//! PostgreSQL runs a multi-statement simple query as one implicit transaction, where
//! `CREATE INDEX CONCURRENTLY` is refused; so such migrations are sent one statement at a
//! time. The splitter knows quotes, dollar quotes, quoted identifiers and both comment forms.

/// The statements of a script, without their terminating `;` and without empty ones.
pub fn statements(script: &str) -> Vec<&str> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(bytes, i),
            b';' => {
                push_statement(&mut out, &script[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push_statement(&mut out, &script[start..]);
    out
}

fn push_statement<'a>(out: &mut Vec<&'a str>, text: &'a str) {
    let text = text.trim();
    if !text.is_empty() && !is_only_comments(text) {
        out.push(text);
    }
}

fn is_only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("--")
    })
}

/// Past a '…' or "…" run; a doubled quote inside is part of the text.
fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Past a /* … */ comment; PostgreSQL's block comments nest.
fn skip_block_comment(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Past a $tag$ … $tag$ body; a `$` that does not open one (such as `$1`) is skipped alone.
fn skip_dollar_quoted(bytes: &[u8], open: usize) -> usize {
    let tag_len = bytes[open + 1..].iter().position(|&b| b == b'$');
    let Some(tag_len) = tag_len else {
        return open + 1;
    };
    let tag = &bytes[open..open + tag_len + 2];
    let valid_tag = tag[1..tag.len() - 1]
        .iter()
        .enumerate()
        .all(|(k, &b)| b == b'_' || b.is_ascii_alphabetic() || (k > 0 && b.is_ascii_digit()));
    if !valid_tag {
        return open + 1;
    }
    let body = open + tag.len();
    bytes[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(bytes.len(), |p| body + p + tag.len())
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let script = "CREATE INDEX CONCURRENTLY a ON t (x);\n-- a comment; with a semicolon\n\
                      INSERT INTO t VALUES ('a;b', \"odd;name\", 'it''s;');\n/* block; /* nested; */ still; */ SELECT 1";
        assert_eq!(
            statements(script),
            [
                "CREATE INDEX CONCURRENTLY a ON t (x)",
                "-- a comment; with a semicolon\nINSERT INTO t VALUES ('a;b', \"odd;name\", 'it''s;')",
                "/* block; /* nested; */ still; */ SELECT 1",
            ]
        );
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let script = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n\
                      DO $$ BEGIN PERFORM 1; END $$;\nSELECT $1::int;";
        assert_eq!(statements(script).len(), 3);
        assert!(statements(script)[0].ends_with("$body$"));
    }

    #[test]
    fn comment_only_and_empty_statements_are_dropped() {
        assert!(statements("  ;\n-- nothing here\n;").is_empty());
        assert_eq!(statements("SELECT 1;;SELECT 2;"), ["SELECT 1", "SELECT 2"]);
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
        ] {
            let _ = statements(script);
        }
    }
}
