static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_start_transaction");

fn main() {
    let _ = MIGRATIONS.len();
}
