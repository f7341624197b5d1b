//! The wall clock, read in one place. The protocol's machines take the time as an
//! argument; the node, the DNS service and the CLI read it here.

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch: records' `time` and the trust check's clock.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}
