//! Every form `#[calista::test]` accepts builds without a warning. (A bin does not build
//! `#[test]` functions; `tests/testing_attr.rs` type-checks and runs the same forms.)
#![deny(warnings)]

static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/leap_day");

mod nested {
    pub(crate) static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/leap_day");
}

/// On SQLite, with `?`.
#[calista::test(MIGRATIONS)]
async fn on_sqlite(pool: calista::sqlx::SqlitePool) -> Result<(), Box<dyn std::error::Error>> {
    calista::sqlx::query("SELECT 1").execute(&pool).await?;
    Ok(())
}

#[calista::test(crate::MIGRATIONS)]
#[ignore = "slow"]
async fn on_postgres(_pool: sqlx::PgPool) {}

#[calista::test(MIGRATIONS, revision = "20240229_1030")]
async fn on_both(db: &calista::testing::TestDatabase) -> Result<(), String> {
    assert!(!db.url().is_empty());
    Ok(())
}

#[calista::test(MIGRATIONS, prefix = "my-shop", revision = "20240229_1030")]
async fn with_a_prefix(_pool: calista::sqlx::SqlitePool) {}

#[calista::test(self::nested::MIGRATIONS)]
async fn on_both_through_self(_db: &calista::testing::TestDatabase) {}

mod deeper {
    #[calista::test(super::MIGRATIONS)]
    async fn on_both_through_super(_db: &calista::testing::TestDatabase) {}
}

fn main() {
    assert_eq!(MIGRATIONS.len(), nested::MIGRATIONS.len());
}
