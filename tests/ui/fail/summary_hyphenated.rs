static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/summary_hyphenated");

fn main() {
    let _ = MIGRATIONS.len();
}
