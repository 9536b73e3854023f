//! The `ursa` binary.

fn main() -> std::process::ExitCode {
    ursa::cli::main()
}
