static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/dialect_without_up");

fn main() {
    let _ = MIGRATIONS.len();
}
