static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/duplicate_revision");

fn main() {
    let _ = MIGRATIONS.len();
}
