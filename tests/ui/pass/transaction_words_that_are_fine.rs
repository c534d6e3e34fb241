static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/transaction_words_that_are_fine");

fn main() {
    let m = MIGRATIONS.head().unwrap();
    assert_eq!(m.sections().count(), 4);
    assert!(m.script(calista::Direction::Up, calista::Dialect::Postgres).starts_with("CREATE TABLE t"));
}
