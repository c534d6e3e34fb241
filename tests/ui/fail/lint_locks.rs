static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/lint_locks");

fn main() {
    let _ = MIGRATIONS.len();
}
