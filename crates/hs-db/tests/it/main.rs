//! Integration tests for hs-db: the repository suite on SQLite files and on a throwaway
//! PostgreSQL server, Go Headscale dump imports, conversion of databases earlier headscale-rs builds wrote, refusals, and crash atomicity.

mod crash;
mod dumps;
mod files;
mod legacy;
mod refuse;
mod repo;
mod support;
