//! burn-bench: the burn engine. The protocol loop is shared; the library only computes.

fn main() -> std::process::ExitCode {
    shared_protocol::serve::<burn_bench::Engine>()
}
