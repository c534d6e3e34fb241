static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/lint_portability");

fn main() {
    let _ = MIGRATIONS.len();
}
