static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/minute_60");

fn main() {
    let _ = MIGRATIONS.len();
}
