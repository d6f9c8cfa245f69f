-- A database as headscale-rs wrote it before its schema became Go Headscale 0.29.3's: the
-- schema below is that build's migration (crates/hs-db/migrations/sqlite/2026-11-21-000000_baseline,
-- removed since), with diesel's version table beside Go's, plus a few rows of each kind.
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

CREATE TABLE __diesel_schema_migrations (
  version VARCHAR(50) PRIMARY KEY NOT NULL,
  run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO __diesel_schema_migrations (version) VALUES ('20261121000000');

INSERT INTO users (id, name, display_name, email, created_at, updated_at)
  VALUES (1, 'alice', 'Alice', 'alice@example.com', '2026-11-22 10:00:00+00:00', '2026-11-22 10:00:00+00:00');
-- A revoked reusable key, a live one, a revoked tagged one with an expiry of its own.
INSERT INTO pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, tags, expiration, created_at, description, revoked)
  VALUES (1, 'aaaaaaaaaaaa', X'2432', 1, true, false, true, '[]', NULL, '2026-11-22 10:00:00+00:00', '', true),
         (2, 'bbbbbbbbbbbb', X'2432', 1, false, false, false, '[]', '2027-01-01 00:00:00+00:00', '2026-11-22 11:00:00+00:00', 'ci', false),
         (3, 'cccccccccccc', X'2432', NULL, true, false, false, '["tag:ci"]', '2026-11-20 00:00:00+00:00', '2026-11-19 00:00:00+00:00', '', true);
INSERT INTO api_keys (id, prefix, hash, expiration, created_at, user_id)
  VALUES (1, 'dddddddddddd', X'2432', '2027-11-22 10:00:00+00:00', '2026-11-22 10:00:00+00:00', NULL);
INSERT INTO nodes (id, machine_key, node_key, disco_key, endpoints, host_info, ipv4, ipv6, hostname, given_name,
  user_id, register_method, tags, auth_key_id, last_seen, expiry, approved_routes, created_at, updated_at)
  VALUES (1, 'mkey:0101010101010101010101010101010101010101010101010101010101010101',
  'nodekey:0202020202020202020202020202020202020202020202020202020202020202',
  'discokey:0303030303030303030303030303030303030303030303030303030303030303',
  '[]', '{}', '100.64.0.1', 'fd7a:115c:a1e0::1', 'laptop', 'laptop', 1, 'authkey', '[]', 1,
  '2026-11-23 00:00:00+00:00', NULL, '[]', '2026-11-22 10:00:00+00:00', '2026-11-22 10:00:00+00:00');
INSERT INTO policies (id, data, created_at, updated_at) VALUES (1, '{"acls":[]}', '2026-11-22 10:00:00+00:00', '2026-11-22 10:00:00+00:00');
