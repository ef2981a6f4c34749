//! Profiler test program: burns CPU in `main → outer → middle → leaf_spin` for the seconds given
//! as the first argument. Built `-C opt-level=2` with and without `-C force-frame-pointers=yes`
//! by tests/tests/profile.rs.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[inline(never)]
fn leaf_spin(n: u64) -> u64 {
    let mut x = black_box(n);
    for _ in 0..n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    black_box(x)
}

#[inline(never)]
fn middle(n: u64) -> u64 {
    black_box(leaf_spin(n)) ^ 1
}

#[inline(never)]
fn outer(n: u64) -> u64 {
    black_box(middle(n)) ^ 2
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5.0);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut acc = 0u64;
    while Instant::now() < end {
        acc ^= outer(black_box(1_000_000));
    }
    black_box(acc);
}
