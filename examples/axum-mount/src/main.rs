//! Serve the axum router with the mounted spec app on 127.0.0.1:3000.
//!
//! Try `curl 'http://127.0.0.1:3000/legacy/a/b?x=1'`.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = example_axum_mount::router(example_axum_mount::spec_service(4)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("axum with a spec app at {} on http://{}", example_axum_mount::MOUNT, listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}
