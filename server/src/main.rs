//! The `server` binary: parse configuration, start Herald, stop on SIGINT or
//! SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

use herald::config::{Command, LogFormat};
use herald::{leptos_options, start, Config};

/// mimalloc instead of glibc's malloc: a send allocates and frees across
/// threads (HTTP workers, librdkafka, the store's thread), where glibc's
/// arenas spent about a sixth of Herald's CPU (`_int_malloc`, `_int_free`,
/// `malloc_consolidate` in a wrk profile; docs/bench/cost.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cfg = Config::parse();
    let command = cfg.command.take();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A command's answer goes to standard output (a new key among them),
    // so its log lines go to standard error.
    let to_stderr = command.is_some();
    match (cfg.log_format, to_stderr) {
        (LogFormat::Text, false) => tracing_subscriber::fmt().with_env_filter(filter).init(),
        (LogFormat::Text, true) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
        (LogFormat::Json, false) => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(filter)
            .init(),
        (LogFormat::Json, true) => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = match command {
        Some(Command::Keys(keys)) => {
            match runtime.block_on(herald::keys::run(&cfg, keys, &mut std::io::stdout())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "keys");
                    ExitCode::FAILURE
                }
            }
        }
        None => runtime.block_on(serve(cfg)),
    };
    // A librdkafka call stuck on an unreachable broker must not keep the
    // process alive after everything else stopped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

async fn serve(cfg: Config) -> ExitCode {
    // Handlers first: a SIGTERM that arrives while starting must not kill
    // the process with the default action.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(cfg.site_addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %cfg.site_addr, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let options = leptos_options(listener.local_addr().unwrap_or(cfg.site_addr));
    let started = tokio::select! {
        r = start(cfg, listener, options) => r,
        _ = term.recv() => return stopped_while_starting(),
        _ = int.recv() => return stopped_while_starting(),
    };
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("Herald listening on http://{}", running.addr);
    let token = running.shutdown_token();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        token.cancel();
    });
    running.wait().await;
    ExitCode::SUCCESS
}

fn stopped_while_starting() -> ExitCode {
    tracing::info!("stopped while starting");
    ExitCode::SUCCESS
}
