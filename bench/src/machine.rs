//! The machine and the versions a run is measured on, printed with the results.

use sqlx::Connection;

use crate::db::pg_admin_url;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The first value of `key` in a `key : value` file such as /proc/cpuinfo.
fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

fn os_name() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The load average now (other work on the machine skews every figure).
pub(crate) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// A Markdown paragraph describing the machine, the versions and the server.
pub(crate) async fn describe() -> Result<String> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".to_owned());
    let memory = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".to_owned(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("?".to_owned(), |v| v.trim().to_owned());
    let os = os_name().unwrap_or_else(|| "?".to_owned());

    let mut pg = sqlx::PgConnection::connect(&pg_admin_url()).await?;
    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut pg)
        .await?;
    let mut settings = Vec::new();
    for name in ["fsync", "synchronous_commit", "shared_buffers"] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&mut pg)
            .await?;
        settings.push(format!("{name}={value}"));
    }
    pg.close().await?;
    let mut lite = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
    let sqlite_version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut lite)
        .await?;
    lite.close().await?;

    Ok(format!(
        "Machine: {cores} cores ({cpu}), {memory} memory, Linux {kernel}, {os}; load average \
         at the start {}.\n\nVersions: {}; {}; PostgreSQL {pg_version} on the same machine \
         ({}); SQLite {sqlite_version} (bundled, one libsqlite3-sys for sqlx and rusqlite).",
        load(),
        env!("BENCH_RUSTC_VERSION"),
        env!("BENCH_LOCKED_VERSIONS"),
        settings.join(", "),
    ))
}
