static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/no_such_folder");

fn main() {
    let _ = MIGRATIONS.len();
}
