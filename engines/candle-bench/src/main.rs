//! candle-bench: the candle engine. The protocol loop is shared; the library only computes.

fn main() -> std::process::ExitCode {
    shared_protocol::serve::<candle_bench::Engine>()
}
