//! `calista events …`: CALISTA's event store. These commands need the database, so they
//! are `#[calista::requires_db]`: the schema guard runs before them, once per process.

use calista::Pool;
use calista::sqlx::{self, Row};
use serde_json::json;

use calista::cli::CliError;

const APPEND_POSTGRES: &str = "INSERT INTO event_store \
    (stream_id, stream_type, version, event_id, event_type, payload, metadata) \
    SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, CAST($5 AS JSONB), CAST($6 AS JSONB) \
    FROM event_store WHERE stream_id = $1 RETURNING global_seq, version";
const APPEND_SQLITE: &str = "INSERT INTO event_store \
    (stream_id, stream_type, version, event_id, event_type, payload, metadata) \
    SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, json(?5), json(?6) \
    FROM event_store WHERE stream_id = ?1 RETURNING global_seq, version";
const LIST_POSTGRES: &str = "SELECT global_seq, stream_id, stream_type, version, event_id, event_type, \
    to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), payload::text, metadata::text \
    FROM event_store WHERE ($1::text IS NULL OR stream_id = $1) ORDER BY global_seq LIMIT $2";
const LIST_SQLITE: &str = "SELECT global_seq, stream_id, stream_type, version, event_id, event_type, \
    recorded_at, payload, metadata \
    FROM event_store WHERE (?1 IS NULL OR stream_id = ?1) ORDER BY global_seq LIMIT ?2";

/// An event's row as `append` writes it: the values of both dialects' statements, in order.
struct Appended<'a> {
    stream: &'a str,
    stream_type: &'a str,
    event_id: String,
    event_type: &'a str,
    payload: String,
    metadata: Option<String>,
}

impl Appended<'_> {
    /// `query` with the row's values bound.
    fn bind<'q, DB>(
        &'q self,
        query: sqlx::query::Query<'q, DB, DB::Arguments>,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments>
    where
        DB: sqlx::Database,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.stream)
            .bind(self.stream_type)
            .bind(self.event_id.as_str())
            .bind(self.event_type)
            .bind(self.payload.as_str())
            .bind(self.metadata.as_deref())
    }
}

/// A failure of the database, its cause in the database's words: sqlx's own would quote the
/// server's message twice, after "error returned from database" and before the server's
/// C source line (" at line 1392").
fn database_failure(message: &str, error: sqlx::Error) -> CliError {
    CliError::failure(message, calista::DriverError::from(error))
}

/// A transaction on `pool` with calista's schema first on `search_path` for its length: the
/// pool's connections carry no startup parameter (a pooler may refuse one), and a setting
/// outside a transaction would stay on a pooled server connection another client gets next.
async fn in_schema(
    pool: &sqlx::PgPool,
    schema: &Option<calista::SchemaName>,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, CliError> {
    let failed = |e| database_failure("cannot open a transaction on the event store", e);
    let mut tx = pool.begin().await.map_err(failed)?;
    if let Some(schema) = schema {
        // A schema name is a plain identifier, checked when it was made.
        let set = format!("SET LOCAL search_path TO \"{schema}\", public");
        sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    Ok(tx)
}

/// The new event.
pub(crate) struct NewEvent {
    pub(crate) stream: String,
    pub(crate) stream_type: Option<String>,
    pub(crate) event_type: String,
    pub(crate) payload: String,
    pub(crate) metadata: Option<String>,
}

/// Appends an event; its version is the stream's next.
#[calista::requires_db]
pub(crate) async fn append(event: NewEvent, as_json: bool) -> Result<String, CliError> {
    let payload = parse_json("--payload", &event.payload)?;
    let metadata = event
        .metadata
        .as_deref()
        .map(|m| parse_json("--metadata", m))
        .transpose()?;
    let stream_type = event
        .stream_type
        .clone()
        .unwrap_or_else(|| default_stream_type(&event.stream));
    let db = calista::db().await?;
    let schema = db.schema().await?;
    // Two writers may pick the same next version; the unique (stream_id, version) turns
    // one away, and it takes the next.
    let mut attempt = 0;
    let (global_seq, version) = loop {
        attempt += 1;
        let row = Appended {
            stream: &event.stream,
            stream_type: &stream_type,
            event_id: ulid::Ulid::generate().to_string(),
            event_type: &event.event_type,
            payload: payload.to_string(),
            metadata: metadata.as_ref().map(|m| m.to_string()),
        };
        let inserted: Result<(i64, i64), sqlx::Error> = match db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = in_schema(pool, &schema).await?;
                let row = row
                    .bind(sqlx::query(APPEND_POSTGRES).persistent(false))
                    .fetch_one(&mut *tx)
                    .await;
                match row {
                    Ok(row) => tx
                        .commit()
                        .await
                        .and_then(|()| Ok((row.try_get(0)?, i64::from(row.try_get::<i32, _>(1)?)))),
                    Err(e) => Err(e),
                }
            }
            Pool::Sqlite(pool) => row
                .bind(sqlx::query(APPEND_SQLITE))
                .fetch_one(pool)
                .await
                .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?))),
        };
        match inserted {
            Ok(done) => break done,
            Err(e) if attempt < 5 && is_unique_violation(&e) => continue,
            Err(e) => return Err(database_failure("cannot append the event", e)),
        }
    };
    Ok(if as_json {
        json_text(&json!({ "global_seq": global_seq, "stream": event.stream, "version": version }))
    } else {
        format!(
            "appended {}@{version} (global position {global_seq})",
            event.stream
        )
    })
}

/// Lists events, oldest first.
#[calista::requires_db]
pub(crate) async fn list(
    stream: Option<String>,
    limit: u32,
    as_json: bool,
) -> Result<String, CliError> {
    let db = calista::db().await?;
    let schema = db.schema().await?;
    let rows = match db.pool() {
        Pool::Postgres(pool) => {
            let mut tx = in_schema(pool, &schema).await?;
            sqlx::query(LIST_POSTGRES)
                .persistent(false)
                .bind(stream)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .and_then(|rows| rows.iter().map(event_of).collect())
        }
        Pool::Sqlite(pool) => sqlx::query(LIST_SQLITE)
            .bind(stream)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(event_of).collect()),
    };
    let events: Vec<Event> =
        rows.map_err(|e| database_failure("cannot read the event store", e))?;
    if as_json {
        return Ok(json_text(&serde_json::Value::Array(
            events.iter().map(Event::to_json).collect(),
        )));
    }
    if events.is_empty() {
        return Ok("no events".into());
    }
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{:>6}  {}  {}@{}  {}  {}",
                e.global_seq, e.recorded_at, e.stream_id, e.version, e.event_type, e.payload
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

struct Event {
    global_seq: i64,
    stream_id: String,
    stream_type: String,
    version: i64,
    event_id: String,
    event_type: String,
    recorded_at: String,
    payload: String,
    metadata: Option<String>,
}

impl Event {
    fn to_json(&self) -> serde_json::Value {
        let parse = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| json!(text));
        json!({
            "global_seq": self.global_seq,
            "stream_id": self.stream_id,
            "stream_type": self.stream_type,
            "version": self.version,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "recorded_at": self.recorded_at,
            "payload": parse(&self.payload),
            "metadata": self.metadata.as_deref().map(parse),
        })
    }
}

fn event_of<R: Row>(row: &R) -> Result<Event, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Event {
        global_seq: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_type: row.try_get(2)?,
        version: i64::from(row.try_get::<i32, _>(3)?),
        event_id: row.try_get(4)?,
        event_type: row.try_get(5)?,
        recorded_at: row.try_get(6)?,
        payload: row.try_get(7)?,
        metadata: row.try_get(8)?,
    })
}

/// One JSON document, as the `db` commands print theirs.
fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned())
}

fn parse_json(flag: &str, text: &str) -> Result<serde_json::Value, CliError> {
    serde_json::from_str(text).map_err(|e| {
        CliError::Usage(format!(
            "{flag} must be a JSON document ({e}); for example {flag} '{{\"total\": 42}}'"
        ))
    })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// `order-42` → `order`, `user:7` → `user`; a stream id without a separator is its own type.
fn default_stream_type(stream: &str) -> String {
    let prefix = stream
        .split(['-', ':'])
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or(stream);
    prefix.chars().take(100).collect()
}
