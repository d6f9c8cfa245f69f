-- Baseline: Go Headscale's schema as of migration 202606201200-pre-auth-key-revoked, so a
-- database created here can be opened by Go Headscale and an imported Go database (brought
-- to this point by the import step in src/migrate) passes through unchanged.
CREATE TABLE IF NOT EXISTS migrations(id text, PRIMARY KEY(id));

CREATE TABLE IF NOT EXISTS users(
  id integer PRIMARY KEY AUTOINCREMENT,
  name text,
  display_name text,
  email text,
  provider_identifier text,
  provider text,
  profile_pic_url text,
  created_at datetime,
  updated_at datetime,
  deleted_at datetime
);
CREATE INDEX IF NOT EXISTS idx_users_deleted_at ON users(deleted_at);
CREATE UNIQUE INDEX IF NOT EXISTS idx_provider_identifier ON users(provider_identifier) WHERE provider_identifier IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_name_provider_identifier ON users(name, provider_identifier);
CREATE UNIQUE INDEX IF NOT EXISTS idx_name_no_provider_identifier ON users(name) WHERE provider_identifier IS NULL;

CREATE TABLE IF NOT EXISTS pre_auth_keys(
  id integer PRIMARY KEY AUTOINCREMENT,
  key text,
  prefix text,
  hash blob,
  user_id integer,
  reusable numeric,
  ephemeral numeric DEFAULT false,
  used numeric DEFAULT false,
  tags text,
  expiration datetime,
  created_at datetime,
  description text,
  revoked numeric DEFAULT false,
  CONSTRAINT fk_pre_auth_keys_user FOREIGN KEY(user_id) REFERENCES users(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_pre_auth_keys_prefix ON pre_auth_keys(prefix) WHERE prefix IS NOT NULL AND prefix != '';

CREATE TABLE IF NOT EXISTS api_keys(
  id integer PRIMARY KEY AUTOINCREMENT,
  prefix text,
  hash blob,
  expiration datetime,
  last_seen datetime,
  created_at datetime,
  user_id integer
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_api_keys_prefix ON api_keys(prefix);

CREATE TABLE IF NOT EXISTS nodes(
  id integer PRIMARY KEY AUTOINCREMENT,
  machine_key text,
  node_key text,
  disco_key text,
  endpoints text,
  host_info text,
  ipv4 text,
  ipv6 text,
  hostname text,
  given_name varchar(63),
  user_id integer,
  register_method text,
  tags text,
  auth_key_id integer,
  last_seen datetime,
  expiry datetime,
  approved_routes text,
  created_at datetime,
  updated_at datetime,
  deleted_at datetime,
  CONSTRAINT fk_nodes_user FOREIGN KEY(user_id) REFERENCES users(id) ON DELETE CASCADE,
  CONSTRAINT fk_nodes_auth_key FOREIGN KEY(auth_key_id) REFERENCES pre_auth_keys(id)
);

CREATE TABLE IF NOT EXISTS policies(
  id integer PRIMARY KEY AUTOINCREMENT,
  data text,
  created_at datetime,
  updated_at datetime,
  deleted_at datetime
);
CREATE INDEX IF NOT EXISTS idx_policies_deleted_at ON policies(deleted_at);

CREATE TABLE IF NOT EXISTS database_versions(
  id integer PRIMARY KEY,
  version text NOT NULL,
  updated_at datetime
);

-- The Go migration ids this schema is equivalent to, so Go Headscale pointed at this
-- database runs only the steps after them.
INSERT INTO migrations(id) VALUES
  ('202501221827'), ('202501311657'), ('202502070949'), ('202502131714'), ('202502171819'),
  ('202505091439'), ('202505141324'), ('202507021200'), ('202510311551'),
  ('202511101554-drop-old-idx'), ('202511011637-preauthkey-bcrypt'),
  ('202511122344-remove-newline-index'), ('202511131445-node-forced-tags-to-tags'),
  ('202601121700-migrate-hostinfo-request-tags'), ('202602201200-clear-tagged-node-user-id'),
  ('202605221435-clear-zero-time-node-expiry'), ('202606181200-recover-null-tags-node-user-id'),
  ('202606191500-api-key-user-id'), ('202606191501-pre-auth-key-description'),
  ('202606201200-pre-auth-key-revoked')
ON CONFLICT(id) DO NOTHING;
