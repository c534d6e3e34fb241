static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/not_in_transaction_block");

fn main() {
    let _ = MIGRATIONS.len();
}
