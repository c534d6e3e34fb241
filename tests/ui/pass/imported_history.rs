// History imported from another tool is not linted: the DROP COLUMN already ran in
// production, and the build accepts it without an allow line.
static MIGRATIONS: calista::Migrations = calista::migrations!("ui-fixtures/imported_history");

fn main() {
    let imported = MIGRATIONS.iter().next().and_then(|m| m.imported());
    assert_eq!(imported.map(|i| i.source), Some("V11__drop_sessions_user_agent.sql"));
}
