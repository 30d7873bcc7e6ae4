//! The `server` binary: parse configuration, start Herald, stop on SIGINT or
//! SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use herald::config::LogFormat;
use herald::{leptos_options, start, Config};

fn main() -> ExitCode {
    let cfg = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cfg.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
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
    let code = runtime.block_on(serve(cfg));
    // A librdkafka call stuck on an unreachable broker must not keep the
    // process alive after everything else stopped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

async fn serve(cfg: Config) -> ExitCode {
    let listener = match TcpListener::bind(cfg.site_addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %cfg.site_addr, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let options = leptos_options(listener.local_addr().unwrap_or(cfg.site_addr));
    let running = match start(cfg, listener, options).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("Herald listening on http://{}", running.addr);
    let token = running.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    running.wait().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
