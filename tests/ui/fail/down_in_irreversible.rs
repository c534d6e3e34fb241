static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/down_in_irreversible");

fn main() {
    let _ = MIGRATIONS.len();
}
