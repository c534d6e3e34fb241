static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/date_feb_30");

fn main() {
    let _ = MIGRATIONS.len();
}
