//! Load (docs/BENCHMARKS.md): 1,000 simulated devices, each signed in as an account of its
//! own (or PER_ACCOUNT devices an account), hold WebSocket connections to the server at once on loopback, each sending a small
//! change every few seconds for a bounded time. Reports the round trip (change sent → the
//! server's heads show it) at p50/p99, errors, the server's memory per connection and its
//! CPU time.
//!
//! With an interval of 0 the connections are idle: each device opens SOCKETS sockets,
//! syncs its case once on each and then only holds them (the server's memory for many
//! idle connections, sampled once every socket has synced).
//!
//! Run: `cargo bench -p anjian-tests --bench sync_connections [-- DEVICES SECONDS INTERVAL_MS [SOCKETS [PER_ACCOUNT]]]`

use anjian_tests::bench::ms;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anjian_core::Role;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use anjian_core::{Store, sample};
use anjian_sync_server::users::NewUser;
use anjian_tests::process;
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (devices, seconds, interval, sockets) = (
        *args.first().unwrap_or(&1000) as usize,
        *args.get(1).unwrap_or(&30),
        *args.get(2).unwrap_or(&3000),
        *args.get(3).unwrap_or(&1) as usize,
    );
    let per_account = (*args.get(4).unwrap_or(&1) as usize).max(1);
    let account = |d: usize| format!("field{:04}", d / per_account);
    let connections = devices * sockets;
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("server");
    // One account a device, as inspectors' phones are, or `per_account` devices an account
    // (a phone and a tablet): each account's time and turns on the apply threads are its
    // own (`apply_time`).
    std::fs::create_dir_all(&data).expect("data folder");
    let storage = anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&data))
        .expect("server database");
    for d in (0..devices).step_by(per_account) {
        let username = account(d);
        storage
            .add_user(&NewUser {
                username: &username,
                name: &format!("检查员{d}"),
                role: Role::Inspector,
                district: &"310101".parse().expect("district"),
                department: "应急管理",
                password: anjian_tests::PASSWORD,
            })
            .expect("user added");
    }
    drop(storage);
    let (server, addr) = process::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_test_server"))
            .arg(&data)
            .env("ANJIAN_CONFIG", process::load_settings(work.path())),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if interval == 0 {
        println!("# {devices} devices × {sockets} sockets, idle for {seconds} s");
    } else {
        println!(
            "# {devices} devices ({per_account} an account), a change each every {interval} ms for {seconds} s"
        );
    }

    // Every device: its own store, one case with one finding, signed in with its actor.
    let mut setup = Vec::new();
    for d in 0..devices {
        let mut store = Store::open(
            work.path().join(format!("d{d}.db")),
            sample::inspector(&account(d)),
        )
        .expect("store");
        let enterprise = sample::enterprise(d as u32);
        store.register_enterprise(&enterprise).expect("register");
        let case = store
            .open_case(&sample::new_case(&enterprise))
            .expect("case");
        store
            .add_finding(case, &sample::finding("现场隐患"))
            .expect("finding");
        let actor = store.device_id();
        let doc = AutoCommit::load(&store.export_document(case).expect("export"))
            .expect("load")
            .with_actor(automerge::ActorId::from(hex_bytes(&actor)));
        setup.push((case, actor, doc));
    }
    let tokens: Vec<String> = runtime.block_on(async {
        let mut tokens = Vec::new();
        for (d, (_, actor, _)) in setup.iter().enumerate() {
            let url = format!("http://{addr}");
            tokens.push(anjian_tests::login_device(&url, &account(d), actor).await);
        }
        tokens
    });
    let baseline = process::rss(&server);
    let cpu_before = process::cpu_seconds(&server);

    let errors = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds) + Duration::from_secs(20);
    let tasks: Vec<_> = setup
        .into_iter()
        .zip(tokens)
        .enumerate()
        .flat_map(|(i, ((case, _, doc), token))| {
            (0..sockets).map(move |_| (i, case, doc.clone(), token.clone()))
        })
        .map(|(i, case, doc, token)| {
            let (addr, errors, connected) = (addr.clone(), errors.clone(), connected.clone());
            runtime.spawn(async move {
                match device(i, &addr, &token, case, doc, seconds, interval, &connected).await {
                    Ok(latencies) => latencies,
                    Err(e) => {
                        eprintln!("device {i}: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                        Vec::new()
                    }
                }
            })
        })
        .collect();
    // Memory once every connection has synced (or the time is up), after a moment to settle.
    while connected.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed) < connections as u64
        && Instant::now() < start + Duration::from_secs(seconds)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let first_sample = process::rss(&server);
    // Then once a second until the devices' time is up: the median is what holding them
    // costs, the first sample alone moves with whatever the last syncs left allocated.
    let server_pid = server.id();
    let sampling_until = start + Duration::from_secs(seconds);
    let sampler = std::thread::spawn(move || {
        let mut samples = vec![first_sample];
        while Instant::now() + Duration::from_secs(1) < sampling_until {
            std::thread::sleep(Duration::from_secs(1));
            samples.push(process::rss_of(server_pid));
        }
        samples.sort_unstable();
        samples
    });
    let latencies: Vec<Vec<Duration>> = runtime.block_on(async {
        let mut results = Vec::new();
        for task in tasks {
            results.push(
                tokio::time::timeout_at(deadline.into(), task)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default(),
            );
        }
        results
    });
    let samples = sampler.join().expect("memory samples");
    let all_open = samples[samples.len() / 2];
    let open = process::peak_memory(&server);
    let cpu = process::cpu_seconds(&server) - cpu_before;
    let elapsed = start.elapsed();
    let mut all: Vec<Duration> = latencies.into_iter().flatten().collect();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "connections: {} of {connections}   changes: {}   errors: {}",
        connected.load(Ordering::Relaxed),
        all.len(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "round trip: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(all.last().copied().unwrap_or_default())
    );
    println!(
        "server memory: {:.1} MB before, {:.1} MB with every connection open (median of {} samples, one a second; {:.1} KB per connection; the first {:.1} KB), {:.1} MB at the peak ({:.1} KB per connection)",
        baseline as f64 / 1e6,
        all_open as f64 / 1e6,
        samples.len(),
        (all_open.saturating_sub(baseline)) as f64 / 1e3 / connections as f64,
        (first_sample.saturating_sub(baseline)) as f64 / 1e3 / connections as f64,
        open as f64 / 1e6,
        (open.saturating_sub(baseline)) as f64 / 1e3 / connections as f64
    );
    println!(
        "server CPU: {cpu:.1} s over {:.1} s ({:.0}% of one core)",
        elapsed.as_secs_f64(),
        cpu / elapsed.as_secs_f64() * 100.0
    );
    let held = runtime.block_on(anjian_tests::metric(
        &format!("http://{addr}"),
        "anjian_sync_apply_time_waits_total",
    ));
    println!("frames held back for their account's apply time: {held}");
    let _ = std::fs::write(format!("/proc/{}/clear_refs", server.id()), "5");
    process::stop(server);
}

#[expect(clippy::too_many_arguments, reason = "one device's whole script")]
async fn device(
    i: usize,
    addr: &str,
    token: &str,
    case: anjian_core::CaseId,
    mut doc: AutoCommit,
    seconds: u64,
    interval: u64,
    connected: &AtomicU64,
) -> Result<Vec<Duration>, String> {
    let url = format!("ws://{addr}/sync?token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let peer = format!("device-{i}");
    let join = WireMessage::Join {
        sender_id: peer.clone(),
        metadata: PeerMetadata::default(),
        supported_versions: vec![PROTOCOL_VERSION.into()],
    };
    socket
        .send(Message::Binary(join.encode().into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(b)))
                if matches!(WireMessage::decode(&b), Ok(WireMessage::Peer { .. })) =>
            {
                break;
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("no peer: {other:?}")),
        }
    }
    let document_id = DocumentId::of(case);
    let mut state = sync::State::new();
    let mut round_trip = async |doc: &mut AutoCommit,
                                state: &mut sync::State|
           -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            if let Some(m) = doc.sync().generate_sync_message(state) {
                let frame = WireMessage::Sync {
                    sender_id: peer.clone(),
                    target_id: String::new(),
                    document_id,
                    data: m.encode(),
                    signatures: Vec::new(),
                };
                socket
                    .send(Message::Binary(frame.encode().into()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if state.their_heads.as_deref() == Some(&doc.get_heads()[..]) {
                return Ok(start.elapsed());
            }
            let frame = match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => b,
                Ok(Some(Ok(_))) => continue,
                other => return Err(format!("connection: {other:?}")),
            };
            match WireMessage::decode(&frame) {
                Ok(WireMessage::Sync { data, .. }) => {
                    let message = sync::Message::decode(&data).map_err(|e| e.to_string())?;
                    doc.sync()
                        .receive_sync_message(state, message)
                        .map_err(|e| e.to_string())?;
                }
                Ok(WireMessage::Error { message }) => return Err(message),
                _ => {}
            }
        }
    };
    round_trip(&mut doc, &mut state).await?;
    connected.fetch_add(1, Ordering::Relaxed);
    let mut latencies = Vec::new();
    if interval == 0 {
        // Idle: hold the connection, answering the server's pings.
        let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(end, socket.next()).await {}
        let _ = socket.close(None).await;
        return Ok(latencies);
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    // Spread the devices over the interval.
    tokio::time::sleep(Duration::from_millis((i as u64 * 7919) % interval)).await;
    while Instant::now() < end {
        let findings = match doc.get(ROOT, "findings").map_err(|e| e.to_string())? {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            _ => return Err("no findings".into()),
        };
        let finding = doc.keys(&findings).next().ok_or("no finding")?;
        let Some((_, obj)) = doc
            .get(&findings, finding.as_str())
            .map_err(|e| e.to_string())?
        else {
            return Err("no finding".into());
        };
        doc.put(&obj, "place", format!("巡查点 {}", latencies.len()))
            .map_err(|e| e.to_string())?;
        doc.commit();
        latencies.push(round_trip(&mut doc, &mut state).await?);
        tokio::time::sleep(Duration::from_millis(interval)).await;
    }
    let _ = socket.close(None).await;
    Ok(latencies)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}
