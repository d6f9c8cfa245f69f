//! Integration tests for hs-db: the repository suite on SQLite files and on a throwaway
//! PostgreSQL server, Go Headscale dump imports, refusals, and crash atomicity.

mod crash;
mod dumps;
mod files;
mod refuse;
mod repo;
mod support;
