//! Black-box tests of the whole server: over HTTP against an in-process Galley
//! (`spawn_app`), or against the real `galley` binary where processes, signals and the
//! embedded cluster are what is under test. One test binary, so it links once.

mod admin_ui;
mod admins;
mod audit;
mod auth;
mod backup;
mod catalog;
mod columns;
mod config;
mod connections;
mod database;
mod embedded;
mod hostile;
mod http;
mod mail;
mod metrics;
mod oauth;
mod operator;
mod passkeys;
mod realtime;
mod rest;
mod rest_sql;
mod rules;
mod schema_files;
mod storage;
mod support;
mod tables;
mod wire;
