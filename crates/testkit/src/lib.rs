//! Test harness for Galley: one throwaway PostgreSQL cluster per test run, a fresh
//! database per test cloned from a migrated template, [`spawn_app`] to run Galley
//! in-process against it, and [`GalleyProcess`] to run the real binary.
//!
//! Works under `cargo test` (tests share one process) and `cargo nextest run` (one
//! process per test): the cluster is found or started under a file lock, so parallel
//! processes share it.

mod app;
mod cluster;
mod process;

pub use app::{
    TestApp, spawn_app, spawn_app_with, spawn_second_instance, spawn_second_instance_with,
};
pub use cluster::{TestCluster, TestDatabase};
pub use process::GalleyProcess;
