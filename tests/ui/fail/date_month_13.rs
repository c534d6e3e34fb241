static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/date_month_13");

fn main() {
    let _ = MIGRATIONS.len();
}
