static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_commit");

fn main() {
    let _ = MIGRATIONS.len();
}
