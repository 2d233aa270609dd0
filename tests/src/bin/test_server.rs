//! Runs the sync server on an address and data folder given on the command line, printing
//! the address it listens on; the durability test kills it with SIGKILL. Settings beyond
//! those come from `ANJIAN_CONFIG` (a TOML file), as for the real server: the load
//! benchmarks raise the limits on connections per address and per user there. Under
//! `ANJIAN_TEST_POSTGRES` its data goes to the data folder's PostgreSQL database, as a test
//! server's does, and under `ANJIAN_TEST_S3` its blobs go to the object store.

use anjian_sync_server::Settings;

/// The server's own allocator, as its binary runs on.
#[global_allocator]
static ALLOCATOR: anjian_sync_server::memory::Allocator = anjian_sync_server::memory::ALLOCATOR;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = args.next().ok_or("usage: test_server DATA_DIR [ADDR]")?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let config = std::env::var_os("ANJIAN_CONFIG").map(std::path::PathBuf::from);
    let mut settings = Settings {
        data: data.into(),
        listen: addr.parse()?,
        ..Settings::load(config.as_deref())?
    };
    if settings.database.is_none() {
        settings.database = anjian_sync_server::testing::postgres_database(&settings.data);
    }
    if settings.blobs.is_none() {
        settings.blobs = anjian_sync_server::testing::s3_blobs(&settings.data);
    }
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    println!("listening {}", listener.local_addr()?);
    anjian_sync_server::serve(settings, listener, std::future::pending()).await?;
    Ok(())
}
