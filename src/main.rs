//! `nestkube`: parses flags and wires the crates together. No logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nestkube_apiserver::server::{self, ServeConfig};

/// Virtual Kubernetes clusters, many per process.
#[derive(Parser, Debug)]
#[command(name = "nestkube", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: `text` or `json`.
    #[arg(
        long,
        global = true,
        default_value = "text",
        env = "NESTKUBE_LOG_FORMAT"
    )]
    log_format: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the root cluster and every virtual cluster (standalone mode: no
    /// parent cluster given), persisted in the data directory.
    Serve {
        /// Where objects, keys and kubeconfigs live.
        #[arg(long, default_value = ".nestkube")]
        data_dir: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Embedded storage backend: `redb` (default) or `sled`.
        #[arg(long, default_value = "redb")]
        storage_backend: nestkube_storage::Backend,
    },
    /// Run nestkube on this machine: `serve` with data in ./.nestkube on
    /// 127.0.0.1:6443, then print how to use it.
    Up,
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NESTKUBE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let (config, up) = match cli.command {
        Command::Serve {
            data_dir,
            listen,
            storage_backend,
        } => (
            ServeConfig {
                data_dir,
                listen,
                backend: storage_backend,
            },
            false,
        ),
        Command::Up => (
            ServeConfig {
                data_dir: PathBuf::from(".nestkube"),
                listen: "127.0.0.1:6443".parse()?,
                backend: nestkube_storage::Backend::default(),
            },
            true,
        ),
    };
    let running = server::start(config.clone()).await.with_context(|| {
        format!(
            "starting nestkube with data in {}",
            config.data_dir.display()
        )
    })?;
    eprintln!("nestkube is serving on https://{}", running.local_addr);
    eprintln!(
        "root cluster kubeconfig: {}",
        running.root_kubeconfig.display()
    );
    if up {
        println!(
            "\nTry it:\n  kubectl --kubeconfig {} get namespaces\n",
            running.root_kubeconfig.display()
        );
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("shutting down"),
        _ = running.wait() => {}
    }
    Ok(())
}
