//! An S3 server for tests: s3s-fs in-process on a free loopback port, checking SigV4
//! signatures, serving a directory (one folder per bucket).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use super::common::discern;

pub const ACCESS_KEY: &str = "AKIDDISCERNTEST";
pub const SECRET_KEY: &str = "discern-test-secret-key";
pub const BUCKET: &str = "lab-data";

/// An S3 server on a free loopback port, serving the directory `root` (one folder per bucket).
pub struct S3Server {
    pub endpoint: String,
    /// Dropping the runtime stops the accept loop and every connection.
    #[allow(dead_code)]
    runtime: tokio::runtime::Runtime,
}

impl S3Server {
    /// Speaks HTTPS with `tls` when given, plain HTTP otherwise.
    pub fn start_with_tls(root: &Path, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut builder =
            s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", listener.local_addr().unwrap());
        runtime.spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (http, service, tls) = (http.clone(), service.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let io = hyper_util::rt::TokioIo::new(socket);
                            let _ = http.serve_connection(io, service).await;
                        }
                        Some(tls) => {
                            // A client that does not trust us hangs up during the handshake.
                            let Ok(stream) = tls.accept(socket).await else {
                                return;
                            };
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = http.serve_connection(io, service).await;
                        }
                    }
                });
            }
        });
        Self { endpoint, runtime }
    }

    /// `discern` configured for this server through the standard AWS_* variables only.
    pub fn discern(&self, secret: &str) -> std::process::Command {
        let mut cmd = discern();
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true");
        cmd
    }
}
