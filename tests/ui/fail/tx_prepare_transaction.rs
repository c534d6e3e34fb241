static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_prepare_transaction");

fn main() {
    let _ = MIGRATIONS.len();
}
