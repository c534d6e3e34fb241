static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/wrong_extension");

fn main() {
    let _ = MIGRATIONS.len();
}
