//! Splits a script into statements, for no-transaction migrations.
//!
//! PostgreSQL runs a multi-statement simple query as one implicit transaction, where
//! `CREATE INDEX CONCURRENTLY` is refused; so such migrations are sent one statement at a
//! time. The splitting is [`crate::sql::statements`]'s, which reads the SQL as the server does.

use crate::migration::Dialect;

/// The statements of a script in `dialect`, without their terminating `;`, without
/// comments before them, and without empty or comment-only ones.
pub fn statements(script: &str, dialect: Dialect) -> Vec<&str> {
    crate::sql::statements(script, dialect)
        .into_iter()
        .map(|statement| statement.text)
        .collect()
}
