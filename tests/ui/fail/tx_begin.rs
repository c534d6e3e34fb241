static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_begin");

fn main() {
    let _ = MIGRATIONS.len();
}
