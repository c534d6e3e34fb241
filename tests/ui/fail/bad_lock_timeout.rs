static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/bad_lock_timeout");

fn main() {
    let _ = MIGRATIONS.len();
}
