static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_rollback_prepared");

fn main() {
    let _ = MIGRATIONS.len();
}
