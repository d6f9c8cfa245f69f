//! Node upserts per second and full node-list load time for 10k nodes, on SQLite and (when
//! the PostgreSQL server binaries are installed) PostgreSQL.
fn main() {}
