//! The SQL lexer against the real servers: for each script of a corpus, running its split
//! statements one at a time leaves a database exactly as the server's own parsing of the
//! whole text does (the same rows, in the same order, and the same success).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic: that is how they fail.

mod common;

use calista::Dialect;
use calista_core::__private::statements;
use common::*;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};

/// Scripts that cut in the wrong place would change what runs (issue: a no-transaction
/// migration left half applied). Each writes what it did into `log`.
const POSTGRES_CORPUS: &[&str] = &[
    r"INSERT INTO log (v) VALUES (E'it\'s; here'); INSERT INTO log (v) VALUES ('two');",
    r"INSERT INTO log (v) VALUES (e'back\\'); INSERT INTO log (v) VALUES ('a\'); INSERT INTO log (v) VALUES ('b');",
    "CREATE FUNCTION f(a int) RETURNS text LANGUAGE sql\n\
     BEGIN ATOMIC\n  INSERT INTO log (v) VALUES ('in f;');\n  \
     SELECT CASE WHEN a > 0 THEN 'pos;' ELSE 'neg;' END;\nEND;\n\
     INSERT INTO log (v) SELECT f(1);\nINSERT INTO log (v) SELECT f(-1);",
    "/* a; /* nested; */ still; */ INSERT INTO log (v) VALUES ('after nested');\n\
     -- a line comment; 'with quotes\nINSERT INTO log (v) VALUES ('after line');",
    "DO $body$ BEGIN INSERT INTO log (v) VALUES ('do;'); END $body$;\n\
     INSERT INTO log (v) VALUES ($$it's; $x$ here$$); INSERT INTO log (v) VALUES ('$$;');",
    "CREATE TABLE r (a int);\n\
     CREATE RULE rr AS ON INSERT TO r DO ALSO (INSERT INTO log (v) VALUES ('r1;'); INSERT INTO log (v) VALUES ('r2'));\n\
     INSERT INTO r VALUES (1);",
    "CREATE TABLE \"we;ird\" (\"a;b\" text); INSERT INTO \"we;ird\" VALUES ('x;');\n\
     INSERT INTO log (v) SELECT \"a;b\" FROM \"we;ird\";",
    r"INSERT INTO log (v) VALUES (U&'d\0061t;'); INSERT INTO log (v) VALUES (('a' || 'b;')::text);",
    "INSERT INTO log (v) VALUES ('BEGIN ATOMIC'); INSERT INTO log (v) SELECT CASE WHEN true THEN 'c;' END;\n\
     INSERT INTO log (v) VALUES ('end')",
];

const SQLITE_CORPUS: &[&str] = &[
    "CREATE TABLE t (a);\n\
     CREATE TRIGGER tr AFTER INSERT ON t WHEN CASE WHEN new.a > 0 THEN 1 ELSE 1 END\nBEGIN\n  \
     INSERT INTO log (v) VALUES (CASE new.a WHEN 1 THEN 'one;' ELSE 'many;' END);\n  \
     INSERT INTO log (v) VALUES ('second;');\nEND;\n\
     INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
    "CREATE TEMP TRIGGER tt AFTER INSERT ON log WHEN new.v = 'go' BEGIN INSERT INTO log (v) VALUES ('went;'); END;\n\
     INSERT INTO log (v) VALUES ('go');",
    "CREATE TABLE [we;ird] (`a;b` text, \"c;d\" text); INSERT INTO [we;ird] VALUES ('x;', 'y;');\n\
     INSERT INTO log (v) SELECT `a;b` || [c;d] FROM \"we;ird\";",
    "/* a /* not nested; */ INSERT INTO log (v) VALUES ('after');\n\
     -- line; 'comment\nINSERT INTO log (v) VALUES ('a\\'); INSERT INTO log (v) VALUES ('b');",
    "INSERT INTO log (v) VALUES ('it''s; here'); INSERT INTO log (v) VALUES (X'41' || 'z;');",
    "INSERT INTO log (v) VALUES ('$$;'); INSERT INTO log (v) VALUES ('end');",
];

/// A small deterministic generator, so a failure names a case that can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[usize::try_from(self.next() % from.len() as u64).unwrap()]
    }
}

/// A value with quotes, semicolons, comment and dollar-quote look-alikes.
fn value(rng: &mut Rng) -> String {
    let pieces = [
        "a", ";", "'", "\"", "--", "/*", "*/", "$$", "$t$", "\\", " ", "\n", "é", "`", "[", "]",
    ];
    (0..rng.next() % 8).map(|_| rng.pick(&pieces)).collect()
}

/// `text` as a literal of the dialect, in one of its spellings.
fn literal(rng: &mut Rng, text: &str, dialect: Dialect) -> String {
    let standard = format!("'{}'", text.replace('\'', "''"));
    if dialect == Dialect::Sqlite {
        return standard;
    }
    match rng.next() % 3 {
        0 => standard,
        1 => format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        _ => {
            let tag = ["", "q", "tag_1"]
                .into_iter()
                .find(|tag| !text.contains(&format!("${tag}$")) && !text.ends_with('$'))
                .unwrap_or("never_in_values");
            format!("${tag}${text}${tag}$")
        }
    }
}

/// Something harmless between statements: nothing, blanks, or comments holding `;`.
fn filler(rng: &mut Rng, dialect: Dialect) -> &'static str {
    let common = ["", " ", "\n", "-- x; 'y\n", "/* a; 'b */", "\n\n-- ;\n"];
    if dialect == Dialect::Postgres && rng.next().is_multiple_of(4) {
        return "/* a /* b; */ c; */";
    }
    rng.pick(&common)
}

fn generated(dialect: Dialect, count: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..count)
        .map(|_| {
            let mut script = String::new();
            for _ in 0..1 + rng.next() % 4 {
                let text = value(&mut rng);
                script.push_str(filler(&mut rng, dialect));
                script.push_str(&format!(
                    "INSERT INTO log (v) VALUES ({}){}",
                    literal(&mut rng, &text, dialect),
                    filler(&mut rng, dialect)
                ));
                script.push(';');
            }
            script
        })
        .collect()
}

/// What a script left: whether it succeeded, and the rows of `log` in order.
type Outcome = (bool, Vec<String>);

async fn postgres_outcome(conn: &mut PgConnection, schema: &str, pieces: &[&str]) -> Outcome {
    let setup = format!(
        "CREATE SCHEMA {schema}; SET search_path = {schema}; \
         CREATE TABLE log (id serial PRIMARY KEY, v text)"
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut ok = true;
    for piece in pieces {
        ok &= sqlx::raw_sql(AssertSqlSafe(piece.to_string()))
            .execute(&mut *conn)
            .await
            .is_ok();
    }
    let rows: Vec<(String,)> = sqlx::query_as("SELECT coalesce(v, '<null>') FROM log ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    (ok, rows.into_iter().map(|(v,)| v).collect())
}

async fn sqlite_outcome(pieces: &[&str]) -> Outcome {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let mut ok = true;
    for piece in pieces {
        ok &= sqlx::raw_sql(AssertSqlSafe(piece.to_string()))
            .execute(&mut conn)
            .await
            .is_ok();
    }
    let rows: Vec<(String,)> = sqlx::query_as("SELECT coalesce(v, '<null>') FROM log ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (ok, rows.into_iter().map(|(v,)| v).collect())
}

fn split(script: &str, dialect: Dialect) -> Vec<&str> {
    statements(script, dialect)
        .into_iter()
        .map(|s| s.text)
        .collect()
}

#[tokio::test]
async fn split_statements_run_one_by_one_do_what_postgres_does_with_the_whole_text() {
    let whole_db = ScratchPg::new().await;
    let split_db = ScratchPg::new().await;
    let (mut whole, mut one_by_one) = (whole_db.connect().await, split_db.connect().await);
    let mut scripts: Vec<String> = POSTGRES_CORPUS.iter().map(|s| s.to_string()).collect();
    scripts.extend(generated(Dialect::Postgres, 300));
    for (case, script) in scripts.iter().enumerate() {
        let schema = format!("case_{case}");
        let expected = postgres_outcome(&mut whole, &schema, &[script]).await;
        let pieces = split(script, Dialect::Postgres);
        let got = postgres_outcome(&mut one_by_one, &schema, &pieces).await;
        assert!(
            expected.0,
            "case {case}: the server refused the whole script:\n{script}"
        );
        assert!(
            !expected.1.is_empty(),
            "case {case} wrote nothing:\n{script}"
        );
        assert_eq!(
            got, expected,
            "case {case}:\n{script}\nsplit into {pieces:#?}"
        );
    }
}

#[tokio::test]
async fn split_statements_run_one_by_one_do_what_sqlite_does_with_the_whole_text() {
    let mut scripts: Vec<String> = SQLITE_CORPUS.iter().map(|s| s.to_string()).collect();
    scripts.extend(generated(Dialect::Sqlite, 300));
    for (case, script) in scripts.iter().enumerate() {
        let expected = sqlite_outcome(&[script]).await;
        let pieces = split(script, Dialect::Sqlite);
        let got = sqlite_outcome(&pieces).await;
        assert!(
            expected.0,
            "case {case}: SQLite refused the whole script:\n{script}"
        );
        assert!(
            !expected.1.is_empty(),
            "case {case} wrote nothing:\n{script}"
        );
        assert_eq!(
            got, expected,
            "case {case}:\n{script}\nsplit into {pieces:#?}"
        );
    }
}

/// The old splitter's two failures, as the issue reported them: the statement count is
/// what the server sees too.
#[test]
fn the_reported_cuts_are_gone() {
    assert_eq!(split(POSTGRES_CORPUS[0], Dialect::Postgres).len(), 2);
    assert_eq!(split(POSTGRES_CORPUS[2], Dialect::Postgres).len(), 3);
    assert_eq!(split(SQLITE_CORPUS[0], Dialect::Sqlite).len(), 4);
}
