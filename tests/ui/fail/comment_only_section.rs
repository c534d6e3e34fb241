static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/comment_only_section");

fn main() {
    let _ = MIGRATIONS.len();
}
