static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/sql_before_first_marker");

fn main() {
    let _ = MIGRATIONS.len();
}
