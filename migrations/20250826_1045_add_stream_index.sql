-- Looks up a stream by a natural key: (kind, key) -> stream_id, with the version seen.

-- calista:up
CREATE TABLE stream_index (
    kind      VARCHAR(64)  NOT NULL,
    key       VARCHAR(512) NOT NULL,
    stream_id VARCHAR(26)  NOT NULL,
    version   INTEGER      NOT NULL DEFAULT 0,
    CONSTRAINT pk_stream_index PRIMARY KEY (kind, key),
    CONSTRAINT uq_stream_index_stream_id UNIQUE (stream_id)
);

-- calista:down
DROP TABLE stream_index;
