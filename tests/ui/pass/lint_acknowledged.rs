static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/lint_acknowledged");

fn main() {
    // One file per rule acknowledges it, and the reasons are embedded with the migrations.
    let mut rules: Vec<&str> = MIGRATIONS.iter().flat_map(|m| m.allows()).map(|a| a.rule.name()).collect();
    rules.sort_unstable();
    let mut all: Vec<&str> = calista::lint::Rule::ALL.iter().map(|r| r.name()).collect();
    all.sort_unstable();
    assert_eq!(rules, all);
    let first = &MIGRATIONS.as_slice()[0].allows()[0];
    assert_eq!((first.rule.name(), first.reason), ("drop-table", "acknowledged to show the build passes"));
    // A dialect difference is not a lint allow; whether it is used only `db verify` can say.
    let differences = MIGRATIONS.as_slice()[0].dialect_differences();
    assert_eq!(differences.len(), 1);
    let difference = &differences[0];
    assert_eq!((difference.table, difference.column, difference.line), ("legacy_orders", Some("id"), 2));
    assert_eq!(difference.reason, "never an unused-allow error at build time");
    // The file whose rule words are in strings, comments and dialect sections needs none,
    // nor the one after it, which widens a column an earlier file declared.
    assert!(MIGRATIONS.head().is_some_and(|m| m.allows().is_empty()));
    assert!(MIGRATIONS.iter().rev().take(2).all(|m| m.allows().is_empty()));
}
