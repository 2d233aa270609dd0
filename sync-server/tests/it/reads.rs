//! Reading storage from many threads: a long read holds one connection, not all of them.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anjian_sync_server::Storage;
use anjian_sync_server::db::params;
use anjian_sync_server::error::AppResult;
use anjian_sync_server::testing;

/// A long read (a bulletin, a case in full on a read thread) holds one connection: other
/// reads, such as the async workers' token checks, go on beside it. A read that panics
/// gives its connection back, however many do.
#[test]
fn a_long_read_holds_one_connection_and_a_panicking_one_gives_it_back() {
    let dir = tempfile::tempdir().expect("dir");
    let storage = Arc::new(Storage::open(&testing::database(dir.path())).expect("opens"));
    // More panicking reads than either engine keeps connections.
    for _ in 0..20 {
        let storage = storage.clone();
        let read = thread::spawn(move || {
            storage.read(|_| -> AppResult<()> { panic!("a read that fails unexpectedly") })
        });
        assert!(read.join().is_err());
    }
    let (holding, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let long = {
        let storage = storage.clone();
        thread::spawn(move || {
            storage.read(|conn| {
                holding.send(()).expect("tell");
                released.recv().expect("released");
                conn.query_row("SELECT 1", params![], |r| r.get::<i64>(0))
            })
        })
    };
    held.recv().expect("the long read holds its connection");
    let (done, other) = mpsc::channel();
    {
        let storage = storage.clone();
        thread::spawn(move || {
            let read =
                storage.read(|conn| conn.query_row("SELECT 2", params![], |r| r.get::<i64>(0)));
            let _ = done.send(read);
        });
    }
    // Only a guard against hanging for ever: the read waits for nothing.
    let other = other
        .recv_timeout(Duration::from_secs(60))
        .expect("another read goes on while the long one holds its connection");
    assert_eq!(other.expect("read"), 2);
    release.send(()).expect("release");
    assert_eq!(long.join().expect("joins").expect("read"), 1);
}
