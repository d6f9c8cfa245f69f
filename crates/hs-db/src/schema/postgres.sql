-- Go Headscale 0.29.3's schema (its hscontrol/db/schema.sql on SQLite; what gorm's AutoMigrate
-- makes on PostgreSQL), column for column: Go 0.29.3 validates the SQLite schema when it
-- opens a database, so nothing may be added here that it does not have. Every statement is
-- idempotent because the SQLite table rebuild in migrate/import.rs runs it over a database
-- that keeps its `migrations` and `database_versions` tables.
CREATE TABLE IF NOT EXISTS migrations(id text, PRIMARY KEY(id));

CREATE TABLE IF NOT EXISTS users(
  id bigserial PRIMARY KEY,
  name text,
  display_name text,
  email text,
  provider_identifier text,
  provider text,
  profile_pic_url text,
  created_at timestamptz,
  updated_at timestamptz,
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS idx_users_deleted_at ON users(deleted_at);
CREATE UNIQUE INDEX IF NOT EXISTS idx_provider_identifier ON users(provider_identifier) WHERE provider_identifier IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_name_provider_identifier ON users(name, provider_identifier);
CREATE UNIQUE INDEX IF NOT EXISTS idx_name_no_provider_identifier ON users(name) WHERE provider_identifier IS NULL;

CREATE TABLE IF NOT EXISTS pre_auth_keys(
  id bigserial PRIMARY KEY,
  key text,
  prefix text,
  hash bytea,
  user_id bigint,
  reusable boolean,
  ephemeral boolean DEFAULT false,
  used boolean DEFAULT false,
  tags text,
  expiration timestamptz,
  created_at timestamptz,
  CONSTRAINT fk_pre_auth_keys_user FOREIGN KEY(user_id) REFERENCES users(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_pre_auth_keys_prefix ON pre_auth_keys(prefix) WHERE prefix IS NOT NULL AND prefix != '';

CREATE TABLE IF NOT EXISTS api_keys(
  id bigserial PRIMARY KEY,
  prefix text,
  hash bytea,
  expiration timestamptz,
  last_seen timestamptz,
  created_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_api_keys_prefix ON api_keys(prefix);

CREATE TABLE IF NOT EXISTS nodes(
  id bigserial PRIMARY KEY,
  machine_key text,
  node_key text,
  disco_key text,
  endpoints text,
  host_info text,
  ipv4 text,
  ipv6 text,
  hostname text,
  given_name varchar(63),
  user_id bigint,
  register_method text,
  tags text,
  auth_key_id bigint,
  last_seen timestamptz,
  expiry timestamptz,
  approved_routes text,
  created_at timestamptz,
  updated_at timestamptz,
  deleted_at timestamptz,
  CONSTRAINT fk_nodes_user FOREIGN KEY(user_id) REFERENCES users(id) ON DELETE CASCADE,
  CONSTRAINT fk_nodes_auth_key FOREIGN KEY(auth_key_id) REFERENCES pre_auth_keys(id)
);

CREATE TABLE IF NOT EXISTS policies(
  id bigserial PRIMARY KEY,
  data text,
  created_at timestamptz,
  updated_at timestamptz,
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS idx_policies_deleted_at ON policies(deleted_at);

CREATE TABLE IF NOT EXISTS database_versions(
  id bigint PRIMARY KEY,
  version text NOT NULL,
  updated_at timestamptz
);
