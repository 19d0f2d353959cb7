//! The `maestro` binary.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "maestro",
    about = "A scheduler for dedicated game servers on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the version.
    Version,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Version => println!("maestro {}", env!("CARGO_PKG_VERSION")),
    }
}
