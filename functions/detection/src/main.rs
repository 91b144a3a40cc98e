//! `detection`: the Lambda function (default) or `detection serve --port N`.

use clap::{Parser, Subcommand};
use detection::Config;
use std::io::Write;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Scores CloudTrail events with the latest anomaly model")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve plain HTTP on a port (local use and tests).
    Serve {
        /// Port to listen on (0 picks a free one; the address is printed on stdout).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// A local model file instead of the S3 store.
        #[arg(long, env = "MODEL_FILE")]
        model_file: Option<std::path::PathBuf>,
    },
    /// Run as an AWS Lambda function behind API Gateway (the default).
    Lambda,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anomaly::logging::init(matches!(cli.command, None | Some(Command::Lambda)));
    let mut config = Config::from_env()?;
    match cli.command {
        Some(Command::Serve {
            port,
            host,
            model_file,
        }) => {
            if model_file.is_some() {
                config.model_file = model_file;
            }
            let state = Arc::new(config.state().await?);
            let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
            let addr = listener.local_addr()?;
            println!("listening on http://{addr}");
            std::io::stdout().flush()?;
            detection::serve::serve(listener, state).await?;
            Ok(())
        }
        Some(Command::Lambda) | None => {
            let state = Arc::new(config.state().await?);
            detection::lambda::run(state)
                .await
                .map_err(|e| anyhow::anyhow!(e))
        }
    }
}
