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
    // The file whose rule words are in strings, comments and dialect sections needs none.
    assert!(MIGRATIONS.head().is_some_and(|m| m.allows().is_empty()));
}
