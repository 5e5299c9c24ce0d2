fn main() -> std::process::ExitCode {
    airlock::cli::run()
}
