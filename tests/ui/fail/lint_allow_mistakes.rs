static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/lint_allow_mistakes");

fn main() {
    let _ = MIGRATIONS.len();
}
