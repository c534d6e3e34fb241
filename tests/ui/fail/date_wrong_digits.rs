static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/date_wrong_digits");

fn main() {
    let _ = MIGRATIONS.len();
}
