static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/summary_empty");

fn main() {
    let _ = MIGRATIONS.len();
}
