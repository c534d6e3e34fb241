//! The migration sets: N migrations, each a table with three columns and an index, written
//! in each tool's file format with the same SQL.

use std::path::{Path, PathBuf};

/// The SQL of migration `i` (the same for every tool and both dialects).
pub(crate) fn sql(i: usize) -> String {
    format!(
        "CREATE TABLE bench_t{i} (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, created_at TIMESTAMP);\n\
         CREATE INDEX ix_bench_t{i}_name ON bench_t{i} (name);"
    )
}

/// The folders of one size.
pub(crate) struct Sets {
    pub(crate) n: usize,
    pub(crate) calista: PathBuf,
    pub(crate) sqlx: PathBuf,
    _dir: tempfile::TempDir,
}

pub(crate) fn write(n: usize) -> std::io::Result<Sets> {
    let dir = tempfile::tempdir()?;
    let calista = dir.path().join("calista");
    let sqlx = dir.path().join("sqlx");
    std::fs::create_dir_all(&calista)?;
    std::fs::create_dir_all(&sqlx)?;
    write_calista(&calista, n)?;
    for i in 1..=n {
        std::fs::write(sqlx.join(format!("{i:05}_create_t{i}.sql")), sql(i))?;
    }
    Ok(Sets {
        n,
        calista,
        sqlx,
        _dir: dir,
    })
}

/// CALISTA files: one a minute from 2025-01-01 00:00, so N <= 1440 fit in a day.
pub(crate) fn write_calista(dir: &Path, n: usize) -> std::io::Result<()> {
    for i in 1..=n {
        let (hour, minute) = ((i - 1) / 60, (i - 1) % 60);
        let name = format!("20250101_{hour:02}{minute:02}_create_t{i}.sql");
        let body = format!(
            "-- calista:up\n{}\n-- calista:down\nDROP TABLE bench_t{i};\n",
            sql(i)
        );
        std::fs::write(dir.join(name), body)?;
    }
    Ok(())
}

/// refinery's in-memory migrations.
pub(crate) fn refinery(n: usize) -> Result<Vec<refinery::Migration>, refinery::Error> {
    (1..=n)
        .map(|i| refinery::Migration::unapplied(&format!("V{i}__create_t{i}"), &sql(i)))
        .collect()
}
