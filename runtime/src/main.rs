//! The `ursa` binary.

/// mimalloc: the worker allocates a few small buffers per record on several threads, where glibc's malloc
/// spent about a sixth of the CPU (`cargo xtask bench runtime`, BENCHMARKS.md). Built without transparent huge
/// pages (the `no_thp` feature): with them, pages mimalloc purged and reused were faulted back in as fresh 2 MiB
/// huge pages, and zeroing those took 15 % of the audit sink's CPU (`cargo xtask bench audit`). With the
/// `override` feature it also serves the C libraries' `malloc` (librdkafka's per-message operations and fetch
/// buffers): glibc's heap gave those pages back and faulted them in again, a quarter of the metrics sink's
/// profile (`cargo xtask bench metrics`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ursa::cli::main()
}
