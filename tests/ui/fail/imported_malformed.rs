static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/imported_malformed");

fn main() {
    let _ = MIGRATIONS.len();
}
