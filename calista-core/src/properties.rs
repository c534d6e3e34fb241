//! Properties of the file rules over generated input: the parsers never panic, and what
//! the formatters write, the parsers read back.

use crate::format::parse_file;
use crate::naming::{self, Revision};
use crate::{Dialect, Direction, sql};
use proptest::prelude::*;

/// A marker line in any case, with typos, spaces and dialects, or plain text.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-- calista:up".to_owned()),
        Just("-- calista:down".to_owned()),
        Just("-- calista:up postgres".to_owned()),
        Just("-- calista:down sqlite".to_owned()),
        Just("-- calista:no-transaction".to_owned()),
        Just("-- calista:irreversible".to_owned()),
        Just("--calista:UP".to_owned()),
        Just("-- calista:".to_owned()),
        Just("-- calista:up postgres sqlite".to_owned()),
        Just("".to_owned()),
        Just("-- comment".to_owned()),
        "[ -~]{0,40}",
        any::<String>(),
    ]
}

fn revision() -> impl Strategy<Value = Revision> {
    (1u32..=9999, 1u32..=12, 1u32..=31, 0u32..24, 0u32..60)
        .prop_filter_map("a real date", |(y, mo, d, h, mi)| {
            Revision::new(y, mo, d, h, mi).ok()
        })
}

fn summary() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z0-9]{1,8}", 1..5).prop_map(|words| words.join("_"))
}

/// 2000 cases each in the test run; `PROPTEST_CASES` sets more for a long run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn file_name_parser_never_panics(name in any::<String>()) {
        let _ = naming::parse_file_name(&name);
        let _ = Revision::parse(&name);
        let _ = naming::suggest_summary(&name);
    }

    #[test]
    fn body_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_file("m/x.sql", "20250101_0000_x.sql", &bytes);
    }

    #[test]
    fn body_parser_never_panics_on_marker_soup(lines in proptest::collection::vec(line(), 0..30), crlf in any::<bool>()) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let _ = parse_file("m/x.sql", "20250101_0000_x.sql", text.as_bytes());
    }

    #[test]
    fn file_names_round_trip(revision in revision(), summary in summary()) {
        let name = naming::file_name(revision, &summary);
        let parsed = naming::parse_file_name(&name).unwrap();
        prop_assert_eq!(parsed.revision, revision);
        prop_assert_eq!(parsed.summary, summary.as_str());
        prop_assert_eq!(Revision::parse(&revision.to_string()).unwrap(), revision);
    }

    #[test]
    fn suggested_summaries_are_valid_or_empty(text in any::<String>()) {
        let suggestion = naming::suggest_summary(&text);
        prop_assert!(suggestion.is_empty() || naming::validate_summary(&suggestion).is_ok());
    }

    #[test]
    fn next_minute_is_the_next_valid_revision(revision in revision()) {
        let next = revision.next_minute();
        prop_assert!(next > revision);
        prop_assert!(Revision::parse(&next.to_string()).is_ok() || revision.year() == 9999);
    }

    /// Sections written out with markers parse back to the same directions, dialects and SQL.
    /// The SQL is one statement that is not transaction control (`END`, `COMMIT`, …), which
    /// the parser rightly refuses.
    #[test]
    fn sections_round_trip(
        sections in proptest::collection::vec((any::<bool>(), 0u8..3, "SELECT [A-Za-z0-9 (),'_]{0,30}"), 1..8),
        no_transaction in any::<bool>(),
    ) {
        let mut text = String::new();
        if no_transaction {
            text.push_str("-- calista:no-transaction\n");
        }
        // Cover both directions on both dialects so the file is valid.
        text.push_str("-- calista:up\nSELECT 1;\n-- calista:down\nSELECT 2;\n");
        for (up, dialect, sql) in &sections {
            let direction = if *up { "up" } else { "down" };
            let dialect = [" postgres", " sqlite", ""][usize::from(*dialect)];
            text.push_str(&format!("-- calista:{direction}{dialect}\n{sql}\n"));
        }
        let migration = parse_file("m", "20250101_0000_x.sql", text.as_bytes()).unwrap();
        prop_assert_eq!(migration.no_transaction(), no_transaction);
        let parsed: Vec<_> = migration.sections().collect();
        prop_assert_eq!(parsed.len(), sections.len() + 2);
        for (section, (up, dialect, sql)) in parsed[2..].iter().zip(&sections) {
            prop_assert_eq!(section.direction(), if *up { Direction::Up } else { Direction::Down });
            prop_assert_eq!(section.dialect(), [Some(Dialect::Postgres), Some(Dialect::Sqlite), None][usize::from(*dialect)]);
            prop_assert_eq!(section.sql(), sql.trim());
        }
    }

    #[test]
    fn statement_splitter_never_panics_and_keeps_every_statement(
        statements in proptest::collection::vec("[a-z ]{1,20}('[a-z;]*')?", 1..10),
        garbage in any::<String>(),
    ) {
        let _ = sql::statements(&garbage, Dialect::Postgres);
        let script = statements.iter().map(|s| format!("{s};")).collect::<String>();
        let split: Vec<&str> = sql::statements(&script, Dialect::Postgres).into_iter().map(|s| s.text).collect();
        let expected: Vec<&str> = statements.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
        prop_assert_eq!(split, expected);
    }
}

/// SQL-ish text: the pieces the lexer treats specially, glued in any order, plus noise.
fn sql_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_owned()),
        Just("''".to_owned()),
        Just("E'".to_owned()),
        Just("\\".to_owned()),
        Just("\"".to_owned()),
        Just("`".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("$$".to_owned()),
        Just("$a$".to_owned()),
        Just("$1".to_owned()),
        Just("--".to_owned()),
        Just("/*".to_owned()),
        Just("*/".to_owned()),
        Just(";".to_owned()),
        Just("\n".to_owned()),
        Just(" ".to_owned()),
        Just("BEGIN ATOMIC".to_owned()),
        Just("CREATE TRIGGER t BEGIN".to_owned()),
        Just("CASE".to_owned()),
        Just("END".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("1e-5".to_owned()),
        Just("::".to_owned()),
        Just("é".to_owned()),
        "[ -~]{0,6}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sql_tokens_never_panic_and_cover_the_text_exactly(text in sql_text()) {
        for dialect in Dialect::ALL {
            let mut at = 0;
            let mut joined = String::new();
            for token in crate::sql::tokens(&text, dialect) {
                prop_assert_eq!(token.offset, at);
                prop_assert!(!token.text.is_empty());
                at = token.end();
                joined.push_str(token.text);
            }
            prop_assert_eq!(joined, text.clone());
        }
    }

    #[test]
    fn sql_statements_lie_where_their_offsets_say_in_order(text in sql_text()) {
        for dialect in Dialect::ALL {
            let mut after = 0;
            for statement in crate::sql::statements(&text, dialect) {
                prop_assert!(statement.offset >= after);
                prop_assert_eq!(&text[statement.offset..statement.offset + statement.text.len()], statement.text);
                prop_assert!(!statement.text.trim().is_empty());
                after = statement.offset + statement.text.len();
                let _ = crate::sql::line_col(&text, statement.offset);
            }
        }
    }
}

#[cfg(feature = "runtime")]
mod urls {
    use std::path::Path;

    use crate::url::{self, DatabaseUrl};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn url_parser_and_redaction_never_panic(text in any::<String>(), prefix in prop::sample::select(vec!["", "postgres://", "postgresql+psycopg://", "sqlite:", "sqlite:///", "sqlite:////"])) {
            let text = format!("{prefix}{text}");
            for convention in [url::UrlConvention::Sqlx, url::UrlConvention::SqlAlchemy] {
                let _ = DatabaseUrl::parse_as(&text, Path::new("/app"), convention);
            }
            let _ = url::redact(&text);
        }

        /// A password put into a URL never survives redaction, nor a parse error.
        #[test]
        fn passwords_never_survive(user in "[a-z]{1,8}", password in "[A-Za-z0-9!*]{6,16}", host in "[a-z]{1,10}", db in "[a-z]{1,8}") {
            for scheme in ["postgresql", "postgres", "postgresql+psycopg", "mysql"] {
                let text = format!("{scheme}://{user}:{password}@{host}:5432/{db}");
                prop_assert!(!url::redact(&text).contains(&password));
                match DatabaseUrl::parse(&text, Path::new("/app")) {
                    Ok(parsed) => prop_assert!(!parsed.to_string().contains(&password)),
                    Err(e) => prop_assert!(!e.to_string().contains(&password)),
                }
            }
        }

        /// What the parser accepts, its display parses back to the same target.
        #[test]
        fn sqlite_urls_round_trip_through_display(path in "[a-z]{1,8}(/[a-z]{1,8}){0,3}\\.db") {
            let parsed = DatabaseUrl::parse(&format!("sqlite:///{path}"), Path::new("/app")).unwrap();
            let again = DatabaseUrl::parse(&parsed.to_string(), Path::new("/elsewhere")).unwrap();
            prop_assert_eq!(parsed, again);
        }
    }
}
