static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/leap_day");

fn main() {
    assert_eq!(MIGRATIONS.len(), 1);
    assert_eq!(MIGRATIONS.head().map(|m| m.revision().to_string()), Some("20240229_1030".to_owned()));
}
