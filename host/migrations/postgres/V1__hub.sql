-- The hub's tables, as SQLite's (host/src/store/sqlite.rs) with PostgreSQL
-- types, plus what several nodes coordinate through. Text keys use the "C"
-- collation: ordered by bytes, as SQLite orders them, whatever the
-- database's locale. Append only: a released migration never changes
-- (refinery checks each applied file's checksum).

CREATE TABLE plugins (
    id text COLLATE "C" PRIMARY KEY,
    version text NOT NULL,
    manifest text NOT NULL,
    sha256 text NOT NULL,
    component bytea NOT NULL,
    uploaded_at_ms bigint NOT NULL
);

CREATE TABLE connectors (
    id text COLLATE "C" PRIMARY KEY,
    plugin text NOT NULL,
    record text NOT NULL,
    -- The secret fields, JSON sealed with secret.key (store/secrets.rs).
    secrets bytea NOT NULL
);

-- Plugins' key-value data, every value sealed with secret.key.
CREATE TABLE kv (
    instance text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (instance, key)
);

CREATE TABLE settings (
    key text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE users (
    username text COLLATE "C" PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE notes (
    id bigserial PRIMARY KEY,
    username text COLLATE "C" NOT NULL,
    record text NOT NULL
);
CREATE INDEX notes_user ON notes (username);

CREATE TABLE tokens (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    sha256 text NOT NULL UNIQUE,
    created_at_ms bigint NOT NULL
);

CREATE TABLE events (
    id bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    kind text NOT NULL,
    username text,
    instance text,
    detail text NOT NULL
);
CREATE INDEX events_at ON events (at_ms);
CREATE INDEX events_user ON events (username, at_ms);
CREATE INDEX events_instance ON events (instance, at_ms);

-- Cluster coordination (host/src/store/cluster.rs). Times are the
-- database's clock.
CREATE TABLE nodes (
    id text COLLATE "C" PRIMARY KEY,
    api_url text NOT NULL,
    started_at timestamptz NOT NULL,
    seen_until timestamptz NOT NULL
);

CREATE TABLE leases (
    instance text COLLATE "C" PRIMARY KEY,
    node text NOT NULL,
    fence bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX leases_node ON leases (node);

-- The last fence granted per instance; kept when the lease row goes, so a
-- fence is never granted twice.
CREATE TABLE fences (
    instance text COLLATE "C" PRIMARY KEY,
    last bigint NOT NULL
);

CREATE TABLE cluster_log (
    seq bigserial PRIMARY KEY,
    origin text NOT NULL,
    topic text NOT NULL,
    payload text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cluster_log_at ON cluster_log (at);

-- Milliseconds since the Unix epoch, as the hub counts time.
CREATE FUNCTION hub_ms(timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT floor(extract(epoch FROM $1) * 1000)::bigint $$;
