static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/lint_data_loss");

fn main() {
    let _ = MIGRATIONS.len();
}
