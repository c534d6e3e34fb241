static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/tx_commit_prepared");

fn main() {
    let _ = MIGRATIONS.len();
}
