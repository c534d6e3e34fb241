-- The event store: every event of every stream, in one append-only table.
-- global_seq orders all events; (stream_id, version) orders one stream's events.

-- calista:up postgres
CREATE TABLE event_store (
    global_seq  BIGINT GENERATED ALWAYS AS IDENTITY,
    stream_id   VARCHAR(200) NOT NULL,
    stream_type VARCHAR(100) NOT NULL,
    version     INTEGER      NOT NULL,
    event_id    VARCHAR(26)  NOT NULL,
    event_type  VARCHAR(120) NOT NULL,
    recorded_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    payload     JSONB        NOT NULL,
    metadata    JSONB        NULL,
    CONSTRAINT pk_event_store PRIMARY KEY (global_seq),
    CONSTRAINT uq_event_store_event_id UNIQUE (event_id),
    CONSTRAINT uq_event_store_stream_version UNIQUE (stream_id, version),
    CONSTRAINT ck_event_store_version_positive CHECK (version >= 1),
    CONSTRAINT ck_event_store_event_id_ulid_length CHECK (length(event_id) = 26)
);
CREATE INDEX ix_event_store_payload ON event_store USING GIN (payload);
CREATE INDEX ix_event_store_metadata ON event_store USING GIN (metadata);

CREATE FUNCTION event_store_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_store is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER trg_event_store_append_only
    BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_append_only();

-- calista:up sqlite
-- INTEGER PRIMARY KEY is SQLite's 64-bit rowid; JSON is TEXT, checked with json_valid.
CREATE TABLE event_store (
    global_seq  INTEGER      NOT NULL CONSTRAINT pk_event_store PRIMARY KEY AUTOINCREMENT,
    stream_id   VARCHAR(200) NOT NULL,
    stream_type VARCHAR(100) NOT NULL,
    version     INTEGER      NOT NULL,
    event_id    VARCHAR(26)  NOT NULL,
    event_type  VARCHAR(120) NOT NULL,
    recorded_at TIMESTAMP    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    payload     TEXT         NOT NULL,
    metadata    TEXT         NULL,
    CONSTRAINT uq_event_store_event_id UNIQUE (event_id),
    CONSTRAINT uq_event_store_stream_version UNIQUE (stream_id, version),
    CONSTRAINT ck_event_store_version_positive CHECK (version >= 1),
    CONSTRAINT ck_event_store_event_id_ulid_length CHECK (length(event_id) = 26),
    CONSTRAINT ck_event_store_payload_json CHECK (json_valid(payload)),
    CONSTRAINT ck_event_store_metadata_json CHECK (metadata IS NULL OR json_valid(metadata))
);

CREATE TRIGGER trg_event_store_no_update BEFORE UPDATE ON event_store
BEGIN
    SELECT RAISE(ABORT, 'event_store is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER trg_event_store_no_delete BEFORE DELETE ON event_store
BEGIN
    SELECT RAISE(ABORT, 'event_store is append-only: DELETE is not allowed');
END;

-- calista:up
CREATE INDEX ix_event_store_event_type ON event_store (event_type);
CREATE INDEX ix_event_store_stream_id_global_seq ON event_store (stream_id, global_seq);
CREATE INDEX ix_event_store_stream_type_event_type ON event_store (stream_type, event_type);

-- calista:down
DROP TABLE event_store;

-- calista:down postgres
DROP FUNCTION event_store_append_only();
