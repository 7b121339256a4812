//! The process's allocator: mimalloc, which keeps a million-record catalog compact and gives
//! freed pages back when asked ([`release`]), where glibc leaves the parsed records' memory
//! stranded between catalog entries.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Frees and purges what the allocator holds for reuse (after a catalog rebuild).
pub(crate) fn release() {
    // SAFETY: mi_collect has no preconditions; `true` forces freeing and purging now.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
