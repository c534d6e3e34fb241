static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/hour_24");

fn main() {
    let _ = MIGRATIONS.len();
}
