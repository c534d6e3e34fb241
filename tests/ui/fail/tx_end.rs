static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_end");

fn main() {
    let _ = MIGRATIONS.len();
}
