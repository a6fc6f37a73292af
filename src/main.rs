use clap::Parser;

fn main() {
    let cli = strata::cli::Cli::parse();
    std::process::exit(strata::exit_code(strata::cli::run(cli)));
}
