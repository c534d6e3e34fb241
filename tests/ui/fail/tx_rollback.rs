static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_rollback");

fn main() {
    let _ = MIGRATIONS.len();
}
