static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/several_mistakes");

fn main() {
    let _ = MIGRATIONS.len();
}
