//! The `ursa` binary.

/// mimalloc: the worker allocates a few small buffers per record on several threads, where glibc's malloc
/// spent about a sixth of the CPU (`cargo xtask bench runtime`, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ursa::cli::main()
}
