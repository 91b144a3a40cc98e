//! The `controller` command.

fn main() {
    std::process::exit(controller::cli::run());
}
