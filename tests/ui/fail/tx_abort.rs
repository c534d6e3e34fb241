static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_abort");

fn main() {
    let _ = MIGRATIONS.len();
}
