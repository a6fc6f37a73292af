use clap::Parser;

fn main() {
    let cli = strata::Cli::parse();
    std::process::exit(strata::exit_status(strata::run(cli)));
}
