//! The `swarmsite` command: node, publisher tools and demo. A thin layer over the
//! library; every error ends here as one line on stderr and a non-zero exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    swarmsite_node::node::raise_open_files_limit();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `swarmsite status | head -1` closes the pipe early; `println!` then panics, since Rust
/// ignores SIGPIPE (so that a peer closing a socket is an error, not death: the node
/// must keep that). A listing cut short by its reader is not a failure: end quietly,
/// as shell tools do (128 + SIGPIPE). Any other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
