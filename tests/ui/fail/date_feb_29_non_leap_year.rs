static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/date_feb_29_non_leap_year");

fn main() {
    let _ = MIGRATIONS.len();
}
