//! Hashing memory is bounded by construction: under many concurrent hashes and
//! verifications, the large allocations made are the pool's buffers, no more of them than
//! it has permits, reused from one hash to the next — counted here by the allocator
//! itself (`stats_alloc`), so a return to a buffer per call fails this test.

use std::alloc::System;

use galley_auth::{HashCost, PasswordHasherPool};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_hashes_use_only_the_pools_buffers() {
    const PERMITS: usize = 2;
    const MIB: usize = 1 << 20;
    let cost = HashCost {
        memory_kib: 4 * 1024,
        iterations: 1,
        parallelism: 1,
    };
    let pool = PasswordHasherPool::new(cost, PERMITS).expect("pool");
    let stored = pool.hash("correct horse").await.expect("hash");
    pool.release_idle();
    let region = Region::new(ALLOCATOR);

    let mut work = tokio::task::JoinSet::new();
    for n in 0..32 {
        let pool = pool.clone();
        let stored = stored.clone();
        work.spawn(async move {
            if n % 2 == 0 {
                pool.hash(&format!("password number {n}")).await.is_ok()
            } else {
                pool.verify("correct horse", Some(&stored)).await
            }
        });
    }
    while let Some(done) = work.join_next().await {
        assert!(done.expect("joined"), "every hash and verify succeeds");
    }

    // A buffer per call would allocate 32 × 4 MiB here.
    let during = region.change();
    assert!(
        during.bytes_allocated <= PERMITS * 4 * MIB + MIB,
        "{} KiB allocated for 32 hashes",
        during.bytes_allocated / 1024
    );
    pool.release_idle();
    let after = region.change();
    let live =
        after.bytes_allocated as isize - after.bytes_deallocated as isize + after.bytes_reallocated;
    assert!(
        live < MIB as isize,
        "{} KiB still live once idle",
        live / 1024
    );
}
