static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/unknown_marker");

fn main() {
    let _ = MIGRATIONS.len();
}
