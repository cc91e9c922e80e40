//! How the daemon hands freed memory back to the system: glibc's allocator keeps it otherwise, and a gate that prints gigabytes would leave the daemon that much larger.
//!
//! Both calls are glibc's; on another libc they do nothing. Measured in
//! `BENCHMARKS.md` (the daemon's RSS growth over a 512 MiB run).

/// Blocks of 1 MiB or more come straight from the system and go straight
/// back when freed. A gate's end hands several 8 MiB copies of its output's
/// tail around (to the runner, the classifier, the database); glibc serves
/// the first with `mmap`, but once one is freed it raises that threshold to
/// the block's size, and every later one comes from a per-thread heap that
/// keeps its pages. The log path's 256 KiB read buffers stay below the fixed
/// threshold, on the heap, where reusing them is cheap (with a 128 KiB
/// threshold the daemon spent three times the CPU on page faults). Setting
/// that threshold also fixes glibc's trim threshold at 128 KiB, so each
/// freed buffer at a heap's top went back to the system and the next was
/// faulted in again: up to 16 MiB of free top is kept instead (24,000 page
/// faults per 512 MiB of output became about 4,000), and
/// [`give_back_freed`] returns it once a process ends. Call it before any
/// thread starts.
pub fn return_large_blocks_at_once() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one allocator parameter; it reads and writes no
    // memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

/// Gives the free pages of every allocator heap back to the system: the
/// read buffers and live frames a flood of output went through, once the
/// process that printed it has ended.
pub fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
