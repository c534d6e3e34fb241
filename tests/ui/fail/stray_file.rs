static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/stray_file");

fn main() {
    let _ = MIGRATIONS.len();
}
