//! `lavit`: the command line of lavit-rs (everything is in the `lavit_cli` library).

fn main() -> std::process::ExitCode {
    lavit_cli::main()
}
