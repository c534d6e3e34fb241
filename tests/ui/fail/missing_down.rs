static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/missing_down");

fn main() {
    let _ = MIGRATIONS.len();
}
