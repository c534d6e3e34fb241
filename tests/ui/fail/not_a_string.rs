static MIGRATIONS: calista::Migrations = calista::migrations!(migrations);

fn main() {
    let _ = MIGRATIONS.len();
}
