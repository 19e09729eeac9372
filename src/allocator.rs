//! Allocator statistics for `/metrics`: with the `jemalloc` feature (which also makes jemalloc
//! the gateway's global allocator, in `main.rs`) the bytes the program holds and the bytes the
//! allocator keeps resident; without it, nothing. RSS alone cannot tell memory that was freed
//! from memory in use: freed pages often stay mapped in the process.

/// What the allocator reports, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes allocated by the program and not yet freed.
    pub allocated: u64,
    /// Bytes in physically resident pages the allocator maps (program data, its own metadata,
    /// and freed pages it has not returned to the system yet).
    pub resident: u64,
}

/// The statistics of now, when the gateway was built with the `jemalloc` feature.
#[cfg(feature = "jemalloc")]
pub fn stats() -> Option<AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    epoch::advance().ok()?;
    Some(AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

/// The statistics of now: none without the `jemalloc` feature (the system allocator has no
/// safe interface to them).
#[cfg(not(feature = "jemalloc"))]
pub fn stats() -> Option<AllocatorStats> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats_exist_exactly_with_the_jemalloc_feature() {
        let stats = super::stats();
        assert_eq!(stats.is_some(), cfg!(feature = "jemalloc"));
    }
}
