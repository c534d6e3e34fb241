//! The floor of benchmark C: the least a process can do to check a schema — open the
//! SQLite file with sqlx and read `alembic_version` once.

use sqlx::Connection;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args().nth(1).ok_or("usage: floor-check FILE")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{file}")).await?;
        let version: String = sqlx::query_scalar("SELECT version_num FROM alembic_version")
            .fetch_one(&mut conn)
            .await?;
        println!("{version}");
        conn.close().await?;
        Ok(())
    })
}
