static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/summary_uppercase");

fn main() {
    let _ = MIGRATIONS.len();
}
