//! Serve the spec app inside tower-http's layers on 127.0.0.1:3000.
//!
//! Try `curl -i 127.0.0.1:3000/`, `curl -i '127.0.0.1:3000/slow?ms=3000'`
//! (504 after one second) and `head -c 100000 /dev/zero | curl -i --data-binary @- 127.0.0.1:3000/upload` (413).

use example_tower_layers::{serve, spec_service, Options};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (spec, _lint) = spec_service(4)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("spec app behind tower layers on http://{}", listener.local_addr()?);
    serve(listener, spec, Options { log: true, ..Options::default() }).await
}
