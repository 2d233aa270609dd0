//! The allocator the server's processes run on.
//!
//! Every commit replaces a case's document with its judged copy, so the server frees and
//! allocates whole documents all day. The system allocator (glibc) kept most of what the
//! old copies held: holding 1,000 active devices cost about 93–105 KB each against some
//! 27 KB of live heap. jemalloc hands freed pages back to the system within seconds: 46–50
//! KB each, at the same latency and CPU (docs/BENCHMARKS.md). The phone's engine keeps the
//! platform's allocator; only server processes take this one, each in its `main`:
//!
//! ```text
//! #[global_allocator]
//! static ALLOCATOR: anjian_sync_server::memory::Allocator = anjian_sync_server::memory::ALLOCATOR;
//! ```

/// The allocator's type.
pub type Allocator = tikv_jemallocator::Jemalloc;

/// The allocator, for a binary's `#[global_allocator]`.
pub const ALLOCATOR: Allocator = tikv_jemallocator::Jemalloc;
